"""Speak to the model: record from the browser's microphone and recognise live, in a notebook.

:class:`Microphone` is one widget with two jobs:

- a **recorder** (:func:`recorder`): record a clip (Record / Stop, or a fixed-length
  "Record 1.5 s"), then save it into a dataset folder under a word's name with a speaker id of
  your own, ``<folder>/<word>/<speaker>_nohash_<n>.wav``, so your voice joins the training data;
- a **live view** (:func:`live_view`): while audio arrives, a rolling picture of the model's
  features, its score for every label, and the word heard, decided by the same
  :class:`~kwlesson.streaming.RecognizeCommands` smoothing as the streaming lesson.

The browser half (``microphone.js``, an `anywidget <https://anywidget.dev>`_ module: no build
step, works in JupyterLab 4 and Notebook 7) captures the microphone with ``getUserMedia`` and
sends float32 chunks of about 100 ms to the kernel as binary buffers, with the browser's sample
rate (often 44.1 or 48 kHz) and the page clock when each chunk was complete. The kernel
resamples them to 16 kHz with soxr at the quality :func:`kwlesson.audio.read_wav` uses.

Python can feed the same path: ``mic.feed(samples, sample_rate)`` is what a browser chunk goes
through, so a notebook without a microphone, nbval and the tests drive the widget from code.
When the browser has no microphone or the permission is refused, the widget says so and points
to the upload route (:func:`kwlesson.widgets.upload_and_label`) and :meth:`Microphone.feed_file`.

The kernel handles the browser's chunks between cells (or while a cell awaits): a cell that
keeps the kernel busy (training, say) holds them back, and the view catches up afterwards.
Several views of one widget share one microphone: the last one shown answers :meth:`start`.

Outside a browser, ``print(mic)`` gives a one-line status such as
``heard "yes" (0.93) at 3.2 s · 4.0 s of audio at 48000 Hz``.

Introduced in notebooks 08 (live view) and 09 (recording your own clips).

>>> import kwlesson as kw
>>> from kwlesson.microphone import live_view
>>> view = live_view(kw.quick_model())  # doctest: +SKIP
>>> view  # in JupyterLab: press Listen and say "yes"  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import re
import secrets
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import soxr
import traitlets

from kwlesson.audio import SAMPLE_RATE, read_wav, write_wav
from kwlesson.streaming import SILENCE_LABEL, Detection, RecognizeCommands, StreamModel

__all__ = [
    "Microphone",
    "LiveResult",
    "recorder",
    "live_view",
    "loudest_second",
    "microphone_problem",
    "new_speaker_id",
    "StreamResampler",
]

_ESM = (Path(__file__).with_name("microphone.js")).read_text(encoding="utf-8")

#: Where the message for a missing microphone sends the student instead.
UPLOAD_HINT = ("Without a microphone: record a wav with any program (a phone's voice recorder, "
               "Audacity) and label it with widgets.upload_and_label(model), or add it here "
               "with .feed_file(path).")

_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


# --------------------------------------------------------------------------------------------
# Resampling a stream: any browser rate -> 16 kHz


class StreamResampler:
    """Resample a stream chunk by chunk to ``rate_out``, as if it were resampled in one piece.

    Uses soxr's streaming resampler at the quality :func:`kwlesson.audio.read_wav` uses ("HQ"),
    so a chunked stream and a whole file give the same samples (up to rounding). Output lags the
    input by the filter's delay until :meth:`flush`.

    >>> r = StreamResampler(48000)
    >>> out = [r.process(np.zeros(4800, np.float32)) for _ in range(10)]
    >>> sum(map(len, out)) + len(r.flush())
    16000
    """

    def __init__(self, rate_in: float, rate_out: int = SAMPLE_RATE) -> None:
        if not rate_in or rate_in <= 0 or not math.isfinite(rate_in):
            raise ValueError(f"sample rate must be a positive number, not {rate_in!r}")
        self.rate_in = float(rate_in)
        self.rate_out = int(rate_out)
        self._same = self.rate_in == self.rate_out
        self._stream = None if self._same else soxr.ResampleStream(
            self.rate_in, self.rate_out, 1, dtype="float32", quality="HQ")

    def process(self, x: np.ndarray) -> np.ndarray:
        """Resample the next chunk (float32 mono); returns the output samples ready so far."""
        x = np.ascontiguousarray(x, np.float32).reshape(-1)
        if self._same:
            return x.copy()
        return self._stream.resample_chunk(x, last=False)

    def flush(self) -> np.ndarray:
        """The samples still inside the filter; the resampler is finished afterwards."""
        if self._same:
            return np.zeros(0, np.float32)
        return self._stream.resample_chunk(np.zeros(0, np.float32), last=True)


# --------------------------------------------------------------------------------------------
# Saving clips into a dataset folder


def loudest_second(x: np.ndarray, n: int = SAMPLE_RATE) -> np.ndarray:
    """Exactly ``n`` samples: a longer recording gives its loudest stretch of ``n`` samples (most
    energy), a shorter one is padded with silence on both sides so the word sits in the middle.

    >>> x = np.zeros(48000, np.float32); x[30000:34000] = 0.5
    >>> y = loudest_second(x)
    >>> len(y), float(np.abs(y).sum()) == float(np.abs(x).sum())
    (16000, True)
    """
    x = np.asarray(x, np.float32).reshape(-1)
    if len(x) == n:
        return x.copy()
    if len(x) < n:
        before = (n - len(x)) // 2
        return np.concatenate([np.zeros(before, np.float32), x,
                               np.zeros(n - len(x) - before, np.float32)])
    power = x.astype(np.float64) ** 2
    energy = np.concatenate([[0.0], np.cumsum(power)])
    loudest = int(np.argmax(energy[n:] - energy[:-n]))
    # Centre on where the energy of that stretch sits (its middle when it is all silence), as
    # far as the recording allows.
    inside = power[loudest:loudest + n]
    total = float(inside.sum())
    centre = loudest + (float(np.dot(np.arange(n), inside)) / total if total > 0 else n / 2)
    start = int(min(max(round(centre - n / 2), 0), len(x) - n))
    return x[start:start + n].copy()


def _speakers_in(folder: Path) -> set[str]:
    from kwlesson.data import speaker_of

    if not folder.is_dir():
        return set()
    return {speaker_of(p) for p in folder.glob("*/*.wav") if "_nohash_" in p.name}


def new_speaker_id(folder: str | os.PathLike | None = None, *, split: str | None = None,
                   validation_percentage: float = 10, testing_percentage: float = 10,
                   rng: Any = None) -> str:
    """A fresh speaker id (8 hex digits, like Speech Commands') used by no clip in ``folder``.

    With ``split`` ("training", "validation" or "testing") the id is drawn until
    :func:`kwlesson.data.which_set` puts it in that split, so all your clips land there.

    >>> sid = new_speaker_id(split="training")
    >>> from kwlesson.data import which_set
    >>> len(sid), which_set(f"{sid}_nohash_0.wav", 10, 10)
    (8, 'training')
    """
    from kwlesson.data import which_set

    if split not in (None, "training", "validation", "testing"):
        raise ValueError(f"split must be 'training', 'validation' or 'testing', not {split!r}")
    taken = _speakers_in(Path(folder)) if folder is not None else set()
    draw = (lambda: secrets.token_hex(4)) if rng is None else \
        (lambda: f"{int(rng.integers(0, 2**32)):08x}")
    for _ in range(10_000):
        sid = draw()
        if sid in taken:
            continue
        if split is None or which_set(f"{sid}_nohash_0.wav", validation_percentage,
                                      testing_percentage) == split:
            return sid
    raise RuntimeError(f"no free speaker id for split {split!r} after 10000 draws")


# --------------------------------------------------------------------------------------------
# The message when the microphone does not start


def microphone_problem(name: str, message: str = "", secure: bool | None = True) -> str:
    """A sentence a student can act on, for the error the browser gave (its ``name``), followed
    by the way round it (upload a recording instead).

    >>> microphone_problem("NotAllowedError", "Permission denied").split(".")[0]
    'No microphone: the browser was not allowed to use it (NotAllowedError: Permission denied)'
    """
    detail = f"{name}: {message}" if message else name
    if secure is False or (name == "SecurityError" and "secure" in message.lower()):
        what = ("No microphone: the browser only offers it to https:// pages and localhost "
                f"({detail}). Open Jupyter at http://localhost:... or over https.")
    elif name in ("NotAllowedError", "PermissionDeniedError", "SecurityError"):
        what = (f"No microphone: the browser was not allowed to use it ({detail}). Allow the "
                "microphone for this page (the icon in the address bar, or the site settings) "
                "and try again.")
    elif name in ("NotFoundError", "DevicesNotFoundError", "OverconstrainedError"):
        what = (f"No microphone: the browser found none ({detail}). Plug one in (or choose it "
                "in the system's sound settings) and try again.")
    elif name in ("NotReadableError", "TrackStartError", "AbortError"):
        what = (f"No microphone: it is there but could not start ({detail}); another program "
                "may be using it. Close that program and try again.")
    elif name == "NotSupportedError":
        what = f"No microphone: this browser cannot record audio here ({detail})."
    else:
        what = f"No microphone: it did not start ({detail})."
    return f"{what} {UPLOAD_HINT}"


# --------------------------------------------------------------------------------------------
# The widget


class _MicrophoneWidget(anywidget.AnyWidget):
    """The synced state the browser draws (see microphone.js)."""

    _esm = _ESM
    status = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    word = traitlets.Unicode("").tag(sync=True)
    clip_seconds = traitlets.Float(1.5).tag(sync=True)
    chunk_ms = traitlets.Int(100).tag(sync=True)
    show_live = traitlets.Bool(False).tag(sync=True)
    show_save = traitlets.Bool(False).tag(sync=True)
    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    scores = traitlets.List(traitlets.Float()).tag(sync=True)
    heard = traitlets.Dict().tag(sync=True)
    text = ""  # the status line with the whole error message (the page shows that in red)

    def __repr__(self) -> str:
        return self.text  # the one-line text form (nbval's text/plain)


@dataclass
class LiveResult:
    """A word the live view heard: the :class:`~kwlesson.streaming.Detection` (its ``time_ms``
    is where the 1 s window that decided ends, from the start of the stream), the page-clock
    time the audio at that point was captured (``capture_ms``, None for audio fed from Python),
    the wall-clock time the kernel decided (``decided_ms``) and, once the page showed it,
    ``shown_ms`` (page clock)."""

    detection: Detection
    capture_ms: float | None
    decided_ms: float
    shown_ms: float | None = None

    @property
    def label(self) -> str:
        return self.detection.label


class Microphone:
    """Record from the browser's microphone (or from :meth:`feed`) and, given a model, recognise
    live. Make one with :func:`recorder` or :func:`live_view`.

    Attributes: ``widget`` (what the notebook shows), ``clip`` (the last recording, 16 kHz
    float32), ``detections`` (:class:`LiveResult` of the words heard in this session),
    ``scores`` (label -> latest window's probability), ``error`` (the microphone problem, or
    ""), ``rate`` (the browser's sample rate), ``saved`` (paths written), ``speaker_id``.

    The timeline: :meth:`start` begins a session (the browser's Record/Listen does too); every
    chunk goes through :meth:`feed`: resampled, added to the recording (at most
    ``max_seconds``, the latest kept) and, with a model, cut into 1 s windows every
    ``clip_stride_ms`` that are scored and passed to ``RecognizeCommands``. :meth:`stop` (or the
    browser's Stop, or the end of a fixed-length recording) ends it.

    >>> mic = Microphone()
    >>> mic.feed(np.zeros(48000, np.float32), 48000)
    >>> round(mic.seconds, 3)
    1.0
    """

    def __init__(self, model: Any = None, *, folder: str | os.PathLike | None = None,
                 word: str = "", speaker_id: str | None = None, split: str | None = None,
                 clip_seconds: float = 1.5, max_seconds: float = 30, chunk_ms: int = 100,
                 clip_stride_ms: float = 30, average_window_duration_ms: float = 500,
                 detection_threshold: float = 0.7, suppression_ms: float = 1500,
                 minimum_count: int = 3) -> None:
        self.stream_model = _stream_model(model) if model is not None else None
        if self.stream_model is not None and self.stream_model.sample_rate != SAMPLE_RATE:
            raise ValueError(f"the live view feeds models {SAMPLE_RATE} Hz audio; this one "
                             f"expects {self.stream_model.sample_rate} Hz")
        if clip_stride_ms * SAMPLE_RATE / 1000 < 1 or clip_seconds <= 0 or max_seconds <= 0:
            raise ValueError("clip_stride_ms, clip_seconds and max_seconds must be positive, "
                             f"got {clip_stride_ms}, {clip_seconds}, {max_seconds}")
        self.folder = Path(folder) if folder is not None else None
        self._speaker_id = speaker_id
        self.split = split
        self.max_seconds = float(max_seconds)
        self.clip_stride_ms = float(clip_stride_ms)
        self.labels: list[str] = list(self.stream_model.labels) if self.stream_model else []
        self.recognizer = RecognizeCommands(
            self.labels or [SILENCE_LABEL], average_window_duration_ms, detection_threshold,
            suppression_ms, minimum_count)
        self.saved: list[Path] = []
        self.error = ""
        self.session = 0
        self.how = self.device = ""  # how the browser captures, and its microphone's name
        self.clip: np.ndarray | None = None
        self.widget = _MicrophoneWidget(
            word=word, clip_seconds=float(clip_seconds), chunk_ms=int(chunk_ms),
            show_live=self.stream_model is not None, show_save=self.folder is not None,
            labels=self.labels, scores=[0.0] * len(self.labels))
        self.widget.on_msg(self._on_msg)
        self._display_settings()
        self._reset_session(rate=None, seconds=None)
        self._update_status()

    # ---- text forms -----------------------------------------------------------------------

    def __repr__(self) -> str:
        return self.status

    def __str__(self) -> str:
        return self.status

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    @property
    def status(self) -> str:
        """One line saying what the widget is doing (what a non-browser front end shows)."""
        return self.widget.text

    @property
    def word(self) -> str:
        """The word a saved clip is filed under (the text box in the widget)."""
        return self.widget.word

    @word.setter
    def word(self, value: str) -> None:
        self.widget.word = value

    @property
    def speaker_id(self) -> str:
        """This session's speaker id (drawn on first use, free in ``folder``)."""
        if self._speaker_id is None:
            self._speaker_id = new_speaker_id(self.folder, split=self.split)
        return self._speaker_id

    @property
    def seconds(self) -> float:
        """Seconds of audio received in this session so far (at most a fixed length asked for)."""
        done = self._in_pos if self._target is None else min(self._in_pos, self._target)
        return done / SAMPLE_RATE

    @property
    def heard(self) -> LiveResult | None:
        """The last word heard (not ``_silence_``), or None."""
        return self.detections[-1] if self.detections else None

    @property
    def audio(self) -> np.ndarray:
        """This session's 16 kHz audio kept so far (the latest ``max_seconds``)."""
        return np.concatenate(self._recording) if self._recording else np.zeros(0, np.float32)

    # ---- the session ------------------------------------------------------------------------

    def _display_settings(self) -> None:
        sm = self.stream_model
        if sm is None:
            return
        if sm.features is not None and sm.classify is not None and sm.frame_step > 0:
            self._features = sm.features
            self._hop = sm.frame_step
        else:  # a raw-audio model (e.g. .tflite): show the course's default features
            from kwlesson.features import FeatureSettings, compute_features

            s = FeatureSettings(sample_rate=sm.sample_rate)
            self._features = lambda a: compute_features(np.asarray(a, np.float32), s).numpy()
            self._hop = s.window_stride_samples
        # Frames start every hop; a frame covers the window after it (found from one call).
        probe = np.asarray(self._features(np.zeros(SAMPLE_RATE, np.float32)))
        self._bins = probe.shape[1]
        self._win = SAMPLE_RATE - (probe.shape[0] - 1) * self._hop
        self._shared = (sm.features is not None and sm.classify is not None
                        and sm.frame_step > 0)

    def _reset_session(self, rate: float | None, seconds: float | None) -> None:
        self.rate = rate
        self._resampler: StreamResampler | None = None
        self._target = None if seconds is None else int(round(seconds * SAMPLE_RATE))
        self._recording: list[np.ndarray] = []
        self._kept = 0
        self._total = 0  # 16 kHz samples out of the resampler this session
        self._in_pos = 0.0  # input samples in, in 16 kHz units (capture times map onto these)
        self._chunk_times: deque[tuple[float, float]] = deque(maxlen=4000)
        self._clock_offset: float | None = None  # page ms at stream position 0
        self._tail = np.zeros(0, np.float32)  # audio not yet turned into frames/windows
        self._tail_start = 0  # stream position of _tail[0]
        self._frames = np.zeros((0, getattr(self, "_bins", 0)), np.float32)
        self._frames_start = 0  # frame index of _frames[0]
        self._next_frame = 0
        self._next_window = 0
        self.recognizer.reset()
        self.detections: list[LiveResult] = []
        self.scores: dict[str, float] = {}
        self.windows = 0
        self.chunks = 0
        self.dropped_chunks = 0
        self.frame_gaps = 0  # browser chunks that did not start where the previous one ended
        self.missing_frames = 0  # browser samples lost in those gaps (replaced by silence)
        self._next_browser_frame: float | None = None
        self._capturing = False
        self._browser_open = False
        if self.labels:
            self.widget.scores = [0.0] * len(self.labels)

    def _begin(self, seconds: float | None) -> None:
        self._reset_session(rate=None, seconds=seconds)
        self._capturing = True
        self.session += 1
        self.error = self.widget.error = ""
        self.widget.heard = {}

    def start(self, seconds: float | None = None) -> None:
        """Begin a session (a new recording; the live view starts from 0 s). With ``seconds``,
        the recording stops by itself after that long. A widget shown in a browser opens the
        microphone (feeding audio from Python needs no start: :meth:`feed` begins a session)."""
        self._begin(seconds)
        self.widget.send({"type": "command", "action": "start", "seconds": seconds})
        self._update_status()

    def stop(self) -> np.ndarray:
        """End the session: the samples still in the resampler are added, and ``clip`` is the
        recording. Returns it."""
        was_open = self._browser_open
        self._capturing = self._browser_open = False
        if self._resampler is not None:
            resampler, self._resampler = self._resampler, None
            self._take(resampler.flush())
        if was_open:
            self.widget.send({"type": "command", "action": "stop"})
        self.clip = self.audio
        self._update_status()
        return self.clip

    def feed(self, samples: Any, sample_rate: float, *, capture_ms: float | None = None) -> None:
        """Add audio: ``samples`` (mono, or [frames, channels] mixed down) at ``sample_rate``.
        The same path as a browser chunk (``capture_ms``: the page clock when it was complete).
        Starts a session if none is running; a new rate mid-session empties the old resampler
        into the stream and carries on at the new one.

        >>> mic = Microphone(); mic.feed(np.zeros(44100, np.float32), 44100)
        >>> mic.rate, round(mic.seconds, 2)
        (44100.0, 1.0)
        """
        x = np.asarray(samples, np.float32)
        if x.ndim == 2:
            x = x.mean(axis=1) if x.shape[1] < x.shape[0] else x.mean(axis=0)
        x = x.reshape(-1)
        if not np.isfinite(x).all():
            x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
        rate = float(sample_rate)
        if not self._capturing:
            self._begin(None)
        if self._resampler is not None and rate != self.rate:  # the rate changed mid-session
            self._take(self._resampler.flush())
            self._resampler = None
        if self._resampler is None:
            self.rate = rate
            self._resampler = StreamResampler(rate)
        self.chunks += 1
        self._in_pos += len(x) * SAMPLE_RATE / rate
        if capture_ms is not None:
            self._chunk_times.append((self._in_pos, float(capture_ms)))
            offset = float(capture_ms) - self._in_pos * 1000 / SAMPLE_RATE
            if self._clock_offset is None or offset < self._clock_offset:
                self._clock_offset = offset
        self._take(self._resampler.process(x))

    def feed_file(self, path: str | os.PathLike) -> np.ndarray:
        """Record a wav/flac file as if it were said into the microphone (start, feed at the
        file's own rate, stop); returns the recording. The way in without a microphone."""
        import soundfile as sf

        read_wav(path)  # an AudioError naming the file when it is not audio
        data, rate = sf.read(os.fspath(path), dtype="float32", always_2d=True)
        self.start()
        self.feed(data.mean(axis=1), rate)
        return self.stop()

    def record(self, samples: Any, sample_rate: float) -> np.ndarray:
        """Start, feed ``samples``, stop: a recording made from an array. Returns ``clip``."""
        self.start()
        self.feed(samples, sample_rate)
        return self.stop()

    # ---- what happens to each piece of 16 kHz audio ----------------------------------------

    def _take(self, y: np.ndarray) -> None:
        if self._target is not None:
            y = y[:max(self._target - self._total, 0)]
        if len(y):
            self._recording.append(y)
            self._kept += len(y)
            self._total += len(y)
            limit = int(self.max_seconds * SAMPLE_RATE)
            while self._kept - len(self._recording[0]) >= limit and len(self._recording) > 1:
                self._kept -= len(self._recording.pop(0))
            if self._kept > limit:  # one long piece: keep its end
                self._recording[0] = self._recording[0][self._kept - limit:]
                self._kept = limit
            if self.stream_model is not None:
                self._listen(y)
        self._update_status()
        if self._target is not None and self._total >= self._target and self._capturing:
            self.stop()

    def _listen(self, y: np.ndarray) -> None:
        sm = self.stream_model
        self._tail = np.concatenate([self._tail, y])
        end = self._tail_start + len(self._tail)
        # New feature frames: frame i covers [i * hop, i * hop + win).
        last = (end - self._win) // self._hop  # the last frame that fits
        new_frames = None
        if last >= self._next_frame:
            a = self._next_frame * self._hop - self._tail_start
            b = last * self._hop + self._win - self._tail_start
            new_frames = np.asarray(self._features(self._tail[a:b]), np.float32)
            self._next_frame = last + 1
            self._frames = np.concatenate([self._frames, new_frames])
        # New windows: window k covers [k * stride, k * stride + clip).
        stride = int(self.clip_stride_ms * SAMPLE_RATE / 1000)
        clip = sm.clip_samples
        ks = []
        while self._next_window * stride + clip <= end:
            ks.append(self._next_window)
            self._next_window += 1
        scores = None
        for i in range(0, len(ks), 256):  # bounded memory when a long recording is fed at once
            part = ks[i:i + 256]
            if self._shared and stride % self._hop == 0:
                step = stride // self._hop
                batch = np.stack([self._frames[k * step - self._frames_start:
                                               k * step - self._frames_start + sm.clip_frames]
                                  for k in part])
                scores = np.asarray(sm.classify(batch), np.float32)
            else:
                batch = np.stack([self._tail[k * stride - self._tail_start:
                                             k * stride - self._tail_start + clip] for k in part])
                scores = np.asarray(sm.predict(batch), np.float32)
            for k, s in zip(part, scores):
                self._recognize(k * stride + clip, s)
        if scores is not None:
            self.scores = {lab: float(v) for lab, v in zip(self.labels, scores[-1])}
            self.widget.scores = [round(float(v), 3) for v in scores[-1]]
        # Forget what no future frame or window needs.
        keep_from = min(self._next_frame * self._hop, self._next_window * stride)
        if keep_from > self._tail_start:
            self._tail = self._tail[keep_from - self._tail_start:]
            self._tail_start = keep_from
        if self._shared:
            first = (self._next_window * stride) // self._hop
            if first > self._frames_start:
                self._frames = self._frames[first - self._frames_start:]
                self._frames_start = first
        if new_frames is not None and len(new_frames):
            shown = new_frames[-300:]
            self.widget.send({"type": "frames", "bins": int(shown.shape[1])},
                             buffers=[np.ascontiguousarray(shown, np.float32).tobytes()])

    def _recognize(self, end_sample: int, scores: np.ndarray) -> None:
        self.windows += 1
        t_ms = end_sample * 1000 / SAMPLE_RATE
        found, score, is_new = self.recognizer.process_latest_result(scores, t_ms)
        if not is_new or found == SILENCE_LABEL:
            return
        det = Detection(int(round(t_ms)), found, round(float(score), 6))
        result = LiveResult(det, self._capture_time(end_sample), time.time() * 1000)
        self.detections.append(result)
        self.widget.heard = {"label": found, "score": round(float(score), 3),
                             "time_s": round(t_ms / 1000, 2), "n": len(self.detections),
                             "session": self.session}

    def _capture_time(self, position: float) -> float | None:
        if self._clock_offset is None:
            return None
        return self._clock_offset + position * 1000 / SAMPLE_RATE

    def capture_time(self, position: float) -> float | None:
        """Page-clock time (ms) when the audio at 16 kHz stream ``position`` was captured (None
        for audio fed from Python without ``capture_ms``).

        The samples' own clock, anchored to the page clock by the chunk that reached the page
        soonest after it was complete: a chunk the busy page handled late does not move it.

        >>> mic = Microphone()
        >>> for k in range(3):  # chunk k complete at 1100 + 100 k ms; the last one late
        ...     mic.feed(np.zeros(1600, np.float32), 16000,
        ...              capture_ms=1100 + 100 * k + 40 * (k == 2))
        >>> mic.capture_time(1600), mic.capture_time(4800)
        (1100.0, 1300.0)
        """
        return self._capture_time(position)

    # ---- status -------------------------------------------------------------------------------

    def _update_status(self) -> None:
        parts = []
        if self.error:
            parts.append(self.error.split(". ")[0] + " (see above)")
        heard = self.heard
        if self.stream_model is not None:
            if heard is not None:
                d = heard.detection
                parts.append(f'heard "{d.label}" ({d.score:.2f}) at {d.time_ms / 1000:.1f} s')
            elif self._total:
                parts.append("heard nothing yet")
            else:
                words = [w for w in self.labels if not w.startswith("_")]
                shown = ", ".join(words[:4]) + (", ..." if len(words) > 4 else "")
                parts.append(f"live view of {self.stream_model.name} ({shown}): no audio yet, "
                             "press Listen")
        if self._total:
            rate = f" at {self.rate:g} Hz" if self.rate else ""
            state = "recording" if self._capturing else "recorded"
            parts.append(f"{state} {self.seconds:.1f} s{rate}")
        elif self.stream_model is None:
            parts.append("recorder: no audio yet, press Record")
        if self.saved:
            parts.append(f"saved {len(self.saved)} clip{'s' * (len(self.saved) != 1)}, last "
                         f"{self.saved[-1].parent.name}/{self.saved[-1].name}")
        self.widget.status = " · ".join(parts)
        if self.error:
            parts[0] = self.error
        self.widget.text = " · ".join(parts)

    # ---- messages from the browser --------------------------------------------------------

    def _on_msg(self, _widget: Any, content: Any, buffers: Sequence[Any]) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "chunk":
            if not buffers:
                return
            if not self._browser_open:  # after a stop the kernel asked for: not this session
                self.dropped_chunks += 1
                return
            samples = np.frombuffer(bytes(buffers[0]), dtype=np.float32)
            rate = float(content.get("rate") or SAMPLE_RATE)
            frame = content.get("frame")
            if isinstance(frame, (int, float)):  # the audio clock's sample count: any holes?
                expected = self._next_browser_frame
                if expected is not None and frame != expected:
                    # A busy machine can make the browser's audio thread skip: the audio is
                    # lost, but silence in its place keeps the stream's times right.
                    self.frame_gaps += 1
                    missing = int(frame - expected)
                    if 0 < missing <= 5 * rate:
                        self.missing_frames += missing
                        self.feed(np.zeros(missing, np.float32), rate)
                self._next_browser_frame = frame + len(samples)
            self.feed(samples, rate, capture_ms=content.get("t"))
        elif kind == "start":
            seconds = content.get("seconds")
            self._begin(seconds)
            self._browser_open = True
            self.how = content.get("how", "")
            self.device = content.get("device", "")
            self._update_status()
        elif kind == "stop":
            self._browser_open = False
            if self._capturing:
                self.stop()
        elif kind == "error":
            self.error = microphone_problem(str(content.get("name") or "Error"),
                                            str(content.get("message") or ""),
                                            content.get("secure", True))
            self.widget.error = self.error
            self._capturing = self._browser_open = False
            self._update_status()
        elif kind == "save":
            try:
                self.save_clip()
            except ValueError as err:
                self.widget.error = str(err)
        elif kind == "shown":
            n = content.get("n")
            if (content.get("session") == self.session and isinstance(n, int)
                    and 1 <= n <= len(self.detections)):
                self.detections[n - 1].shown_ms = content.get("t")

    # ---- saving ------------------------------------------------------------------------------

    def save_clip(self, word: str | None = None, folder: str | os.PathLike | None = None,
                  clip: np.ndarray | None = None) -> Path:
        """Save the last recording (or ``clip``, 16 kHz) as a 1 s clip of ``word`` in
        ``folder``: ``<folder>/<word>/<speaker_id>_nohash_<n>.wav``, 16-bit, the loudest second
        of the recording (a shorter one centred in silence). Returns the path.

        >>> mic = recorder("my_data", word="yes")  # doctest: +SKIP
        >>> mic.record(samples, 48000); mic.save_clip()  # doctest: +SKIP
        PosixPath('my_data/yes/3f9c02ab_nohash_0.wav')
        """
        word = (word if word is not None else self.word).strip()
        folder = Path(folder) if folder is not None else self.folder
        if folder is None:
            raise ValueError("save_clip: give a folder (recorder(folder=...) or "
                             "save_clip(word, folder))")
        if not word:
            raise ValueError("save_clip: type the word the clip holds first")
        if not _WORD.match(word) or word.startswith("_background"):
            raise ValueError(f"save_clip: {word!r} cannot be a word folder (use letters, digits, "
                             "- and _, not starting with _ or a dot)")
        if clip is None:
            clip = self.clip if self.clip is not None and not self._capturing else self.audio
        clip = np.asarray(clip, np.float32).reshape(-1)
        if clip.size == 0:
            raise ValueError("save_clip: nothing recorded yet: press Record, say the word, "
                             "press Stop")
        peak = float(np.abs(clip).max())
        if peak < 1e-3:
            raise ValueError(f"save_clip: the recording is silent (peak {peak:.1e}); check the "
                             "microphone (and its volume) and record again")
        one = loudest_second(clip, SAMPLE_RATE)
        target = folder / word
        target.mkdir(parents=True, exist_ok=True)
        sid = self.speaker_id
        used = [int(m.group(1)) for p in target.glob(f"{sid}_nohash_*.wav")
                if (m := re.fullmatch(rf"{sid}_nohash_(\d+)\.wav", p.name))]
        path = target / f"{sid}_nohash_{max(used, default=-1) + 1}.wav"
        write_wav(path, one, SAMPLE_RATE)
        self.saved.append(path)
        self.widget.error = ""
        self._update_status()
        return path


def _stream_model(model: Any) -> StreamModel:
    from kwlesson.streaming import keras_stream_model

    if isinstance(model, StreamModel):
        return model
    if all(hasattr(model, name) for name in ("model", "labels", "settings")):
        name = getattr(getattr(model, "config", None), "model_architecture", "") or "model"
        return keras_stream_model(model.model, model.labels, model.settings, name=name)
    raise TypeError("model must be a trained model (with .model, .labels and .settings, as "
                    f"train() returns) or a StreamModel, not {type(model).__name__}")


def recorder(folder: str | os.PathLike | None = None, word: str = "", **options: Any
             ) -> Microphone:
    """A microphone recorder that saves 1 s clips of ``word`` into ``folder`` under a speaker id
    of its own (see :class:`Microphone`; ``split="training"`` keeps your clips in training).
    Introduced in notebook 09.

    >>> rec = recorder("my_words", word="banana")  # doctest: +SKIP
    >>> rec  # press Record, say "banana", press Stop, then Save clip  # doctest: +SKIP
    """
    return Microphone(None, folder=folder, word=word, **options)


def live_view(model: Any, **options: Any) -> Microphone:
    """A live view of ``model`` listening to the microphone: rolling features, label scores and
    the word heard (RecognizeCommands; its settings are options). Introduced in notebook 08.

    >>> view = live_view(kw.quick_model(), detection_threshold=0.7)  # doctest: +SKIP
    >>> view.feed(samples, 48000); print(view)  # doctest: +SKIP
    heard "yes" (0.93) at 3.2 s · recording 4.0 s at 48000 Hz
    """
    return Microphone(model, **options)
