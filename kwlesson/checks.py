"""Exercise checkers for the notebooks, and the tool that writes student copies.

Each exercise in a notebook has its solution between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` (nbgrader's markers) and is followed by a check cell that calls one function
here. A check prints one fixed line when the answer is right and raises ``AssertionError`` with a
hint when it is not, so the same cell works as a test (nbval) and as feedback for a student.

:func:`write_student_copies` turns the teacher's notebooks into student copies with the
solutions removed and the outputs cleared; ``kwlesson student-copies`` runs it, and a test fails
when the copies in ``student/`` are out of date.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
#: What a student sees where a solution was.
PLACEHOLDER = "# YOUR CODE HERE\nraise NotImplementedError()"


def _passed(exercise: str, what: str) -> None:
    print(f"Exercise {exercise} passed: {what}")


# ------------------------------------------------------------------------------ environment


def check_environment() -> dict[str, bool]:
    """Notebook 00: is everything the course needs importable and working? One line each.

    >>> check_environment()  # doctest: +SKIP
    Python 3.11: ok
    ...
    """
    import importlib
    import sys

    results: dict[str, bool] = {}

    def report(what: str, ok: bool, hint: str) -> None:
        results[what] = ok
        print(f"{what}: {'ok' if ok else 'MISSING - ' + hint}")

    report("Python 3.11", sys.version_info[:2] == (3, 11), "create the environment with make demo")
    try:
        tf = importlib.import_module("tensorflow")
        keras = importlib.import_module("keras")
        ok = tf.__version__.startswith("2.") and keras.__version__.startswith("3.")
    except ImportError:
        ok = False
    report("TensorFlow 2 with Keras 3", ok, "pip install -e . in the project folder")
    for module, what in (("librosa", "librosa (audio analysis)"),
                         ("ipywidgets", "ipywidgets (sliders and dashboards)"),
                         ("ai_edge_litert", "LiteRT (running exported models)")):
        try:
            importlib.import_module(module)
            report(what, True, "")
        except ImportError:
            report(what, False, f"pip install {module.replace('_', '-')}")
    try:
        from kwlesson import synth

        ok = synth.speak("yes").size > 1000
    except Exception:  # any failure of the synthesiser means the same thing to a student
        ok = False
    report("espeak-ng speech synthesis (offline dataset)", ok, "pip install espeakng-loader")
    return results


# ---------------------------------------------------------------------------------- checkers
# One function per exercise, named after the notebook and the exercise number.


def check_02_which_set(which_set_fn: Callable[[str, float, float], str]) -> None:
    """Notebook 02, exercise 1: a student's ``which_set`` must agree with the reference.

    >>> from kwlesson.data import which_set
    >>> check_02_which_set(which_set)
    Exercise 02.1 passed: which_set agrees with the reference on 200 file names
    """
    from kwlesson.data import which_set

    names = [f"{i * 2654435761 % 16**8:08x}_nohash_{i % 5}.wav" for i in range(200)]
    for name in names:
        for validation, testing in ((10, 10), (11, 1)):
            want = which_set(name, validation, testing)
            got = which_set_fn(name, validation, testing)
            assert got == want, (
                f"{name} with validation {validation}% and testing {testing}%: you said "
                f"{got!r}, the reference says {want!r}. Hash the name without '_nohash_...'."
            )
    _passed("02.1", f"which_set agrees with the reference on {len(names)} file names")


# ---------------------------------------------------------------------------- student copies


def strip_solutions(notebook: dict) -> dict:
    """A copy of a notebook (nbformat JSON as a dict) without solutions and without outputs.

    >>> nb = {"cells": [{"cell_type": "code", "source": "x = 1\\n### BEGIN SOLUTION\\n"
    ...        "x = 2\\n### END SOLUTION\\n", "outputs": [], "execution_count": 3,
    ...        "metadata": {}}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    >>> strip_solutions(nb)["cells"][0]["source"]
    'x = 1\\n# YOUR CODE HERE\\nraise NotImplementedError()\\n'
    """
    student = copy.deepcopy(notebook)
    for cell in student["cells"]:
        source = cell["source"]
        text = "".join(source) if isinstance(source, list) else source
        if BEGIN in text:
            text = _replace_solutions(text)
        cell["source"] = text
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return student


def _replace_solutions(text: str) -> str:
    out: list[str] = []
    inside = False
    indent = ""
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"nested {BEGIN!r} in:\n{text}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + p + "\n" for p in PLACEHOLDER.splitlines())
        elif stripped == END:
            if not inside:
                raise ValueError(f"{END!r} without {BEGIN!r} in:\n{text}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN!r} without {END!r} in:\n{text}")
    return "".join(out)


def student_copy_text(path: Path) -> str:
    """The exact text of the student copy of the notebook at ``path``."""
    notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    return json.dumps(strip_solutions(notebook), indent=1, ensure_ascii=False) + "\n"


def write_student_copies(source_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write a student copy of every ``NN_*.ipynb`` in ``source_dir`` into ``out_dir``.

    >>> write_student_copies("notebooks", "student")  # doctest: +SKIP
    [PosixPath('student/00_welcome.ipynb'), ...]
    """
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source_dir.glob("[0-9][0-9]_*.ipynb")):
        target = out_dir / path.name
        text = student_copy_text(path)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            tmp = target.with_suffix(".ipynb.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(target)
        written.append(target)
    return written
