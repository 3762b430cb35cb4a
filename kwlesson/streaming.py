"""Listening to a stream: slide a one-second window over long audio and report keywords.

A model trained on 1 s clips hears a stream as a sequence of overlapping clips: one every
``clip_stride_ms`` (30 ms), each scored by the model. :class:`RecognizeCommands` (the seed
speech-commands example's ``recognize_commands.py`` / ``.cc``, the same logic as its Android
and Raspberry Pi apps) averages those scores over time and reports a keyword when it is
confident and has not just reported another one.

To measure how well that works, :func:`generate_streaming_test` writes a long wav of test-split
words over background noise with a ground-truth file (the seed's
``generate_streaming_test_wav.py``), and :func:`test_streaming_accuracy` runs a model over it
and counts matched, correct, wrong and false-positive detections as the seed's
``test_streaming_accuracy.cc`` does.

Speed: the windows overlap by 97%, and the features of a window are its 10 ms frames, so for a
Keras model the features of the whole stream are computed once and every window takes its 98
frames from them (exactly what per-window features give). A model that takes raw audio
(e.g. a LiteRT ``.tflite`` file) is called on batches of windows instead.

Introduced in the course's streaming notebook ("...then listen to a stream").

>>> from kwlesson.streaming import load_stream_model, recognize_stream  # doctest: +SKIP
>>> model = load_stream_model("/tmp/speech_commands_train/tiny_conv.ckpt-400")  # doctest: +SKIP
>>> recognize_stream("streaming_test.wav", model)[:2]  # doctest: +SKIP
[Detection(time_ms=1290, label='yes', score=0.91), Detection(time_ms=4380, ...)]
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

import numpy as np

from kwlesson.audio import SAMPLE_RATE, describe_wav, read_wav

if TYPE_CHECKING:  # TensorFlow loads only when a Keras model is used
    from kwlesson.features import FeatureSettings

__all__ = [
    "SILENCE_LABEL",
    "UNKNOWN_LABEL",
    "Recognition",
    "RecognizeCommands",
    "Detection",
    "StreamModel",
    "keras_stream_model",
    "trained_stream_model",
    "tflite_stream_model",
    "load_stream_model",
    "read_labels_file",
    "stream_scores",
    "recognize_scores",
    "recognize_stream",
    "VERDICT_COLORS",
    "moving_average",
    "as_stream_model",
    "load_stream_audio",
]

# Same strings as kwlesson.data (not imported from there: data pulls in more than we need here).
SILENCE_LABEL = "_silence_"
UNKNOWN_LABEL = "_unknown_"


# --------------------------------------------------------------------------------------------
# RecognizeCommands: the seed's smoothing, threshold and suppression


class Recognition(NamedTuple):
    """What :meth:`RecognizeCommands.process_latest_result` returns (unpacks as a 3-tuple)."""

    found_command: str
    score: float
    is_new_command: bool


class RecognizeCommands:
    """Turn a stream of per-window scores into keyword events, as the seed does.

    For each new result (scores of all labels for the window starting at ``current_time_ms``):

    1. keep the results of the last ``average_window_duration_ms`` (older ones are dropped);
    2. with fewer than ``minimum_count`` results, or results spanning less than a quarter of the
       averaging window, answer the previous top label with score 0 and no new command;
    3. otherwise average the scores per label; the top label is *new* when its average is above
       ``detection_threshold``, it differs from the previous top label, and more than
       ``suppression_ms`` have passed since that previous top label was reported. A new top label
       becomes the "previous top label" from then on.

    As in the seed, the previous top label starts as ``_silence_``, and after ``_silence_``
    no suppression applies: ``_silence_`` itself can become the new top label (which is how the
    recognizer re-arms for the next word), so callers that want keywords ignore new commands
    labelled ``_silence_`` (:func:`recognize_scores` does, as the seed's streaming test).
    A top label equal to the previous one is never new, however long ago it was reported.
    Ties go to the label listed first.

    One deliberate difference: the seed only refuses a time earlier than the *oldest*
    result it still keeps; here a time earlier than the *latest* result is refused too, since
    either way the results were not fed in time order. Equal times are allowed.

    The defaults are the seed's class's (``recognize_commands.h``).

    >>> rc = RecognizeCommands(["_silence_", "yes", "no"])
    >>> [rc.process_latest_result([0.0, 1.0, 0.0], t).is_new_command for t in range(0, 400, 100)]
    [False, False, False, True]
    """

    def __init__(
        self,
        labels: Sequence[str],
        average_window_duration_ms: float = 1000,
        detection_threshold: float = 0.2,
        suppression_ms: float = 1500,
        minimum_count: int = 3,
    ) -> None:
        self.labels = list(labels)
        if not self.labels:
            raise ValueError("RecognizeCommands needs at least one label")
        if average_window_duration_ms < 0 or suppression_ms < 0 or minimum_count < 0:
            raise ValueError(
                "average_window_duration_ms, suppression_ms and minimum_count must be >= 0, got "
                f"{average_window_duration_ms}, {suppression_ms}, {minimum_count}")
        self.average_window_duration_ms = average_window_duration_ms
        self.detection_threshold = detection_threshold
        self.suppression_ms = suppression_ms
        self.minimum_count = minimum_count
        self.reset()

    def reset(self) -> None:
        """Forget every result, as a fresh recognizer (e.g. before a new stream)."""
        self._previous_results: deque[tuple[float, np.ndarray]] = deque()
        self._previous_top_label = SILENCE_LABEL
        self._previous_top_time = -math.inf

    @property
    def previous_top_label(self) -> str:
        """The last label reported as a new command (``_silence_`` at the start)."""
        return self._previous_top_label

    def process_latest_result(self, latest_results: Any, current_time_ms: float) -> Recognition:
        """Add the scores of the window starting at ``current_time_ms``; return
        ``(found_command, score, is_new_command)``.

        Raises ValueError when the scores do not have one value per label, or when time goes
        backwards.

        >>> rc = RecognizeCommands(["_silence_", "a", "b"])
        >>> rc.process_latest_result([1.0, 0.0, 0.0], 0)
        Recognition(found_command='_silence_', score=0.0, is_new_command=False)
        """
        scores = np.asarray(latest_results, dtype=np.float64).reshape(-1)
        if scores.shape[0] != len(self.labels):
            raise ValueError(
                f"The results for recognition should contain {len(self.labels)} elements "
                f"(one per label: {', '.join(self.labels)}), but there are {scores.shape[0]}")
        if self._previous_results and current_time_ms < self._previous_results[-1][0]:
            raise ValueError(
                f"Results must be fed in increasing time order, but received a timestamp of "
                f"{current_time_ms} that was earlier than the previous one of "
                f"{self._previous_results[-1][0]}")

        self._previous_results.append((current_time_ms, scores))
        # Prune results too old for the averaging window (a result exactly at the limit stays).
        time_limit = current_time_ms - self.average_window_duration_ms
        while self._previous_results[0][0] < time_limit:
            self._previous_results.popleft()

        how_many_results = len(self._previous_results)
        earliest_time = self._previous_results[0][0]
        sample_duration = current_time_ms - earliest_time
        if (how_many_results < self.minimum_count
                or sample_duration < self.average_window_duration_ms / 4):
            return Recognition(self._previous_top_label, 0.0, False)

        average = np.zeros(len(self.labels))
        for _, s in self._previous_results:
            average += s / how_many_results
        top = int(np.argmax(average))  # first of equal maxima, like the seed's stable sort
        top_label = self.labels[top]
        top_score = float(average[top])

        if self._previous_top_label == SILENCE_LABEL or self._previous_top_time == -math.inf:
            time_since_last_top = math.inf
        else:
            time_since_last_top = current_time_ms - self._previous_top_time
        is_new = (top_score > self.detection_threshold
                  and top_label != self._previous_top_label
                  and time_since_last_top > self.suppression_ms)
        if is_new:
            self._previous_top_label = top_label
            self._previous_top_time = current_time_ms
        return Recognition(top_label, top_score, is_new)


# --------------------------------------------------------------------------------------------
# Models as callables on windows


class Detection(NamedTuple):
    """A keyword heard in a stream: start of the window (ms), label, averaged score."""

    time_ms: int
    label: str
    score: float


@dataclass
class StreamModel:
    """A model the stream runner can use: ``predict(windows) -> scores``.

    ``predict`` takes float32 audio ``[batch, clip_samples]`` in [-1, 1] and returns
    probabilities ``[batch, len(labels)]``. A model built on features may also give
    ``features`` (stream audio ``[samples]`` -> frames ``[n_frames, bins]``, frame ``i`` starting
    at sample ``i * frame_step``) and ``classify`` (``[batch, clip_frames, bins]`` ->
    probabilities); then the stream's features are computed once and shared by all windows.

    >>> m = StreamModel(predict=lambda x: np.full((len(x), 2), 0.5), labels=["_silence_", "yes"])
    >>> m.predict(np.zeros((3, 16000), np.float32)).shape
    (3, 2)
    """

    predict: Callable[[np.ndarray], np.ndarray]
    labels: list[str]
    sample_rate: int = SAMPLE_RATE
    clip_samples: int = SAMPLE_RATE
    features: Callable[[np.ndarray], np.ndarray] | None = None
    classify: Callable[[np.ndarray], np.ndarray] | None = None
    frame_step: int = 0
    clip_frames: int = 0
    name: str = "model"

    @property
    def clip_duration_ms(self) -> float:
        return self.clip_samples * 1000 / self.sample_rate


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def keras_stream_model(model: Any, labels: Sequence[str], settings: FeatureSettings,
                       name: str = "") -> StreamModel:
    """Wrap a Keras model on features (as :func:`kwlesson.models.create_model` makes, outputting
    logits) with the features it was trained on, for streaming.

    >>> tm = load_trained("/tmp/speech_commands_train")  # doctest: +SKIP
    >>> sm = keras_stream_model(tm.model, tm.labels, tm.settings)  # doctest: +SKIP
    """
    import tensorflow as tf

    from kwlesson.features import compute_features

    labels = list(labels)
    out = int(model.output_shape[-1])
    if out != len(labels):
        raise ValueError(f"the model has {out} outputs but {len(labels)} labels were given: "
                         f"{', '.join(labels)}")
    samples = settings.desired_samples
    frames, bins = settings.shape

    @tf.function(input_signature=[tf.TensorSpec([None, samples], tf.float32)])
    def _predict(audio):
        return tf.nn.softmax(model(compute_features(audio, settings), training=False))

    @tf.function(input_signature=[tf.TensorSpec([None, frames, bins], tf.float32)])
    def _classify(x):
        return tf.nn.softmax(model(x, training=False))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def _features(audio):
        return compute_features(audio, settings)

    win, hop = settings.window_size_samples, settings.window_stride_samples

    def features(audio: np.ndarray) -> np.ndarray:
        n_frames = 0 if len(audio) < win else 1 + (len(audio) - win) // hop
        out_frames = []
        chunk = 6000  # frames per call (a minute of audio): bounded memory for long streams
        for start in range(0, n_frames, chunk):
            stop = min(start + chunk, n_frames)
            piece = audio[start * hop:(stop - 1) * hop + win]
            out_frames.append(_features(piece).numpy())
        if not out_frames:
            return np.zeros((0, bins), np.float32)
        return np.concatenate(out_frames)

    # The 'micro' front end carries a noise estimate and a gain from frame to frame, so a
    # frame depends on what came before it: shared stream frames would not be the per-clip
    # features the model was trained on. Each window then computes its own, as in training.
    stateful = settings.preprocess == "micro"
    return StreamModel(
        predict=lambda x: _predict(np.asarray(x, np.float32)).numpy(),
        labels=labels, sample_rate=settings.sample_rate, clip_samples=samples,
        features=None if stateful else features,
        classify=lambda x: _classify(np.asarray(x, np.float32)).numpy(),
        frame_step=hop, clip_frames=frames, name=name or getattr(model, "name", "keras model"))


def trained_stream_model(checkpoint: str | os.PathLike) -> StreamModel:
    """A checkpoint (or train_dir) from :func:`kwlesson.training.train`, ready to stream.

    >>> sm = trained_stream_model("/tmp/speech_commands_train")  # doctest: +SKIP
    >>> sm.labels[:2]  # doctest: +SKIP
    ['_silence_', '_unknown_']
    """
    from kwlesson.runs import load_trained

    tm = load_trained(checkpoint)
    return keras_stream_model(tm.model, tm.labels, tm.settings,
                              name=os.path.basename(tm.checkpoint_path))


def read_labels_file(path: str | os.PathLike) -> list[str]:
    """One label per line (``<arch>_labels.txt`` as training writes it); blank lines ignored.

    >>> read_labels_file("/tmp/speech_commands_train/conv_labels.txt")  # doctest: +SKIP
    ['_silence_', '_unknown_', 'yes', ...]
    """
    p = Path(path)
    try:
        labels = [line.strip() for line in p.read_text(encoding="utf-8").splitlines()]
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: labels file not found") from None
    labels = [x for x in labels if x]
    if not labels:
        raise ValueError(f"{p}: labels file is empty")
    return labels


def tflite_stream_model(path: str | os.PathLike, labels: Sequence[str] | str | os.PathLike,
                        sample_rate: int = SAMPLE_RATE, num_threads: int | None = 1,
                        softmax: bool | None = None) -> StreamModel:
    """A LiteRT ``.tflite`` model that takes raw audio ``[1, samples]`` (or ``[samples]``) and
    outputs one score per label, ready to stream. int8/uint8 inputs and outputs are
    (de)quantised with the model's own scale and zero point. ``softmax=None`` applies a softmax
    when the outputs are not already probabilities (logits).

    >>> sm = tflite_stream_model("kws.tflite", labels="conv_labels.txt")  # doctest: +SKIP
    """
    from kwlesson.runtime import TFLiteModel

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: model file not found")
    if not isinstance(labels, (list, tuple)):
        labels = read_labels_file(labels)
    labels = list(labels)
    try:
        model = TFLiteModel(p, num_threads=num_threads, name=str(p))
    except ValueError as err:
        if "expected one input" in str(err):
            raise ValueError(f"{p}: expected one input (raw audio) and one output; "
                             f"{str(err).split('the model has ')[-1]}") from None
        raise
    shape = list(model.input_shape)
    if len(shape) not in (1, 2) or shape[-1] < 1:
        raise ValueError(f"{p}: expected an input of raw audio [1, samples], got shape {shape}")
    samples = shape[-1]
    if model.num_labels != len(labels):
        raise ValueError(f"{p}: the model has {list(model.output['shape'])} outputs but "
                         f"{len(labels)} labels were given: {', '.join(labels)}")

    def predict(x: np.ndarray) -> np.ndarray:
        y = model.run_batch(np.asarray(x, np.float32).reshape(-1, samples))
        use_softmax = softmax
        if use_softmax is None:  # probabilities are in [0, 1] and sum to 1
            use_softmax = bool((y < -1e-3).any() or (y > 1 + 1e-3).any()
                               or (np.abs(y.sum(axis=-1) - 1) > 1e-2).any())
        return _softmax(y) if use_softmax else y

    return StreamModel(predict=predict, labels=labels, sample_rate=sample_rate,
                       clip_samples=samples, name=p.name)


def load_stream_model(model: str | os.PathLike | StreamModel,
                      labels: Sequence[str] | str | os.PathLike | None = None) -> StreamModel:
    """A checkpoint prefix or train_dir (Keras, from training) or a ``.tflite`` file (LiteRT,
    with ``labels``: a list or a labels file; default ``<name>_labels.txt`` or ``labels.txt``
    next to it).

    >>> sm = load_stream_model("/tmp/speech_commands_train/tiny_conv.ckpt-400")  # doctest: +SKIP
    """
    if isinstance(model, StreamModel):
        return model
    p = Path(model)
    if p.suffix == ".tflite":
        if labels is None or labels == "":
            stem = p.stem.removesuffix("_quantized").removesuffix("_float")
            for cand in (p.with_name(f"{stem}_labels.txt"), p.with_name("labels.txt")):
                if cand.is_file():
                    labels = cand
                    break
            else:
                raise ValueError(f"{p}: give the labels (--labels FILE, one label per line); "
                                 f"no {stem}_labels.txt or labels.txt next to the model")
        return tflite_stream_model(p, labels)
    sm = trained_stream_model(p)
    if labels:
        given = list(labels) if isinstance(labels, (list, tuple)) else read_labels_file(labels)
        if given != sm.labels:
            raise ValueError(f"{p}: trained with labels {sm.labels}, but the labels given are "
                             f"{given}")
    return sm


# --------------------------------------------------------------------------------------------
# Running a model over a stream


def as_stream_model(model: StreamModel | Callable, labels: Sequence[str] | None,
                     sample_rate: int, clip_samples: int | None) -> StreamModel:
    if isinstance(model, StreamModel):
        if labels is not None and list(labels) != model.labels:
            raise ValueError(f"labels {list(labels)} differ from the model's {model.labels}")
        return model
    if not callable(model):
        raise TypeError(f"model must be a StreamModel or a callable, not {type(model).__name__}")
    if labels is None:
        raise ValueError("a plain model function needs labels=[...] (one per output)")
    return StreamModel(predict=model, labels=list(labels), sample_rate=sample_rate,
                       clip_samples=clip_samples or sample_rate,
                       name=getattr(model, "__name__", "model"))


def _window_offsets(n_samples: int, clip_samples: int, stride_samples: int) -> np.ndarray:
    # Every window that fits entirely in the stream; the seed stops one stride short of
    # the end (range(0, n - clip, stride)), which drops a final window that fits exactly.
    if n_samples < clip_samples:
        return np.zeros(0, np.int64)
    return np.arange(0, n_samples - clip_samples + 1, stride_samples, dtype=np.int64)


def stream_scores(
    audio: np.ndarray,
    model: StreamModel | Callable,
    *,
    labels: Sequence[str] | None = None,
    sample_rate: int = SAMPLE_RATE,
    clip_duration_ms: float | None = None,
    clip_stride_ms: float = 30,
    batch_size: int = 256,
    share_features: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of every window: (start times in ms int64 ``[n]``, probabilities ``[n, labels]``).

    Window ``k`` starts at sample ``k * stride`` (``stride = clip_stride_ms`` in samples) and is
    ``clip_duration_ms`` long (default: the model's clip). Audio shorter than one clip is padded
    with zeros to one clip. With ``share_features`` (and a model that offers it, see
    :class:`StreamModel`) features are computed once for the whole stream when the stride is a
    whole number of feature frames ('micro' features never are: their front end has a state).

    >>> times, scores = stream_scores(audio, model)  # doctest: +SKIP
    >>> times[:3], scores.shape  # doctest: +SKIP
    (array([ 0, 30, 60]), (9967, 12))
    """
    clip_samples = None if clip_duration_ms is None else int(clip_duration_ms * sample_rate / 1000)
    sm = as_stream_model(model, labels, sample_rate, clip_samples)
    if sm.sample_rate != sample_rate:
        raise ValueError(f"the model expects {sm.sample_rate} Hz audio, not {sample_rate} Hz")
    if clip_samples is not None and clip_samples != sm.clip_samples:
        raise ValueError(f"clip_duration_ms={clip_duration_ms} gives {clip_samples} samples, but "
                         f"the model takes {sm.clip_samples} samples per window")
    stride = int(clip_stride_ms * sample_rate / 1000)
    if stride < 1:
        raise ValueError(f"clip_stride_ms={clip_stride_ms} is shorter than one sample")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size}")
    audio = np.asarray(audio, np.float32).reshape(-1)
    if len(audio) < sm.clip_samples:
        audio = np.concatenate([audio, np.zeros(sm.clip_samples - len(audio), np.float32)])
    offsets = _window_offsets(len(audio), sm.clip_samples, stride)
    times = (offsets * 1000) // sample_rate
    n_labels = len(sm.labels)
    scores = np.zeros((len(offsets), n_labels), np.float32)

    shared = (share_features and sm.features is not None and sm.classify is not None
              and sm.frame_step > 0 and stride % sm.frame_step == 0)
    if shared:
        frames = np.asarray(sm.features(audio), np.float32)
        step = stride // sm.frame_step
        # [n_windows, bins, clip_frames] view: no copy until a batch is taken
        view = np.lib.stride_tricks.sliding_window_view(frames, sm.clip_frames, axis=0)[::step]
        for i in range(0, len(offsets), batch_size):
            batch = np.ascontiguousarray(view[i:i + batch_size].transpose(0, 2, 1))
            scores[i:i + len(batch)] = sm.classify(batch)
    else:
        view = np.lib.stride_tricks.sliding_window_view(audio, sm.clip_samples)[::stride]
        for i in range(0, len(offsets), batch_size):
            batch = np.ascontiguousarray(view[i:i + batch_size])
            out = np.asarray(sm.predict(batch), np.float32)
            if out.shape != (len(batch), n_labels):
                raise ValueError(f"the model returned scores of shape {out.shape} for a batch of "
                                 f"{len(batch)} windows; expected ({len(batch)}, {n_labels})")
            scores[i:i + len(batch)] = out
    return times, scores


def recognize_scores(
    times_ms: Sequence[int],
    scores: np.ndarray,
    labels: Sequence[str],
    *,
    average_window_duration_ms: float = 500,
    detection_threshold: float = 0.7,
    suppression_ms: float = 1500,
    minimum_count: int = 3,
) -> list[Detection]:
    """What a fresh :class:`RecognizeCommands` fed these results in order reports: its new
    commands that are not ``_silence_`` (as the seed's streaming test keeps them).
    Vectorised: 10,000 windows take milliseconds rather than a second.

    The defaults are the seed's ``test_streaming_accuracy`` tool's (its C++ flags), not the
    class's: a 500 ms average and a 0.7 threshold.

    >>> recognize_scores([0, 100, 200, 300], np.array([[0, 1.0]] * 4), ["_silence_", "yes"])
    [Detection(time_ms=200, label='yes', score=1.0)]
    """
    labels = list(labels)
    scores = np.asarray(scores, np.float64)
    times = np.asarray(times_ms, np.float64).reshape(-1)
    RecognizeCommands(labels, average_window_duration_ms, detection_threshold, suppression_ms,
                      minimum_count)  # the same argument checks
    if scores.ndim != 2 or scores.shape != (len(times), len(labels)):
        raise ValueError(f"scores must be [{len(times)} windows, {len(labels)} labels], "
                         f"got shape {scores.shape}")
    back = np.flatnonzero(np.diff(times) < 0)
    if len(back):
        k = int(back[0]) + 1
        raise ValueError(f"Results must be fed in increasing time order, but received a "
                         f"timestamp of {times[k]:g} after {times[k - 1]:g}")
    # The same decisions as RecognizeCommands fed one result at a time, computed for all
    # windows at once: each window's averaging range from a binary search, its average from
    # cumulative sums. Only windows whose average passes the threshold reach the Python loop
    # that applies the stateful rules (new label, suppression).
    n = len(times)
    idx = np.arange(n)
    starts = np.searchsorted(times, times - average_window_duration_ms, side="left")
    csum = np.concatenate([np.zeros((1, len(labels))), np.cumsum(scores, axis=0)])
    counts = idx - starts + 1
    average = (csum[idx + 1] - csum[starts]) / counts[:, None]
    ready = (counts >= minimum_count) & (times - times[starts] >= average_window_duration_ms / 4)
    top = np.argmax(average, axis=1) if n else np.zeros(0, np.int64)
    top_score = average[idx, top]
    found: list[Detection] = []
    previous_label, previous_time = SILENCE_LABEL, -math.inf
    for i in np.flatnonzero(ready & (top_score > detection_threshold)):
        label, t = labels[top[i]], times[i]
        if previous_label == SILENCE_LABEL or previous_time == -math.inf:
            since = math.inf
        else:
            since = t - previous_time
        if label != previous_label and since > suppression_ms:
            previous_label, previous_time = label, t
            if label != SILENCE_LABEL:
                found.append(Detection(int(t), label, round(float(top_score[i]), 6)))
    return found


def load_stream_audio(wav: str | os.PathLike | np.ndarray, sample_rate: int,
                       out: TextIO | None) -> np.ndarray:
    if isinstance(wav, np.ndarray):
        return np.asarray(wav, np.float32).reshape(-1)
    info = describe_wav(wav)  # AudioError naming the file if it is not audio
    notes = []
    if info["rate"] != sample_rate:
        notes.append(f"resampled from {info['rate']} Hz to {sample_rate} Hz")
    if info["channels"] != 1:
        notes.append(f"{info['channels']} channels mixed down to mono")
    if notes and out is not None:
        print(f"note: {os.fspath(wav)}: " + "; ".join(notes), file=out)
    return read_wav(wav, sample_rate=sample_rate)


def recognize_stream(
    wav: str | os.PathLike | np.ndarray,
    model: StreamModel | Callable | str | os.PathLike,
    *,
    labels: Sequence[str] | None = None,
    clip_stride_ms: float = 30,
    average_window_duration_ms: float = 500,
    detection_threshold: float = 0.7,
    suppression_ms: float = 1500,
    minimum_count: int = 3,
    batch_size: int = 256,
) -> list[Detection]:
    """Keywords heard in a wav file (any rate or channels: resampled) or an audio array.

    ``model``: a :class:`StreamModel`, a checkpoint / ``.tflite`` path, or a plain function
    ``scores = model_fn(windows [batch, samples])`` together with ``labels``.

    >>> recognize_stream("streaming_test.wav", "/tmp/speech_commands_train")  # doctest: +SKIP
    [Detection(time_ms=1290, label='yes', score=0.91), ...]
    """
    if isinstance(model, (str, os.PathLike)):
        model = load_stream_model(model, labels)
        labels = None
    sample_rate = model.sample_rate if isinstance(model, StreamModel) else SAMPLE_RATE
    audio = load_stream_audio(wav, sample_rate, None)
    times, scores = stream_scores(audio, model, labels=labels, sample_rate=sample_rate,
                                  clip_stride_ms=clip_stride_ms, batch_size=batch_size)
    names = model.labels if isinstance(model, StreamModel) else list(labels or [])
    return recognize_scores(times, scores, names,
                            average_window_duration_ms=average_window_duration_ms,
                            detection_threshold=detection_threshold,
                            suppression_ms=suppression_ms, minimum_count=minimum_count)


# --------------------------------------------------------------------------------------------
# Reading a stream's scores: the averaging RecognizeCommands does, and each detection's verdict
# (numpy only; lesson 08 draws them with kwlesson.plots.stream_figure)

#: Colour of a detection by verdict (see :func:`kwlesson.streaming_test.detection_verdicts`).
VERDICT_COLORS = {"correct": "tab:green", "wrong": "tab:red", "false positive": "tab:purple"}


def moving_average(times_ms: Any, scores: np.ndarray, average_window_ms: float) -> np.ndarray:
    """Each row averaged with the rows of the last ``average_window_ms`` (a row exactly that old
    counts), as :class:`RecognizeCommands` averages before it decides.

    >>> moving_average([0, 100, 200], np.array([[0.0], [1.0], [2.0]]), 100)[:, 0]
    array([0. , 0.5, 1.5])
    """
    times = np.asarray(times_ms, np.float64).reshape(-1)
    scores = np.asarray(scores, np.float64)
    idx = np.arange(len(times))
    starts = np.searchsorted(times, times - average_window_ms, side="left")
    csum = np.concatenate([np.zeros((1, scores.shape[1])), np.cumsum(scores, axis=0)])
    return (csum[idx + 1] - csum[starts]) / (idx - starts + 1)[:, None]
