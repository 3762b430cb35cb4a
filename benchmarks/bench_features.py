"""How fast is each feature front end? Clips per second on batches of 1 s clips.

Times ``compute_features`` on batches of random 1 s clips, eagerly and inside a ``tf.function``
(as tf.data and an exported model run it), for each preprocess, and prints one line per case
plus the machine and its load, ready to paste into benchmarks/RESULTS.md.

    python benchmarks/bench_features.py            # batches of 100, 5 repeats
    python benchmarks/bench_features.py --batch 32 --repeats 10
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kwlesson.features import PREPROCESS_CHOICES, FeatureSettings, compute_features  # noqa: E402


def clips_per_second(fn, batch: np.ndarray, repeats: int) -> tuple[float, float]:
    """Median and best clips/s over ``repeats`` timed calls, after one warm-up call."""
    fn(batch).numpy()  # warm-up: tracing, constant caches, thread pools
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(batch).numpy()
        rates.append(len(batch) / (time.perf_counter() - start))
    return statistics.median(rates), max(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100, help="clips per batch (default 100)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per case (default 5)")
    args = parser.parse_args()

    batch = np.random.default_rng(0).uniform(-0.5, 0.5, (args.batch, 16000)).astype(np.float32)
    load = os.getloadavg()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"TensorFlow {tf.__version__}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"batch of {args.batch} clips of 1 s, median (best) of {args.repeats} calls")
    print(f"{'preprocess':<12} {'shape':<10} {'eager clips/s':>18} {'tf.function clips/s':>22}")
    for preprocess in PREPROCESS_CHOICES:
        settings = FeatureSettings(preprocess=preprocess)
        graph = tf.function(lambda a, s=settings: compute_features(a, s))
        eager_med, eager_best = clips_per_second(lambda a, s=settings: compute_features(a, s),
                                                 batch, args.repeats)
        graph_med, graph_best = clips_per_second(graph, batch, args.repeats)
        shape = "x".join(map(str, settings.shape))
        print(f"{preprocess:<12} {shape:<10} {eager_med:>10.0f} ({eager_best:>5.0f})"
              f" {graph_med:>14.0f} ({graph_best:>5.0f})")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
