"""Notebook hygiene: the lessons follow the house style, keep their outputs, and the student
copies are current. (nbval itself runs the notebooks; see pyproject's pytest options.)"""

import json
import re
from pathlib import Path

import pytest

from kwlesson import student_copies

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
STUDENT = ROOT / "student"


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def _text(cell):
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no lesson"


def test_names_are_numbered_in_course_order():
    numbers = []
    for path in NOTEBOOKS:
        match = re.fullmatch(r"(\d\d)_[a-z0-9_]+\.ipynb", path.name)
        assert match, f"{path.name}: name must be NN_snake_case_title.ipynb"
        numbers.append(int(match.group(1)))
    assert numbers == list(range(len(numbers))), f"gaps or repeats in {numbers}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_anatomy(path):
    nb = _load(path)
    cells = nb["cells"]
    first = _text(cells[0])
    number = path.name[:2]
    assert cells[0]["cell_type"] == "markdown" and first.startswith(f"# {number} · "), (
        f"{path.name}: the first cell must be the title '# {number} · ...'")
    markdown = "\n".join(_text(c) for c in cells if c["cell_type"] == "markdown")
    for heading in ("## In this notebook you will", "## Setup", "## Summary"):
        assert heading in markdown, f"{path.name}: missing '{heading}'"
    code = [c for c in cells if c["cell_type"] == "code"]
    assert any("kw.setup(" in _text(c) for c in code), f"{path.name}: no kw.setup(...) call"
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in code), (
        f"{path.name}: no cell tagged 'parameters' (papermill)")
    later = sorted(ROOT.joinpath("notebooks").glob(f"{int(number) + 1:02d}_*.ipynb"))
    if later:
        assert later[0].name in markdown, f"{path.name}: no link on to {later[0].name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_stored_from_a_clean_run(path):
    """Restart & Run All before committing: counts 1, 2, 3, ... and no error output."""
    code = [c for c in _load(path)["cells"] if c["cell_type"] == "code" and _text(c).strip()]
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name}: execution counts {counts}; run Restart & Run All and save")
    for cell in code:
        for out in cell["outputs"]:
            assert out["output_type"] != "error", f"{path.name}: a stored error output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_small_enough_for_git(path):
    assert path.stat().st_size < 1_500_000, f"{path.name} is {path.stat().st_size} bytes"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_copy_is_current(path):
    copy = STUDENT / path.name
    assert copy.exists(), f"student/{path.name} missing: run `kwlesson student-copies`"
    assert copy.read_text(encoding="utf-8") == student_copies.student_copy_text(path), (
        f"student/{path.name} is out of date: run `kwlesson student-copies`")
    assert student_copies.BEGIN not in copy.read_text(encoding="utf-8")


def test_student_copy_drops_run_timestamps_and_widget_state():
    nb = {"cells": [{"cell_type": "code", "source": "x = 1\n", "outputs": [],
                     "execution_count": 4,
                     "metadata": {"tags": ["parameters"],
                                  "execution": {"iopub.status.idle": "2026-11-24T01:52:41Z"}}}],
          "metadata": {"widgets": {"state": {}}, "kernelspec": {"name": "python3"}}}
    student = student_copies.strip_solutions(nb)
    assert student["cells"][0]["metadata"] == {"tags": ["parameters"]}
    assert student["metadata"] == {"kernelspec": {"name": "python3"}}
    assert "execution" in nb["cells"][0]["metadata"], "the lesson itself is left as it was"


def test_strip_solutions_refuses_unbalanced_markers():
    nb = {"cells": [{"cell_type": "code", "source": "### BEGIN SOLUTION\nx = 1\n",
                     "outputs": [], "execution_count": 1, "metadata": {}}]}
    with pytest.raises(ValueError, match="without"):
        student_copies.strip_solutions(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_lesson_has_a_reasoning_exercise_with_a_check(path):
    """At least one exercise per lesson asks students to reason (predict, choose, debug), not
    to re-write a library function: its markdown cell is tagged "reasoning", and it is followed,
    before the next heading of its level, by a solution cell and a cell that calls its check."""
    cells = _load(path)["cells"]
    number = path.name[:2]
    found = []
    for i, cell in enumerate(cells):
        if "reasoning" not in cell.get("metadata", {}).get("tags", []):
            continue
        text = _text(cell)
        assert text.startswith(f"### Exercise {number}."), (
            f"{path.name}: a reasoning cell must open an exercise of this lesson: {text[:60]!r}")
        rest = []
        for later in cells[i + 1:]:
            if later["cell_type"] == "markdown" and _text(later).startswith("#"):
                break  # the next heading: the exercise ends there
            rest.append(later)
        code = [_text(c) for c in rest if c["cell_type"] == "code"]
        assert any("### BEGIN SOLUTION" in c for c in code), (
            f"{path.name}: {text[:40]!r} has no solution")
        assert any(re.search(rf"checks\.check_{number}_\w+\(", c) for c in code), (
            f"{path.name}: {text[:40]!r} has no checks.check_{number}_... call")
        found.append(text.splitlines()[0])
    assert found, f"{path.name}: no exercise tagged 'reasoning'"
