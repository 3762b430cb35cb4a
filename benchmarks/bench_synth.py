"""How long the offline dataset takes to make, and how big it is.

Run:  python benchmarks/bench_synth.py [--speakers 100 50 200] [--workers 2]

Prints, for each size, words x speakers, clips, seconds, clips per second and MB on disk, and
appends a markdown section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from _results import append_section, load

from kwlesson import synth


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, nargs="+", default=[synth.DEFAULT_SPEAKERS])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)

    rows = []
    for n in args.speakers:
        with tempfile.TemporaryDirectory() as tmp:
            load_before = load()
            t0 = time.perf_counter()
            out = synth.synthesize_dataset(Path(tmp) / "ds", speakers=n, progress=False,
                                           workers=args.workers)
            secs = time.perf_counter() - t0
            files = list(out.rglob("*.wav"))
            mb = sum(f.stat().st_size for f in files) / 1e6
            noises = (out / "_background_noise_").glob("*.wav")
            noise_mb = sum(f.stat().st_size for f in noises) / 1e6
        clips = len(synth.DEFAULT_WORDS) * n
        row = (f"| {len(synth.DEFAULT_WORDS)} x {n} | {clips} | {secs:.1f} | {clips / secs:.0f} "
               f"| {mb:.0f} (noise {noise_mb:.0f}) | {load_before} |")
        print(row, flush=True)
        rows.append(row)

    header = ("| words x speakers | clips | seconds | clips/s | MB on disk "
              "| load avg before (1/5/15 min) |\n"
              "|---|---|---|---|---|---|")
    section = "\n".join([
        "## Offline dataset: generation time and size",
        "",
        f"Machine: `{platform.machine()}`, {os.cpu_count()} cores; {dt.date.today().isoformat()}; "
        f"workers={args.workers or 'default (2)'}.",
        f"Command: `python benchmarks/bench_synth.py {' '.join(sys.argv[1:])}`".rstrip() + "",
        "",
        header, *rows, "",
    ])
    print(section)
    if not args.no_write:
        append_section(section)


if __name__ == "__main__":
    main()
