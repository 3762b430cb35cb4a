"""Keyword spotting on real speech: test accuracy, time and memory of a few training recipes.

Data: the shared sample of the Speech Commands v0.02 test set (real recordings, 12 labels with
``_silence_`` and ``_unknown_`` folders; found with ``kwlesson.config.shared_datasets_dir()``)
and the official background noise, both used where they are, never copied. All its clips hash
into the reference's testing band (10-20 %), so ``validation_percentage=11,
testing_percentage=1`` splits it speaker-disjoint into ~10 % validation, ~10 % testing and ~80 %
training. Skips with a message when the clips are absent.

Each recipe trains in its own child process (so the peak memory, ``ru_maxrss``, is that run's
alone), one at a time, and reports test accuracy, wall and CPU time, and the load average.
A recipe may first pre-train on the offline (synthetic) dataset, ``kwlesson.synth.
offline_dataset()``, then fine-tune on the real clips from that checkpoint.

    python benchmarks/bench_real_speech.py --list
    python benchmarks/bench_real_speech.py                      # the standard recipes
    python benchmarks/bench_real_speech.py --recipes best       # the best recipe found
    python benchmarks/bench_real_speech.py --recipes tiny_quick --markdown out.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kwlesson.recipes import recipe as training_recipe  # noqa: E402  (plain data, no TensorFlow)

DEV_SET = "speech_commands_test_set_v0.02_dev"
NOISE = ("background_noise", "_background_noise_")
#: Speaker-disjoint ~10/10/80 for clips that all sit in the reference's 10-20 % testing band.
SPLIT = {"validation_percentage": 11.0, "testing_percentage": 1.0}

#: name -> TrainConfig fields, plus optional "pretrain" (fields for a run on the offline
#: dataset first; the fine-tune then continues from its checkpoint, its step count added).
RECIPES: dict[str, dict[str, Any]] = {
    # The course's quick recipe (training.QUICK_RECIPE): tiny_conv, Adam, 1600 steps.
    "tiny_quick": {"model_architecture": "tiny_conv", "how_many_training_steps": "1200,400",
                   "learning_rate": "0.01,0.002", "optimizer": "adam"},
    "tiny_long": {"model_architecture": "tiny_conv", "how_many_training_steps": "3000,1500,500",
                  "learning_rate": "0.005,0.001,0.0002", "optimizer": "adam"},
    # The seed's default optimizer and rates, shortened: what train.py would do in 1600 steps.
    "tiny_seed_sgd": {"model_architecture": "tiny_conv", "how_many_training_steps": "1200,400",
                      "learning_rate": "0.001,0.0001", "optimizer": "gradient_descent"},
    "tiny_pretrained": {"model_architecture": "tiny_conv",
                        "how_many_training_steps": "1200,400",
                        "learning_rate": "0.003,0.0005", "optimizer": "adam",
                        "pretrain": {"how_many_training_steps": "2000",
                                     "learning_rate": "0.01", "optimizer": "adam"}},
    # Louder training noise in both phases: more regularisation for a small real set.
    "tiny_pretrained_noisy": {"model_architecture": "tiny_conv",
                              "how_many_training_steps": "1200,400",
                              "learning_rate": "0.003,0.0005", "optimizer": "adam",
                              "background_volume": 0.3,
                              "pretrain": {"how_many_training_steps": "2000",
                                           "learning_rate": "0.01", "optimizer": "adam",
                                           "background_volume": 0.3}},
    "llconv_pretrained": {"model_architecture": "low_latency_conv",
                          "how_many_training_steps": "1200,400",
                          "learning_rate": "0.001,0.0002", "optimizer": "adam",
                          "pretrain": {"how_many_training_steps": "2000",
                                       "learning_rate": "0.002", "optimizer": "adam"}},
    "llconv_quick": {"model_architecture": "low_latency_conv",
                     "how_many_training_steps": "1200,400", "learning_rate": "0.002,0.0004",
                     "optimizer": "adam"},
    # conv costs ~0.9 CPU s per step at batch 100, ds_cnn ~0.5 (fused batch norm): short runs.
    "conv_short": {"model_architecture": "conv", "how_many_training_steps": "150,50",
                   "learning_rate": "0.002,0.0004", "optimizer": "adam",
                   "eval_step_interval": 100},
    "conv_long": {"model_architecture": "conv", "how_many_training_steps": "600,200",
                  "learning_rate": "0.002,0.0004", "optimizer": "adam",
                  "background_volume": 0.3, "eval_step_interval": 200},
    "ds_cnn_medium": {"model_architecture": "ds_cnn", "how_many_training_steps": "700,300",
                      "learning_rate": "0.005,0.001", "optimizer": "adam",
                      "eval_step_interval": 200},
    # The library's named recipe ``real_speech`` (kwlesson train --recipe real_speech).
    "ds_cnn_noisy": training_recipe("real_speech"),
    "ds_cnn_short": {"model_architecture": "ds_cnn", "how_many_training_steps": "150,50",
                     "learning_rate": "0.01,0.002", "optimizer": "adam",
                     "eval_step_interval": 100},
}
#: The best recipe found so far (see benchmarks/RESULTS.md).
RECIPES["best"] = RECIPES["ds_cnn_noisy"]
STANDARD = ("tiny_quick", "tiny_pretrained", "tiny_long", "conv_short", "conv_long",
            "ds_cnn_short", "ds_cnn_noisy")


def shared_paths() -> tuple[Path, Path] | None:
    """(dev set folder, background noise folder), or None when the dev set is absent."""
    from kwlesson.config import shared_datasets_dir

    shared = shared_datasets_dir()
    if shared is None or not (shared / DEV_SET).is_dir():
        return None
    return shared / DEV_SET, shared.joinpath(*NOISE)


def command_line(recipes: list[str]) -> str:
    return "python benchmarks/bench_real_speech.py --recipes " + " ".join(recipes)


def run_one(name: str, out: Path, work: Path) -> None:
    """Child process: train one recipe, write its figures as JSON to ``out``."""
    import warnings

    from kwlesson.data import DataWarning
    from kwlesson.runs import TrainConfig
    from kwlesson.training import train

    warnings.simplefilter("ignore", DataWarning)
    dev, noise = shared_paths()  # type: ignore[misc]  # the parent checked
    recipe = dict(RECIPES[name])
    pretrain = recipe.pop("pretrain", None)
    arch = recipe["model_architecture"]
    common = {"eval_step_interval": 400, "save_step_interval": 10**9, "verbosity": "warn",
              "max_to_keep": 1}
    t0, c0 = time.perf_counter(), time.process_time()
    figures: dict[str, Any] = {"recipe": name, "load_before": os.getloadavg()}
    start, offset = "", 0
    if pretrain:
        from kwlesson import synth

        cfg = TrainConfig(**{**common, "model_architecture": arch, **pretrain,
                             "data_dir": str(synth.offline_dataset(progress=False)),
                             "train_dir": str(work / "pretrain"),
                             "summaries_dir": str(work / "pretrain_logs")})
        res = train(cfg)
        start, offset = res.checkpoint_path, res.step
        figures["pretrain_synthetic_test_accuracy"] = res.test_accuracy
        figures["pretrain_seconds"] = time.perf_counter() - t0
    if offset:  # the fine-tune's phases come after the pre-training's steps
        steps = [int(s) for s in recipe["how_many_training_steps"].split(",")]
        steps[0] += offset
        recipe["how_many_training_steps"] = ",".join(map(str, steps))
    cfg = TrainConfig(**{**common, **recipe, **SPLIT, "data_dir": str(dev),
                         "background_dir": str(noise), "start_checkpoint": start,
                         "train_dir": str(work / "train"), "summaries_dir": str(work / "logs")})
    res = train(cfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    figures.update({
        "architecture": arch, "steps": res.step - offset, "pretrain_steps": offset,
        "test_accuracy": res.test_accuracy, "test_n": int(res.test_confusion.sum()),
        "best_validation": max((a for _, a in res.validation), default=None),
        "wall_s": wall, "cpu_s": cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_after": os.getloadavg(), "confusion": res.test_confusion.tolist(),
        "labels": res.labels,
    })
    out.write_text(json.dumps(figures))


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"`{platform.machine()}`, {os.cpu_count()} cores ({cpu})"


def row(f: dict[str, Any]) -> str:
    load = "/".join(f"{x:.1f}" for x in f["load_before"])
    pre = f" + {f['pretrain_steps']} synthetic" if f["pretrain_steps"] else ""
    val = f"{100 * f['best_validation']:.1f}%" if f["best_validation"] is not None else "-"
    return (f"| {f['recipe']} | {f['architecture']} | {f['steps']}{pre} | "
            f"{100 * f['test_accuracy']:.1f}% (N={f['test_n']}) | {val} | {f['wall_s']:.0f} | "
            f"{f['cpu_s']:.0f} | {f['peak_rss_mb']:.0f} | {load} |")


HEADER = ("| recipe | model | steps | test accuracy | best validation | wall s | CPU s | "
          "peak MB | load before |\n|---|---|---|---|---|---:|---:|---:|---|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="*", default=list(STANDARD),
                        help=f"recipes to train, one at a time (default: {' '.join(STANDARD)})")
    parser.add_argument("--list", action="store_true", help="print the recipes and exit")
    parser.add_argument("--markdown", help="also append the table to this file")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.list:
        for name, recipe in RECIPES.items():
            print(f"{name:<16} {json.dumps(recipe)}")
        return
    if args.one:
        run_one(args.one, Path(args.out), Path(args.work))
        return
    unknown = [r for r in args.recipes if r not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    paths = shared_paths()
    if paths is None:
        print(f"skipped: the real clips ({DEV_SET}) are not in the shared datasets folder "
              "(set KWLESSON_SHARED_DATASETS to the folder that holds them)")
        return
    if not paths[1].is_dir():
        print(f"note: {paths[1]} not found; training mixes no background noise")
    print(f"machine: {machine()}; Python {sys.version.split()[0]}")
    print(f"date: {datetime.date.today()}; command: {command_line(args.recipes)}")
    print(HEADER, flush=True)
    rows = []
    for name in args.recipes:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "figures.json"
            proc = subprocess.run([sys.executable, __file__, "--one", name, "--out", str(out),
                                   "--work", tmp], check=False)
            if proc.returncode != 0 or not out.exists():
                print(f"| {name} | failed (exit code {proc.returncode}) |", flush=True)
                continue
            figures = json.loads(out.read_text())
        rows.append(row(figures))
        print(rows[-1], flush=True)
        print(f"<!-- {name} confusion (rows truth, columns prediction, "
              f"{', '.join(figures['labels'])}): {figures['confusion']} -->", flush=True)
    if args.markdown and rows:
        with open(args.markdown, "a") as fh:
            fh.write(f"\nMachine: {machine()}; {datetime.date.today()}; "
                     f"command: `{command_line(args.recipes)}`\n\n{HEADER}\n")
            fh.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
