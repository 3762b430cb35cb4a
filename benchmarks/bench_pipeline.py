"""Throughput of the training input pipeline, in clips per second, once the audio is cached.

What is measured: ``SpeechCommands.dataset("training", ...)`` with MFCC 98x40 features, batch 100,
augmentation on (time shift 100 ms, background noise into 80% of clips), i.e. everything a
training step waits for. Uses the real dev set in the shared datasets folder, or a synthetic
folder of random clips when it is absent. Prints the figures and the machine's load; it does not
write RESULTS.md.

    python benchmarks/bench_pipeline.py [--batches 60] [--rounds 3] [--batch-size 100]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def synthetic_folder(root: Path, words: list[str], per_word: int = 150) -> Path:
    """Random 1 s clips in word folders plus two noise clips: stands in for the real data."""
    import numpy as np

    from kwlesson.audio import write_wav

    rng = np.random.default_rng(0)
    for w in words + ["bed", "cat"]:
        for i in range(per_word):
            write_wav(root / w / f"{i:08x}_nohash_0.wav", (rng.standard_normal(16000) * 0.1)
                      .astype("float32"))
    for i in range(2):
        write_wav(root / "_background_noise_" / f"noise{i}.wav",
                  (rng.standard_normal(16000 * 30) * 0.1).astype("float32"))
    return root


def tf_version() -> str:
    import tensorflow as tf

    return tf.__version__


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--preprocess", default="mfcc")
    args = parser.parse_args(argv)

    from kwlesson.config import shared_datasets_dir
    from kwlesson.data import DataWarning, SpeechCommands
    from kwlesson.features import FeatureSettings

    shared = shared_datasets_dir()
    tmp = None
    if shared and (shared / "speech_commands_test_set_v0.02_dev").is_dir():
        data_dir = shared / "speech_commands_test_set_v0.02_dev"
        background_dir = shared / "background_noise" / "_background_noise_"
        # The canonical test set hashes to 10-20% (it *is* the testing split at 10/10);
        # 11/1 spreads it over all three splits.
        split = dict(validation_percentage=11, testing_percentage=1)
        source = "real dev set"
    else:
        tmp = tempfile.TemporaryDirectory()
        data_dir = synthetic_folder(Path(tmp.name), ["yes", "no", "up", "down"])
        background_dir = None
        split = dict(validation_percentage=10, testing_percentage=10)
        source = "synthetic folder (real dev set absent)"

    settings = FeatureSettings(preprocess=args.preprocess)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        t0 = time.perf_counter()
        sc = SpeechCommands(data_dir, **split,
                            background_dir=background_dir, progress=False)
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        SpeechCommands(data_dir, **split,
                       background_dir=background_dir, progress=False)
        t_cached = time.perf_counter() - t0

    ds = sc.dataset("training", settings, batch_size=args.batch_size, seed=0)
    it = iter(ds)
    t0 = time.perf_counter()
    for _ in range(5):  # warm up: tracing, thread pools, prefetch buffer
        next(it)
    t_first = time.perf_counter() - t0
    rates, cpu_ms = [], []
    for _ in range(args.rounds):  # several rounds: the machine is shared, take the spread
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(args.batches):
            x, y = next(it)
        x.numpy()
        rates.append(args.batches * args.batch_size / (time.perf_counter() - t0))
        # CPU time of all threads per batch: steadier than wall time on a shared machine.
        cpu_ms.append(1000 * (time.process_time() - c0) / args.batches)
    rates.sort()
    cpu_ms.sort()

    print(f"data:        {source}: {data_dir}")
    print(f"             {len(sc.index['training'])} training entries, "
          f"{len(sc.background)} background clips")
    print(f"machine:     {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{sys.version.split()[0]}, TensorFlow {tf_version()}")
    print(f"load avg:    before {load_avg_before}, after {load_average()} (1/5/15 min)")
    print(f"first load   {t_load:6.2f} s (index + decode, or the disk cache of an earlier run)")
    print(f"cached load  {t_cached:6.2f} s")
    print(f"warm-up      {t_first:6.2f} s for 5 batches")
    print(f"throughput   median {rates[len(rates) // 2]:.0f}, best {rates[-1]:.0f}, worst "
          f"{rates[0]:.0f} clips/s ({args.preprocess} {tuple(x.shape[1:])}, batch "
          f"{args.batch_size}, time shift 100 ms + background mix 80%, "
          f"{args.rounds} rounds of {args.batches} batches)")
    print(f"CPU time     median {cpu_ms[len(cpu_ms) // 2]:.1f} ms per batch (all threads; an "
          f"idle {os.cpu_count()}-core machine could at best make "
          f"{1000 * (os.cpu_count() or 1) / cpu_ms[len(cpu_ms) // 2]:.0f} batches/s)")
    if tmp is not None:
        tmp.cleanup()


load_avg_before = load_average()

if __name__ == "__main__":
    main()
