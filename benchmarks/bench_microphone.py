"""What the live view costs the kernel per microphone chunk.

Plays the first ``--seconds`` of lesson 08's test recording (made if missing) into
``kwlesson.microphone.live_view(kw.quick_model())`` as a browser would: 100 ms chunks at 48 kHz,
through ``feed`` (resampling, features, windows every 30 ms, RecognizeCommands). Prints the time
per chunk (median, 95th percentile, max) and the real-time factor, with the load average.

The end-to-end delay in a real browser (audio in -> label shown) is measured by
tests/test_browser_microphone.py, which prints it; see benchmarks/RESULTS.md.

    python benchmarks/bench_microphone.py --seconds 60
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=int, default=48000, help="the browser's sample rate")
    parser.add_argument("--chunk_ms", type=int, default=100)
    args = parser.parse_args()

    import soxr

    import kwlesson as kw

    kw.setup(seed=0)
    from kwlesson import streaming_test, synth
    from kwlesson.audio import read_wav
    from kwlesson.microphone import live_view

    wav = kw.data_home() / "streaming" / "bench_microphone.wav"
    if not wav.exists():
        streaming_test.generate_streaming_test(synth.offline_dataset(progress=False), wav,
                                          wav.with_suffix(".txt"), max(args.seconds, 10))
    audio = read_wav(wav)[:int(args.seconds * 16000)]
    x = soxr.resample(audio, 16000, args.rate).astype(np.float32)
    step = args.rate * args.chunk_ms // 1000
    view = live_view(kw.quick_model())
    view.feed(x[:step], args.rate)  # the first call traces the model's functions
    times = []
    for i in range(step, len(x), step):
        t = time.perf_counter()
        view.feed(x[i:i + step], args.rate)
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load "
          f"{os.getloadavg()[0]:.2f}")
    print(f"{len(ms)} chunks of {args.chunk_ms} ms at {args.rate} Hz: median "
          f"{np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms "
          f"per chunk; {len(ms) * args.chunk_ms / ms.sum():.0f}x real time; "
          f"{view.windows} windows, {len(view.detections)} words heard")


if __name__ == "__main__":
    main()
