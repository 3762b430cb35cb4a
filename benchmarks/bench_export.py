"""How big and how fast is each architecture once frozen? Sizes, LiteRT latency, accuracy.

For every architecture: parameters and multiply-accumulates (``models.model_summary_table``),
the bytes of the three ``.tflite`` files :mod:`kwlesson.export` writes (float audio-in, int8
audio-in with its float feature front end, int8 features-in for microcontrollers), and the
LiteRT latency of one 1 s clip on this CPU (median of ``--runs`` invocations, one thread,
after a warm-up). Prints a Markdown table plus the machine and its load; it does not write
RESULTS.md (paste the output there).

``low_latency_svdf`` cannot go int8 (``export.INT8_UNSUPPORTED``): trained, it is frozen float
only and its int8 columns come from untrained weights (sizes and speed only).

Without ``--steps`` the weights are untrained (sizes and speed do not depend on them) and the
calibration clips are random noise. With ``--steps N`` each architecture is first trained for N
steps on ``--data_dir`` and frozen with :func:`kwlesson.export.freeze`, and the table adds
:func:`kwlesson.export.verify`'s accuracies on the validation split (Keras, float, int8, micro).

The default data is the shared Speech Commands v0.02 test set (12 labels). Every clip of it
lies in the reference hash split's "testing" bucket, so this benchmark re-splits it with
``--validation_percentage 12 --testing_percentage 0``: 20% of it for validation, 80% to train.
Those accuracies come from a few thousand clips and short runs: they rank the models; they are
not the published Speech Commands figures.

    python benchmarks/bench_export.py                       # sizes and latency, untrained
    python benchmarks/bench_export.py --steps 600           # + accuracy after 600 steps each
    python benchmarks/bench_export.py --architectures tiny_conv,ds_cnn --runs 300
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from kwlesson import export, models
from kwlesson.config import shared_datasets_dir
from kwlesson.features import FeatureSettings, compute_features

#: Models meant for microcontrollers; the aim is <= 0.5 ms per clip for them.
TINY = ("tiny_conv", "tiny_embedding_conv")


def latency_ms(model: bytes, runs: int, threads: int = 1) -> float:
    """Median milliseconds of one ``invoke()`` (input set once; LiteRT, ``threads`` threads)."""
    interp = Interpreter(model_content=model, num_threads=threads)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    rng = np.random.default_rng(0)
    if np.issubdtype(inp["dtype"], np.integer):
        x = rng.integers(-128, 128, inp["shape"]).astype(inp["dtype"])
    else:
        x = (0.1 * rng.standard_normal(inp["shape"])).astype(np.float32)
    interp.set_tensor(inp["index"], x)
    for _ in range(10):  # warm-up: delegate set-up, caches
        interp.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interp.invoke()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def untrained_files(arch: str, settings: FeatureSettings, labels: int) -> dict[str, bytes]:
    """The three .tflite files of an untrained model, calibrated on noise."""
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((32, settings.desired_samples))).astype(np.float32)
    feats = compute_features(audio, settings).numpy()
    model = models.create_model(arch, settings.shape, labels)
    logits = export.frozen_logits(model)
    audio_fn = export._audio_fn(logits, settings)
    return {
        "float": export.convert(audio_fn, "float"),
        "int8": export.convert(audio_fn, "int8", lambda: ([a[None]] for a in audio)),
        "micro": export.convert(export._features_fn(logits, settings), "micro",
                                lambda: ([f[None]] for f in feats)),
    }


def trained_files(arch: str, args: argparse.Namespace, work: Path) -> tuple[dict, dict]:
    """Train ``arch`` briefly, freeze it, verify it: (files, verify report)."""
    from kwlesson.training import TrainConfig, latest_checkpoint, train

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
            train_dir=str(train_dir), summaries_dir=str(work / f"{arch}_logs"),
            verbosity="warn", seed=1)
        ckpt = train(cfg).checkpoint_path
    out = work / f"{arch}_export"
    int8 = arch not in export.INT8_UNSUPPORTED
    export.freeze(ckpt, out, quantize=int8, stream=io.StringIO())
    report = export.verify(out)
    files = {kind: (out / name).read_bytes() for kind, name in (
        ("float", export.FLOAT_TFLITE), ("int8", export.INT8_TFLITE),
        ("micro", export.MICRO_TFLITE)) if (out / name).is_file()}
    if not int8:  # freeze refuses int8 here; sizes and speed do not depend on the weights
        card = export.load_model_card(out)
        untrained = untrained_files(arch, FeatureSettings.from_dict(card["feature_settings"]),
                                    len(card["labels"]))
        files.update(int8=untrained["int8"], micro=untrained["micro"])
    return files, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architectures", default=",".join(models.ARCHITECTURES))
    parser.add_argument("--runs", type=int, default=200, help="timed invocations (>= 100)")
    parser.add_argument("--steps", type=int, default=0,
                        help="train each model this many steps and report accuracy (0: no)")
    shared = shared_datasets_dir()
    default_data = (shared / "speech_commands_test_set_v0.02_dev") if shared else None
    parser.add_argument("--data_dir", type=Path, default=default_data)
    parser.add_argument("--validation_percentage", type=float, default=12.0)
    parser.add_argument("--testing_percentage", type=float, default=0.0)
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--work", type=Path, default=None,
                        help="where trained runs go (kept: a re-run reuses them)")
    args = parser.parse_args()
    if args.runs < 100:
        parser.error("--runs must be at least 100")
    archs = [a.strip() for a in args.architectures.split(",") if a.strip()]
    if args.steps and (args.data_dir is None or not Path(args.data_dir).is_dir()):
        parser.error(f"--steps needs data: {args.data_dir} not found (pass --data_dir)")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_export_"))

    settings = FeatureSettings()
    labels = 12
    summary = {row["architecture"]: row for row in models.model_summary_table(settings.shape,
                                                                               labels)}
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"TensorFlow {tf.__version__}; uptime: {uptime.strip()}")
    print(f"features {settings.preprocess} {settings.shape[0]}x{settings.shape[1]}, "
          f"{labels} labels; latency: LiteRT, 1 thread, median of {args.runs} invocations "
          "per 1 s clip")
    print("float / int8 take raw audio (the int8 file keeps its feature front end in float); "
          "micro takes int8 features (no front end)")
    if args.steps:
        print(f"accuracy: validation split of {args.data_dir} after {args.steps} steps "
              f"(batch {args.batch_size}, adam), Keras / float / int8 / micro")
    else:
        print("weights untrained (sizes and latency do not depend on them)")
    print()
    head = ("| architecture | parameters | MACs | float bytes | int8 bytes | micro bytes | "
            "float ms | int8 ms | micro ms |")
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    if args.steps:
        head += " accuracy % (Keras / float / int8 / micro) |"
        rule += "---|"
    print(head)
    print(rule)
    rows = {}
    for arch in archs:
        report = None
        if args.steps:
            files, report = trained_files(arch, args, work)
        else:
            files = untrained_files(arch, settings, labels)
        ms = {kind: latency_ms(blob, args.runs) for kind, blob in files.items()}
        size = {kind: len(blob) for kind, blob in files.items()}
        rows[arch] = (size, ms)
        line = (f"| `{arch}` | {summary[arch]['parameters']:,} | {summary[arch]['macs']:,} | "
                f"{size['float']:,} | {size['int8']:,} | {size['micro']:,} | "
                f"{ms['float']:.3f} | {ms['int8']:.3f} | {ms['micro']:.3f} |")
        if report is not None:
            acc = report["accuracy"]
            failed = [name for name, ok in report["checks"].items() if ok is False]
            line += " " + " / ".join(f"{100 * acc[k]:.1f}" if k in acc else "int8 refused"
                                     for k in ("keras", "float", "int8", "micro")) + (
                f" (failed: {', '.join(failed)})" if failed else "") + " |"
        print(line, flush=True)

    print()
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
            print(f"aim: {arch} <= 0.5 ms per clip: micro {ms['micro']:.3f} ms, int8 with "
                  f"front end {ms['int8']:.3f} ms -> "
                  f"{'met' if ms['micro'] <= 0.5 else 'missed'} (micro), "
                  f"{'met' if ms['int8'] <= 0.5 else 'missed'} (audio in)")
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    print(f"uptime after: {uptime.strip()}")


if __name__ == "__main__":
    main()
