"""The course in a real browser: JupyterLab serves a copy of the lessons, headless Chromium
(Debian's) clicks through them as a student would.

- Lesson 01: Run All shows no error; moving the window slider of the spectrogram explorer with
  the keyboard redraws its picture and its input-size line.
- Lesson 03: the dashboard draws curves and a confusion matrix while training runs; its Stop
  button ends training with a checkpoint (on the page and on disk).
- A widget callback that raises is reported, naming the exception (so the checks above can
  fail when a slider silently stops working).
- A port already in use does not stop JupyterLab; nothing is left running afterwards.

Screenshots go to artifacts/browser/ (git-ignored). Needs Debian's chromium; skipped without
it unless KWLESSON_REQUIRE_BROWSER=1 (as in CI). See tests/browser_harness.py.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from browser_harness import (
    NOTEBOOKS,
    Chromium,
    JupyterLab,
    LabPage,
    NotebookErrors,
    ServerError,
    require_browser,
)

pytestmark = pytest.mark.browser

LESSON_01 = "01_sound_and_spectrograms.ipynb"
LESSON_03 = "03_training_with_live_widgets.ipynb"
#: Lesson 03 with more steps (its parameters cell, overridden as papermill would): the quick
#: run's 240 steps may end before a click arrives; Stop ends this one long before its end.
LONG_STEPS = "1800,600"
LONG_TOTAL = 2400

# The digest of the bytes an <img> shows (its blob: or data: URL), computed in the page.
_IMG_DIGEST = """async img => {
  if (!img || !img.src || getComputedStyle(img).display === 'none' || !img.naturalWidth)
    return null;
  const bytes = await (await fetch(img.src)).arrayBuffer();
  const hash = await crypto.subtle.digest('SHA-256', bytes);
  return [...new Uint8Array(hash)].map(b => b.toString(16).padStart(2, '0')).join('');
}"""


def _code_cell(source: str, cell_id: str, tags: list[str] | None = None) -> dict:
    return {"id": cell_id, "cell_type": "code", "metadata": {"tags": tags or []},
            "execution_count": None, "outputs": [], "source": source}


def _with_parameters(name: str, source: str) -> str:
    """The lesson with a cell after its parameters cell, as papermill injects one."""
    nb = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    at = next(i for i, c in enumerate(nb["cells"])
              if "parameters" in c["metadata"].get("tags", []))
    nb["cells"].insert(at + 1, _code_cell(source, "injected-parameters",
                                          ["injected-parameters"]))
    return json.dumps(nb)


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    require_browser()
    with Chromium() as chromium:
        yield chromium


@contextmanager
def serve(lessons: tuple[str, ...] = (), **options) -> Iterator[JupyterLab]:
    """A JupyterLab for one test; afterwards none of its processes may be running, and the
    ``lessons`` it served a copy of are byte for byte what they were in notebooks/."""
    before = {name: (NOTEBOOKS / name).read_bytes() for name in lessons}
    with JupyterLab(**options) as lab:
        yield lab
        started = lab.processes()
        assert started, "the server should be running while in use"
    alive = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left running after JupyterLab stopped: {alive}"
    changed = [name for name in lessons if (NOTEBOOKS / name).read_bytes() != before[name]]
    assert not changed, f"changed in notebooks/ while JupyterLab served a copy: {changed}"


@contextmanager
def notebook(browser: Chromium, lab: JupyterLab, name: str) -> Iterator[LabPage]:
    """``name`` open in a new tab; afterwards the tab must not have reached beyond 127.0.0.1."""
    page = browser.new_page()
    before = len(browser.outside)
    try:
        yield LabPage.open(page, lab, name)
    finally:
        page.close()
    outside = browser.outside[before:]
    assert not outside, f"the page made requests beyond 127.0.0.1: {outside[:5]}"


def _image_digest(locator) -> str | None:
    return locator.evaluate(_IMG_DIGEST)


def _wait(what: str, predicate, timeout: float, poll: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# --------------------------------------------------------------------------------------------
# Without chromium: a skip that says what to install, or a failure where it is required

def test_without_chromium_the_tests_skip_or_fail_when_required(monkeypatch):
    monkeypatch.setenv("KWLESSON_CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("KWLESSON_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        require_browser()
    monkeypatch.setenv("KWLESSON_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="KWLESSON_REQUIRE_BROWSER=1 but no chromium"):
        require_browser()


# --------------------------------------------------------------------------------------------
# The server itself

def test_a_port_in_use_is_handled_and_nothing_is_left_running():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with serve(notebooks=[LESSON_01], port=port) as lab:
            assert lab.port != port, "the server cannot listen on a port that is in use"
            assert lab.api("api/status")["started"], "the server answers on the port it chose"
            assert (lab.root / LESSON_01).exists()
            assert lab.root != NOTEBOOKS and NOTEBOOKS not in lab.root.parents
            assert f"{port} is already in use" in lab.log_text()


def test_a_server_not_ready_in_time_fails_with_its_log_and_is_stopped():
    lab = JupyterLab(notebooks=[], startup_timeout=0.2)
    with pytest.raises(ServerError, match=r"(?s)not ready after 0 s.*JupyterLab log \(tail\)"):
        lab.start()
    assert lab.process is not None and lab.process.poll() is not None, "the server was killed"
    assert not lab.tmp.exists(), "its temporary folder was removed"


# --------------------------------------------------------------------------------------------
# Lesson 01: Run All, then the explorer's slider

def test_lesson_01_runs_and_the_explorer_follows_its_window_slider(browser):
    with serve((LESSON_01,), notebooks=[LESSON_01]) as lab, \
            notebook(browser, lab, LESSON_01) as nb:
        nb.run_all(timeout=300)
        nb.assert_no_errors()
        cell = nb.cell_locator("spectrogram_explorer(clip)")
        slider = cell.locator(".widget-slider", has_text="window (ms)")
        readout = slider.locator(".widget-readout")
        label = cell.locator(".widget-label", has_text="model input")
        image = cell.locator(".widget-image")
        # The lesson's next cell moved the sliders from code: window 40 ms, stride 20 ms.
        assert readout.inner_text() == "40"
        assert label.inner_text().startswith("model input: 49 frames x 40 bins")
        before = _image_digest(image)
        assert before, "the explorer shows a picture"
        slider.scroll_into_view_if_needed()
        nb.screenshot("01_explorer_before")

        # A student's move: focus the handle, press the right arrow twice (step 5 ms).
        slider.locator(".noUi-handle").focus()
        nb.page.keyboard.press("ArrowRight")
        nb.page.keyboard.press("ArrowRight")
        assert readout.inner_text() == "50"
        # 800-sample windows every 320 samples: 1 + (16000 - 800) // 320 = 48 frames. (45 ms
        # gives 48 frames too: the formula, with 800, says the last move arrived.)
        expected = ("model input: 48 frames x 40 bins = 1,920 numbers · "
                    "frames = 1 + (16000 - 800) // 320")
        nb.wait_until(f"the explorer's line to read {expected!r}",
                      lambda: label.inner_text() == expected, 30)
        nb.wait_until("the explorer's picture to change",
                      lambda: _image_digest(image) not in (None, before), 30)
        nb.assert_no_errors()
        cell.locator(".widget-slider", has_text="window (ms)").scroll_into_view_if_needed()
        nb.screenshot("01_explorer_after")


# --------------------------------------------------------------------------------------------
# Lesson 03: the dashboard while training, then Stop

def test_lesson_03_dashboard_draws_while_training_and_stop_saves_a_checkpoint(browser):
    files = {LESSON_03: _with_parameters(
        LESSON_03, f'STEPS = "{LONG_STEPS}"  # the browser test presses Stop long before\n'
        "EVAL_EVERY = SAVE_EVERY = 60  # a confusion matrix soon after the start\n")}
    run_dir = None
    with serve((LESSON_03,), notebooks=[], extra_files=files) as lab, \
            notebook(browser, lab, LESSON_03) as nb:
        try:
            nb.run_all(wait=False)
            run_dir = Path(nb.wait_for_text(r"(?<=checkpoints and logs go to )\S+", 180))
            cell = nb.cell_locator("train_with_dashboard_async(")
            status = cell.locator(".widget-label").nth(1)  # after the progress bar's label
            stop = cell.get_by_role("button", name="Stop")
            stop.wait_for(timeout=180_000)
            curves, confusion = cell.locator(".widget-image").nth(0), cell.locator(
                ".widget-image").nth(1)

            def training() -> bool:
                return re.fullmatch(rf"step \d+/{LONG_TOTAL} · .* left", status.inner_text()) \
                    is not None

            # While training runs the curves are redrawn and the first validation pass (step
            # 60) brings the confusion matrix.
            seen_curves = set()

            def drawn() -> bool:
                seen_curves.add(_image_digest(curves))
                return (training() and len(seen_curves - {None}) >= 2
                        and _image_digest(confusion) is not None)

            nb.wait_until("curves redrawn and a confusion matrix while training runs", drawn,
                          240, 0.5)
            assert training(), f"training should still run, the page says {status.inner_text()!r}"
            cell.locator(".widget-image").nth(0).scroll_into_view_if_needed()
            nb.screenshot("03_dashboard_training")

            stop.click()
            text = nb.wait_until("the dashboard to say training stopped with a checkpoint",
                                 lambda: re.match(rf"step (\d+)/{LONG_TOTAL} · stopped · saved "
                                                  r"(\w+\.ckpt-\d+)",
                                                  status.inner_text()), 120)
            step, saved = int(text.group(1)), text.group(2)
            assert saved.endswith(f".ckpt-{step}") and 60 <= step < LONG_TOTAL
            assert cell.get_by_role("button", name="Stopped").is_disabled()
            nb.wait_run_finished(timeout=300)
            nb.assert_no_errors()
            assert f"stopped early: True · last step: {step}" in nb.cell_text("stopped early")

            train_dir = run_dir / "train"
            assert (train_dir / f"{saved}.index").is_file(), sorted(
                p.name for p in train_dir.iterdir())
            assert list(train_dir.glob(f"{saved}.data-*")), f"{saved}: no data file"
            assert f'model_checkpoint_path: "{saved}"' in (train_dir / "checkpoint").read_text()
            cell.scroll_into_view_if_needed()
            nb.screenshot("03_dashboard_stopped")
        finally:
            # The lesson writes its run into the kwlesson cache; this one was only a test.
            if run_dir is not None and run_dir.parent.name == "lesson03":
                shutil.rmtree(run_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# A broken widget callback must not pass unnoticed

BROKEN = {
    "nbformat": 4, "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                "language": "python"}},
    "cells": [
        _code_cell("import ipywidgets\nimport numpy as np\nimport kwlesson as kw\n"
                   "kw.setup(seed=0)\nfrom kwlesson.widgets import spectrogram_explorer\n"
                   "t = np.arange(16000) / 16000\n"
                   "clip = (0.5 * np.sin(2 * np.pi * 1000 * t) * ((t > 0.3) & (t < 0.7)))"
                   ".astype(np.float32)", "setup"),
        _code_cell("explorer = spectrogram_explorer(clip)\nexplorer", "explorer"),
        # Broken on purpose, after the widget is shown: only a slider move reaches it.
        _code_cell("def broken_redraw():\n"
                   "    raise RuntimeError('deliberately broken redraw')\n"
                   "explorer.redraw = broken_redraw", "break-explorer"),
        # A plain ipywidgets slider with a failing observer: its traceback only reaches
        # JupyterLab's log console.
        _code_cell("plain = ipywidgets.IntSlider(description='plain', continuous_update=False)\n"
                   "plain.observe(lambda change: 1 / 0, names='value')\nplain", "plain-slider"),
    ],
}


def test_an_exception_in_a_widget_callback_fails_the_check_and_names_it(browser):
    with serve(notebooks=[], extra_files={"broken.ipynb": json.dumps(BROKEN)}) as lab, \
            notebook(browser, lab, "broken.ipynb") as nb:
        nb.run_all(timeout=240)
        nb.assert_no_errors()  # nothing is wrong until a slider moves
        explorer = nb.cell_locator("spectrogram_explorer(clip)")
        explorer.locator(".widget-slider", has_text="window (ms)").locator(
            ".noUi-handle").focus()
        nb.page.keyboard.press("ArrowRight")
        nb.cell_locator("plain = ").locator(".noUi-handle").focus()
        nb.page.keyboard.press("ArrowRight")
        # kwlesson's explorer shows its callback's traceback under the widget...
        shown = explorer.locator(".widget-output")
        _wait("the traceback under the explorer",
              lambda: "deliberately broken redraw" in shown.inner_text(), 60)
        _wait("the plain slider's traceback in JupyterLab's log console",
              lambda: any("ZeroDivisionError" in b for b in nb.log_console_errors()), 60, 1.0)
        shown.scroll_into_view_if_needed()
        nb.screenshot("callback_error_shown")
        # ...and the check names both failures: the explorer's (in the cell) and the plain
        # slider's (in the log console).
        with pytest.raises(NotebookErrors) as failure:
            nb.assert_no_errors()
        message = str(failure.value)
        assert "RuntimeError: deliberately broken redraw" in message
        assert "broken_redraw" in message  # the traceback points at the function
        assert "ZeroDivisionError" in message and "log console" in message
