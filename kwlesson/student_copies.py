"""Student copies of the lessons: the teacher's notebooks with the solutions removed and the
outputs cleared.

Each exercise's solution sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
(nbgrader's markers); a student sees a placeholder that raises ``NotImplementedError`` there.
``kwlesson student-copies`` runs :func:`write_student_copies`, and a test fails when the copies in
``student/`` are out of date.

>>> write_student_copies("notebooks", "student")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

__all__ = ["BEGIN", "END", "PLACEHOLDER", "strip_solutions", "student_copy_text",
           "write_student_copies"]


BEGIN = "### BEGIN SOLUTION"



END = "### END SOLUTION"



#: What a student sees where a solution was.
PLACEHOLDER = "# YOUR CODE HERE\nraise NotImplementedError()"



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
            # Run timestamps: without them a re-run lesson leaves its student copy unchanged.
            cell.get("metadata", {}).pop("execution", None)
    # Saved widget state only serves outputs, and the copy has none.
    student.get("metadata", {}).pop("widgets", None)
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
