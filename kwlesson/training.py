"""Training a keyword spotter: the seed tutorial's ``train.py`` rebuilt with a custom loop.

What stays as in the seed: the flags (here the fields of :class:`TrainConfig`, same names and
defaults), the piecewise-constant schedule (``"15000,3000"`` steps at ``"0.001,0.0001"``), plain
gradient descent by default, the log lines (``Step #1: rate 0.001000, accuracy 8.0%, cross
entropy 2.513443``, ``Step 400: Validation accuracy = 26.3% (N=3093)``, the confusion matrix,
``Saving to ".../conv.ckpt-100"``, ``Final test accuracy = ...``), the checkpoint names
(``<train_dir>/<arch>.ckpt-<step>``), the labels file and TensorBoard logs in ``summaries_dir``.

What is new: a resumed run continues exactly where the interrupted one stopped (same optimizer
state, schedule and data order, so it ends with the same weights); checkpoints are written
atomically; a Stop button or Ctrl-C saves a checkpoint before training ends; observers
(:class:`TrainingObserver`) let a dashboard draw curves; ``tf.distribute`` strategies by flag;
``<train_dir>/<arch>_config.json`` keeps the config, feature settings and labels next to the
checkpoints so evaluation, export and streaming use the same features (one source of truth).

Introduced in notebook 03.

>>> from kwlesson.training import TrainConfig, train  # doctest: +SKIP
>>> result = train(TrainConfig(data_dir="speech_commands_v0.02",  # doctest: +SKIP
...                            model_architecture="tiny_conv",
...                            how_many_training_steps="300,100"))
>>> result.test_accuracy  # doctest: +SKIP
0.62
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import logging
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import tensorflow as tf

from kwlesson import faults
from kwlesson.features import FeatureSettings
from kwlesson.models import ARCHITECTURES
from kwlesson.recipes import QUICK_RECIPE, RECIPES, recipe

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainedModel",
    "TrainingObserver",
    "TextProgress",
    "BarProgress",
    "PiecewiseRate",
    "DISTRIBUTE_CHOICES",
    "OPTIMIZER_CHOICES",
    "parse_schedule",
    "make_optimizer",
    "make_strategy",
    "format_confusion",
    "step_line",
    "validation_line",
    "test_line",
    "confusion_image",
    "checkpoint_prefix",
    "latest_checkpoint",
    "load_data",
    "load_trained",
    "QUICK_RECIPE",
    "RECIPES",
    "recipe",
    "quick_model",
    "read_run_files",
    "resolve_checkpoint",
    "train",
]

logger = logging.getLogger(__name__)

OPTIMIZER_CHOICES = ("gradient_descent", "momentum", "adam")
DISTRIBUTE_CHOICES = ("none", "mirrored", "multi_worker")
VERBOSITY_CHOICES = ("debug", "info", "warn", "error", "fatal")
#: Momentum of the 'momentum' optimizer, as the reference's tf.train.MomentumOptimizer(lr, .9).
MOMENTUM = 0.9


def _opt(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field whose metadata carries the command-line help (and choices)."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class TrainConfig:
    """Everything the seed's ``train.py`` takes as a flag, with the seed's names and defaults.

    Each field's ``metadata["help"]`` (and ``metadata["choices"]`` where there are any) is the
    flag's help text, so the command line is generated from this class. ``background_dir``,
    ``seed``, ``distribute``, ``max_to_keep``, ``progress_seconds`` and ``normalize_features``
    are new.

    >>> cfg = TrainConfig(model_architecture="tiny_conv", how_many_training_steps="300,100")
    >>> cfg.schedule()
    [(300, 0.001), (100, 0.0001)]
    """

    data_dir: str = _opt("/tmp/speech_dataset/", "Where the Speech Commands clips are: one folder "
                         "per word, optionally _background_noise_/.")
    background_dir: str = _opt("", "Folder of background noise clips to mix into training "
                               "(e.g. the official _background_noise_ folder kept outside "
                               "data_dir); empty: data_dir/_background_noise_.")
    wanted_words: str = _opt("yes,no,up,down,left,right,on,off,stop,go",
                             "Words to use (others are added to the unknown class), "
                             "comma-separated.")
    model_architecture: str = _opt("conv", "What model architecture to use.",
                                   choices=ARCHITECTURES)
    how_many_training_steps: str = _opt("15000,3000", "How many training loops to run, one "
                                        "number per learning rate, comma-separated.")
    learning_rate: str = _opt("0.001,0.0001", "How large a learning rate to use when training, "
                              "one per phase of how_many_training_steps, comma-separated.")
    batch_size: int = _opt(100, "How many items to train with at once.")
    silence_percentage: float = _opt(10.0, "How much of the training data should be silence.")
    unknown_percentage: float = _opt(10.0, "How much of the training data should be unknown "
                                     "words.")
    background_volume: float = _opt(0.1, "How loud the background noise should be, "
                                    "between 0 and 1.")
    background_frequency: float = _opt(0.8, "How many of the training samples have background "
                                       "noise mixed in.")
    time_shift_ms: float = _opt(100.0, "Range to randomly shift the training audio by in time.")
    sample_rate: int = _opt(16000, "Expected sample rate of the wavs.")
    clip_duration_ms: int = _opt(1000, "Expected duration in milliseconds of the wavs.")
    window_size_ms: float = _opt(30.0, "How long each spectrogram timeslice is.")
    window_stride_ms: float = _opt(10.0, "How far to move in time between spectrogram "
                                   "timeslices.")
    feature_bin_count: int = _opt(40, "How many bins to use for the MFCC fingerprint.")
    preprocess: str = _opt("mfcc", "Spectrogram processing mode.",
                           choices=("mfcc", "log_mel", "spectrogram", "average"))
    eval_step_interval: int = _opt(400, "How often to evaluate the training results.")
    save_step_interval: int = _opt(100, "Save model checkpoint every save_steps.")
    train_dir: str = _opt("/tmp/speech_commands_train", "Directory to write event logs and "
                          "checkpoint.")
    summaries_dir: str = _opt("/tmp/retrain_logs", "Where to save summary logs for TensorBoard.")
    start_checkpoint: str = _opt("", "If specified, restore this pretrained model before any "
                                 "training (a checkpoint prefix, or a train_dir to take its "
                                 "latest checkpoint).")
    validation_percentage: float = _opt(10.0, "What percentage of wavs to use as a validation "
                                        "set.")
    testing_percentage: float = _opt(10.0, "What percentage of wavs to use as a test set.")
    optimizer: str = _opt("gradient_descent", "Optimizer (gradient_descent, momentum or adam).",
                          choices=OPTIMIZER_CHOICES)
    check_nans: bool = _opt(False, "Whether to check for invalid numbers during processing.")
    verbosity: str = _opt("info", "What the text progress shows: debug (every step), info "
                          "(a step line every progress_seconds, validation, checkpoints), "
                          "warn/error/fatal (nothing).", choices=VERBOSITY_CHOICES)
    seed: int = _opt(59185, "Random seed: the same seed gives the same split, initial weights, "
                     "data order and result.")
    distribute: str = _opt("none", "tf.distribute strategy: none, mirrored (all local devices) "
                           "or multi_worker (TF_CONFIG).", choices=DISTRIBUTE_CHOICES)
    max_to_keep: int = _opt(5, "How many recent checkpoints to keep in train_dir.")
    progress_seconds: float = _opt(5.0, "How often the text progress prints a step line "
                                   "(0: every step).")
    freq_mask_bins: int = _opt(0, "SpecAugment: mask two bands of up to this many feature "
                               "bins in each training clip (0: off, as the seed).")
    time_mask_frames: int = _opt(0, "SpecAugment: mask two stretches of up to this many "
                                 "frames in each training clip (0: off, as the seed).")
    label_smoothing: float = _opt(0.0, "Train towards (1 - s) on the true label and s spread "
                                  "over all labels (0: off, as the seed).")
    normalize_features: bool = _opt(False, "Normalise each feature bin to zero mean and unit "
                                    "scale, with statistics taken once from training clips "
                                    "and stored with the run (export and streaming apply "
                                    "them too). Keeps int8 close to float, but cost tiny_conv "
                                    "float accuracy in benchmarks/RESULTS.md, so it is off "
                                    "by default.")

    def __post_init__(self) -> None:
        # The seed's /tmp defaults, under the system's temporary folder where there is no /tmp.
        from kwlesson.config import seed_path

        for name in ("data_dir", "train_dir", "summaries_dir"):
            setattr(self, name, seed_path(getattr(self, name)))

    def schedule(self) -> list[tuple[int, float]]:
        """(steps, learning rate) per phase, checked; see :func:`parse_schedule`."""
        return parse_schedule(self.how_many_training_steps, self.learning_rate)

    def total_steps(self) -> int:
        """Steps over all phases, e.g. 18000 for the seed's defaults."""
        return sum(n for n, _ in self.schedule())

    def feature_settings(self) -> FeatureSettings:
        """The :class:`~kwlesson.features.FeatureSettings` these flags describe, without the
        per-bin normalisation (its statistics come from data: see :func:`train`, and use the
        settings stored with a run, ``TrainedModel.settings``, to compute its features)."""
        return FeatureSettings(
            sample_rate=self.sample_rate, clip_duration_ms=self.clip_duration_ms,
            window_size_ms=self.window_size_ms, window_stride_ms=self.window_stride_ms,
            feature_bin_count=self.feature_bin_count, preprocess=self.preprocess)

    def words(self) -> list[str]:
        """The wanted words as a list."""
        return [w.strip() for w in self.wanted_words.split(",") if w.strip()]

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**d)

    def validate(self) -> None:
        """Raise ValueError naming the bad field; called by :func:`train` before any work."""
        self.schedule()
        for name in ("batch_size", "eval_step_interval", "save_step_interval", "max_to_keep"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)!r}")
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ValueError(f"{f.name} must be one of {', '.join(choices)}, "
                                 f"not {getattr(self, f.name)!r}")
        if not self.words():
            raise ValueError("wanted_words is empty")
        for name in ("freq_mask_bins", "time_mask_frames"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)!r}")
        if not 0.0 <= float(self.label_smoothing) < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), not {self.label_smoothing!r}")
        from kwlesson.faults import check_numbers

        check_numbers(**{name: getattr(self, name) for name in _NUMERIC_FLAGS})
        self.feature_settings()  # FeatureSettings checks its own fields


#: TrainConfig's numeric flags that :func:`kwlesson.faults.check_numbers` checks.
_NUMERIC_FLAGS = ("batch_size", "silence_percentage", "unknown_percentage", "background_volume",
                  "background_frequency", "time_shift_ms", "sample_rate", "clip_duration_ms",
                  "window_size_ms", "window_stride_ms", "validation_percentage",
                  "testing_percentage")


@dataclass
class TrainResult:
    """What :func:`train` returns. ``test_accuracy`` is a fraction in [0, 1] (None, as is
    ``test_confusion``, when the testing split is empty)."""

    model: Any
    labels: list[str]
    test_accuracy: float | None
    test_confusion: np.ndarray | None
    checkpoint_path: str
    step: int
    stopped: bool
    validation: list[tuple[int, float]]
    settings: FeatureSettings
    config: TrainConfig
    train_dir: str


@dataclass
class TrainedModel:
    """A model rebuilt from a checkpoint with the labels and features it was trained with."""

    model: Any
    labels: list[str]
    settings: FeatureSettings
    config: TrainConfig
    checkpoint_path: str
    step: int


# --------------------------------------------------------------------------------------------
# Schedule, optimizer, strategy

def parse_schedule(steps: str | Sequence[int], rates: str | Sequence[float]
                   ) -> list[tuple[int, float]]:
    """Pair the seed's comma-separated steps and learning rates, phase by phase.

    >>> parse_schedule("15000,3000", "0.001,0.0001")
    [(15000, 0.001), (3000, 0.0001)]
    """
    def split(text: str | Sequence, kind: type, name: str) -> list:
        items = [s.strip() for s in text.split(",")] if isinstance(text, str) else list(text)
        try:
            return [kind(s) for s in items]
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be comma-separated numbers, not {text!r}") from None

    n = split(steps, int, "how_many_training_steps")
    lr = split(rates, float, "learning_rate")
    if len(n) != len(lr):
        raise ValueError(
            f"how_many_training_steps and learning_rate must have the same number of elements: "
            f"{len(n)} step counts ({','.join(map(str, n))}) but {len(lr)} learning rates "
            f"({','.join(map(str, lr))})")
    if not n or any(k < 1 for k in n):
        raise ValueError(f"how_many_training_steps must be positive counts, not {steps!r}")
    if any(not (r > 0 and math.isfinite(r)) for r in lr):
        raise ValueError(f"learning_rate must be positive numbers, not {rates!r}")
    return list(zip(n, lr))


class PiecewiseRate(tf.keras.optimizers.schedules.LearningRateSchedule):
    """The seed's piecewise-constant rate, looked up from the optimizer's update count.

    Update number ``i`` (0-based, i.e. training step ``i + 1``) uses the rate of the first phase
    whose cumulative step count is >= step; after the last phase the last rate stays.
    Reading the count from the optimizer means a restored optimizer resumes the schedule.

    >>> PiecewiseRate([(2, 0.1), (3, 0.01)]).rate_at_step(3)
    0.01
    """

    def __init__(self, schedule: Sequence[tuple[int, float]]) -> None:
        self.schedule = [(int(n), float(r)) for n, r in schedule]
        self._ends = np.cumsum([n for n, _ in self.schedule]).astype(np.int64)
        self._rates = [r for _, r in self.schedule]

    def rate_at_step(self, step: int) -> float:
        """Rate used by training step ``step`` (1-based, as the seed's log lines count)."""
        i = min(int(np.sum(self._ends < step)), len(self._rates) - 1)
        return self._rates[i]

    def __call__(self, iterations: Any) -> tf.Tensor:
        step = tf.cast(iterations, tf.int64) + 1
        i = tf.minimum(tf.reduce_sum(tf.cast(self._ends < step, tf.int32)), len(self._rates) - 1)
        return tf.gather(tf.constant(self._rates, tf.float32), i)

    def get_config(self) -> dict[str, Any]:
        return {"schedule": self.schedule}


def make_optimizer(name: str, schedule: Sequence[tuple[int, float]]) -> Any:
    """The reference's --optimizer choices as Keras optimizers driven by :class:`PiecewiseRate`.

    >>> make_optimizer("adam", [(100, 1e-3)]).__class__.__name__
    'Adam'
    """
    import keras

    rate = PiecewiseRate(schedule)
    if name == "gradient_descent":
        return keras.optimizers.SGD(learning_rate=rate)
    if name == "momentum":
        return keras.optimizers.SGD(learning_rate=rate, momentum=MOMENTUM)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=rate)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZER_CHOICES)}, not {name!r}")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """'none' -> the default (single device) strategy; 'mirrored' -> MirroredStrategy over the
    local devices; 'multi_worker' -> MultiWorkerMirroredStrategy (workers from TF_CONFIG).

    MultiWorkerMirroredStrategy must be created before TensorFlow runs any op in the process,
    so with 'multi_worker' call :func:`train` first thing in the program. ``batch_size`` is the
    global batch: each of N workers takes 1/N of it; only the chief writes files (the
    instructor guide shows TF_CONFIG per machine; tests/test_multi_worker.py runs two).

    >>> make_strategy("none").num_replicas_in_sync
    1
    """
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"distribute must be one of {', '.join(DISTRIBUTE_CHOICES)}, not {name!r}")


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Does this process write the run's files? Yes, unless it is a multi-worker run's worker
    other than the chief (TF_CONFIG's task "chief", or "worker" 0 when there is no chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type in (None, "chief"):
        return True
    has_chief = "chief" in (resolver.cluster_spec().as_dict() or {})
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


# --------------------------------------------------------------------------------------------
# Observers: the dashboard's and the terminal's view of a run

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
            self._print("Confusion Matrix:\n " + format_confusion(confusion))
        self._print(validation_line(step, accuracy, int(confusion.sum())))

    def on_checkpoint(self, step: int, path: str) -> None:
        self._print(f'Saving to "{path}"')

    def on_test(self, accuracy: float, confusion: np.ndarray, labels: list[str]) -> None:
        if self.show_confusion:
            self._print("Confusion Matrix:\n " + format_confusion(confusion))
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


class _StopFlag(TrainingObserver):
    """Adapts a threading.Event or a callable returning True into :meth:`should_stop`."""

    def __init__(self, stop: threading.Event | Callable[[], bool]) -> None:
        self.stop = stop

    def should_stop(self) -> bool:
        return bool(self.stop.is_set() if isinstance(self.stop, threading.Event) else self.stop())


class _Observers(TrainingObserver):
    """Several observers as one; a failing observer is logged, it never ends training."""

    def __init__(self, observers: Iterable[TrainingObserver]) -> None:
        self.observers = list(observers)

    def _each(self, name: str, *args: Any) -> None:
        for o in self.observers:
            try:
                getattr(o, name)(*args)
            except Exception:  # a broken plot must not lose hours of training
                logger.exception("observer %r failed in %s", o, name)

    def on_train_begin(self, info):  # noqa: D102
        self._each("on_train_begin", info)

    def on_step(self, step, metrics):  # noqa: D102
        self._each("on_step", step, metrics)

    def on_eval(self, step, accuracy, confusion, labels):  # noqa: D102
        self._each("on_eval", step, accuracy, confusion, labels)

    def on_checkpoint(self, step, path):  # noqa: D102
        self._each("on_checkpoint", step, path)

    def on_test(self, accuracy, confusion, labels):  # noqa: D102
        self._each("on_test", accuracy, confusion, labels)

    def on_train_end(self, result):  # noqa: D102
        self._each("on_train_end", result)

    def should_stop(self) -> bool:
        return any(o.should_stop() for o in self.observers)


# --------------------------------------------------------------------------------------------
# The seed's log lines and the confusion matrix

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


test_line.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


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


# --------------------------------------------------------------------------------------------
# TensorBoard records, written with TensorFlow alone

def _metadata(plugin: str, data_class: int, description: str = "") -> Any:
    from tensorflow.core.framework import summary_pb2

    meta = summary_pb2.SummaryMetadata(summary_description=description, data_class=data_class)
    meta.plugin_data.plugin_name = plugin
    return meta


def _scalar(name: str, value: float, step: int) -> None:
    """tf.summary.scalar's record, without needing the tensorboard package to write it."""
    from tensorflow.core.framework import summary_pb2

    tf.summary.write(name, tf.constant(value, tf.float32), step=step,
                     metadata=_metadata("scalars", summary_pb2.DATA_CLASS_SCALAR))


def _image(name: str, image: np.ndarray, step: int, description: str = "") -> None:
    """tf.summary.image's record (width, height, PNG) for one uint8 [1, h, w, 3] image."""
    from tensorflow.core.framework import summary_pb2

    png = tf.io.encode_png(image[0])
    tensor = tf.stack([tf.as_string(image.shape[2]), tf.as_string(image.shape[1]), png])
    tf.summary.write(name, tensor, step=step,
                     metadata=_metadata("images", summary_pb2.DATA_CLASS_BLOB_SEQUENCE,
                                        description))


# --------------------------------------------------------------------------------------------
# Checkpoints: the seed's names, written atomically

def checkpoint_prefix(train_dir: str | os.PathLike, arch: str, step: int) -> str:
    """``<train_dir>/<arch>.ckpt-<step>``, the seed's name.

    >>> checkpoint_prefix("/tmp/speech_commands_train", "conv", 100)
    '/tmp/speech_commands_train/conv.ckpt-100'
    """
    return os.path.join(os.fspath(train_dir), f"{arch}.ckpt-{step}")


def _step_of(prefix: str) -> int:
    try:
        return int(prefix.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def latest_checkpoint(train_dir: str | os.PathLike, arch: str | None = None) -> str | None:
    """Newest complete checkpoint prefix in ``train_dir`` (of ``arch`` if given), or None.

    Reads the 'checkpoint' pointer file, and falls back to the highest-numbered
    ``<arch>.ckpt-<step>.index`` on disk if the pointer is missing or names a deleted file.

    >>> latest_checkpoint("/tmp/speech_commands_train", "conv")  # doctest: +SKIP
    '/tmp/speech_commands_train/conv.ckpt-18000'
    """
    d = Path(train_dir)
    if not d.is_dir():
        return None
    found = tf.train.latest_checkpoint(str(d))
    if found and Path(found + ".index").exists() and (
            arch is None or Path(found).name.startswith(f"{arch}.ckpt-")):
        return found
    pattern = f"{arch}.ckpt-*.index" if arch else "*.ckpt-*.index"
    prefixes = [str(p)[: -len(".index")] for p in d.glob(pattern)]
    prefixes = [p for p in prefixes if _step_of(p) >= 0]
    return max(prefixes, key=_step_of) if prefixes else None


def _write_checkpoint(ckpt: tf.train.Checkpoint, prefix: str, max_to_keep: int,
                      is_chief: bool = True) -> str:
    """Write ``prefix.index`` / ``prefix.data-*`` atomically, then move the pointer, then prune.

    The files are written under a temporary name and renamed (data first, index last), so a
    crash leaves either the old checkpoint set or a complete new one, never a half file that
    the pointer names. Only the chief of a multi-worker run keeps its files.
    """
    final = Path(prefix)
    d = final.parent
    if not is_chief:  # every worker must take part in the write; the others throw theirs away
        with tempfile.TemporaryDirectory() as tmp:
            ckpt.write(os.path.join(tmp, final.name))
        return prefix
    d.mkdir(parents=True, exist_ok=True)
    tmp_prefix = str(d / f".{final.name}.tmp{os.getpid()}")
    try:
        written = ckpt.write(tmp_prefix)
        parts = sorted(Path(p) for p in tf.io.gfile.glob(written + ".*"))
        parts.sort(key=lambda p: p.name.endswith(".index"))  # index last: it marks completion
        names = {p: final.name + p.name[len(Path(written).name):] for p in parts}
        from kwlesson.faults import checksum_path, write_checksums

        # The sidecar (sizes and SHA-256) lets a resume tell a damaged copy from an intact one.
        side = write_checksums({names[p]: p for p in parts}, prefix)
        for p in parts[:-1]:
            os.replace(p, d / names[p])
        os.replace(side, checksum_path(prefix))
        os.replace(parts[-1], d / names[parts[-1]])
    except BaseException:  # a full disk or Ctrl-C mid-write: leave no temporary files behind
        import shutil

        for f in d.glob(f".{final.name}.*"):
            if f.is_dir():  # TensorFlow's sharded write works in a <prefix>_temp folder
                shutil.rmtree(f, ignore_errors=True)
            else:
                f.unlink(missing_ok=True)
        raise

    arch = final.name.split(".ckpt-")[0]
    kept = sorted((str(p)[: -len(".index")] for p in d.glob(f"{arch}.ckpt-*.index")),
                  key=_step_of)
    old, kept = kept[:-max_to_keep], kept[-max_to_keep:]
    if prefix not in kept:
        kept.append(prefix)
    lines = [f'model_checkpoint_path: "{final.name}"']
    lines += [f'all_model_checkpoint_paths: "{Path(p).name}"' for p in kept]
    _atomic_write_text(d / "checkpoint", "\n".join(lines) + "\n")
    for p in old:  # prune after the pointer moved, so it never names a deleted file
        for f in tf.io.gfile.glob(p + ".*"):
            Path(f).unlink(missing_ok=True)
    return prefix


def resolve_checkpoint(path: str | os.PathLike, arch: str | None = None) -> str:
    """A checkpoint prefix from a prefix, an ``.index`` file or a directory (its latest, of
    ``arch`` if given); FileNotFoundError naming the path when there is none.

    >>> resolve_checkpoint("/tmp/speech_commands_train")  # doctest: +SKIP
    '/tmp/speech_commands_train/conv.ckpt-18000'
    """
    path = os.fspath(path)
    p = path[: -len(".index")] if path.endswith(".index") else path
    if Path(p).is_dir():
        found = latest_checkpoint(p, arch)
        if found is None:
            raise FileNotFoundError(f"{p}: no checkpoint found in this folder"
                                    + (f" for {arch}" if arch else ""))
        return _intact_checkpoint(found)
    if not Path(p + ".index").exists():
        raise FileNotFoundError(f"{path}: checkpoint not found (expected {p}.index)")
    return _intact_checkpoint(p)


def _intact_checkpoint(prefix: str) -> str:
    """``prefix`` if its files are intact, else the newest intact older checkpoint of the same
    run in its folder, with a warning naming the damaged files; DamagedCheckpoint when none is.
    """
    import warnings

    from kwlesson.faults import DamagedCheckpoint, RunWarning, damaged_files

    d, name = Path(prefix).parent, Path(prefix).name
    arch = name.split(".ckpt-")[0]
    older = sorted((str(q)[: -len(".index")] for q in d.glob(f"{arch}.ckpt-*.index")
                    if _step_of(str(q)[: -len(".index")]) < _step_of(prefix)),
                   key=_step_of, reverse=True)
    damaged: list[str] = []
    for candidate in [prefix, *older]:
        bad = damaged_files(candidate)
        if not bad:
            if damaged:
                warnings.warn(f"{prefix}: damaged checkpoint ({', '.join(damaged)} cut short "
                              f"or changed); using the newest intact one, {candidate}",
                              RunWarning, stacklevel=3)
            return candidate
        damaged += [Path(b).name for b in bad]
    raise DamagedCheckpoint(
        f"{d}: no intact checkpoint of {arch} (damaged: {', '.join(damaged)}); copy the "
        "folder again from where it was made, or delete these files and train from step 0")


_resolve_checkpoint = resolve_checkpoint  # the earlier private name, still used by export


# --------------------------------------------------------------------------------------------
# The run's description next to its checkpoints

def _config_path(train_dir: str | os.PathLike, arch: str) -> Path:
    return Path(train_dir) / f"{arch}_config.json"


def _labels_path(train_dir: str | os.PathLike, arch: str) -> Path:
    return Path(train_dir) / f"{arch}_labels.txt"


def _write_run_files(config: TrainConfig, settings: FeatureSettings, labels: list[str]) -> None:
    d = Path(config.train_dir)
    d.mkdir(parents=True, exist_ok=True)
    arch = config.model_architecture
    _atomic_write_text(_labels_path(d, arch), "\n".join(labels) + "\n")
    from kwlesson import __version__

    doc = {"kwlesson_version": __version__, "model_architecture": arch, "labels": labels,
           "input_shape": list(settings.shape), "feature_settings": settings.to_dict(),
           "train_config": config.to_dict()}
    _atomic_write_text(_config_path(d, arch), json.dumps(doc, indent=2) + "\n")


def read_run_files(checkpoint: str | os.PathLike) -> tuple[TrainConfig, FeatureSettings,
                                                          list[str]]:
    """(config, feature settings, labels) stored next to a checkpoint or in a train_dir.

    >>> ckpt = "/tmp/speech_commands_train/conv.ckpt-100"
    >>> cfg, settings, labels = read_run_files(ckpt)  # doctest: +SKIP
    """
    p = Path(checkpoint)
    d = p if p.is_dir() else p.parent
    arch = None if p.is_dir() else p.name.split(".ckpt-")[0]
    candidates = [_config_path(d, arch)] if arch else sorted(d.glob("*_config.json"))
    if not candidates or not candidates[0].exists():
        raise FileNotFoundError(f"{d}: no <arch>_config.json next to the checkpoint (was it "
                                "written by kwlesson.training?)")
    if len(candidates) > 1:
        raise ValueError(f"{d}: several runs ({', '.join(c.name for c in candidates)}); "
                         "name the checkpoint itself")
    try:
        doc = json.loads(candidates[0].read_text())
        return (TrainConfig.from_dict(doc["train_config"]),
                FeatureSettings.from_dict(doc["feature_settings"]), list(doc["labels"]))
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{candidates[0]}: not a valid run description ({err})") from err


# --------------------------------------------------------------------------------------------
# Data and model

def load_data(config: TrainConfig) -> Any:
    """The :class:`kwlesson.data.SpeechCommands` a config describes: same words, split, seed.

    >>> data = load_data(TrainConfig(data_dir="speech_commands_v0.02"))  # doctest: +SKIP
    """
    from kwlesson.data import SpeechCommands

    return SpeechCommands(
        config.data_dir, wanted_words=config.words(),
        silence_percentage=config.silence_percentage,
        unknown_percentage=config.unknown_percentage,
        validation_percentage=config.validation_percentage,
        testing_percentage=config.testing_percentage, seed=config.seed,
        sample_rate=config.sample_rate, clip_duration_ms=config.clip_duration_ms,
        background_dir=config.background_dir or None)


def _training_batches(data: Any, config: TrainConfig, settings: FeatureSettings,
                      start_step: int) -> tf.data.Dataset:
    """Endless augmented training batches, starting with the batch of step ``start_step + 1``.

    The batches are a pure function of (seed, batch number), so a resumed run sees exactly
    the batches the uninterrupted run would have seen.
    """
    kwargs = dict(batch_size=config.batch_size, seed=config.seed, repeat=True,
                  time_shift_ms=config.time_shift_ms, background_volume=config.background_volume,
                  background_frequency=config.background_frequency, drop_remainder=True)
    params = inspect.signature(data.dataset).parameters
    if config.freq_mask_bins or config.time_mask_frames:
        kwargs.update(freq_mask_bins=config.freq_mask_bins,
                      time_mask_frames=config.time_mask_frames)
    for name in ("skip_batches", "start_batch"):
        if name in params:  # skipping index entries, before features are computed: cheap
            return data.dataset("training", settings, **kwargs, **{name: start_step})
    ds = data.dataset("training", settings, **kwargs)
    if start_step:
        logger.info("Replaying %d batches to restore the data order", start_step)
        ds = ds.skip(start_step)
    return ds


def _eval_batches(data: Any, split: str, settings: FeatureSettings,
                  batch_size: int) -> tf.data.Dataset | None:
    """The split in order, unaugmented; None when it is empty (e.g. validation_percentage=0)."""
    if not len(data.index[split]):
        logger.warning("The %s split is empty: no %s accuracy", split, split)
        return None
    return data.dataset(split, settings, batch_size=batch_size, shuffle=False, augment=False,
                        repeat=False)


def _create_model(arch: str, settings: FeatureSettings, num_labels: int) -> Any:
    from kwlesson import models

    return models.create_model(arch, settings.shape, num_labels)


# --------------------------------------------------------------------------------------------
# Steps

def _make_train_step(model: Any, optimizer: Any, strategy: tf.distribute.Strategy,
                     step_var: tf.Variable, global_batch: int, check_nans: bool,
                     label_smoothing: float = 0.0) -> Callable:
    def replica_step(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        y = tf.cast(y, tf.int32)
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            if label_smoothing:
                n = tf.shape(logits)[-1]
                target = (tf.one_hot(y, n) * (1.0 - label_smoothing)
                          + label_smoothing / tf.cast(n, tf.float32))
                per_example = tf.nn.softmax_cross_entropy_with_logits(
                    labels=target, logits=tf.cast(logits, tf.float32))
            else:
                per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=y, logits=tf.cast(logits, tf.float32))
            if check_nans:
                per_example = tf.debugging.check_numerics(per_example, "cross entropy")
            # Scaled by the global batch: replicas' gradients are summed, giving the mean.
            xent = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            loss = xent
            if model.losses:  # weight decay (ds_cnn), counted once over all replicas
                loss = xent + tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        correct = tf.reduce_sum(tf.cast(
            tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), y), tf.float32))
        return xent, correct

    @tf.function
    def train_step(batch: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        x, y = batch
        loss, correct = strategy.run(replica_step, args=(x, y))
        loss = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        correct = strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None)
        # Counting inside the step keeps weights and step number in agreement even when Ctrl-C
        # lands between two Python statements.
        step_var.assign_add(1)
        return loss, correct / global_batch

    return train_step


def _make_predict(model: Any, shape: tuple[int, int]) -> Callable:
    @tf.function(input_signature=[tf.TensorSpec([None, *shape], tf.float32)])
    def predict(x: tf.Tensor) -> tf.Tensor:
        return tf.argmax(model(x, training=False), axis=-1, output_type=tf.int32)

    return predict


def _confusion(predict: Callable, dataset: tf.data.Dataset, num_labels: int) -> np.ndarray:
    total = np.zeros((num_labels, num_labels), np.int64)
    for x, y in dataset:
        pred = predict(tf.cast(x, tf.float32)).numpy()
        np.add.at(total, (np.asarray(y, np.int64), pred), 1)
    return total


def _accuracy(confusion: np.ndarray) -> float:
    n = confusion.sum()
    return float(np.trace(confusion) / n) if n else 0.0


#: Training clips the per-bin feature statistics are taken from (fixed draw, seeded).
NORMALIZATION_CLIPS = 500


def _normalized_settings(data: Any, config: TrainConfig, settings: FeatureSettings
                         ) -> FeatureSettings:
    """``settings`` with per-bin mean and scale of up to :data:`NORMALIZATION_CLIPS` training
    clips (drawn with ``config.seed``, no augmentation)."""
    from kwlesson.features import normalization_stats

    raw = settings.without_normalization()
    ds = data.dataset("training", raw, batch_size=NORMALIZATION_CLIPS, shuffle=True,
                      augment=False, repeat=False, seed=config.seed)
    for feats, _ in ds.take(1):
        mean, scale = normalization_stats(np.asarray(feats))
        return dataclasses.replace(raw, feature_mean=mean, feature_scale=scale)
    raise ValueError(f"{config.data_dir}: the training split is empty; nothing to train on")


# --------------------------------------------------------------------------------------------
# Training

def _checkpoint_object(model: Any, optimizer: Any, step_var: tf.Variable) -> tf.train.Checkpoint:
    # model= names the weights the way a fresh model of the same architecture finds them;
    # variables= adds what tf.train.Checkpoint does not reach through Keras 3 layers, such as
    # the dropout layers' random-generator state, needed for an exact resume.
    return tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_var,
                               variables=[v.value for v in model.variables])


def _train(config: TrainConfig | None = None,
           observer: TrainingObserver | Sequence[TrainingObserver] | None = None, *,
           stop: threading.Event | Callable[[], bool] | None = None,
           data: Any = None) -> TrainResult:
    """Train ``config.model_architecture`` as the seed's train.py does, and test it.

    ``observer``: one or several :class:`TrainingObserver` (default: :class:`TextProgress`
    printing to stdout). ``stop``: a threading.Event or a callable; when it is set / returns
    True, training saves a checkpoint and ends after the current step (``result.stopped``).
    Ctrl-C (KeyboardInterrupt) also saves a checkpoint, then re-raises. ``data``: an already
    loaded :class:`kwlesson.data.SpeechCommands` (else it is loaded from ``config.data_dir``).

    Resume with ``start_checkpoint``: the step, weights, optimizer state, schedule and data
    order continue as if the run had not been interrupted.

    Every seed log line also goes to the ``kwlesson.training`` logger at INFO level (silent
    unless you configure logging, e.g. to keep a log file).

    >>> cfg = TrainConfig(data_dir="data", model_architecture="tiny_conv",
    ...                   how_many_training_steps="200", learning_rate="0.01")
    >>> result = train(cfg)  # doctest: +SKIP
    >>> result.test_accuracy, result.checkpoint_path  # doctest: +SKIP
    (0.71, '/tmp/speech_commands_train/tiny_conv.ckpt-200')
    """
    import keras

    config = config or TrainConfig()
    config.validate()
    schedule = config.schedule()
    total_steps = sum(n for n, _ in schedule)
    rate = PiecewiseRate(schedule)
    settings = config.feature_settings()
    arch = config.model_architecture

    observers: list[TrainingObserver]
    if observer is None:
        # verbosity picks what the terminal shows: debug every step line, info the seed's
        # lines throttled to one every progress_seconds, warn and above nothing.
        every = 0.0 if config.verbosity == "debug" else config.progress_seconds
        observers = ([TextProgress(every_seconds=every)]
                     if config.verbosity in ("debug", "info") else [])
    elif isinstance(observer, TrainingObserver):
        observers = [observer]
    else:
        observers = list(observer)
    if stop is not None:
        observers.append(_StopFlag(stop))
    obs = _Observers(observers)

    strategy = make_strategy(config.distribute)  # first: multi-worker must precede other ops
    # In a multi-worker run only the chief writes train_dir and the logs (see _is_chief).
    is_chief = _is_chief(strategy)
    keras.utils.set_random_seed(config.seed)
    if data is None:
        data = load_data(config)
    labels = list(data.labels)
    num_labels = len(labels)
    _warn_missing_labels(data, config)

    start_path = ""
    if config.start_checkpoint:
        start_path = resolve_checkpoint(config.start_checkpoint, arch)
        try:
            _, old_settings, old_labels = read_run_files(start_path)
        except FileNotFoundError:
            if config.normalize_features:
                raise ValueError(
                    f"{start_path}: no <arch>_config.json next to it, so its feature "
                    "normalisation is unknown; resume from its train_dir, or set "
                    "normalize_features=False if it was trained without one") from None
            old_settings, old_labels = settings, labels  # a bare checkpoint: trust the caller
        if old_labels != labels or old_settings.without_normalization() != settings:
            raise ValueError(
                f"{start_path}: was trained with labels {old_labels} and features "
                f"{old_settings.without_normalization().to_dict()}, but this run has labels "
                f"{labels} and features {settings.to_dict()}; use the same wanted_words and "
                "feature flags")
        if old_settings.normalized != config.normalize_features:
            raise ValueError(
                f"{start_path}: was trained {'with' if old_settings.normalized else 'without'} "
                f"feature normalisation; resume with "
                f"normalize_features={old_settings.normalized}")
        # The stored statistics, never recomputed: the weights were trained on them.
        settings = old_settings
    elif config.normalize_features:
        settings = _normalized_settings(data, config, settings)
        # Drawing the clips must not change what follows: same weights and batches as ever.
        keras.utils.set_random_seed(config.seed)
    if is_chief:
        _write_run_files(config, settings, labels)

    with strategy.scope():
        model = _create_model(arch, settings, num_labels)
        optimizer = make_optimizer(config.optimizer, schedule)
        optimizer.build(model.trainable_variables)
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    ckpt = _checkpoint_object(model, optimizer, step_var)
    if start_path:
        _read_for_resume(ckpt, start_path)
        logger.info("Restored %s at step %d", start_path, int(step_var.numpy()))
    start_step = int(step_var.numpy())

    train_step = _make_train_step(model, optimizer, strategy, step_var, config.batch_size,
                                  config.check_nans, config.label_smoothing)
    predict = _make_predict(model, settings.shape)
    train_ds = _training_batches(data, config, settings, start_step)
    batches = iter(strategy.experimental_distribute_dataset(train_ds))
    val_ds = _eval_batches(data, "validation", settings, config.batch_size)

    summaries = (Path(config.summaries_dir) if is_chief
                 else Path(tempfile.mkdtemp(prefix="kwlesson-worker-logs-")))
    train_writer = tf.summary.create_file_writer(str(summaries / "train"))
    val_writer = tf.summary.create_file_writer(str(summaries / "validation"))

    obs.on_train_begin({"config": config, "labels": labels, "settings": settings,
                        "start_step": start_step, "total_steps": total_steps,
                        "train_dir": config.train_dir,
                        "replicas": strategy.num_replicas_in_sync})
    validation: list[tuple[int, float]] = []
    checkpoint_path = start_path
    saved_step = start_step if start_path else -1

    def save(step: int) -> None:
        nonlocal checkpoint_path, saved_step
        prefix = checkpoint_prefix(config.train_dir, arch, step)
        bad = _nonfinite_weights(model)
        if bad:  # never save weights a diverged step produced: the last finite one stays
            raise _diverged(step, rate.rate_at_step(step), f"weights {', '.join(bad[:3])}",
                            checkpoint_path)
        logger.info('Saving to "%s"', prefix)
        try:
            _write_checkpoint(ckpt, prefix, config.max_to_keep, is_chief)
        except (OSError, tf.errors.OpError) as err:
            from kwlesson.faults import DiskFull, is_disk_full

            if not is_disk_full(err):
                raise
            last = (f"the last good checkpoint is {checkpoint_path}" if checkpoint_path
                    else "no checkpoint was saved")
            raise DiskFull(f"{config.train_dir}: the disk is full; training reached step "
                           f"{step} and {last}; free some space (or choose another "
                           "--train_dir and copy the folder there), then resume with "
                           f"--start_checkpoint {config.train_dir}") from err
        checkpoint_path, saved_step = prefix, step
        obs.on_checkpoint(step, prefix)

    def validate(step: int) -> None:
        if val_ds is None:
            return
        confusion = _confusion(predict, val_ds, num_labels)
        acc = _accuracy(confusion)
        logger.info("Confusion Matrix:\n %s", format_confusion(confusion))
        logger.info(validation_line(step, acc, int(confusion.sum())))
        with val_writer.as_default():
            _scalar("accuracy", acc, step)
            _image("confusion_matrix", confusion_image(confusion), step,
                   "rows: truth, columns: prediction, order: " + ", ".join(labels))
        validation.append((step, acc))
        obs.on_eval(step, acc, confusion, labels)

    stopped = False
    step = start_step
    t0 = time.monotonic()
    try:
        with faults.deferred_signals():
            while step < total_steps:
                try:
                    loss, acc = train_step(next(batches))
                except tf.errors.InvalidArgumentError as err:  # check_nans' check_numerics
                    if not config.check_nans or "cross entropy" not in str(err):
                        raise
                    step += 1  # the failed step (step_var may have counted it, or not)
                    raise _diverged(step, rate.rate_at_step(step), "loss",
                                    checkpoint_path) from None
                step = int(step_var.numpy())
                if not math.isfinite(float(loss)):
                    raise _diverged(step, rate.rate_at_step(step), "loss", checkpoint_path,
                                    float(loss))
                elapsed = time.monotonic() - t0
                metrics = {"rate": rate.rate_at_step(step), "accuracy": float(acc),
                           "cross_entropy": float(loss), "total_steps": total_steps,
                           "elapsed": elapsed,
                           "steps_per_second": ((step - start_step) / elapsed
                                                if elapsed > 0 else 0.0)}
                if logger.isEnabledFor(logging.INFO):
                    logger.info(step_line(step, metrics))
                with train_writer.as_default():
                    _scalar("cross_entropy", metrics["cross_entropy"], step)
                    _scalar("accuracy", metrics["accuracy"], step)
                    _scalar("learning_rate", metrics["rate"], step)
                obs.on_step(step, metrics)
                last = step == total_steps
                if step % config.eval_step_interval == 0 or last:
                    validate(step)
                if step % config.save_step_interval == 0 or last:
                    save(step)
                if not last and obs.should_stop():
                    logger.info("Stop requested at step %d", step)
                    stopped = True
                    break
                # Ctrl-C or SIGTERM during the step: raised here, between steps.
                faults.raise_pending_signal()
    except KeyboardInterrupt as interrupt:
        step = int(step_var.numpy())
        if step != saved_step:
            logger.info("Interrupted at step %d; saving a checkpoint", step)
            save(step)
        train_writer.flush()
        val_writer.flush()
        if checkpoint_path:  # so the terminal or notebook says how to go on
            interrupt.add_note(f"Interrupted at step {step}; resume with "
                               f"start_checkpoint={checkpoint_path}")
        raise
    if stopped and step != saved_step:
        save(step)
    train_writer.flush()
    val_writer.flush()

    test_ds = _eval_batches(data, "testing", settings, config.batch_size)
    test_confusion, test_acc = None, None
    if test_ds is not None:
        test_confusion = _confusion(predict, test_ds, num_labels)
        test_acc = _accuracy(test_confusion)
        logger.info("Confusion Matrix:\n %s", format_confusion(test_confusion))
        logger.info(test_line(test_acc, int(test_confusion.sum())))
        obs.on_test(test_acc, test_confusion, labels)

    result = TrainResult(model=model, labels=labels, test_accuracy=test_acc,
                         test_confusion=test_confusion, checkpoint_path=checkpoint_path,
                         step=step, stopped=stopped, validation=validation, settings=settings,
                         config=config, train_dir=config.train_dir)
    obs.on_train_end(result)
    train_writer.close()
    val_writer.close()
    return result


def _warn_missing_labels(data: Any, config: TrainConfig) -> None:
    """A warning naming each wanted word with no clips in a (non-empty) split."""
    import warnings

    from kwlesson.faults import RunWarning

    index = getattr(data, "index", None)
    if not isinstance(index, dict):
        return
    for split in ("training", "validation", "testing"):
        clips = index.get(split) or []
        if not clips:
            continue  # an empty split is reported where it is used
        have = {getattr(c, "label", None) for c in clips}
        missing = [w for w in config.words() if w not in have]
        if missing:
            effect = ("the model cannot learn it" if split == "training"
                      else f"the {split} accuracy says nothing about it")
            warnings.warn(f"{config.data_dir}: no {split} clips of "
                          f"{', '.join(repr(w) for w in missing)} (by the name hash split); "
                          f"{effect}; add clips or change the split percentages",
                          RunWarning, stacklevel=3)


def _read_for_resume(ckpt: tf.train.Checkpoint, prefix: str) -> None:
    from kwlesson.faults import DamagedCheckpoint

    try:
        status = ckpt.read(prefix)
    except (tf.errors.OpError, IndexError, ValueError) as err:  # damaged past its checksum
        raise DamagedCheckpoint(f"{prefix}: cannot be read ({str(err).splitlines()[0]}); "
                                "resume from an earlier checkpoint in its folder") from None
    status.assert_existing_objects_matched()


def _read_for_resume_partial(ckpt: tf.train.Checkpoint, prefix: str) -> None:
    from kwlesson.faults import DamagedCheckpoint

    try:
        ckpt.read(prefix).expect_partial()
    except (tf.errors.OpError, IndexError) as err:
        raise DamagedCheckpoint(f"{prefix}: cannot be read ({str(err).splitlines()[0]}); "
                                "use an earlier checkpoint in its folder") from None


def _nonfinite_weights(model: Any) -> list[str]:
    """Names of the model's variables holding NaN or infinity."""
    bad = []
    for v in model.variables:
        values = np.asarray(v)
        if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
            bad.append(getattr(v, "path", None) or v.name)
    return bad


def _diverged(step: int, rate: float, what: str, kept: str, value: float | None = None) -> Any:
    from kwlesson.faults import Diverged

    value_text = f" ({value})" if value is not None else ""
    kept_text = (f"the latest checkpoint stays {kept}" if kept
                 else "no checkpoint was saved")
    return Diverged(f"Step {step}: the {what} became NaN or infinite{value_text} at learning "
                    f"rate {rate:g}; training stopped and {kept_text}; try a smaller "
                    f"--learning_rate (e.g. {rate / 10:g}) or --optimizer adam, and check the "
                    "clips with kwlesson data info")


#: TrainConfig fields that do not change what a run computes: a new run differing from an
#: unfinished one only in these continues it.
_NOT_RECIPE = ("start_checkpoint", "verbosity", "progress_seconds", "max_to_keep",
               "summaries_dir", "check_nans", "eval_step_interval", "save_step_interval",
               "distribute")


def _unfinished_run(config: TrainConfig) -> tuple[str, int, int, list[str]] | None:
    """(latest checkpoint, its step, the run's total steps, settings that differ) of an
    unfinished run of the same architecture in ``config.train_dir``, or None."""
    arch = config.model_architecture
    prefix = latest_checkpoint(config.train_dir, arch)
    if prefix is None or not _config_path(config.train_dir, arch).exists():
        return None
    try:
        old = read_run_files(prefix)[0]
        total = old.total_steps()
    except (OSError, ValueError):
        return None
    step = _step_of(prefix)
    if step >= total:
        return None  # finished: a new run starts over, as the seed's train.py does
    new, before = config.to_dict(), old.to_dict()
    differ = [k for k in new if k not in _NOT_RECIPE and new[k] != before.get(k)]
    return prefix, step, total, differ


def train(config: TrainConfig | None = None,
          observer: TrainingObserver | Sequence[TrainingObserver] | None = None, *,
          stop: threading.Event | Callable[[], bool] | None = None,
          data: Any = None) -> TrainResult:
    from kwlesson import faults

    config = config or TrainConfig()
    config.validate()
    # Before any data is loaded: the folders the run writes, and that nobody else writes there.
    faults.check_folder(config.train_dir, "--train_dir")
    faults.check_folder(config.summaries_dir, "--summaries_dir")
    # Workers of one multi-worker run share the train_dir: only other runs are kept out.
    lock = faults.RunLock(config.train_dir)
    with (contextlib.nullcontext() if config.distribute == "multi_worker" else lock), \
            faults.sigterm_as_interrupt():
        if lock.took_over:
            logger.info("%s: took over the lock of process %s (no longer running)",
                        config.train_dir, lock.took_over.get("pid"))
        if not config.start_checkpoint:
            unfinished = _unfinished_run(config)
            if unfinished and not unfinished[3]:
                import warnings

                prefix, step, total, _ = unfinished
                warnings.warn(f"{config.train_dir}: resuming the unfinished run with the same "
                              f"settings at step {step} of {total} ({Path(prefix).name}); to "
                              "start over, use another --train_dir or delete its checkpoints",
                              faults.RunWarning, stacklevel=2)
                config = dataclasses.replace(config, start_checkpoint=config.train_dir)
            elif unfinished:
                prefix, step, total, differ = unfinished
                raise faults.RunError(
                    f"{config.train_dir}: holds an unfinished run (step {step} of {total}, "
                    f"{Path(prefix).name}) with other settings ({', '.join(differ)}); continue "
                    f"it with --start_checkpoint {config.train_dir}, or use another "
                    "--train_dir (or delete its checkpoints to start over)")
        try:
            return _train(config, observer, stop=stop, data=data)
        except (OSError, tf.errors.OpError) as err:
            if not faults.is_disk_full(err):
                raise
            raise faults.DiskFull(f"{config.train_dir}: the disk is full "
                                  f"({str(err).splitlines()[0]}); free some space or choose "
                                  "another --train_dir") from err


train.__doc__ = _train.__doc__ + """
    Before any data is loaded, ``train_dir`` and ``summaries_dir`` are checked (writable,
    some free space), and ``train_dir`` is locked: a second run into it is refused naming the
    first. Without ``start_checkpoint``, an unfinished run of the same settings in
    ``train_dir`` is resumed (with a warning), one of other settings refused. SIGTERM saves a
    checkpoint as Ctrl-C does (and raises :class:`kwlesson.faults.Terminated`); a NaN or
    infinite loss stops the run (:class:`kwlesson.faults.Diverged`), a full disk too
    (:class:`kwlesson.faults.DiskFull`), each with one line saying what to do.
    """


def load_trained(checkpoint: str | os.PathLike) -> TrainedModel:
    """Rebuild a trained model from a checkpoint prefix (or a train_dir: its latest checkpoint),
    with the labels, feature settings and config stored next to it.

    >>> tm = load_trained("/tmp/speech_commands_train/conv.ckpt-18000")  # doctest: +SKIP
    >>> tm.labels[:2], tm.settings.shape  # doctest: +SKIP
    (['_silence_', '_unknown_'], (98, 40))
    """
    path = os.fspath(checkpoint)
    arch = None
    if Path(path).is_dir():
        config, _, _ = read_run_files(path)
        arch = config.model_architecture
    prefix = resolve_checkpoint(path, arch)
    config, settings, labels = read_run_files(prefix)
    model = _create_model(config.model_architecture, settings, len(labels))
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    _read_for_resume_partial(tf.train.Checkpoint(model=model, step=step_var), prefix)
    bad = _nonfinite_weights(model)
    if bad:
        from kwlesson.faults import Diverged

        raise Diverged(f"{prefix}: NaN or infinite weights ({', '.join(bad[:3])}"
                       f"{', ...' if len(bad) > 3 else ''}): the run diverged; train again "
                       "with a smaller --learning_rate")
    return TrainedModel(model=model, labels=labels, settings=settings, config=config,
                        checkpoint_path=prefix, step=int(step_var.numpy()))


# --------------------------------------------------------------------------------------------
# The course's quick model

def quick_model(verbosity: str = "warn", progress: bool = True,
                **overrides: Any) -> TrainedModel:
    """A model trained with :data:`QUICK_RECIPE` on the offline dataset, made once and cached.

    Lessons that need a trained model (04, 06, 07, 08) call this, so each notebook runs on its
    own in any order: the first call trains (a few minutes on two cores, with a progress bar
    and the time left unless ``progress=False``), later calls load the checkpoint.
    ``overrides`` are :class:`TrainConfig` fields (another architecture, other steps); each
    distinct recipe gets its own folder under ``data_home()/quick_models``.

    Introduced in notebook 03.

    >>> tm = quick_model()  # doctest: +SKIP
    >>> tm.labels[:3]  # doctest: +SKIP
    ['_silence_', '_unknown_', 'yes']
    """
    import hashlib

    from kwlesson import synth
    from kwlesson.config import data_home

    fields = {**QUICK_RECIPE, **overrides}
    if "data_dir" not in fields:
        fields["data_dir"] = str(synth.offline_dataset(progress=progress))
    key = hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    folder = data_home() / "quick_models" / key
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / "done.json"
    # Two notebooks (or two students on a shared home) may ask at once: one trains, the
    # other waits for it instead of writing the same checkpoints.
    with open(folder / ".lock", "w") as lock:
        try:
            import fcntl  # not on Windows: there, two runs at once are the user's to avoid

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:
            pass
        if not done.exists():
            config = TrainConfig(**{**fields, "train_dir": str(folder / "train"),
                                    "summaries_dir": str(folder / "logs"),
                                    "verbosity": verbosity})
            # A text log (verbosity info/debug) or, by default, one bar with time left.
            what = ("the course's quick model" if not overrides
                    else f"{config.model_architecture}, {config.total_steps()} steps")
            bar = (BarProgress(f"training {what} (once)")
                   if progress and config.verbosity not in ("debug", "info") else None)
            result = train(config, observer=bar)
            if result.stopped:
                raise RuntimeError("training of the quick model was stopped; "
                                   "call quick_model() again")
            _atomic_write_text(done, json.dumps({"checkpoint": result.checkpoint_path,
                                                 "test_accuracy": result.test_accuracy}))
    return load_trained(json.loads(done.read_text())["checkpoint"])
