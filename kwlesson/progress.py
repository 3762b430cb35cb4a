"""What a run shows while it trains: the seed's log lines, the confusion matrix as text and as
a picture, progress in a terminal, and the observer interface that the lesson-03 dashboard
(:mod:`kwlesson.dashboard`) implements to draw its curves.

Introduced in notebook 03.

>>> step_line(1, {"rate": 0.001, "accuracy": 0.08, "cross_entropy": 2.513443})
'Step #1: rate 0.001000, accuracy 8.0%, cross entropy 2.513443'
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

if TYPE_CHECKING:  # only the type: a run's result is made by kwlesson.training
    from kwlesson.runs import TrainResult

__all__ = [
    "BarProgress",
    "TextProgress",
    "TrainingObserver",
    "confusion_image",
    "format_confusion",
    "step_line",
    "test_line",
    "validation_line",
]


class TrainingObserver:
    """Hooks :func:`train` calls; subclass and override what you need (all are no-ops here).

    ``metrics`` in :meth:`on_step` has ``rate``, ``accuracy`` (fraction), ``cross_entropy``,
    ``total_steps``, ``elapsed`` (s since this run started) and ``steps_per_second``.
    :meth:`should_stop` is polled after every step: return True to end training cleanly (a
    checkpoint is saved first), e.g. from a dashboard's Stop button.

    >>> class Curve(TrainingObserver):
    ...     def __init__(self): self.loss = []
    ...     def on_step(self, step, metrics): self.loss.append(metrics["cross_entropy"])
    """

    def on_train_begin(self, info: dict[str, Any]) -> None:
        """``info``: config, labels, settings, start_step, total_steps, train_dir, replicas."""

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        """After each training step (1-based step number)."""

    def on_eval(self, step: int, accuracy: float, confusion: np.ndarray,
                labels: list[str]) -> None:
        """After each validation pass; confusion rows are truth, columns predictions."""

    def on_checkpoint(self, step: int, path: str) -> None:
        """After a checkpoint is written (``path`` is its prefix)."""

    def on_test(self, accuracy: float, confusion: np.ndarray, labels: list[str]) -> None:
        """After the final test pass."""

    def on_train_end(self, result: TrainResult) -> None:
        """Once, when training ends (finished, stopped or interrupted)."""

    def should_stop(self) -> bool:
        """True ends training after the current step."""
        return False



def _fmt_duration(seconds: float) -> str:
    seconds = int(round(max(seconds, 0)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"



class TextProgress(TrainingObserver):
    """The run in plain text: the seed's step line every ``every_seconds`` (and on the first and
    last step) with speed and time left, every validation line and confusion matrix, every
    checkpoint and the final test accuracy. Used when :func:`train` gets no observer.

    >>> import io
    >>> log = io.StringIO()
    >>> TextProgress(stream=log).on_checkpoint(100, "/tmp/speech_commands_train/conv.ckpt-100")
    >>> print(log.getvalue(), end="")
    Saving to "/tmp/speech_commands_train/conv.ckpt-100"
    """

    def __init__(self, every_seconds: float = 5.0, stream: TextIO | None = None,
                 show_confusion: bool = True) -> None:
        self.every_seconds = every_seconds
        self.stream = stream
        self.show_confusion = show_confusion
        self._last = -math.inf
        self._total = 0

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def on_train_begin(self, info: dict[str, Any]) -> None:
        self._total = info["total_steps"]
        start = info["start_step"]
        what = f"resuming at step {start}" if start else "starting"
        replicas = info.get("replicas", 1)
        where = f" on {replicas} replicas" if replicas > 1 else ""
        self._print(f"Training {info['config'].model_architecture} on {len(info['labels'])} "
                    f"labels{where}, {what}, {self._total} steps in all")

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        now = time.monotonic()
        if not (step == 1 or step == self._total or now - self._last >= self.every_seconds):
            return
        self._last = now
        speed = metrics.get("steps_per_second", 0.0)
        left = (self._total - step) / speed if speed > 0 else float("nan")
        tail = (f" [{step}/{self._total}, {speed:.1f} steps/s, {_fmt_duration(left)} left]"
                if math.isfinite(left) else f" [{step}/{self._total}]")
        self._print(step_line(step, metrics) + tail)

    def on_eval(self, step: int, accuracy: float, confusion: np.ndarray,
                labels: list[str]) -> None:
        if self.show_confusion:
            # The seed prints a bare "Confusion Matrix:"; say which clips and which way round.
            self._print(f"Confusion Matrix (validation, step {step}; rows truth, columns "
                        "prediction):\n " + format_confusion(confusion))
        self._print(validation_line(step, accuracy, int(confusion.sum())))

    def on_checkpoint(self, step: int, path: str) -> None:
        self._print(f'Saving to "{path}"')

    def on_test(self, accuracy: float, confusion: np.ndarray, labels: list[str]) -> None:
        if self.show_confusion:
            self._print("Confusion Matrix (testing, the final check; rows truth, columns "
                        "prediction):\n " + format_confusion(confusion))
        self._print(test_line(accuracy, int(confusion.sum())))



class BarProgress(TrainingObserver):
    """One progress bar (tqdm: a widget in a notebook, text in a terminal) with steps/s, time
    left and the last validation accuracy; what :func:`quick_model` shows while it trains."""

    def __init__(self, desc: str = "training") -> None:
        self.desc = desc
        self._bar = None

    def on_train_begin(self, info: dict[str, Any]) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=info["total_steps"], initial=info["start_step"],
                         desc=self.desc, unit="step")

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if self._bar is not None:
            self._bar.update(step - self._bar.n)

    def on_eval(self, step: int, accuracy: float, confusion: np.ndarray,
                labels: list[str]) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"validation {accuracy:.1%}")

    def on_train_end(self, result: TrainResult) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None



def step_line(step: int, metrics: dict[str, float]) -> str:
    """The seed's per-step line.

    >>> step_line(1, {"rate": 0.001, "accuracy": 0.08, "cross_entropy": 2.513443})
    'Step #1: rate 0.001000, accuracy 8.0%, cross entropy 2.513443'
    """
    return (f"Step #{step}: rate {metrics['rate']:f}, accuracy {metrics['accuracy'] * 100:.1f}%, "
            f"cross entropy {metrics['cross_entropy']:f}")



def validation_line(step: int, accuracy: float, n: int) -> str:
    """The seed's validation line.

    >>> validation_line(400, 0.263, 3093)
    'Step 400: Validation accuracy = 26.3% (N=3093)'
    """
    return f"Step {step}: Validation accuracy = {accuracy * 100:.1f}% (N={n})"



def test_line(accuracy: float, n: int) -> str:
    """The seed's final line.

    >>> test_line(0.891, 4890)
    'Final test accuracy = 89.1% (N=4890)'
    """
    return f"Final test accuracy = {accuracy * 100:.1f}% (N={n})"



def format_confusion(confusion: np.ndarray) -> str:
    """The matrix as numpy prints it, one row per line (rows truth, columns prediction).

    >>> print(format_confusion(np.array([[258, 0], [7, 6]])))
    [[258   0]
     [  7   6]]
    """
    return np.array2string(np.asarray(confusion), max_line_width=10**6)



# Colours of the heatmap: white for 0 % of a row, dark blue for 100 %.
_LOW = np.array([255, 255, 255], np.float64)



_HIGH = np.array([8, 48, 107], np.float64)



_GRID = 190



def confusion_image(confusion: np.ndarray, cell: int = 12) -> np.ndarray:
    """The confusion matrix as a heatmap, uint8 [1, height, width, 3], for tf.summary.image.

    Each cell is shaded by its share of its row (the true label), so rare classes stay
    visible; grey lines separate cells and a darker frame marks the diagonal. Drawn with numpy
    alone (no plotting library), so training runs headless.

    >>> confusion_image(np.eye(3, dtype=int), cell=4).shape
    (1, 13, 13, 3)
    """
    m = np.asarray(confusion, np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"confusion must be a square matrix, not shape {m.shape}")
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    rgb = _LOW + (_HIGH - _LOW) * share[..., None]
    n = m.shape[0]
    size = n * cell + 1
    img = np.full((size, size, 3), _GRID, np.float64)
    for i in range(n):
        for j in range(n):
            img[i * cell + 1:(i + 1) * cell, j * cell + 1:(j + 1) * cell] = rgb[i, j]
        # Mark the diagonal (correct answers) with a dark frame so it reads without labels.
        y, x = i * cell, i * cell
        img[y, x:x + cell + 1] = img[y + cell, x:x + cell + 1] = 60
        img[y:y + cell + 1, x] = img[y:y + cell + 1, x + cell] = 60
    return np.round(img).astype(np.uint8)[None]
