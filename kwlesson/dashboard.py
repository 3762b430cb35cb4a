"""Lesson 03's live training dashboard for the notebook, and its plain-text form for the
terminal.

:class:`TrainingDashboard` is a :class:`~kwlesson.training.TrainingObserver`: pass it to
:func:`kwlesson.training.train` and it shows, while the model trains,

- a progress bar with ``step 300/1200 · 41 steps/s · 0:22 left``,
- the loss and accuracy curves (training, and validation at every evaluation),
- the latest confusion matrix as a heatmap (rows truth, columns prediction),
- a **Stop** button: training saves a checkpoint at the current step and ends cleanly.

The pictures are drawn by matplotlib's Agg renderer into ``ipywidgets.Image`` (PNG bytes,
:class:`kwlesson.widgets.Picture`), so the dashboard needs nothing in JupyterLab 4 beyond
ipywidgets. Redraws are throttled (at most every ``redraw_seconds``, and at every evaluation)
so the dashboard costs training almost nothing. Its text form in a saved notebook is always
``TrainingDashboard(...)``, so nbval sees the same output on every run. Outside a notebook the
same object prints the run as :class:`~kwlesson.progress.TextProgress` does.

A cell that blocks the kernel cannot hear a button: the kernel handles clicks between cells or
while a cell awaits. So in a notebook write ``await``::

    result = await train_with_dashboard_async(config)   # Stop button works

:func:`train_with_dashboard` (no ``await``) also works; there the toolbar's Interrupt (■)
stops training cleanly (checkpoint, test, result) and the Stop button is greyed out, as it is
when you pass the dashboard to ``train()`` in a cell yourself.

Introduced in notebook 03 (training with live widgets); notebook 04 uses it again. The
lessons' other panels are in :mod:`kwlesson.widgets` (01, 08, 09) and
:mod:`kwlesson.what_if` (05).

>>> from kwlesson.training import TrainConfig
>>> from kwlesson.dashboard import train_with_dashboard_async
>>> result = await train_with_dashboard_async(TrainConfig(data_dir="data"))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure

from kwlesson import plots
from kwlesson.progress import TextProgress, TrainingObserver
from kwlesson.runs import TrainConfig, TrainResult
from kwlesson.training import train
from kwlesson.widgets import FixedRepr, FixedReprBox, Picture

__all__ = [
    "DASHBOARD_REPR",
    "History",
    "TrainingDashboard",
    "format_progress",
    "in_notebook",
    "train_with_dashboard",
    "train_with_dashboard_async",
]

#: The dashboard's text form, the same on every run (nbval compares it).
DASHBOARD_REPR = "TrainingDashboard(...)"
STOP_TOOLTIP = "Save a checkpoint at the current step and end training"
BLOCKED_TOOLTIP = ("This cell blocks the kernel, so it cannot hear a click. Press the toolbar's "
                   "Interrupt (■) to stop cleanly, or run "
                   "`await train_with_dashboard_async(config)` next time.")


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Notebook, VS Code, nbval), else False.

    >>> in_notebook()
    False
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:  # never imported: certainly not in a kernel
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _duration(seconds: float) -> str:
    seconds = round(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_progress(step: int, total: int, steps_per_second: float) -> str:
    """The dashboard's progress line.

    >>> format_progress(300, 1200, 41.2)
    'step 300/1200 · 41 steps/s · 0:22 left'
    >>> format_progress(1, 1200, 0.0)
    'step 1/1200'
    """
    text = f"step {step}/{total}"
    if steps_per_second > 0 and math.isfinite(steps_per_second):
        speed = (f"{steps_per_second:.0f}" if steps_per_second >= 10
                 else f"{steps_per_second:.1f}")
        left = max(total - step, 0) / steps_per_second
        text += f" · {speed} steps/s · {_duration(left)} left"
    return text


@dataclass
class History:
    """What the dashboard has seen: one entry per training step, one per evaluation.

    ``accuracies`` and validation accuracies are fractions in [0, 1]; ``losses`` are the
    batches' cross entropy.

    >>> h = History(steps=[1, 2], losses=[2.5, 2.4], accuracies=[0.1, 0.2])
    >>> fig = h.plot()
    """

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    #: (step, validation accuracy) after each evaluation.
    validation: list[tuple[int, float]] = field(default_factory=list)
    #: (step, checkpoint prefix) after each checkpoint.
    checkpoints: list[tuple[int, str]] = field(default_factory=list)
    test_accuracy: float | None = None

    def plot(self, total_steps: int | None = None, fig: Figure | None = None) -> Figure:
        """The curves as a figure (:func:`kwlesson.plots.training_curves`); end with plt.show()."""
        return plots.training_curves(self.steps, self.losses, self.accuracies, self.validation,
                                     total_steps=total_steps, fig=fig)


class TrainingDashboard(FixedRepr, TrainingObserver):
    """Live curves, confusion matrix, progress and a Stop button for
    :func:`~kwlesson.training.train`.

    ``total_steps`` and ``labels`` are taken from the run when it starts (give them to draw
    before). ``redraw_seconds``: least time between two redraws of the curves (they are also
    redrawn at every evaluation and at the end); when drawing is slow the gap grows so that
    drawing takes at most ``max_overhead`` of the time. ``text``: print the run as
    :class:`~kwlesson.progress.TextProgress` (every ``text_seconds``); default: text outside a
    notebook. ``draw``: draw the pictures (default: when not text). ``clock`` is for tests.

    Display ``dashboard`` (or ``dashboard.widget``) in a cell; read ``history``,
    ``last_confusion`` and ``renders`` (how many times each picture was drawn).

    >>> dash = TrainingDashboard(total_steps=1200, text=False)
    >>> dash
    TrainingDashboard(...)
    >>> dash.stop_button.click()
    >>> dash.should_stop()
    True
    """

    REPR = DASHBOARD_REPR

    def __init__(self, total_steps: int | None = None, labels: list[str] | None = None,
                 redraw_seconds: float = 1.5, *, text: bool | None = None,
                 draw: bool | None = None, text_seconds: float = 5.0, stream: TextIO | None = None,
                 max_overhead: float = 0.02, progress_seconds: float = 0.2, dpi: float = 80,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total_steps = total_steps
        self.labels = list(labels) if labels is not None else None
        self.redraw_seconds = float(redraw_seconds)
        self.max_overhead = float(max_overhead)
        self.progress_seconds = float(progress_seconds)
        self.dpi = dpi
        self.clock = clock
        as_text = not in_notebook() if text is None else bool(text)
        self.text: TextProgress | None = (TextProgress(every_seconds=text_seconds, stream=stream)
                                          if as_text else None)
        #: True when the pictures are drawn (by default: when there is no text form).
        self.draw = (not as_text) if draw is None else bool(draw)
        self.history = History()
        self.last_confusion: np.ndarray | None = None
        self.test_confusion: np.ndarray | None = None
        self.renders = {"curves": 0, "confusion": 0}
        self.render_seconds = 0.0  # time spent drawing, all pictures together
        self._stop = threading.Event()
        self._caller_blocks = False  # set while train_with_dashboard waits on the main thread
        self._start_step = 0
        self._last_progress = -math.inf
        self._last_render = -math.inf
        self._render_cost = 0.0
        self._speed = 0.0
        self._curves = Picture((9, 3.0), dpi)
        self._confusion = Picture((6, 5), dpi)
        self._build()

    # ----------------------------------------------------------------------------------------
    # The widget

    def _build(self) -> None:
        # In a narrow notebook the row wraps (the button moves under the bar) instead of
        # cutting the status line and the button's word ("Stopped") short with an ellipsis.
        self.progress = widgets.IntProgress(value=0, min=0, max=max(self.total_steps or 1, 1),
                                            description="Training", bar_style="info",
                                            layout=widgets.Layout(width="40%",
                                                                  min_width="180px",
                                                                  flex="0 1 auto"))
        self.status = widgets.Label("waiting for the first step",
                                    layout=widgets.Layout(flex="0 0 auto"))
        self.stop_button = widgets.Button(description="Stop", button_style="danger",
                                          icon="stop", tooltip=STOP_TOOLTIP,
                                          layout=widgets.Layout(width="auto", flex="0 0 auto"))
        self.stop_button.on_click(lambda _button: self.stop())
        self.curves_image = widgets.Image(format="png", layout=widgets.Layout(
            max_width="100%", display="none"))
        self.confusion_image = widgets.Image(format="png", layout=widgets.Layout(
            max_width="100%", display="none"))
        row = widgets.HBox([self.progress, self.status, self.stop_button],
                           layout=widgets.Layout(align_items="center", flex_flow="row wrap"))
        self.widget = FixedReprBox([row, self.curves_image, self.confusion_image],
                                   repr_text=self.REPR)

    # ----------------------------------------------------------------------------------------
    # Stop

    def stop(self) -> None:
        """Ask training to save a checkpoint and end after the current step (the Stop button)."""
        self._stop.set()
        self.stop_button.disabled = True
        self.stop_button.description = "Stopping…"
        before = self.status.value.split(" · stopping")[0]
        self.status.value = before + " · stopping after this step"

    @property
    def stop_requested(self) -> bool:
        """True once Stop was pressed (or :meth:`stop` called) in this run."""
        return self._stop.is_set()

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def _block_stop_button(self) -> None:
        """For a cell that blocks the kernel: the button could not be heard, so grey it out."""
        self.stop_button.disabled = True
        self.stop_button.description = "Stop: press ■ Interrupt"
        self.stop_button.tooltip = BLOCKED_TOOLTIP

    # ----------------------------------------------------------------------------------------
    # Drawing

    def _render_curves(self) -> None:
        t0 = time.perf_counter()
        h = self.history
        fig = plots.training_curves(h.steps, h.losses, h.accuracies, h.validation,
                                    total_steps=self.total_steps, fig=self._curves.figure)
        lines = [line for ax in fig.axes for line in ax.get_lines()]
        self.curves_image.value = self._curves.png_blit(lines)
        self.curves_image.layout.display = None
        self.renders["curves"] += 1
        seconds = time.perf_counter() - t0
        self.render_seconds += seconds
        # Rarely a full redraw (new ranges): count the usual, blitted cost, not that one.
        self._render_cost = seconds if self.renders["curves"] == 1 else min(
            seconds, 2 * self._render_cost)
        self._last_render = self.clock()

    def _render_confusion(self, title: str) -> None:
        t0 = time.perf_counter()
        plots.confusion_matrix(self.last_confusion, self.labels, title=title,
                               fig=self._confusion.figure)
        self.confusion_image.value = self._confusion.png()
        self.confusion_image.layout.display = None
        self.renders["confusion"] += 1
        self.render_seconds += time.perf_counter() - t0

    def _redraw_gap(self) -> float:
        # Drawing may take at most max_overhead of the time: a slow machine redraws less often.
        return max(self.redraw_seconds, self._render_cost / max(self.max_overhead, 1e-6))

    def _show_progress(self, step: int) -> None:
        total = self.total_steps or step
        self.progress.max = max(total, 1)
        self.progress.value = min(step, self.progress.max)
        text = format_progress(step, total, self._speed)
        if self._stop.is_set():
            text += " · stopping after this step"
        self.status.value = text

    # ----------------------------------------------------------------------------------------
    # TrainingObserver hooks

    def on_train_begin(self, info: dict[str, Any]) -> None:
        if self.text is not None:
            self.text.on_train_begin(info)
        self.total_steps = int(info.get("total_steps") or self.total_steps or 0) or None
        if info.get("labels") is not None:
            self.labels = list(info["labels"])
        self._start_step = int(info.get("start_step", 0))
        self.history = History()
        self.last_confusion = self.test_confusion = None
        self._stop.clear()
        self._last_progress = -math.inf
        self._speed = 0.0
        # Training on a notebook's main thread blocks the kernel, which then cannot hear the
        # button: grey it out and say what works instead (see train_with_dashboard_async).
        if self._caller_blocks or (in_notebook()
                                   and threading.current_thread() is threading.main_thread()):
            self._block_stop_button()
        else:
            self.stop_button.disabled = False
            self.stop_button.description = "Stop"
            self.stop_button.tooltip = STOP_TOOLTIP
        self.progress.bar_style = "info"
        self.progress.min = 0
        self._show_progress(self._start_step)
        if self._start_step:
            self.status.value = f"resuming at step {self._start_step}/{self.total_steps}"
        if self.draw:
            self._render_curves()

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        h = self.history
        h.steps.append(int(step))
        h.losses.append(float(metrics["cross_entropy"]))
        h.accuracies.append(float(metrics["accuracy"]))
        h.rates.append(float(metrics.get("rate", math.nan)))
        if metrics.get("total_steps"):
            self.total_steps = int(metrics["total_steps"])
        if self.text is not None:
            self.text.on_step(step, metrics)
        now = self.clock()
        last = step == self.total_steps
        if now - self._last_progress >= self.progress_seconds or last or len(h.steps) == 1:
            self._last_progress = now
            self._speed = float(metrics.get("steps_per_second", 0.0))
            self._show_progress(step)
        if self.draw and now - self._last_render >= self._redraw_gap():
            self._render_curves()

    def on_eval(self, step: int, accuracy: float, confusion: np.ndarray,
                labels: list[str]) -> None:
        self.history.validation.append((int(step), float(accuracy)))
        self.last_confusion = np.asarray(confusion).copy()
        self.labels = list(labels)
        if self.text is not None:
            self.text.on_eval(step, accuracy, confusion, labels)
        if self.draw:  # an evaluation is worth a picture at once, whatever the throttle says
            self._render_curves()
            self._render_confusion(f"Validation, step {step}")

    def on_checkpoint(self, step: int, path: str) -> None:
        self.history.checkpoints.append((int(step), str(path)))
        if self.text is not None:
            self.text.on_checkpoint(step, path)
        if self._stop.is_set():
            self.status.value = (f"stopped at step {step}/{self.total_steps} · saved "
                                 f"{Path(path).name}")

    def on_test(self, accuracy: float, confusion: np.ndarray, labels: list[str]) -> None:
        self.history.test_accuracy = float(accuracy)
        self.test_confusion = np.asarray(confusion).copy()
        if self.text is not None:
            self.text.on_test(accuracy, confusion, labels)

    def on_train_end(self, result: TrainResult) -> None:
        self.stop_button.disabled = True
        self.stop_button.description = "Stopped" if result.stopped else "Done"
        self.progress.value = min(int(result.step), self.progress.max)
        self.progress.bar_style = "warning" if result.stopped else "success"
        what = "stopped" if result.stopped else "done"
        text = f"step {result.step}/{self.total_steps} · {what}"
        if result.checkpoint_path:
            text += f" · saved {Path(result.checkpoint_path).name}"
        if result.test_accuracy is not None:
            text += f" · test accuracy {100 * result.test_accuracy:.1f}%"
        self.status.value = text
        if self.draw:
            self._render_curves()


# --------------------------------------------------------------------------------------------
# Train with a dashboard

def _display(dashboard: TrainingDashboard) -> None:
    from IPython.display import display

    display(dashboard)


def _prepare(config: TrainConfig | None, dashboard: TrainingDashboard | None,
             redraw_seconds: float) -> tuple[TrainConfig, TrainingDashboard]:
    config = config or TrainConfig()
    config.validate()
    if dashboard is None:
        # Outside a notebook the text form follows the config's verbosity, like train().
        text = None if in_notebook() else config.verbosity in ("debug", "info")
        every = 0.0 if config.verbosity == "debug" else config.progress_seconds
        dashboard = TrainingDashboard(total_steps=config.total_steps(),
                                      redraw_seconds=redraw_seconds, text=text,
                                      draw=in_notebook(), text_seconds=every)
    return config, dashboard


def _train_showing_faults(config: TrainConfig, dashboard: TrainingDashboard,
                          data: Any) -> TrainResult:
    """train(), with a fault of the machine or the run (a read-only or full disk, a folder in
    use, a damaged checkpoint, a diverged loss) shown on the dashboard as its one line; the
    error then shows in the notebook as that line too, not a traceback."""
    from kwlesson.faults import RunError

    try:
        return train(config, dashboard, data=data)
    except RunError as err:
        dashboard.status.value = f"stopped: {err}"
        dashboard.progress.bar_style = "danger"
        dashboard.stop_button.disabled = True
        raise


def train_with_dashboard(config: TrainConfig | None = None, *, data: Any = None,
                         dashboard: TrainingDashboard | None = None,
                         redraw_seconds: float = 1.5) -> TrainResult:
    """Show a :class:`TrainingDashboard` and train; returns :func:`~kwlesson.training.train`'s
    result. Outside a notebook the run is printed as text instead.

    In a notebook this call blocks the kernel, which then cannot hear the Stop button (it is
    greyed out); press the toolbar's Interrupt (■) instead: training saves a checkpoint, tests
    and returns with ``result.stopped``. For a working Stop button use
    ``await`` :func:`train_with_dashboard_async`.

    >>> result = train_with_dashboard(TrainConfig(data_dir="data"))  # doctest: +SKIP
    >>> result.stopped  # doctest: +SKIP
    False
    """
    config, dashboard = _prepare(config, dashboard, redraw_seconds)
    if not in_notebook():
        return _train_showing_faults(config, dashboard, data)
    dashboard._caller_blocks = True
    _display(dashboard)
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["result"] = _train_showing_faults(config, dashboard, data)
        except BaseException as err:  # noqa: BLE001  # re-raised on the caller's thread below
            box["error"] = err
        finally:
            done.set()

    # Training runs on a worker thread so that Interrupt reaches this (main) thread while
    # training goes on; we turn it into a clean stop instead of a traceback.
    ctx = contextvars.copy_context()  # keeps the kernel's idea of which cell is running
    threading.Thread(target=ctx.run, args=(work,), name="kwlesson-train", daemon=True).start()
    interrupted = False
    while not done.is_set():
        try:
            # Event.wait, not Thread.join: an interrupted join can report a live thread dead.
            done.wait(0.2)
        except KeyboardInterrupt:
            if interrupted:  # a second Interrupt: stop waiting; training still stops soon
                raise
            interrupted = True
            dashboard.stop()
    dashboard._caller_blocks = False
    if "error" in box:
        raise box["error"]
    return box["result"]


async def train_with_dashboard_async(config: TrainConfig | None = None, *, data: Any = None,
                                     dashboard: TrainingDashboard | None = None,
                                     redraw_seconds: float = 1.5) -> TrainResult:
    """Like :func:`train_with_dashboard`, but awaitable, so the kernel stays free to hear the
    Stop button while training runs on a worker thread. In a notebook cell write::

        result = await train_with_dashboard_async(config)

    Outside a notebook use ``asyncio.run(train_with_dashboard_async(config))`` (text form).
    Cancelling the await (e.g. Interrupt) also asks training to stop with a checkpoint.

    >>> result = await train_with_dashboard_async(TrainConfig(data_dir="data"))  # doctest: +SKIP
    """
    config, dashboard = _prepare(config, dashboard, redraw_seconds)
    if in_notebook():
        _display(dashboard)
    try:
        # to_thread copies the context, so widget messages keep their cell as parent.
        return await asyncio.to_thread(_train_showing_faults, config, dashboard, data)
    except BaseException:
        dashboard.stop()  # the worker saves a checkpoint and ends after its current step
        raise
