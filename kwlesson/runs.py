"""A training run on disk: its settings, its checkpoints and the files kept next to them.

A run is a ``train_dir`` holding ``<arch>.ckpt-<step>`` checkpoints (written atomically, with
checksums), ``<arch>_config.json`` (the :class:`TrainConfig`, the feature settings and the
labels) and ``<arch>_labels.txt``. Everything that uses a trained model (evaluation, export,
streaming, the lessons) rebuilds it from here with :func:`load_trained`, so it computes the
features it was trained on (one source of truth). :mod:`kwlesson.training` writes runs.

Introduced in notebook 03; used by every lesson after it.

>>> tm = load_trained("/tmp/speech_commands_train")  # doctest: +SKIP
>>> tm.labels[:2], tm.settings.shape  # doctest: +SKIP
(['_silence_', '_unknown_'], (98, 40))
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from kwlesson.features import PREPROCESS_CHOICES, FeatureSettings
from kwlesson.models import ARCHITECTURES

__all__ = [
    "DISTRIBUTE_CHOICES",
    "OPTIMIZER_CHOICES",
    "VERBOSITY_CHOICES",
    "TrainConfig",
    "TrainResult",
    "TrainedModel",
    "atomic_write_text",
    "checkpoint_prefix",
    "config_path",
    "labels_path",
    "latest_checkpoint",
    "load_trained",
    "model_for",
    "nonfinite_weights",
    "parse_schedule",
    "read_run_files",
    "resolve_checkpoint",
    "restore",
    "restore_partial",
    "step_of",
    "write_checkpoint",
    "write_run_files",
]


OPTIMIZER_CHOICES = ("gradient_descent", "momentum", "adam")



DISTRIBUTE_CHOICES = ("none", "mirrored", "multi_worker")



VERBOSITY_CHOICES = ("debug", "info", "warn", "error", "fatal")



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
    preprocess: str = _opt("mfcc", "Spectrogram processing mode: mfcc, log_mel, spectrogram, "
                           "average, or micro (TensorFlow Lite Micro's front end, what a "
                           "microcontroller computes; train it with --window_stride_ms 20).",
                           choices=PREPROCESS_CHOICES)
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
        if self.normalize_features and self.preprocess == "micro":
            raise ValueError("normalize_features does not go with --preprocess micro: a "
                             "microcontroller feeds its front end's values as they are")
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

        check_numbers(**{name: getattr(self, name) for name in NUMERIC_FLAGS})
        self.feature_settings()  # FeatureSettings checks its own fields



#: TrainConfig's numeric flags that :func:`kwlesson.faults.check_numbers` checks.
NUMERIC_FLAGS = ("batch_size", "silence_percentage", "unknown_percentage", "background_volume",
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



def parse_schedule(steps: str | Sequence[int], rates: str | Sequence[float]
                   ) -> list[tuple[int, float]]:
    """Pair the seed's comma-separated steps and learning rates, phase by phase.

    >>> parse_schedule("15000,3000", "0.001,0.0001")
    [(15000, 0.001), (3000, 0.0001)]
    >>> parse_schedule("300,0", "0.001,0.0001")
    [(300, 0.001), (0, 0.0001)]
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
    # A phase of 0 steps is skipped, as the seed's train.py does (--how_many_training_steps
    # 300,0 trains 300 steps at the first rate); a run needs at least one step.
    if not n or any(k < 0 for k in n) or sum(n) < 1:
        raise ValueError(f"how_many_training_steps must be counts of steps (0 or more per "
                         f"phase, at least 1 in all), not {steps!r}")
    if any(not (r > 0 and math.isfinite(r)) for r in lr):
        raise ValueError(f"learning_rate must be positive numbers, not {rates!r}")
    return list(zip(n, lr))



def checkpoint_prefix(train_dir: str | os.PathLike, arch: str, step: int) -> str:
    """``<train_dir>/<arch>.ckpt-<step>``, the seed's name.

    >>> checkpoint_prefix("/tmp/speech_commands_train", "conv", 100)
    '/tmp/speech_commands_train/conv.ckpt-100'
    """
    return os.path.join(os.fspath(train_dir), f"{arch}.ckpt-{step}")



def step_of(prefix: str) -> int:
    try:
        return int(prefix.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1



def atomic_write_text(path: Path, text: str) -> None:
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
    prefixes = [p for p in prefixes if step_of(p) >= 0]
    return max(prefixes, key=step_of) if prefixes else None



def write_checkpoint(ckpt: tf.train.Checkpoint, prefix: str, max_to_keep: int,
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
                  key=step_of)
    old, kept = kept[:-max_to_keep], kept[-max_to_keep:]
    if prefix not in kept:
        kept.append(prefix)
    lines = [f'model_checkpoint_path: "{final.name}"']
    lines += [f'all_model_checkpoint_paths: "{Path(p).name}"' for p in kept]
    atomic_write_text(d / "checkpoint", "\n".join(lines) + "\n")
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
                    if step_of(str(q)[: -len(".index")]) < step_of(prefix)),
                   key=step_of, reverse=True)
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



def config_path(train_dir: str | os.PathLike, arch: str) -> Path:
    return Path(train_dir) / f"{arch}_config.json"



def labels_path(train_dir: str | os.PathLike, arch: str) -> Path:
    return Path(train_dir) / f"{arch}_labels.txt"



def write_run_files(config: TrainConfig, settings: FeatureSettings, labels: list[str]) -> None:
    d = Path(config.train_dir)
    d.mkdir(parents=True, exist_ok=True)
    arch = config.model_architecture
    atomic_write_text(labels_path(d, arch), "\n".join(labels) + "\n")
    from kwlesson.version import __version__

    doc = {"kwlesson_version": __version__, "model_architecture": arch, "labels": labels,
           "input_shape": list(settings.shape), "feature_settings": settings.to_dict(),
           "train_config": config.to_dict()}
    atomic_write_text(config_path(d, arch), json.dumps(doc, indent=2) + "\n")



def read_run_files(checkpoint: str | os.PathLike) -> tuple[TrainConfig, FeatureSettings,
                                                          list[str]]:
    """(config, feature settings, labels) stored next to a checkpoint or in a train_dir.

    >>> ckpt = "/tmp/speech_commands_train/conv.ckpt-100"
    >>> cfg, settings, labels = read_run_files(ckpt)  # doctest: +SKIP
    """
    p = Path(checkpoint)
    d = p if p.is_dir() else p.parent
    arch = None if p.is_dir() else p.name.split(".ckpt-")[0]
    candidates = [config_path(d, arch)] if arch else sorted(d.glob("*_config.json"))
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



def model_for(arch: str, settings: FeatureSettings, num_labels: int) -> Any:
    from kwlesson import models

    return models.create_model(arch, settings.shape, num_labels)



def restore(ckpt: tf.train.Checkpoint, prefix: str) -> None:
    from kwlesson.faults import DamagedCheckpoint

    try:
        status = ckpt.read(prefix)
    except (tf.errors.OpError, IndexError, ValueError) as err:  # damaged past its checksum
        raise DamagedCheckpoint(f"{prefix}: cannot be read ({str(err).splitlines()[0]}); "
                                "resume from an earlier checkpoint in its folder") from None
    status.assert_existing_objects_matched()



def restore_partial(ckpt: tf.train.Checkpoint, prefix: str) -> None:
    from kwlesson.faults import DamagedCheckpoint

    try:
        ckpt.read(prefix).expect_partial()
    except (tf.errors.OpError, IndexError) as err:
        raise DamagedCheckpoint(f"{prefix}: cannot be read ({str(err).splitlines()[0]}); "
                                "use an earlier checkpoint in its folder") from None



def nonfinite_weights(model: Any) -> list[str]:
    """Names of the model's variables holding NaN or infinity."""
    bad = []
    for v in model.variables:
        values = np.asarray(v)
        if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
            bad.append(getattr(v, "path", None) or v.name)
    return bad



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
    model = model_for(config.model_architecture, settings, len(labels))
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    restore_partial(tf.train.Checkpoint(model=model, step=step_var), prefix)
    bad = nonfinite_weights(model)
    if bad:
        from kwlesson.faults import Diverged

        raise Diverged(f"{prefix}: NaN or infinite weights ({', '.join(bad[:3])}"
                       f"{', ...' if len(bad) > 3 else ''}): the run diverged; train again "
                       "with a smaller --learning_rate")
    return TrainedModel(model=model, labels=labels, settings=settings, config=config,
                        checkpoint_path=prefix, step=int(step_var.numpy()))
