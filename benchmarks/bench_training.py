"""How fast does each architecture train? Training steps per second at batch 100.

Runs ``kwlesson.training.train`` for a few dozen steps per architecture on real clips (the
shared Speech Commands test-set sample with the official background noise, linked into a
temporary folder, never copied) or, when they are absent, on generated tones, and times the
steps after a warm-up (tracing, pipeline start). Validation and checkpoints are pushed past the
end of the run so only training steps are timed; the input pipeline alone is timed as well, to
tell a slow model from a slow pipeline. Besides steps/s it prints the process's CPU time per
step (all threads) and how many cores it kept busy: on a machine shared with other jobs the
CPU time per step is the steadier figure (an idle 2-core machine can at best reach
2000 / (CPU ms per step) steps/s). Prints one line per architecture plus the machine and its
load, ready to paste into benchmarks/RESULTS.md.

    python benchmarks/bench_training.py                       # every architecture, 60 steps
    python benchmarks/bench_training.py --arch tiny_conv --steps 200
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kwlesson.config import shared_datasets_dir  # noqa: E402
from kwlesson.data import BACKGROUND_NOISE_DIR_NAME, SpeechCommands  # noqa: E402
from kwlesson.models import ARCHITECTURES  # noqa: E402
from kwlesson.progress import TrainingObserver
from kwlesson.runs import TrainConfig
from kwlesson.training import train  # noqa: E402


class StepClock(TrainingObserver):
    """Time of each step, to measure steps/s after the warm-up."""

    def __init__(self) -> None:
        self.times: dict[int, float] = {}
        self.cpu: dict[int, float] = {}

    def on_step(self, step: int, metrics: dict) -> None:
        self.times[step] = time.perf_counter()
        # CPU time of the whole process (all threads): a figure the other users of a shared
        # machine do not change much, unlike wall-clock steps/s.
        self.cpu[step] = time.process_time()


def real_data_dir(tmp: Path) -> Path | None:
    """A folder of symlinks: the shared test-set sample's label folders plus background noise."""
    shared = shared_datasets_dir()
    if shared is None:
        return None
    clips = shared / "speech_commands_test_set_v0.02_dev"
    noise = shared / "background_noise" / BACKGROUND_NOISE_DIR_NAME
    if not clips.is_dir():
        return None
    root = tmp / "data"
    root.mkdir()
    for folder in clips.iterdir():
        if folder.is_dir():
            (root / folder.name).symlink_to(folder, target_is_directory=True)
    if noise.is_dir():
        (root / BACKGROUND_NOISE_DIR_NAME).symlink_to(noise, target_is_directory=True)
    return root


def tone_data_dir(tmp: Path) -> Path:
    """Generated 1 s tones, one pitch per word, when the real clips are not there."""
    from kwlesson.audio import write_wav

    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    words = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "cat")
    for k, word in enumerate(words):
        (tmp / "data" / word).mkdir(parents=True)
        for i in range(40):
            x = 0.3 * np.sin(2 * np.pi * 200 * (k + 1) * t) + 0.02 * rng.standard_normal(16000)
            write_wav(tmp / "data" / word / f"{i:04x}{k:02x}cd_nohash_0.wav", x.astype(np.float32))
    return tmp / "data"


def pipeline_steps_per_second(data: SpeechCommands, cfg: TrainConfig, steps: int) -> float:
    ds = data.dataset("training", cfg.feature_settings(), batch_size=cfg.batch_size,
                      seed=cfg.seed, time_shift_ms=cfg.time_shift_ms,
                      background_volume=cfg.background_volume,
                      background_frequency=cfg.background_frequency)
    it = iter(ds)
    for _ in range(5):
        next(it)
    start = time.perf_counter()
    for _ in range(steps):
        next(it)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="*", default=list(ARCHITECTURES),
                        help="architectures to time (default: all)")
    parser.add_argument("--steps", type=int, default=60, help="timed steps (default 60)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps (default 10)")
    parser.add_argument("--batch", type=int, default=100, help="batch size (default 100)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data_dir = real_data_dir(tmp)
        source = "shared test-set sample + background noise"
        if data_dir is None:
            data_dir, source = tone_data_dir(tmp), "generated tones (real clips not found)"
        total = args.warmup + args.steps
        base = TrainConfig(data_dir=str(data_dir), batch_size=args.batch,
                           how_many_training_steps=str(total), learning_rate="0.001",
                           eval_step_interval=10**9, save_step_interval=10**9,
                           verbosity="warn", train_dir=str(tmp / "train"),
                           # The test-set sample hashes into 'testing': train on all of it.
                           validation_percentage=0.0, testing_percentage=0.0,
                           summaries_dir=str(tmp / "logs"))
        data = SpeechCommands(base.data_dir, base.words(), seed=base.seed, progress=False,
                              validation_percentage=0.0, testing_percentage=0.0)

        load = os.getloadavg()
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"TensorFlow {tf.__version__}, load average {load[0]:.2f} {load[1]:.2f} "
              f"{load[2]:.2f}")
        print(f"data: {source}, {len(data.index['training'])} training clips; batch "
              f"{args.batch}, mfcc 98x40, {args.steps} timed steps after {args.warmup}")
        print(f"input pipeline alone: "
              f"{pipeline_steps_per_second(data, base, args.steps):.1f} batches/s")
        print(f"{'architecture':<22} {'steps/s':>8} {'clips/s':>9} {'CPU ms/step':>12} "
              f"{'cores busy':>10}")
        for arch in args.arch:
            cfg = TrainConfig(**{**base.to_dict(), "model_architecture": arch,
                                 "train_dir": str(tmp / "train" / arch)})
            clock = StepClock()
            train(cfg, clock, data=data)
            seconds = clock.times[total] - clock.times[args.warmup]
            cpu = clock.cpu[total] - clock.cpu[args.warmup]
            rate = args.steps / seconds
            print(f"{arch:<22} {rate:>8.1f} {rate * args.batch:>9.0f} "
                  f"{1000 * cpu / args.steps:>12.1f} {cpu / seconds:>10.2f}", flush=True)
        load = os.getloadavg()
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
