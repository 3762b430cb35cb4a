"""How big and how fast is each architecture once frozen? Sizes, LiteRT latency, accuracy.

For every architecture: parameters and multiply-accumulates (``models.model_summary_table``),
the bytes of the three ``.tflite`` files :mod:`kwlesson.export` writes (float audio-in, int8
audio-in with its float feature front end, int8 features-in for microcontrollers), and the
LiteRT latency of one 1 s clip on this CPU (median of ``--runs`` invocations, one thread,
after a warm-up), twice: with LiteRT's default XNNPACK delegate and with its built-in kernels
only (on this x86 CPU XNNPACK's int8 convolutions are the slower of the two). The feature front
end is timed on its own too. Prints a Markdown table plus the machine, the command and the load
before and after; it does not write RESULTS.md (paste the output there).

Without ``--steps`` the weights are untrained (sizes and speed do not depend on them) and the
calibration clips are random noise. With ``--steps N`` each architecture is first trained for N
steps on ``--data_dir`` (with the official background noise) and frozen with
:func:`kwlesson.export.freeze`, and the table adds :func:`kwlesson.verify.verify`'s accuracies
on the validation split (Keras, float, int8, micro). ``--latency_only --work DIR`` re-times the
files an earlier run left in DIR, without training or converting: for a quieter machine.

The default data is the shared Speech Commands v0.02 test set (12 labels). Every clip of it
lies in the reference hash split's "testing" band, so this benchmark re-splits it with
``--validation_percentage 11 --testing_percentage 1`` (the split the export issue asks for).
Those accuracies come from a few thousand clips and short runs: they rank the models; they are
not the published Speech Commands figures.

    python benchmarks/bench_export.py                       # sizes and latency, untrained
    python benchmarks/bench_export.py --steps 400 --work /tmp/kwexport   # + accuracy
    python benchmarks/bench_export.py --latency_only --work /tmp/kwexport --runs 300

``--checkpoint CKPT`` (``quick``: the course's quick model, as lesson 07 freezes it) instead
freezes one checkpoint into ``--work``/app_export with ``--calibration_clips`` training clips
(lesson 07's quick run: 100), and prints :func:`kwlesson.verify.verify`'s int8 line (int8 vs
float accuracy and top-1 agreement, on validation and testing pooled where a split alone has
under 600 clips) and the TF Speech app files (``android/`` float, ``android/int8/``) run as the
app runs them on the validation and testing clips: accuracy and top-1 agreement with Keras.

    python benchmarks/bench_export.py --checkpoint quick --calibration_clips 100 --work /tmp/kwapp
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

import numpy as np
import tensorflow as tf

from kwlesson import android, export, models, quantization, runtime, verify
from kwlesson.config import shared_datasets_dir
from kwlesson.features import FeatureSettings, compute_features

#: Models meant for microcontrollers; the aim is <= 0.5 ms per clip for them.
TINY = ("tiny_conv", "tiny_embedding_conv")


def latency_ms(model: bytes, runs: int, threads: int = 1, xnnpack: bool = True) -> float:
    """Median milliseconds of one ``invoke()`` (input set once; LiteRT, ``threads`` threads).

    ``xnnpack=False``: LiteRT's built-in kernels only (no default XNNPACK delegate).
    """
    return runtime.TFLiteModel(model, num_threads=threads, delegate=xnnpack).latency_ms(runs=runs)


def untrained_files(arch: str, settings: FeatureSettings, labels: int) -> dict[str, bytes]:
    """The three .tflite files of an untrained model, calibrated on noise."""
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((32, settings.desired_samples))).astype(np.float32)
    feats = compute_features(audio, settings).numpy()
    model = models.create_model(arch, settings.shape, labels)
    logits = quantization.frozen_logits(model)
    audio_fn = quantization.audio_fn(logits, settings)
    return {
        "float": quantization.convert(audio_fn, "float"),
        "int8": quantization.convert(audio_fn, "int8", lambda: ([a[None]] for a in audio)),
        "micro": quantization.convert(quantization.features_fn(logits, settings), "micro",
                                lambda: ([f[None]] for f in feats)),
    }


def trained_files(arch: str, args: argparse.Namespace, work: Path) -> tuple[dict, dict]:
    """Train ``arch`` briefly, freeze it, verify it: (files, verify report)."""
    from kwlesson.runs import TrainConfig, latest_checkpoint
    from kwlesson.training import train

    train_dir = work / arch
    ckpt = latest_checkpoint(train_dir, arch)
    first = max(1, args.steps * 3 // 4)
    if ckpt is None or not ckpt.endswith(f"-{args.steps}"):
        cfg = TrainConfig(
            data_dir=str(args.data_dir), model_architecture=arch,
            how_many_training_steps=f"{first},{args.steps - first}" if args.steps > first
            else str(args.steps),
            learning_rate="0.003,0.0005" if args.steps > first else "0.003",
            optimizer="adam", batch_size=args.batch_size,
            validation_percentage=args.validation_percentage,
            testing_percentage=args.testing_percentage,
            eval_step_interval=args.steps, save_step_interval=args.steps,
            background_dir=str(args.background_dir or ""),
            train_dir=str(train_dir), summaries_dir=str(work / f"{arch}_logs"),
            verbosity="warn", seed=1)
        ckpt = train(cfg).checkpoint_path
    out = work / f"{arch}_export"
    int8 = arch not in export.INT8_UNSUPPORTED
    export.freeze(ckpt, out, quantize=int8, stream=io.StringIO())
    report = verify.verify(out)
    files = {kind: (out / name).read_bytes() for kind, name in (
        ("float", export.FLOAT_TFLITE), ("int8", export.INT8_TFLITE),
        ("micro", export.MICRO_TFLITE)) if (out / name).is_file()}
    if not int8:  # freeze refuses int8 here; sizes and speed do not depend on the weights
        card = export.load_model_card(out)
        untrained = untrained_files(arch, FeatureSettings.from_dict(card["feature_settings"]),
                                    len(card["labels"]))
        files.update(int8=untrained["int8"], micro=untrained["micro"])
    return files, report


def front_end_file(settings: FeatureSettings) -> bytes:
    """The feature front end alone (raw audio -> features) as a float .tflite."""
    spec = tf.TensorSpec([1, settings.desired_samples], tf.float32)

    @tf.function(input_signature=[spec])
    def front_end(audio: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"features": compute_features(audio, settings, dft="matrix")}

    return quantization.convert(front_end.get_concrete_function(), "float")


def existing_files(work: Path, arch: str) -> dict[str, bytes] | None:
    """The .tflite files of an earlier run's ``<arch>_export`` folder in ``work``, if any."""
    out = work / f"{arch}_export"
    files = {kind: (out / name).read_bytes() for kind, name in (
        ("float", export.FLOAT_TFLITE), ("int8", export.INT8_TFLITE),
        ("micro", export.MICRO_TFLITE)) if (out / name).is_file()}
    return files if len(files) == 3 else None


def timings(blob: bytes, runs: int) -> tuple[float, float]:
    """(XNNPACK, built-in kernels) median ms; NaN where XNNPACK refuses the model."""
    try:
        xnnpack = latency_ms(blob, runs)
    except RuntimeError:  # e.g. a dead layer's zero range: a scale XNNPACK cannot requantise
        xnnpack = float("nan")
    return xnnpack, latency_ms(blob, runs, xnnpack=False)


def app_files_report(args: argparse.Namespace, work: Path) -> None:
    """``--checkpoint``: freeze it, then verify's int8 line and the app files against Keras."""
    from kwlesson.runs import load_trained
    from kwlesson.training import quick_model

    ckpt = quick_model().checkpoint_path if args.checkpoint == "quick" else args.checkpoint
    out = work / "app_export"
    t0 = time.monotonic()
    export.freeze(ckpt, out, calibration_clips=args.calibration_clips, stream=io.StringIO())
    print(f"froze {ckpt} into {out} in {time.monotonic() - t0:.1f} s "
          f"({args.calibration_clips} calibration clips)")
    report = verify.verify(out, split="validation")
    print(verify.format_verification(report))
    card = export.load_model_card(out)
    print("android_app.int8:", {k: v for k, v in card["android_app"]["int8"].items()
                                if k != "tensors"})
    trained = load_trained(ckpt)
    data = export.run_data(trained.config)
    print("\n| app file | split | clips | Keras % | app file % | drop (points) | "
          "top-1 = Keras % |\n|---|---|---:|---:|---:|---:|---:|")
    for split in verify.HELD_OUT:
        clips, truth = data.arrays(split)
        keras = quantization.keras_logits(
            trained.model, compute_features(clips, trained.settings).numpy()).argmax(-1)
        for name, folder in (("float", out / android.APP_DIR),
                             ("int8", out / android.APP_DIR / android.APP_INT8_DIR)):
            if not (folder / android.APP_MODEL).is_file():
                print(f"| {name} | {split} | not written | | | | |")
                continue
            app = android.run_like_the_app((folder / android.APP_MODEL).read_bytes(),
                                           clips).argmax(-1)
            k, a = 100 * np.mean(keras == truth), 100 * np.mean(app == truth)
            print(f"| {name} | {split} | {len(clips)} | {k:.2f} | {a:.2f} | {k - a:.2f} | "
                  f"{100 * np.mean(app == keras):.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architectures", default=",".join(models.ARCHITECTURES))
    parser.add_argument("--runs", type=int, default=200, help="timed invocations (>= 100)")
    parser.add_argument("--steps", type=int, default=0,
                        help="train each model this many steps and report accuracy (0: no)")
    shared = shared_datasets_dir()
    default_data = (shared / "speech_commands_test_set_v0.02_dev") if shared else None
    default_noise = (shared / "background_noise" / "_background_noise_") if shared else None
    parser.add_argument("--data_dir", type=Path, default=default_data)
    parser.add_argument("--background_dir", type=Path, default=default_noise,
                        help="noise mixed into training (default: the official noise clips)")
    parser.add_argument("--validation_percentage", type=float, default=11.0)
    parser.add_argument("--testing_percentage", type=float, default=1.0)
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--work", type=Path, default=None,
                        help="where trained runs go (kept: a re-run reuses them)")
    parser.add_argument("--latency_only", action="store_true",
                        help="only re-time the .tflite files an earlier run left in --work "
                             "(<arch>_export folders; untrained files where there are none)")
    parser.add_argument("--checkpoint", default=None,
                        help="freeze this checkpoint ('quick': the course's quick model) and "
                             "report verify's int8 line and the TF Speech app files instead")
    parser.add_argument("--calibration_clips", type=int,
                        default=export.DEFAULT_CALIBRATION_CLIPS,
                        help="with --checkpoint: training clips to calibrate int8 on")
    args = parser.parse_args()
    if args.runs < 100:
        parser.error("--runs must be at least 100")
    archs = [a.strip() for a in args.architectures.split(",") if a.strip()]
    if args.latency_only and (args.work is None or not args.work.is_dir()):
        parser.error("--latency_only needs --work, the folder of an earlier run")
    if args.steps and not args.latency_only and (
            args.data_dir is None or not Path(args.data_dir).is_dir()):
        parser.error(f"--steps needs data: {args.data_dir} not found (pass --data_dir)")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_export_"))

    settings = FeatureSettings()
    labels = 12
    summary = {row["architecture"]: row for row in models.model_summary_table(settings.shape,
                                                                               labels)}
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"TensorFlow {tf.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"uptime before: {uptime.strip()}")
    print(f"command: python benchmarks/bench_export.py {' '.join(sys.argv[1:])}  (work: {work})")
    if args.checkpoint:
        app_files_report(args, work)
        uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
        print(f"uptime after: {uptime.strip()}")
        return
    print(f"features {settings.preprocess} {settings.shape[0]}x{settings.shape[1]}, "
          f"{labels} labels; latency: LiteRT, 1 thread, median of {args.runs} invocations "
          "per 1 s clip, as 'XNNPACK (LiteRT's default) / built-in kernels'")
    print("float / int8 take raw audio (the int8 file keeps its feature front end in float); "
          "micro takes int8 features (no front end)")
    fe = timings(front_end_file(settings), args.runs)
    print(f"the feature front end alone (raw audio -> {settings.preprocess}, float): "
          f"{fe[0]:.3f} / {fe[1]:.3f} ms")
    with_accuracy = bool(args.steps) and not args.latency_only
    if with_accuracy:
        print(f"accuracy: validation split ({args.validation_percentage:g}% of "
              f"{args.data_dir}) after {args.steps} steps (batch {args.batch_size}, adam, "
              f"noise from {args.background_dir}), Keras / float / int8 / micro")
    elif args.latency_only:
        print(f"re-timing the files in {work}")
    else:
        print("weights untrained (sizes and latency do not depend on them)")
    print()
    head = ("| architecture | parameters | MACs | float bytes | int8 bytes | micro bytes | "
            "float ms | int8 ms | micro ms |")
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    if with_accuracy:
        head += " accuracy % (Keras / float / int8 / micro) |"
        rule += "---|"
    print(head)
    print(rule)
    rows = {}
    failures: dict[str, list[str]] = {}
    for arch in archs:
        report = None
        if with_accuracy:
            files, report = trained_files(arch, args, work)
        else:
            files = (existing_files(work, arch) if args.latency_only else None) or \
                untrained_files(arch, settings, labels)
        ms = {kind: timings(blob, args.runs) for kind, blob in files.items()}
        size = {kind: len(blob) for kind, blob in files.items()}
        rows[arch] = (size, ms)
        line = (f"| `{arch}` | {summary[arch]['parameters']:,} | {summary[arch]['macs']:,} | "
                f"{size['float']:,} | {size['int8']:,} | {size['micro']:,} | " + " | ".join(
                    f"{ms[k][0]:.3f} / {ms[k][1]:.3f}" for k in ("float", "int8", "micro"))
                + " |")
        if report is not None:
            acc = report["accuracy"]
            failed = [name for name, ok in report["checks"].items() if ok is False]
            failures[arch] = failed
            line += " " + " / ".join(f"{100 * acc[k]:.1f}" if k in acc else "int8 refused"
                                     for k in ("keras", "float", "int8", "micro")) + (
                f" (failed: {', '.join(failed)})" if failed else "") + " |"
        print(line, flush=True)

    print()
    if failures:  # said once more below the table, where a reader looks for the verdicts
        failed = {arch: checks for arch, checks in failures.items() if checks}
        print("verify's checks (float = Keras, int8 within 1 point, TFLM = LiteRT): " + (
            "; ".join(f"{arch} FAILED {', '.join(checks)}" for arch, checks in failed.items())
            if failed else f"all pass for {', '.join(failures)}"))
    smallest = min(rows, key=lambda a: rows[a][0]["micro"])
    size = rows[smallest][0]["micro"]
    print(f"aim: smallest int8 model <= 20 KB: {smallest} micro {size / 1024:.1f} KB -> "
          f"{'met' if size <= 20 * 1024 else 'missed'}")
    if "ds_cnn" in rows:
        size = rows["ds_cnn"][0]["micro"]
        print(f"aim: ds_cnn int8 <= 60 KB: micro {size / 1024:.1f} KB -> "
              f"{'met' if size <= 60 * 1024 else 'missed'}")
    for arch in TINY:
        if arch in rows:
            ms = rows[arch][1]
            # A verdict per runtime: XNNPACK is LiteRT's default, built-in kernels the option.
            verdicts = ", ".join(
                f"{kind} {ms[kind][0]:.3f} / {ms[kind][1]:.3f} ms -> " + " / ".join(
                    "met" if v <= 0.5 else "missed" for v in ms[kind])
                for kind in ("micro", "float", "int8"))
            print(f"aim: {arch} <= 0.5 ms per clip (XNNPACK / built-in): {verdicts}")
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    print(f"uptime after: {uptime.strip()}")


if __name__ == "__main__":
    main()
