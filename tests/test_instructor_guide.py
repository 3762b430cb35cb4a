"""The instructor guide's class times are the notebooks' own.

Each lesson's header cell (its second cell, "In this notebook you will") says
"**Time:** N minutes in class". That is the one place a lesson's class time is written: the
guide's timings table and its plans (the 90-minute path, the two sessions, the full term) must
give the same minutes, and the 90-minute path must fit in 90 minutes by those times.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "instructor_guide.md"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

HEADER_TIME = re.compile(r"\*\*Time:\*\*\s+(\d+)\s+minutes\s+in\s+class")
LESSON_CELL = re.compile(r"^\*{0,2}(\d\d) · ")
MINUTES_CELL = re.compile(r"^\*{0,2}(\d+) min\*{0,2}$")


def header_times() -> dict[str, int]:
    """Class minutes per lesson ("00".."09"), from each notebook's header cell."""
    times = {}
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        header = "".join(cells[1]["source"]) if len(cells) > 1 else ""
        found = HEADER_TIME.search(header)
        assert found, (f"lesson {path.name[:2]}: its second cell ({path.name}) has no "
                       "'**Time:** N minutes in class'")
        times[path.name[:2]] = int(found.group(1))
    return times


def section(heading: str) -> str:
    """The guide's text under a heading (any level), up to the next heading of that level or
    higher; fenced code is left out (its ``# comments`` are not headings)."""
    text = re.sub(r"^```.*?^```", "", GUIDE.read_text(encoding="utf-8"),
                  flags=re.MULTILINE | re.DOTALL)
    found = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.MULTILINE)
    assert found, f"{GUIDE.name} has no heading '{heading}'"
    level = len(found.group(1))
    rest = text[found.end():]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return rest[:end.start()] if end else rest


def tables(text: str) -> list[list[list[str]]]:
    """The markdown tables in a text: each a list of rows, each a list of stripped cells
    (the separator rows left out)."""
    found, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def lesson_rows(table: list[list[str]]) -> list[tuple[str, int | None, str]]:
    """(lesson, minutes or None, the row's text) for every row of a table that names a lesson."""
    rows = []
    for cells in table:
        lessons = [m.group(1) for c in cells if (m := LESSON_CELL.match(c))]
        if lessons:
            minutes = [int(m.group(1)) for c in cells if (m := MINUTES_CELL.match(c))]
            rows.append((lessons[0], minutes[0] if minutes else None, " | ".join(cells)[:60]))
    return rows


def check_against_headers(where: str, table: list[list[str]], times: dict[str, int]) -> int:
    """Fail naming the lesson whose minutes differ from its notebook's; check a total row if
    the table has one; return the table's minutes."""
    rows = lesson_rows(table)
    wrong = [f"lesson {lesson}: {where} "
             + ("gives no class time" if minutes is None else f"says {minutes} min")
             + f", the notebook's header {times.get(lesson)} min ({text})"
             for lesson, minutes, text in rows if minutes != times.get(lesson)]
    assert not wrong, "\n".join(wrong)
    total = sum(times[lesson] for lesson, _, _ in rows)
    for cells in table:
        if any("total" in c.lower() for c in cells):
            stated = [int(m.group(1)) for c in cells if (m := MINUTES_CELL.match(c))]
            assert stated == [total], (
                f"{where}: the total row says {stated}, the lessons add up to {total} min")
    return total


def test_every_lesson_has_a_class_time():
    assert len(NOTEBOOKS) == 10
    assert sorted(header_times()) == [f"{n:02d}" for n in range(10)]


def test_the_timings_table_matches_the_notebooks():
    times = header_times()
    table, = [t for t in tables(section("The lessons and their timings")) if lesson_rows(t)]
    check_against_headers("the timings table", table, times)
    listed = [lesson for lesson, _, _ in lesson_rows(table)]
    assert listed == sorted(times), f"the timings table lists lessons {listed}"


def test_the_90_minute_path_fits_in_90_minutes():
    times = header_times()
    path = [t for t in tables(section("A 90-minute path")) if lesson_rows(t)]
    assert len(path) == 1, "the 90-minute path is one table of lessons"
    total = check_against_headers("the 90-minute path", path[0], times)
    assert total <= 90, (
        f"the 90-minute path's lessons take {total} min by their notebooks' headers: "
        + ", ".join(f"{lesson} {times[lesson]}" for lesson, _, _ in lesson_rows(path[0])))


def test_the_two_sessions_cover_every_lesson_once():
    times = header_times()
    sessions = [t for t in tables(section("Two sessions")) if lesson_rows(t)]
    assert len(sessions) == 2, f"expected two session tables, found {len(sessions)}"
    for k, table in enumerate(sessions, 1):
        check_against_headers(f"session {k}", table, times)
    taught = [lesson for table in sessions for lesson, _, _ in lesson_rows(table)]
    assert sorted(taught) == sorted(times), f"the two sessions teach {taught}"


def test_the_full_term_covers_every_lesson():
    times = header_times()
    term = [t for t in tables(section("A full term")) if lesson_rows(t)]
    assert term, "the full-term plan has no table of lessons"
    for table in term:
        check_against_headers("the full-term plan", table, times)
    taught = {lesson for table in term for lesson, _, _ in lesson_rows(table)}
    assert taught == set(times), f"the full term leaves out {sorted(set(times) - taught)}"


@pytest.mark.parametrize("bad, message", [
    ("| 03 · Training | 45 min |", "lesson 03: the table says 45 min, the notebook's header 40"),
    ("| 07 · Export | x |", "lesson 07: the table gives no class time"),
])
def test_a_disagreement_names_the_lesson(bad, message):
    times = {"03": 40, "07": 40}
    with pytest.raises(AssertionError, match=re.escape(message)):
        check_against_headers("the table", tables(bad)[0], times)


def test_a_wrong_total_is_caught():
    table = tables("| 00 · Welcome | 10 min |\n| 03 · Training | 40 min |\n| total | 60 min |")[0]
    with pytest.raises(AssertionError, match="add up to 50 min"):
        check_against_headers("the path", table, {"00": 10, "03": 40})
