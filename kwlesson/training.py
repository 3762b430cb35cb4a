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
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from kwlesson import faults
from kwlesson.features import FeatureSettings
from kwlesson.progress import (
    BarProgress,
    TextProgress,
    TrainingObserver,
    confusion_image,
    format_confusion,
    step_line,
    test_line,
    validation_line,
)
from kwlesson.recipes import QUICK_RECIPE

# TrainConfig and TrainResult are training's interface; they live with the run they describe.
from kwlesson.runs import (
    DISTRIBUTE_CHOICES,
    OPTIMIZER_CHOICES,
    TrainConfig,
    TrainedModel,
    TrainResult,
    atomic_write_text,
    checkpoint_prefix,
    config_path,
    latest_checkpoint,
    load_trained,
    model_for,
    nonfinite_weights,
    read_run_files,
    resolve_checkpoint,
    restore,
    step_of,
    write_checkpoint,
    write_run_files,
)

__all__ = [
    "MOMENTUM",
    "NORMALIZATION_CLIPS",
    "PiecewiseRate",
    "QUICK_RECIPE",
    "TrainConfig",
    "TrainResult",
    "load_data",
    "make_optimizer",
    "make_strategy",
    "quick_model",
    "train",
]

logger = logging.getLogger(__name__)

#: Momentum of the 'momentum' optimizer, as the seed's tf.train.MomentumOptimizer(lr, .9).
MOMENTUM = 0.9


# --------------------------------------------------------------------------------------------
# Schedule, optimizer, strategy


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
    """The seed's --optimizer choices as Keras optimizers driven by :class:`PiecewiseRate`.

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


test_line.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


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


# --------------------------------------------------------------------------------------------
# The run's description next to its checkpoints


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


def training_batches(data: Any, config: TrainConfig, settings: FeatureSettings,
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
        write_run_files(config, settings, labels)

    with strategy.scope():
        model = model_for(arch, settings, num_labels)
        optimizer = make_optimizer(config.optimizer, schedule)
        optimizer.build(model.trainable_variables)
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    ckpt = _checkpoint_object(model, optimizer, step_var)
    if start_path:
        restore(ckpt, start_path)
        logger.info("Restored %s at step %d", start_path, int(step_var.numpy()))
    start_step = int(step_var.numpy())

    train_step = _make_train_step(model, optimizer, strategy, step_var, config.batch_size,
                                  config.check_nans, config.label_smoothing)
    predict = _make_predict(model, settings.shape)
    train_ds = training_batches(data, config, settings, start_step)
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
        bad = nonfinite_weights(model)
        if bad:  # never save weights a diverged step produced: the last finite one stays
            raise _diverged(step, rate.rate_at_step(step), f"weights {', '.join(bad[:3])}",
                            checkpoint_path)
        logger.info('Saving to "%s"', prefix)
        try:
            write_checkpoint(ckpt, prefix, config.max_to_keep, is_chief)
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
    if prefix is None or not config_path(config.train_dir, arch).exists():
        return None
    try:
        old = read_run_files(prefix)[0]
        total = old.total_steps()
    except (OSError, ValueError):
        return None
    step = step_of(prefix)
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
            atomic_write_text(done, json.dumps({"checkpoint": result.checkpoint_path,
                                                 "test_accuracy": result.test_accuracy}))
    return load_trained(json.loads(done.read_text())["checkpoint"])
