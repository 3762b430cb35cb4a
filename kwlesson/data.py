"""Speech Commands on disk -> labelled, split, augmented batches of features.

This is the seed tutorial's ``input_data.py`` (its ``AudioProcessor``) rebuilt for ``tf.data``:

* the same stable, name-hash split (:func:`which_set`, bit-exact with the seed), so a clip
  stays in its split when files are added and clips of one speaker stay together;
* the same ``_silence_`` / ``_unknown_`` classes and quotas, the same seeded shuffling;
* each file is decoded once (optionally cached on disk), then kept in memory as int16, so a
  training step never waits on per-clip Python work: time shift, background mixing and feature
  computation are TensorFlow ops that run on whole batches.

Introduced in notebook 02.

>>> from kwlesson.data import SpeechCommands  # doctest: +SKIP
>>> sc = SpeechCommands("speech_commands_v0.02", wanted_words=["yes", "no"])  # doctest: +SKIP
>>> x, y = next(iter(sc.dataset("training", batch_size=100)))  # doctest: +SKIP
>>> x.shape, y.shape  # doctest: +SKIP
(TensorShape([100, 98, 40]), TensorShape([100]))
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
import statistics
import textwrap
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from kwlesson.audio import SAMPLE_RATE, AudioError, describe_wav, read_wav
from kwlesson.pipeline import INT16_SCALE, Background, Clips, batches, decode_all

if TYPE_CHECKING:  # TensorFlow loads only when a dataset is built
    import tensorflow as tf

    from kwlesson.features import FeatureSettings

__all__ = [
    "SILENCE_LABEL",
    "UNKNOWN_LABEL",
    "SILENCE_INDEX",
    "UNKNOWN_INDEX",
    "BACKGROUND_NOISE_DIR_NAME",
    "MAX_NUM_WAVS_PER_CLASS",
    "RANDOM_SEED",
    "DEFAULT_WANTED_WORDS",
    "SPLITS",
    "Clip",
    "DataWarning",
    "SpeechCommands",
    "format_info",
    "hash_name",
    "hash_percentage",
    "info",
    "prepare_words_list",
    "speaker_of",
    "split_of",
    "which_set",
]

SILENCE_LABEL = "_silence_"
UNKNOWN_LABEL = "_unknown_"
SILENCE_INDEX = 0
UNKNOWN_INDEX = 1
BACKGROUND_NOISE_DIR_NAME = "_background_noise_"
#: The seed's hash bucket count (~134M); changing it would move clips between splits.
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1
#: The seed example's random seed for picking and shuffling unknown clips.
RANDOM_SEED = 59185
DEFAULT_WANTED_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
#: Split names, in the order the seed fills them (this order matters for the RNG).
SPLITS = ("validation", "testing", "training")
AUDIO_SUFFIXES = (".wav", ".flac")

# Bump when the layout of the decoded-audio cache changes.
_NOHASH = re.compile(r"_nohash_.*$")
# "backward_0c540988_nohash_0.wav" in the test set's _unknown_ folder -> "0c540988_nohash_0.wav"
_WORD_PREFIX = re.compile(r"^[^_]+_(?=[^_]+_nohash_)")


class DataWarning(UserWarning):
    """Files skipped or adjusted while loading a data folder (the message lists them)."""


class Clip(NamedTuple):
    """One entry of a split: the file (None for a synthetic all-zero silence clip) and its label."""

    path: str | None
    label: str


# --------------------------------------------------------------------------------------------
# The split: stable hashing of file names


def hash_name(filename: str | os.PathLike) -> str:
    """The part of a file's name that decides its split: the base name up to ``_nohash_``.

    >>> hash_name("speech/yes/bobby_nohash_1.wav")
    'bobby'
    """
    return _NOHASH.sub("", os.path.basename(os.fspath(filename)))


def hash_percentage(filename: str | os.PathLike) -> float:
    """Where a file falls on the seed's 0-100 scale (SHA1 of :func:`hash_name`).

    >>> round(hash_percentage("a5d485dc_nohash_0.wav"), 4)
    23.0808
    """
    hashed = hashlib.sha1(hash_name(filename).encode("utf-8")).hexdigest()
    return (int(hashed, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)


def which_set(
    filename: str | os.PathLike, validation_percentage: float, testing_percentage: float
) -> str:
    """'training', 'validation' or 'testing', decided by the file's name alone (as the seed).

    Anything after ``_nohash_`` is ignored, so all clips of one speaker share a split, and a
    clip keeps its split when new files are added.

    >>> which_set("ab00c4b2_nohash_0.wav", 10, 10)
    'validation'
    >>> which_set("bobby_nohash_0.wav", 10, 10) == which_set("bobby_nohash_1.wav", 10, 10)
    True
    """
    percentage = hash_percentage(filename)
    if percentage < validation_percentage:
        return "validation"
    if percentage < testing_percentage + validation_percentage:
        return "testing"
    return "training"


def speaker_of(path: str | os.PathLike) -> str:
    """The speaker part of a clip's name; in an ``_unknown_`` folder the leading word is dropped.

    The canonical test set names unknown clips ``<word>_<speaker>_nohash_<n>.wav``; hashing the
    speaker part keeps each speaker in one split together with their keyword clips.

    >>> speaker_of("test/_unknown_/backward_0c540988_nohash_0.wav")
    '0c540988'
    >>> speaker_of("test/yes/0c540988_nohash_1.wav")
    '0c540988'
    """
    return hash_name(_split_name(path))


def _split_name(path: str | os.PathLike) -> str:
    """The name handed to :func:`which_set` (the word prefix stripped inside ``_unknown_``)."""
    p = Path(path)
    if p.parent.name.lower() == UNKNOWN_LABEL:
        return _WORD_PREFIX.sub("", p.name)
    return p.name


def split_of(
    path: str | os.PathLike, validation_percentage: float, testing_percentage: float
) -> str:
    """The split of a clip inside a data folder: :func:`which_set` on its speaker-keyed name.

    >>> split_of("t/_unknown_/backward_ab00c4b2_nohash_0.wav", 10, 10)
    'validation'
    """
    return which_set(_split_name(path), validation_percentage, testing_percentage)


def prepare_words_list(wanted_words: Iterable[str]) -> list[str]:
    """The label list: silence and unknown first, then the wanted words.

    >>> prepare_words_list(["yes", "no"])
    ['_silence_', '_unknown_', 'yes', 'no']
    """
    return [SILENCE_LABEL, UNKNOWN_LABEL, *wanted_words]


# --------------------------------------------------------------------------------------------
# Scanning a data folder


def _is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith(".")


def _scan(
    data_dir: Path, unknown_dirs: Sequence[Path], background_dir: Path | None = None
) -> tuple[dict[str, list[str]], list[str], list[str]]:
    """{word: sorted clip paths}, background clip paths, problems (empty folders, stray files)."""
    words: dict[str, list[str]] = {}
    problems: list[str] = []
    skip = {d.resolve() for d in unknown_dirs}
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        if folder.name.startswith(".") or folder.resolve() in skip:
            continue
        if folder.name == BACKGROUND_NOISE_DIR_NAME:
            continue
        clips, others = _list_folder(folder)
        if others:
            problems.append(f"{folder}: ignored {len(others)} file(s) that are not .wav/.flac, "
                            f"e.g. {others[0]!r}")
        if not clips:
            problems.append(f"{folder}: folder has no .wav/.flac files; word ignored")
            continue
        # The seed lower-cases folder names, so 'Yes/' and 'yes/' are one word.
        words.setdefault(folder.name.lower(), []).extend(clips)
    for d in unknown_dirs:
        clips, others = _list_folder(d)
        if not clips:
            problems.append(f"{d}: unknown-sounds folder has no .wav/.flac files")
        words.setdefault(f"{UNKNOWN_LABEL}:{d}", []).extend(clips)
    background_dir = background_dir or data_dir / BACKGROUND_NOISE_DIR_NAME
    background = sorted(os.fspath(p) for p in background_dir.glob("*") if _is_audio(p)) \
        if background_dir.is_dir() else []
    return {w: sorted(c) for w, c in words.items()}, background, problems


def _list_folder(folder: Path) -> tuple[list[str], list[str]]:
    clips, others = [], []
    for p in folder.iterdir():
        if p.is_file() and _is_audio(p):
            clips.append(os.fspath(p))
        elif p.is_file() and not p.name.startswith("."):
            others.append(p.name)
    return sorted(clips), sorted(others)


# --------------------------------------------------------------------------------------------
# Decoding once, caching on disk


# --------------------------------------------------------------------------------------------
# The data set


class SpeechCommands:
    """A Speech Commands-style folder, split and labelled as the seed does, ready for tf.data.

    ``data_dir`` holds one folder per word (``yes/``, ``no/``, ...), optionally
    ``_background_noise_/`` with long noise recordings, and optionally ``_silence_/`` and
    ``_unknown_/`` folders (the canonical test set's layout): clips in ``_silence_/`` are silence
    (their real audio is kept), clips in ``_unknown_/`` and in every folder that is not a wanted
    word are unknown. ``unknown_dirs`` adds folders (anywhere; relative paths are inside
    ``data_dir``) whose clips all count as unknown, e.g. the tutorial's ``boo``, ``meow``, ``shoo``.
    ``background_dir`` points at the noise clips when they are not in
    ``data_dir/_background_noise_`` (a missing folder is reported, and no noise is mixed in).

    Per split, as the seed: ``ceil(n * silence_percentage / 100)`` silence entries and
    ``ceil(n * unknown_percentage / 100)`` unknown clips are added, where ``n`` is the number of
    wanted-word clips in that split; unknown clips are picked after a shuffle with ``seed``.
    Real ``_silence_`` clips fill the silence quota first; all-zero clips (background noise mixed
    in) make up the rest. ``None`` for a percentage keeps every available clip of that class and
    adds no synthetic silence: use it to load a labelled test set as it is.

    Every clip in the index is decoded once at construction (int16 in memory; with ``cache``
    also in ``data_home()/decoded``, keyed by the file list, sizes and mtimes, so the next run
    starts at once). Files that cannot be read are skipped and listed in :attr:`problems` and in
    one warning; clips that are too short or too long are padded or trimmed (listed in
    :attr:`adjusted`). The quotas are counted from file names, as the seed does, before
    decoding: a split with unreadable wanted-word files gets their share of silence/unknown too.

    >>> sc = SpeechCommands("speech_commands_v0.02")  # doctest: +SKIP
    >>> sc.labels[:3], len(sc.index["training"])  # doctest: +SKIP
    (['_silence_', '_unknown_', 'yes'], 36923)
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        wanted_words: Sequence[str] | str = DEFAULT_WANTED_WORDS,
        silence_percentage: float | None = 10.0,
        unknown_percentage: float | None = 10.0,
        validation_percentage: float = 10.0,
        testing_percentage: float = 10.0,
        unknown_dirs: Sequence[str | os.PathLike] = (),
        background_dir: str | os.PathLike | None = None,
        seed: int = RANDOM_SEED,
        sample_rate: int = SAMPLE_RATE,
        clip_duration_ms: int = 1000,
        cache: bool = True,
        progress: bool | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser()
        if not self.data_dir.exists():
            raise FileNotFoundError(f"{self.data_dir}: data folder not found")
        if not self.data_dir.is_dir():
            raise NotADirectoryError(f"{self.data_dir}: not a folder")
        if isinstance(wanted_words, str):
            wanted_words = [w for w in re.split(r"[,\s]+", wanted_words) if w]
        self.wanted_words = [w.lower() for w in wanted_words]
        if len(set(self.wanted_words)) != len(self.wanted_words):
            raise ValueError(f"wanted_words has duplicates: {self.wanted_words}")
        for w in self.wanted_words:
            if w in (SILENCE_LABEL, UNKNOWN_LABEL):
                raise ValueError(f"{w!r} is always a label; do not list it in wanted_words")
        for name, pct in (("validation", validation_percentage), ("testing", testing_percentage)):
            if not 0 <= pct <= 100:
                raise ValueError(f"{name}_percentage must be in [0, 100], not {pct}")
        if validation_percentage + testing_percentage > 100:
            raise ValueError("validation_percentage + testing_percentage must not exceed 100")
        self.silence_percentage = silence_percentage
        self.unknown_percentage = unknown_percentage
        self.validation_percentage = validation_percentage
        self.testing_percentage = testing_percentage
        self.seed = seed
        self.sample_rate = sample_rate
        self.clip_duration_ms = clip_duration_ms
        self.desired_samples = int(sample_rate * clip_duration_ms / 1000)
        self.unknown_dirs = [self._resolve(d) for d in unknown_dirs]
        self.labels = prepare_words_list(self.wanted_words)
        self.word_to_index = {w: i for i, w in enumerate(self.labels)}
        #: "<file>: <problem>" for every file or folder skipped, and for changed behaviour.
        self.problems: list[str] = []
        #: "<file>: <what was done>" for clips padded, trimmed or entirely zero.
        self.adjusted: list[str] = []

        self.background_dir = (Path(background_dir).expanduser() if background_dir is not None
                               else self.data_dir / BACKGROUND_NOISE_DIR_NAME)
        words, background_paths, scan_problems = _scan(self.data_dir, self.unknown_dirs,
                                                       self.background_dir)
        self.problems += scan_problems
        if not words:
            raise FileNotFoundError(
                f"{self.data_dir}: no .wav/.flac clips found in its word folders "
                f"(expected {self.data_dir}/<word>/<clip>.wav)")
        missing = [w for w in self.wanted_words if w not in words]
        if missing:
            found = sorted(w for w in words if not w.startswith(f"{UNKNOWN_LABEL}:"))
            raise ValueError(
                f"{self.data_dir}: no clips for wanted word(s) {', '.join(map(repr, missing))}; "
                f"words found: {', '.join(found) or '(none)'}")
        self.words_found = sorted(w for w in words if not w.startswith(f"{UNKNOWN_LABEL}:"))

        self.index: dict[str, list[Clip]] = self._build_index(words)
        self._load_audio(background_paths, cache, progress)
        if self.problems:
            shown = "\n  ".join(self.problems[:20])
            more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
            warnings.warn(f"{self.data_dir}: {len(self.problems)} problem(s) while loading "
                          f"(see .problems):\n  {shown}{more}", DataWarning, stacklevel=2)

    def _resolve(self, d: str | os.PathLike) -> Path:
        p = Path(d).expanduser()
        p = p if p.is_absolute() else self.data_dir / p
        if not p.is_dir():
            raise FileNotFoundError(f"{p}: unknown-sounds folder not found")
        return p

    # -- the seed's prepare_data_index, with real _silence_ clips and None percentages --
    def _build_index(self, words: dict[str, list[str]]) -> dict[str, list[Clip]]:
        rng = random.Random(self.seed)  # same sequence as the seed's random.seed(...)
        wanted = set(self.wanted_words)
        index: dict[str, list[Clip]] = {s: [] for s in SPLITS}
        unknown: dict[str, list[Clip]] = {s: [] for s in SPLITS}
        silence: dict[str, list[Clip]] = {s: [] for s in SPLITS}
        for word, paths in words.items():
            for path in paths:
                split = split_of(path, self.validation_percentage, self.testing_percentage)
                if word in wanted:
                    index[split].append(Clip(path, word))
                elif word == SILENCE_LABEL:
                    silence[split].append(Clip(path, SILENCE_LABEL))
                else:
                    unknown[split].append(Clip(path, UNKNOWN_LABEL))
        # The seed globs then appends per file; sorting makes the order independent of the
        # file system, so one seed gives one index everywhere.
        for s in SPLITS:
            index[s].sort()
            unknown[s].sort()
        # A separate RNG for real silence keeps the seed's RNG sequence untouched.
        silence_rng = random.Random(self.seed + 1)
        for s in SPLITS:
            n = len(index[s])
            real = sorted(silence[s])
            if self.silence_percentage is None:
                index[s].extend(real)
            else:
                quota = int(math.ceil(n * self.silence_percentage / 100))
                silence_rng.shuffle(real)
                index[s].extend(real[:quota])
                index[s].extend([Clip(None, SILENCE_LABEL)] * max(0, quota - len(real)))
            rng.shuffle(unknown[s])
            if self.unknown_percentage is None:
                index[s].extend(unknown[s])
            else:
                index[s].extend(unknown[s][: int(math.ceil(n * self.unknown_percentage / 100))])
        for s in SPLITS:
            rng.shuffle(index[s])
        return index

    def _load_audio(self, background_paths: list[str], cache: bool, progress: bool | None) -> None:
        paths = sorted({c.path for s in SPLITS for c in self.index[s] if c.path is not None})
        audio, lengths, failed = decode_all(paths, self.desired_samples, self.sample_rate,
                                             cache, progress)
        for p, problem in failed.items():
            self.problems.append(f"{p}: {problem}; skipped")
        # Row len(paths) is the all-zero clip that synthetic silence uses.
        self._audio = np.concatenate([audio, np.zeros((1, self.desired_samples), np.int16)])
        self._row = {p: i for i, p in enumerate(paths) if p not in failed}
        self._zero_row = len(paths)
        for p, n in zip(paths, lengths):
            if p in failed:
                continue
            if n != self.desired_samples:
                what = "padded with zeros" if n < self.desired_samples else "trimmed"
                self.adjusted.append(f"{p}: {n / self.sample_rate:.2f} s {what} to "
                                     f"{self.desired_samples / self.sample_rate:.2f} s")
            elif Path(p).parent.name != SILENCE_LABEL and not self._audio[self._row[p]].any():
                self.adjusted.append(f"{p}: every sample is zero (a silent clip labelled "
                                     f"{Path(p).parent.name!r})")
        for s in SPLITS:
            self.index[s] = [c for c in self.index[s] if c.path is None or c.path in self._row]

        self.background: list[np.ndarray] = []
        self.background_paths: list[str] = []
        bg_dir = self.background_dir
        for p in background_paths:
            try:
                x = read_wav(p, sample_rate=self.sample_rate)
            except AudioError as err:
                self.problems.append(f"{err}; background clip skipped")
                continue
            if len(x) <= self.desired_samples:
                self.problems.append(
                    f"{p}: background clip is {len(x) / self.sample_rate:.2f} s, it must be longer "
                    f"than one clip ({self.desired_samples / self.sample_rate:.2f} s); skipped")
                continue
            self.background.append(x)
            self.background_paths.append(p)
        has_synthetic = any(c.path is None for s in SPLITS for c in self.index[s])
        # Only worth a warning when noise would be used: synthetic silence or training clips.
        if not self.background and (has_synthetic or self.index["training"]):
            reason = "folder missing" if not bg_dir.is_dir() else "no usable clips in it"
            self.problems.append(
                f"{bg_dir}: {reason}; no background noise is mixed in"
                + ("; synthetic silence clips are pure zeros" if has_synthetic else ""))
        # Fixed background excerpts for the synthetic silence of non-augmented (evaluation)
        # batches, so evaluation sees the same clips every time.
        self._bg_flat = (np.concatenate(self.background) if self.background
                         else np.zeros(self.desired_samples, np.float32))
        lengths_bg = [len(b) for b in self.background] or [self.desired_samples + 1]
        self._bg_starts = np.cumsum([0, *lengths_bg[:-1]]).astype(np.int64)
        self._bg_lengths = np.asarray(lengths_bg, np.int64)

    # -- what a split holds --
    def split_arrays(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(store rows int32, label indices int32, is-synthetic-silence bool) of a split."""
        clips = self._clips(split)
        rows = np.array([self._zero_row if c.path is None else self._row[c.path] for c in clips],
                        np.int32)
        labels = np.array([self.word_to_index[c.label] for c in clips], np.int32)
        synthetic = np.array([c.path is None for c in clips], bool)
        return rows, labels, synthetic

    def _clips(self, split: str) -> list[Clip]:
        if split not in self.index:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
        return self.index[split]

    def _fixed_background(self, split: str, synthetic: np.ndarray,
                          silence_volume: float) -> tuple[np.ndarray, np.ndarray]:
        """Per entry: start of its background excerpt in the flat array, and its volume."""
        rng = np.random.default_rng([self.seed, SPLITS.index(split)])
        n = len(synthetic)
        which = rng.integers(0, len(self._bg_lengths), n)
        offset = rng.integers(0, np.maximum(self._bg_lengths[which] - self.desired_samples, 1))
        volume = rng.uniform(0, silence_volume, n).astype(np.float32)
        volume = np.where(synthetic & bool(self.background), volume, 0).astype(np.float32)
        return (self._bg_starts[which] + offset).astype(np.int64), volume

    def __len__(self) -> int:
        return sum(len(v) for v in self.index.values())

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self.index[s])}" for s in SPLITS)
        return f"SpeechCommands({os.fspath(self.data_dir)!r}, {len(self.labels)} labels, {sizes})"

    def counts(self, split: str) -> dict[str, int]:
        """Clips per label in a split, in label order.

        >>> sc.counts("testing")  # doctest: +SKIP
        {'_silence_': 41, '_unknown_': 41, 'yes': 42, ...}
        """
        c = Counter(clip.label for clip in self._clips(split))
        return {label: c.get(label, 0) for label in self.labels}

    def summary(self) -> str:
        """A few lines on labels, split sizes and problems, for a notebook or the terminal."""
        lines = [f"{self.data_dir}: {len(self.labels)} labels: {', '.join(self.labels)}"]
        for s in SPLITS:
            synth = sum(c.path is None for c in self.index[s])
            lines.append(f"  {s:<10} {len(self.index[s]):>6} clips ({synth} synthetic silence)")
        lines.append(f"  background {len(self.background)} clip(s)")
        if self.adjusted:
            lines.append(f"  {len(self.adjusted)} clip(s) padded, trimmed or silent "
                         "(see .adjusted)")
        if self.problems:
            lines.append(f"  {len(self.problems)} problem(s) (see .problems)")
        return "\n".join(lines)

    # -- evaluation arrays --
    def arrays(
        self,
        split: str,
        settings: FeatureSettings | None = None,
        silence_volume: float = 1.0,
        batch_size: int = 500,
    ) -> tuple[np.ndarray, np.ndarray]:
        """All clips of a split, in index order, without augmentation: (x, label indices int32).

        ``x`` is float32 audio [n, samples], or features [n, frames, bins] when ``settings`` is
        given. Synthetic silence gets a fixed background excerpt (the same on every call).

        >>> x, y = sc.arrays("testing")  # doctest: +SKIP
        >>> x.shape  # doctest: +SKIP
        (4890, 16000)
        """
        rows, labels, synthetic = self.split_arrays(split)
        bg_pos, bg_vol = self._fixed_background(split, synthetic, silence_volume)
        audio = self._audio[rows].astype(np.float32) / INT16_SCALE
        if bg_vol.any():
            k = np.nonzero(bg_vol)[0]
            excerpt = self._bg_flat[bg_pos[k, None] + np.arange(self.desired_samples)]
            audio[k] = np.clip(audio[k] + excerpt * bg_vol[k, None], -1.0, 1.0)
        if settings is None:
            return audio, labels
        self._check_settings(settings)
        from kwlesson.features import compute_features

        feats = [compute_features(audio[i : i + batch_size], settings).numpy()
                 for i in range(0, len(audio), batch_size)]
        shape = (0, *settings.shape)
        return (np.concatenate(feats) if feats else np.zeros(shape, np.float32)), labels

    def _check_settings(self, settings: FeatureSettings) -> None:
        if (settings.desired_samples, settings.sample_rate) != (self.desired_samples,
                                                                 self.sample_rate):
            raise ValueError(
                f"feature settings want {settings.desired_samples} samples at "
                f"{settings.sample_rate} Hz, but this data set was loaded as "
                f"{self.desired_samples} at {self.sample_rate} Hz; pass matching "
                "sample_rate / clip_duration_ms to SpeechCommands")

    # -- the tf.data pipeline --
    def dataset(
        self,
        split: str,
        settings: FeatureSettings | None = None,
        batch_size: int = 100,
        shuffle: bool | None = None,
        augment: bool | None = None,
        seed: int = 0,
        repeat: bool | None = None,
        time_shift_ms: float = 100.0,
        background_volume: float = 0.1,
        background_frequency: float = 0.8,
        silence_volume: float = 1.0,
        features: bool = True,
        drop_remainder: bool = False,
        start_batch: int = 0,
        freq_mask_bins: int = 0,
        time_mask_frames: int = 0,
    ) -> tf.data.Dataset:
        """Batches of (features float32 [batch, frames, bins], label indices int32 [batch]).

        Defaults follow the seed's train.py: the training split is shuffled, repeated forever and
        augmented; other splits are read once, in order, unchanged. Augmentation, as the
        reference: a random time shift in [-time_shift_ms, +time_shift_ms] with zero padding
        (the seed draws from [-t, t - 1 sample]; we make it symmetric);
        background noise (a random excerpt of a random ``_background_noise_`` clip) mixed into a
        ``background_frequency`` fraction of clips at a volume uniform in [0, background_volume);
        synthetic silence always gets background at a volume uniform in [0, silence_volume)
        (the seed uses 1.0). The sum is clipped to [-1, 1].

        ``freq_mask_bins`` / ``time_mask_frames`` (not in the seed; 0, the default, is off) add
        SpecAugment to augmented batches: two bands of up to that many feature bins and two
        stretches of up to that many frames are set to the clip's mean feature value, so the
        model cannot lean on any one band or moment.

        Everything after the in-memory lookup is TensorFlow ops on whole batches, and the
        random numbers come from (seed, batch number): the same seed gives the same batches.
        With ``features=False`` the batches hold audio [batch, samples] instead.
        ``start_batch=k`` starts with the batch that would come k-th (0-based), without computing
        the ones before it: a resumed training run sees the batches the uninterrupted run saw.

        >>> ds = sc.dataset("training", FeatureSettings(), batch_size=100, seed=1)  # doctest: +SKIP
        """
        import tensorflow as tf

        from kwlesson.features import FeatureSettings

        settings = settings if settings is not None else FeatureSettings()
        self._check_settings(settings)
        training = split == "training"
        shuffle = training if shuffle is None else shuffle
        augment = training if augment is None else augment
        repeat = training if repeat is None else repeat
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        rows, labels, synthetic = self.split_arrays(split)
        if len(rows) == 0:
            raise ValueError(f"the {split!r} split of {self.data_dir} is empty")
        bg_pos, bg_vol = self._fixed_background(split, synthetic, silence_volume)
        samples = self.desired_samples
        shift_max = int(round(time_shift_ms * self.sample_rate / 1000)) if augment else 0
        use_background = augment and bool(self.background)

        if getattr(self, "_store_tensor", None) is None:
            # One copy of the clips in TensorFlow, shared by every dataset made from this object.
            self._store_tensor = tf.constant(self._audio)
        clips = Clips(self._store_tensor, rows, labels, synthetic, bg_pos, bg_vol)
        background = Background(self._bg_flat, self._bg_starts, self._bg_lengths,
                                len(self.background))
        return batches(clips, background, settings if features else None, samples,
                       batch_size=batch_size, shuffle=shuffle, repeat=repeat, seed=seed,
                       shift_max=shift_max, use_background=use_background,
                       silence_volume=silence_volume, background_volume=background_volume,
                       background_frequency=background_frequency,
                       drop_remainder=drop_remainder, start_batch=start_batch,
                       masking=augment and features, freq_mask_bins=freq_mask_bins,
                       time_mask_frames=time_mask_frames)

    def steps_per_epoch(self, split: str, batch_size: int = 100) -> int:
        """Batches in one pass over a split (the last one may be short).

        >>> sc.steps_per_epoch("validation", 100)  # doctest: +SKIP
        49
        """
        return math.ceil(len(self._clips(split)) / batch_size)


# --------------------------------------------------------------------------------------------
# `kwlesson data info DIR`


def info(
    data_dir: str | os.PathLike,
    validation_percentage: float = 10.0,
    testing_percentage: float = 10.0,
    progress: bool | None = None,
) -> dict:
    """Facts about a data folder without decoding any audio: clips per word and split, speakers,
    durations, background clips, and every problem found (one "<file>: <problem>" each).

    >>> report = info("speech_commands_test_set_v0.02_dev")  # doctest: +SKIP
    >>> report["words"]["yes"]["clips"]  # doctest: +SKIP
    297
    """
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: data folder not found")
    words, background, problems = _scan(data_dir, [])
    all_paths = [p for ps in words.values() for p in ps]
    show = progress if progress is not None else len(all_paths) >= 2000
    described: dict[str, dict] = {}
    it: Iterable[str] = all_paths
    if show:
        from tqdm.auto import tqdm

        it = tqdm(all_paths, desc="reading headers", unit="clip")
    for p in it:
        try:
            described[p] = describe_wav(p)
            if described[p]["subtype"] in ("FLOAT", "DOUBLE"):  # only these can hold NaN
                read_wav(p)
        except AudioError as err:
            described.pop(p, None)
            problems.append(str(err))
    problems += _unreadable_links(data_dir)
    report_words = {}
    speakers_all: set[str] = set()
    split_totals: Counter = Counter()
    for word, paths in sorted(words.items()):
        ok = [p for p in paths if p in described]
        splits = Counter(split_of(p, validation_percentage, testing_percentage) for p in ok)
        split_totals.update(splits)
        speakers = {speaker_of(p) for p in ok}
        if word != SILENCE_LABEL:
            speakers_all |= speakers
        durations = [described[p]["duration_s"] for p in ok]
        report_words[word] = {
            "clips": len(ok),
            "unreadable": len(paths) - len(ok),
            "splits": {s: splits.get(s, 0) for s in ("training", "validation", "testing")},
            "speakers": len(speakers),
            "duration_s": _stats(durations),
        }
    for p, d in described.items():
        if d["rate"] != SAMPLE_RATE or d["channels"] != 1:
            problems.append(f"{p}: {d['rate']} Hz, {d['channels']} channel(s); "
                            f"will be converted to {SAMPLE_RATE} Hz mono")
        if abs(d["duration_s"] - 1.0) > 0.01:
            problems.append(f"{p}: {d['duration_s']:.2f} s long; will be padded/trimmed to 1 s")
    bg = []
    for p in background:
        try:
            d = describe_wav(p)
            bg.append({"path": p, "duration_s": d["duration_s"], "rate": d["rate"]})
        except AudioError as err:
            problems.append(str(err))
    if not (data_dir / BACKGROUND_NOISE_DIR_NAME).is_dir():
        problems.append(f"{data_dir / BACKGROUND_NOISE_DIR_NAME}: folder missing; "
                        "no background noise can be mixed in")
    rates = Counter(d["rate"] for d in described.values())
    formats = Counter(f"{d['subtype']} {d['channels']} ch" for d in described.values())
    return {
        "data_dir": os.fspath(data_dir),
        "validation_percentage": validation_percentage,
        "testing_percentage": testing_percentage,
        "clips": len(described),
        "words": report_words,
        "splits": {s: split_totals.get(s, 0) for s in ("training", "validation", "testing")},
        "speakers": len(speakers_all),
        "sample_rates": dict(sorted(rates.items())),
        "formats": dict(sorted(formats.items())),
        "duration_s": _stats([d["duration_s"] for d in described.values()]),
        "background": bg,
        "problems": problems,
    }


def _unreadable_links(data_dir: Path) -> list[str]:
    """A problem line for each clip-named symlink in a word folder that leads nowhere (a loop
    or a dangling link): neither counted nor silently dropped."""
    found = []
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        for p in sorted(folder.iterdir()):
            if p.is_symlink() and _is_audio(p) and not p.is_file():
                try:
                    p.resolve(strict=True)
                    why = "not a file"
                except RuntimeError:
                    why = "a symlink loop"
                except OSError as err:
                    why = ("a symlink loop" if getattr(err, "errno", None) == 40
                           else "a dangling symlink")
                found.append(f"{p}: {why}; skipped")
    return found


def _stats(values: list[float]) -> dict:
    if not values:
        return {"min": None, "median": None, "max": None, "total": 0.0}
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "total": float(sum(values))}


def format_info(report: dict, max_problems: int = 30) -> str:
    """The text ``kwlesson data info DIR`` prints for a report from :func:`info`.

    >>> print(format_info(info("speech_commands_test_set_v0.02_dev")))  # doctest: +SKIP
    """
    lines = [f"{report['data_dir']}",
             f"  {report['clips']} readable clips, {len(report['words'])} word folders, "
             f"{report['speakers']} speakers, "
             f"{report['duration_s']['total'] / 60:.1f} min of audio",
             f"  split by name hash (validation {report['validation_percentage']:g}%, "
             f"testing {report['testing_percentage']:g}%)", ""]
    header = f"  {'word':<16}{'clips':>7}{'train':>7}{'valid':>7}{'test':>7}{'speakers':>10}" \
             f"{'min s':>7}{'max s':>7}"
    lines += [header, "  " + "-" * (len(header) - 2)]
    fmt = (lambda v: f"{v:7.2f}" if v is not None else f"{'-':>7}")
    rows: dict[str, list[str]] = {}  # a row's numbers -> the words that have them
    for word, w in report["words"].items():
        d = w["duration_s"]
        numbers = (f"{w['clips']:>7}{w['splits']['training']:>7}{w['splits']['validation']:>7}"
                   f"{w['splits']['testing']:>7}{w['speakers']:>10}{fmt(d['min'])}"
                   f"{fmt(d['max'])}")
        rows.setdefault(numbers, []).append(word)
    for numbers, words in rows.items():
        if len(words) < 3:
            lines += [f"  {word:<16}{numbers}" for word in words]
            continue
        # A synthetic dataset has the same numbers for every word: one row, not 35 alike.
        lines.append(f"  {f'each of {len(words)}':<16}{numbers}")
        lines += textwrap.wrap(", ".join(words), width=len(header) - 2,
                               initial_indent="    (", subsequent_indent="     ")
        lines[-1] += ")"
    s = report["splits"]
    lines.append(f"  {'total':<16}{report['clips']:>7}{s['training']:>7}{s['validation']:>7}"
                 f"{s['testing']:>7}")
    lines.append("")
    rates = ", ".join(f"{r} Hz: {n}" for r, n in report["sample_rates"].items()) or "-"
    lines.append(f"  sample rates: {rates}")
    formats = ", ".join(f"{f}: {n}" for f, n in report.get("formats", {}).items()) or "-"
    lines.append(f"  sample formats: {formats}")
    if report["background"]:
        bg = ", ".join(f"{Path(b['path']).name} ({b['duration_s']:.0f} s)"
                       for b in report["background"])
        lines.append(f"  background noise: {bg}")
    problems = report["problems"]
    lines.append(f"  problems: {len(problems) or 'none'}")
    for p in problems[:max_problems]:
        lines.append(f"    {p}")
    if len(problems) > max_problems:
        lines.append(f"    ... and {len(problems) - max_problems} more")
    return "\n".join(lines)
