"""Do the exported files keep their promises? ``kwlesson.verify.verify`` on two data sets.

The promises (issue "Freeze it for phones and microcontrollers"): the float ``.tflite`` picks
the Keras model's top label on at least 99.5% of held-out clips; the int8 file's accuracy is at
most 1 point below the float file's; the int8 features-in model runs in TensorFlow Lite Micro
and agrees with LiteRT on at least 99% of clips.

Data sets:

* ``offline``: the course's quick model (``training.quick_model()``: tiny_conv, 1,600 steps on
  the offline synthetic dataset ``synth.offline_dataset()``), verified on its validation split,
  its testing split, both together (under 300 clips), and on every clip of a second synthetic
  dataset made with seed 1 (other voices; ``--work``/offline_seed1) and on every clip of the
  real test-set sample below (real speech it never heard: 3,441 clips, so one point is 34
  clips and the 1-point check means something).
* ``real``: the Speech Commands v0.02 test-set sample in the shared datasets folder, split with
  validation 11 / testing 1 (every clip of it sits in the reference hash split's testing band,
  so the percentages re-split it), trained here with the official background noise mixed in:
  tiny_conv with the course's quick recipe and ds_cnn with the best real-speech recipe of
  ``bench_real_speech.py`` (``ds_cnn_noisy``); verified on validation, then validation+testing.

Prints one table row per model and split, plus the machine, date and load; paste it into
RESULTS.md. Trained runs are kept in ``--work`` so a re-run only re-freezes and re-verifies.

    python benchmarks/bench_verification.py                    # both data sets
    python benchmarks/bench_verification.py --datasets real --work /tmp/kwverify
    python benchmarks/bench_verification.py --normalize_features --work /tmp/kwverify
    python benchmarks/bench_verification.py --datasets real --real_seeds 1,2,3 --work /tmp/kwverify
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

from kwlesson import export, verify
from kwlesson.config import shared_datasets_dir
from kwlesson.runs import TrainConfig, latest_checkpoint
from kwlesson.training import quick_model, train

sys.path.insert(0, str(Path(__file__).parent))
from bench_real_speech import RECIPES  # noqa: E402  (the recipes, not a copy of them)

REAL_MODELS = {"tiny_conv": "tiny_quick", "ds_cnn": "ds_cnn_noisy"}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def real_checkpoint(arch: str, data_dir: Path, noise_dir: Path | None, work: Path,
                    normalize: bool = False, seed: int = 1) -> str:
    """Train ``arch`` on the real sample (validation 11 / testing 1) unless already done."""
    recipe = dict(RECIPES[REAL_MODELS[arch]])
    if normalize:
        recipe["normalize_features"] = True
    train_dir = work / (f"real_{arch}{'_norm' if normalize else ''}"
                        + ("" if seed == 1 else f"_seed{seed}"))
    total = sum(int(n) for n in recipe["how_many_training_steps"].split(","))
    ckpt = latest_checkpoint(train_dir, arch)
    if ckpt is not None and ckpt.endswith(f"-{total}"):
        return ckpt
    recipe.setdefault("eval_step_interval", 400)
    cfg = TrainConfig(**{
        **recipe, "data_dir": str(data_dir),
        "background_dir": str(noise_dir) if noise_dir else "",
        "validation_percentage": 11.0, "testing_percentage": 1.0,
        "save_step_interval": total, "train_dir": str(train_dir),
        "summaries_dir": str(train_dir) + "_logs", "verbosity": "warn", "seed": seed})
    return train(cfg).checkpoint_path


def row(dataset: str, name: str, report: dict) -> str:
    acc, agree = report["accuracy"], report["agreement"]

    def pct(d: dict, k: str) -> str:
        return "-" if d.get(k) is None else f"{100 * d[k]:.2f}"

    drop = 100 * (acc["float"] - acc["int8"]) if "int8" in acc else None
    flips = report.get("int8_flips")
    flipped = ("-" if not flips else f"{flips['right_in_float_only']} / "
               f"{flips['right_in_int8_only']} (p {flips['p_value']:.2f})")
    rounding = report.get("score_rounding_flips")
    rounded = ("-" if not rounding else f"{rounding['right_in_float_only']} / "
               f"{rounding['right_in_int8_only']} (step {report['int8_score_step']:.3f})")
    verdict = ", ".join(f"{k} {'ok' if v else 'FAILED'}"
                        for k, v in report["checks"].items() if v is not None)
    return (f"| {dataset} | {name} | {report['split']} | {report['clips']} | "
            f"{pct(acc, 'keras')} | {pct(acc, 'float')} | {pct(acc, 'int8')} | "
            f"{pct(acc, 'micro')} | {pct(acc, 'micro_tflm')} | {pct(agree, 'float_vs_keras')} | "
            f"{pct(agree, 'int8_vs_float')} | "
            f"{'-' if drop is None else f'{drop:+.2f}'.replace('+', '')} | "
            f"{flipped} | {rounded} | {pct(agree, 'micro_tflm_vs_litert')} | {verdict} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="offline,real")
    parser.add_argument("--work", type=Path, default=None,
                        help="where trained runs and exports go (kept: a re-run reuses them)")
    parser.add_argument("--real_models", default=",".join(REAL_MODELS))
    parser.add_argument("--real_seeds", default="1",
                        help="training seeds for the real-speech models, e.g. 1,2,3: how much "
                             "the int8 drop varies from one trained model to the next")
    parser.add_argument("--calibration_clips", type=int, default=export.DEFAULT_CALIBRATION_CLIPS)
    parser.add_argument("--normalize_features", action="store_true",
                        help="train (and take the quick model) with per-bin feature "
                             "normalisation (TrainConfig.normalize_features)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_verification_"))
    work.mkdir(parents=True, exist_ok=True)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"TensorFlow {tf.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"uptime before: {uptime()}")
    print(f"command: python benchmarks/bench_verification.py {' '.join(sys.argv[1:])}")
    print(f"int8 calibration: {args.calibration_clips} training clips; range rule (freeze's "
          "default: per_tensor) shown after the model's name")
    print()
    print("| data | model | split | clips | Keras % | float % | int8 % | micro % | TFLM % | "
          "float = Keras % | int8 = float % | int8 drop (points) | right in float / int8 only "
          "| the same, Keras' scores rounded to int8's step alone | TFLM = LiteRT % | checks |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---|")
    jobs: list[tuple[str, str, str, list[str]]] = []
    fresh = None
    real_all = None
    if "offline" in datasets:
        tm = quick_model(**({"normalize_features": True} if args.normalize_features else {}))
        jobs.append(("offline", f"tiny_conv quick model, {tm.step} steps", tm.checkpoint_path,
                     ["validation", "testing", "validation+testing"]))
        # Its held-out splits hold under 300 clips (1 point = 3 clips): also verify on a second
        # synthetic dataset made with another seed (other voices), every clip of it held out.
        from kwlesson.data import SpeechCommands
        from kwlesson.synth import synthesize_dataset

        folder = work / "offline_seed1"
        if not (folder / "yes").is_dir():
            synthesize_dataset(folder, seed=1, progress=False)
        c = tm.config
        fresh = SpeechCommands(folder, wanted_words=c.words(),
                               silence_percentage=c.silence_percentage,
                               unknown_percentage=c.unknown_percentage,
                               validation_percentage=50.0, testing_percentage=50.0,
                               seed=c.seed, progress=False)
        shared = shared_datasets_dir()
        real_dir = shared / "speech_commands_test_set_v0.02_dev" if shared else None
        if real_dir is not None and real_dir.is_dir():
            real_all = SpeechCommands(real_dir, wanted_words=c.words(),
                                      silence_percentage=c.silence_percentage,
                                      unknown_percentage=c.unknown_percentage,
                                      validation_percentage=50.0, testing_percentage=50.0,
                                      seed=c.seed, progress=False)
    if "real" in datasets:
        shared = shared_datasets_dir()
        data_dir = shared / "speech_commands_test_set_v0.02_dev" if shared else None
        if data_dir is None or not data_dir.is_dir():
            print(f"real: {data_dir} not found; skipped")
        else:
            noise = shared / "background_noise" / "_background_noise_"
            seeds = [int(x) for x in args.real_seeds.split(",") if x.strip()]
            for arch in [a.strip() for a in args.real_models.split(",") if a.strip()]:
                for seed in seeds:
                    ckpt = real_checkpoint(arch, data_dir, noise if noise.is_dir() else None,
                                           work, args.normalize_features, seed)
                    steps = ckpt.rsplit("-", 1)[-1]
                    jobs.append(("real (11/1)", f"{arch} `{REAL_MODELS[arch]}`, seed {seed}, "
                                 f"{steps} steps", ckpt, ["validation", "validation+testing"]))
    timings = []
    for dataset, name, ckpt, splits in jobs:
        out = work / (f"export_{dataset.split()[0]}_{Path(ckpt).parent.name}_{Path(ckpt).name}"
                      + ("_norm" if args.normalize_features else ""))
        start = time.monotonic()
        export.freeze(ckpt, out, calibration_clips=args.calibration_clips,
                      stream=io.StringIO())
        froze = time.monotonic() - start
        rule = export.load_model_card(out)["calibration"]["ranges"]
        timings.append(f"freeze {dataset} {name}: {froze:.1f} s")
        for split in splits:
            print(row(dataset, f"{name} ({rule})", verify.verify(out, split=split)), flush=True)
        if dataset == "offline" and fresh is not None:
            report = verify.verify(out, data=fresh, split="validation+testing")
            report["split"] = "all"  # fresh data: every clip is held out
            print(row("offline, seed 1 (new voices)", f"{name} ({rule})", report), flush=True)
        if dataset == "offline" and real_all is not None:
            report = verify.verify(out, data=real_all, split="validation+testing")
            report["split"] = "all"
            print(row("real, every clip (never trained on)", f"{name} ({rule})", report),
                  flush=True)
    print()
    for line in timings:
        print(line)
    print(f"uptime after: {uptime()}")


if __name__ == "__main__":
    main()
