"""The seed's ``label_wav.py``: the top labels a frozen model gives a wav (or every wav in a
folder), from an export folder, a ``.tflite`` file or a SavedModel.

Input that is not a 1 s, 16 kHz clip is converted, not refused: each file is read with
``kwlesson.audio.read_wav``, which resamples any rate to the model's rate and mixes channels
down, then a short clip is padded with zeros at the end or a long one trimmed to the model's
clip length (with a note that only its start was labelled). The seed's label_wav expected
exactly that format.

Introduced in notebook 07.

>>> label_wav("/tmp/kws", "yes.wav")  # doctest: +SKIP
yes (score = 0.912)
_unknown_ (score = 0.043)
no (score = 0.021)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import tensorflow as tf

from kwlesson.audio import AudioError, read_wav
from kwlesson.export import (
    FLOAT_TFLITE,
    MODEL_CARD,
    SAVED_MODEL_DIR,
    load_labels,
    load_model_card,
    micro_input,
)
from kwlesson.features import FeatureSettings, compute_features
from kwlesson.runtime import TFLiteModel

__all__ = ["label_wav", "say_if_partial"]


class _Labeller:
    """Whatever label_wav was given, as clip -> probabilities."""

    def __init__(self, model: str | os.PathLike, labels: str | os.PathLike | Sequence[str] | None
                 ) -> None:
        p = Path(model).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"{p}: model not found (an export folder, a .tflite file "
                                    "or a SavedModel folder)")
        self.card = load_model_card(p)
        self.name = str(p)
        if p.is_dir() and (p / "saved_model.pb").is_file():
            self._saved_model(p)
            where = p.parent
        elif p.is_dir():
            tfl = p / FLOAT_TFLITE
            if not tfl.is_file():
                found = sorted(x.name for x in p.glob("*.tflite"))
                if (p / SAVED_MODEL_DIR / "saved_model.pb").is_file():
                    self._saved_model(p / SAVED_MODEL_DIR)
                elif found:
                    tfl = p / found[0]
                else:
                    raise FileNotFoundError(f"{p}: no {FLOAT_TFLITE}, other .tflite or "
                                            f"{SAVED_MODEL_DIR}/ in this folder")
            if tfl.is_file():
                self._tflite(tfl)
            where = p
        else:
            self._tflite(p)
            where = p.parent
        if labels is None:
            self.labels = load_labels(where, expected=self.num_labels)
        elif isinstance(labels, (str, os.PathLike)):
            self.labels = load_labels(labels, expected=self.num_labels)
        else:
            self.labels = list(labels)
            if len(self.labels) != self.num_labels:
                raise ValueError(f"{len(self.labels)} labels given but {self.name} has "
                                 f"{self.num_labels} outputs")

    def _saved_model(self, path: Path) -> None:
        loaded = tf.saved_model.load(str(path))
        serve = loaded.signatures["serving_default"]
        if self.card is None:
            self.card = load_model_card(path.parent)
        if self.card is None:
            raise FileNotFoundError(f"{path.parent / MODEL_CARD}: needed to know the clip "
                                    "length of a SavedModel")
        self.num_labels = len(self.card["labels"])
        self.sample_rate = int(self.card["sample_rate"])
        self.samples = int(self.card["clip_samples"])
        self.settings = FeatureSettings.from_dict(self.card["feature_settings"])
        self._run = lambda clip: serve(audio=tf.constant(clip))["probabilities"].numpy()
        self.name = str(path)

    def _tflite(self, path: Path) -> None:
        m = TFLiteModel(path)
        self.num_labels = m.num_labels
        self.name = str(path)
        if m.kind == "audio":
            self.samples = m.input_shape[-1]
            self.sample_rate = int(self.card["sample_rate"]) if self.card else 16000
            self._run = m
            return
        if self.card is None:
            raise FileNotFoundError(f"{path}: takes features, and their settings are in "
                                    f"{MODEL_CARD}, which is not next to it")
        settings = FeatureSettings.from_dict(self.card["feature_settings"])
        if tuple(m.input_shape[1:]) != settings.shape:
            raise ValueError(f"{path}: takes features {list(m.input_shape[1:])}, but "
                             f"{MODEL_CARD} describes {list(settings.shape)}")
        self.sample_rate, self.samples = settings.sample_rate, settings.desired_samples
        card = self.card
        self._run = lambda clip: m(micro_input(compute_features(clip, settings).numpy(), card))

    def __call__(self, clip: np.ndarray) -> np.ndarray:
        return np.asarray(self._run(clip), np.float32).reshape(-1)



def _wav_files(target: Path) -> list[Path]:
    if target.is_dir():
        files = sorted(p for p in target.rglob("*") if p.suffix.lower() in (".wav", ".flac"))
        if not files:
            raise FileNotFoundError(f"{target}: no .wav or .flac files in this folder")
        return files
    if not target.exists():
        raise FileNotFoundError(f"{target}: wav file not found")
    return [target]



def label_wav(
    model: str | os.PathLike,
    wav: str | os.PathLike,
    top_k: int = 3,
    labels: str | os.PathLike | Sequence[str] | None = None,
    stream: TextIO | None = None,
) -> list[tuple[str, list[tuple[str, float]]]]:
    """Print the ``top_k`` labels of a wav (or of every wav in a folder), as the seed's
    label_wav.py: ``yes (score = 0.912)``.

    ``model``: an export folder (uses ``model_float.tflite`` and ``labels.txt``), a ``.tflite``
    file (``labels.txt`` next to it; a features-in micro model also needs ``model_card.json``)
    or a SavedModel folder. ``labels``: a labels file or list instead; its count must match the
    model's outputs. Each file is read with ``kwlesson.audio.read_wav``: any sample rate is
    resampled to the model's, channels are mixed down, and the clip is padded with zeros at
    the end or trimmed to the model's length (1 s). For a folder, each file's lines follow a
    line with its path; a file that cannot be read gets an error line and the rest go on.
    Returns ``[(path, [(label, score), ...]), ...]``.

    >>> label_wav("/tmp/kws", "left.wav")  # doctest: +SKIP
    left (score = 0.812)
    _unknown_ (score = 0.094)
    right (score = 0.030)
    """
    out = stream or sys.stdout
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, not {top_k}")
    target = Path(wav).expanduser()
    files = _wav_files(target)
    labeller = _Labeller(model, labels)
    k = min(top_k, len(labeller.labels))
    results = []
    for f in files:
        if target.is_dir():
            print(f"{f}:", file=out)
        try:
            clip = read_wav(f, sample_rate=labeller.sample_rate, clip_samples=labeller.samples)
        except AudioError as err:
            if not target.is_dir():
                raise
            print(f"  error: {err}", file=out)
            continue
        scores = labeller(clip)
        top = [(labeller.labels[i], float(scores[i])) for i in np.argsort(-scores)[:k]]
        say_if_partial(f, labeller.samples / labeller.sample_rate, out,
                        "  " if target.is_dir() else "")
        for label, score in top:
            print(f"{'  ' if target.is_dir() else ''}{label} (score = {score:.3f})", file=out)
        results.append((str(f), top))
    return results



def say_if_partial(path: Any, seconds: float, out: Any, indent: str) -> None:
    """A note when a file is longer than the clip the model labels (only its start is)."""
    from kwlesson.audio import AudioError, describe_wav

    try:
        length = describe_wav(path)["duration_s"]
    except AudioError:
        return
    if length > seconds + 0.05:
        print(f"{indent}note: {path} is {length:.1f} s long; these labels are for its first "
              f"{seconds:g} s only (for the whole file: kwlesson test-streaming-accuracy, or "
              "kwlesson.streaming)", file=out)
