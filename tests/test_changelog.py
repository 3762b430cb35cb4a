"""Every entry of CHANGELOG.md says which lesson(s) it concerns: each top-level bullet starts
with a tag such as ``[02]``, ``[07, 08]`` or, for entries not about one lesson, ``[library]``,
``[course]``, ``[benchmarks]``, ``[tests]`` or ``[cli]``."""

import re
from pathlib import Path

CHANGELOG = Path(__file__).resolve().parent.parent / "CHANGELOG.md"

AREAS = ("library", "course", "benchmarks", "tests", "cli")
_ITEM = r"(?:0[0-9]|" + "|".join(AREAS) + r")"
TAG = re.compile(r"- \[" + _ITEM + r"(?:, " + _ITEM + r")*\] ")


def entries() -> list[str]:
    """The top-level bullets of the changelog (lines starting with ``- `` at column 0)."""
    return [line for line in CHANGELOG.read_text(encoding="utf-8").splitlines()
            if line.startswith("- ")]


def test_changelog_has_entries():
    assert entries(), f"no top-level '- ' entries found in {CHANGELOG}"


def test_every_entry_is_tagged():
    untagged = [line[:60] for line in entries() if not TAG.match(line)]
    assert not untagged, (
        f"{len(untagged)} CHANGELOG.md entries lack a tag like [02], [07, 08] or one of "
        f"[{'], ['.join(AREAS)}] (lessons 00-09):\n" + "\n".join(untagged))


def test_tag_pattern():
    for good in ("- [02] x", "- [07, 08] x", "- [library] x", "- [03, 05, course] x"):
        assert TAG.match(good), good
    for bad in ("- x", "- [2] x", "- [10] x", "- [07,08] x", "- [misc] x", "- [02]x",
                "- [] x", "- [07, ] x"):
        assert not TAG.match(bad), bad
