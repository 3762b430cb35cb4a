"""What the benchmarks that write benchmarks/RESULTS.md themselves share."""

from __future__ import annotations

import os
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def load() -> str:
    """The load averages (1, 5, 15 min), for the record next to a timing."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def append_section(section: str) -> None:
    """Add a markdown section at the end of RESULTS.md."""
    with open(RESULTS, "a", encoding="utf-8") as fh:
        fh.write(section + "\n")
