"""The lessons' panels: sliders and buttons that redraw as you move them, in a notebook.

- :class:`SpectrogramExplorer` (:func:`spectrogram_explorer`, notebook 01): window size, stride
  and bins over one clip's features, and the size of the model input they give;
- :class:`StreamingTuner` (:func:`streaming_tuner`, notebook 08): RecognizeCommands' averaging
  window, threshold, suppression and minimum count over a stream's precomputed scores, with the
  detections, the ground truth and the accuracy line;
- :class:`KeywordUploader` (:func:`upload_and_label`, notebook 09): label a recording you
  upload with a trained model.

Lesson 03's training dashboard (:mod:`kwlesson.dashboard`) and lesson 05's what-if panel
(:mod:`kwlesson.what_if`) are made of the same pieces, defined here; the microphone's recorder
and live view (lessons 08 and 09) are in :mod:`kwlesson.microphone`.

Every panel keeps its widgets in ``panel.widget``: display the panel (or its widget) in a cell.
Its text form is fixed (``SpectrogramExplorer(...)`` and so on, :class:`FixedRepr` and
:class:`FixedReprBox`), so a saved notebook's output is the same on every run for nbval. The
pictures are drawn by matplotlib's Agg renderer into ``ipywidgets.Image`` (PNG bytes,
:class:`Picture`), so the panels need nothing in JupyterLab 4 beyond ipywidgets. A callback
that fails (a slider moved in the browser) shows its traceback under the panel instead of in
JupyterLab's log console.

>>> import numpy as np
>>> from kwlesson.widgets import spectrogram_explorer
>>> ex = spectrogram_explorer(np.zeros(16000, np.float32))
>>> ex
SpectrogramExplorer(...)
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import ipywidgets as widgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kwlesson import plots
from kwlesson.audio import fit_length
from kwlesson.features import MFCC_MEL_BINS, FeatureSettings, compute_features

__all__ = [
    "EXPLORER_REPR",
    "TUNER_REPR",
    "UPLOADER_REPR",
    "FixedRepr",
    "FixedReprBox",
    "KeywordUploader",
    "Picture",
    "SpectrogramExplorer",
    "StreamingTuner",
    "spectrogram_explorer",
    "streaming_tuner",
    "upload_and_label",
]


# --------------------------------------------------------------------------------------------
# What every panel (and the dashboard, the what-if panel) is made of

class FixedReprBox(widgets.VBox):
    """A VBox whose text form is always ``repr_text`` (the default lists every child's state,
    which changes from run to run; a saved notebook's outputs must not)."""

    def __init__(self, children: Sequence[widgets.Widget] = (), *, repr_text: str,
                 **kwargs: Any) -> None:
        super().__init__(children, **kwargs)
        self.repr_text = repr_text

    def __repr__(self) -> str:
        return self.repr_text


class FixedRepr:
    """For a panel that keeps its widgets in ``self.widget``: its text form is the class's
    ``REPR``, the same on every run (nbval compares it), and displaying the panel in a notebook
    shows ``self.widget``."""

    REPR: ClassVar[str]
    widget: widgets.Widget

    def __repr__(self) -> str:
        return self.REPR

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return self.widget._repr_mimebundle_(**kwargs)


class Picture:
    """An off-screen figure with its own Agg canvas, drawn to PNG bytes.

    Never registered with pyplot, so a notebook does not collect (or auto-display) it, and
    it can be drawn from the training thread.
    """

    def __init__(self, figsize: tuple[float, float], dpi: float) -> None:
        self.figure = Figure(figsize=figsize, dpi=dpi)
        self.canvas = FigureCanvasAgg(self.figure)
        self._background: Any = None
        self._key: Any = None

    def png(self) -> bytes:
        """Draw everything."""
        self.canvas.draw()
        self._background = None
        return self._encode()

    def png_blit(self, artists: list[Any]) -> bytes:
        """Draw only ``artists`` over a cached picture of the rest (axes, ticks, labels), which
        is redrawn only when an axis range or the layout changed: a few ms instead of ~50."""
        key = tuple((ax.get_xlim(), ax.get_ylim(), tuple(ax.get_position().bounds))
                    for ax in self.figure.axes)
        if self._background is None or key != self._key:
            for artist in artists:
                artist.set_animated(True)  # left out of canvas.draw(), drawn below
            self.canvas.draw()
            self._background = self.canvas.copy_from_bbox(self.figure.bbox)
            self._key = key
        else:
            self.canvas.restore_region(self._background)
        for artist in artists:
            artist.axes.draw_artist(artist)
        return self._encode()

    def _encode(self) -> bytes:
        from PIL import Image  # pillow comes with matplotlib

        size = self.canvas.get_width_height(physical=True)
        rgba = Image.frombuffer("RGBA", size, self.canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        buf = io.BytesIO()
        # Level 1: several times quicker than the default, a few % larger.
        rgba.convert("RGB").save(buf, format="png", compress_level=1)
        return buf.getvalue()


def _errors_area() -> widgets.Output:
    """Where a widget shows the traceback of one of its own callbacks; hidden until then."""
    return widgets.Output(layout=widgets.Layout(display="none"))


def _showing_errors(area: widgets.Output, callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback``, except that an exception in it is shown in ``area``, under the widget.

    A slider's callback runs when the browser sends a message, not in a cell, so JupyterLab
    puts its traceback in the log console, where nobody looks: the picture just stops
    following the slider. Outside a kernel the exception propagates as usual.
    """

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except Exception:
            area.clear_output()
            area.layout.display = None
            with area:  # in a kernel: shows the traceback in the area and swallows it
                raise
            return None

    return run


# --------------------------------------------------------------------------------------------
# Notebook 01: window, stride and bins, and the input size they give the model

#: The explorer's text form, the same on every run (nbval compares it).
EXPLORER_REPR = "SpectrogramExplorer(...)"
#: Feature types the explorer offers (the 'average' preprocess is taught later; 'micro' is
#: the front end a microcontroller computes, lessons 06-07).
EXPLORER_PREPROCESS = ("mfcc", "log_mel", "spectrogram", "micro")


class SpectrogramExplorer(FixedRepr):
    """Sliders for window size, stride and bins that redraw a clip's features ("image") and
    show the size of the model's input, ``FeatureSettings.shape``.

    The features come from :func:`kwlesson.features.compute_features`, the code training uses.
    The picture has two panels: the waveform with the first three windows shaded (so you see
    the window and the stride), and the features with time to the right and bins upwards.
    Controls, to move by hand or from code: ``window_slider`` and ``stride_slider`` (ms),
    ``bins_slider``, ``preprocess_buttons``; results: ``shape_label`` (text), ``image`` (PNG
    bytes in ``image.value``), ``settings``, ``features`` and ``renders`` (redraw count);
    ``errors`` shows the traceback if a redraw fails. Display the explorer (or
    ``explorer.widget``) in a cell.

    Introduced in notebook 01.

    >>> ex = SpectrogramExplorer(np.zeros(16000, np.float32))
    >>> ex.shape_label.value
    'model input: 98 frames x 40 bins = 3,920 numbers · frames = 1 + (16000 - 480) // 160'
    >>> ex.window_slider.value = 40
    >>> ex.settings.shape
    (97, 40)
    """

    REPR = EXPLORER_REPR

    def __init__(self, clip: np.ndarray, *, window_ms: int = 30, stride_ms: int = 10,
                 bins: int = 40, preprocess: str = "mfcc", sample_rate: int = 16000,
                 dpi: float = 72) -> None:
        clip = np.asarray(clip, np.float32)
        if clip.ndim != 1 or clip.size == 0:
            raise ValueError(f"the explorer needs one mono clip [samples], not shape {clip.shape}")
        if preprocess not in EXPLORER_PREPROCESS:
            raise ValueError(f"preprocess must be one of {', '.join(EXPLORER_PREPROCESS)}, "
                             f"not {preprocess!r}")
        self.sample_rate = int(sample_rate)
        # The model always sees one clip's worth of samples: pad or trim as training does.
        self.clip = fit_length(clip, FeatureSettings(sample_rate=self.sample_rate).desired_samples)
        self.features: np.ndarray | None = None
        self.renders = 0
        self._picture = Picture((8, 4.4), dpi)
        def slider(description: str, value: int, low: int, high: int, step: int) -> Any:
            # continuous_update=False: redraw when the handle is released, not at every pixel.
            return widgets.IntSlider(value=value, min=low, max=high, step=step,
                                     description=description, continuous_update=False,
                                     style={"description_width": "90px"},
                                     layout=widgets.Layout(width="420px"))

        self.window_slider = slider("window (ms)", window_ms, 10, 100, 5)
        self.stride_slider = slider("stride (ms)", stride_ms, 5, 50, 5)
        self.bins_slider = slider("bins", bins, 4, MFCC_MEL_BINS, 1)
        self.preprocess_buttons = widgets.ToggleButtons(options=list(EXPLORER_PREPROCESS),
                                                        value=preprocess, description="features")
        self.shape_label = widgets.Label()
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.errors = _errors_area()
        for control in (self.window_slider, self.stride_slider, self.bins_slider,
                        self.preprocess_buttons):
            control.observe(_showing_errors(self.errors, lambda _change: self.redraw()),
                            names="value")
        self.widget = FixedReprBox([self.preprocess_buttons, self.window_slider,
                                    self.stride_slider, self.bins_slider, self.shape_label,
                                    self.image, self.errors], repr_text=self.REPR)
        self.redraw()

    @property
    def settings(self) -> FeatureSettings:
        """The feature settings the controls describe now."""
        return FeatureSettings(sample_rate=self.sample_rate,
                               window_size_ms=float(self.window_slider.value),
                               window_stride_ms=float(self.stride_slider.value),
                               feature_bin_count=int(self.bins_slider.value),
                               preprocess=self.preprocess_buttons.value)

    def describe(self) -> str:
        """The text of ``shape_label`` for the current settings."""
        s = self.settings
        frames, bins = s.shape
        text = (f"model input: {frames} frames x {bins} bins = {frames * bins:,} numbers · "
                f"frames = 1 + ({s.desired_samples} - {s.window_size_samples}) // "
                f"{s.window_stride_samples}")
        if s.preprocess == "spectrogram":
            text += f" · bins = {s.fft_length} // 2 + 1 (set by the window)"
        if s.preprocess == "micro":
            text += " · bins = mel channels of a microcontroller's own front end"
        if s.window_stride_samples > s.window_size_samples:
            text += " · stride longer than window: some samples are never looked at"
        return text

    def redraw(self) -> None:
        """Recompute the features, redraw the picture and update the label."""
        s = self.settings
        # A spectrogram's bins come from the window's FFT, so the bins slider has no say there.
        self.bins_slider.disabled = s.preprocess == "spectrogram"
        self.features = compute_features(self.clip, s).numpy()
        self.shape_label.value = self.describe()
        self.image.value = self._draw(s)
        self.renders += 1

    def _draw(self, s: FeatureSettings) -> bytes:
        fig = self._picture.figure
        fig.clear()
        ax_wave, ax_feat = fig.subplots(2, 1, height_ratios=[1, 2])
        seconds = np.arange(self.clip.size) / self.sample_rate
        ax_wave.plot(seconds, self.clip, linewidth=0.5, color="0.3")
        for k, color in enumerate(("tab:orange", "tab:green", "tab:blue")):
            start = k * s.window_stride_samples / self.sample_rate
            ax_wave.axvspan(start, start + s.window_size_samples / self.sample_rate,
                            color=color, alpha=0.35, lw=0)
        ax_wave.set(xlim=(0, self.clip.size / self.sample_rate), ylim=(-1, 1),
                    xlabel="time (s)", ylabel="amplitude",
                    title=f"first three windows: {s.window_size_ms:g} ms long, "
                          f"every {s.window_stride_ms:g} ms")
        image, low, high = self.features, None, None
        if s.preprocess == "spectrogram":
            # Magnitudes span orders of magnitude: draw their log, the top ~90 dB of it.
            image = np.log(image + 1e-6)
            low = image.max() - 10.0
        elif s.preprocess == "mfcc" and image.shape[1] > 1:
            # Coefficient 0 (overall loudness) dwarfs the others: colour by their range.
            low, high = np.percentile(image[:, 1:], [1, 99])
        ax_feat.imshow(image.T, origin="lower", aspect="auto", cmap="magma",
                       interpolation="nearest", vmin=low, vmax=high)
        frames, bins = s.shape
        ax_feat.set(xlabel="frame", ylabel="bin",
                    title=f"{s.preprocess}: {frames} frames x {bins} bins")
        fig.tight_layout()
        return self._picture.png()


def spectrogram_explorer(clip: np.ndarray, **options: Any) -> SpectrogramExplorer:
    """Sliders for window size, stride and bins over ``clip``'s features; see
    :class:`SpectrogramExplorer` for the options and attributes. Introduced in notebook 01.

    >>> ex = spectrogram_explorer(np.zeros(16000, np.float32))
    >>> ex.stride_slider.value = 20
    >>> ex.settings.shape
    (49, 40)
    """
    return SpectrogramExplorer(clip, **options)


# --------------------------------------------------------------------------------------------
# Notebook 08: tune RecognizeCommands on a stream's precomputed scores

#: The tuner's text form, the same on every run (nbval compares it).
TUNER_REPR = "StreamingTuner(...)"


class StreamingTuner(FixedRepr):
    """Sliders for RecognizeCommands' averaging window, detection threshold, suppression time
    and minimum count over a stream's precomputed scores.

    The model ran once (:func:`kwlesson.streaming.stream_scores`); moving a slider re-runs only
    the cheap part, :func:`kwlesson.streaming.recognize_scores` (milliseconds), then redraws the
    scores with the detections and ground truth (:func:`kwlesson.plots.stream_figure`) and the
    accuracy line (:meth:`kwlesson.streaming.StreamingAccuracyStats.summary`).

    Controls, to move by hand or from code: ``average_slider`` (ms), ``threshold_slider``,
    ``suppression_slider`` (ms), ``minimum_count_slider``, ``view_slider`` (the first second
    shown). Results: ``detections``, ``stats``, ``accuracy`` (its text), ``image`` (PNG bytes in
    ``image.value``), ``renders``; ``errors`` shows the traceback if an update fails. Display
    the tuner (or ``tuner.widget``) in a cell.

    Introduced in notebook 08.

    >>> times = np.arange(0, 3000, 30)
    >>> scores = np.tile([0.0, 1.0], (len(times), 1))
    >>> tuner = StreamingTuner(times, scores, ["_silence_", "yes"], [("yes", 0)])
    >>> tuner.stats.how_many_correct_words
    1
    >>> tuner.threshold_slider.value = 1.0
    >>> tuner.detections
    []
    """

    REPR = TUNER_REPR

    def __init__(self, times_ms: Any, scores: np.ndarray, labels: Any, ground_truth: Any, *,
                 average_window_ms: int = 500, detection_threshold: float = 0.7,
                 suppression_ms: int = 1500, minimum_count: int = 3,
                 time_tolerance_ms: float = 750, span_s: float = 30, dpi: float = 72) -> None:
        self.times_ms = np.asarray(times_ms, np.int64).reshape(-1)
        self.scores = np.asarray(scores, np.float32)
        self.labels = list(labels)
        self.ground_truth = sorted(((str(lab), float(t)) for lab, t in ground_truth),
                                   key=lambda item: item[1])
        self.time_tolerance_ms = float(time_tolerance_ms)
        self.span_s = float(span_s)
        if self.scores.shape != (len(self.times_ms), len(self.labels)):
            raise ValueError(f"scores must be [{len(self.times_ms)} windows, {len(self.labels)} "
                             f"labels], got shape {self.scores.shape}")
        self.detections: list[Any] = []
        self.stats: Any = None
        self.renders = 0
        self._picture = Picture((10, 3.4), dpi)
        style = {"description_width": "150px"}
        box = widgets.Layout(width="460px")
        # continuous_update=False: recompute when the handle is released, not at every pixel.
        self.average_slider = widgets.IntSlider(
            value=average_window_ms, min=30, max=2000, step=30, description="averaging (ms)",
            continuous_update=False, style=style, layout=box)
        self.threshold_slider = widgets.FloatSlider(
            value=detection_threshold, min=0.0, max=1.0, step=0.05, readout_format=".2f",
            description="threshold", continuous_update=False, style=style, layout=box)
        self.suppression_slider = widgets.IntSlider(
            value=suppression_ms, min=0, max=3000, step=100, description="suppression (ms)",
            continuous_update=False, style=style, layout=box)
        self.minimum_count_slider = widgets.IntSlider(
            value=minimum_count, min=1, max=20, step=1, description="minimum count",
            continuous_update=False, style=style, layout=box)
        duration_s = float(self.times_ms[-1]) / 1000 + 1 if len(self.times_ms) else 1.0
        self.view_slider = widgets.FloatSlider(
            value=0.0, min=0.0, max=max(duration_s - self.span_s, 0.0), step=1.0,
            description="view from (s)", continuous_update=False, style=style, layout=box)
        self.accuracy = widgets.Label()
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.errors = _errors_area()
        for control in (self.average_slider, self.threshold_slider, self.suppression_slider,
                        self.minimum_count_slider):
            control.observe(_showing_errors(self.errors, lambda _change: self.update()),
                            names="value")
        self.view_slider.observe(_showing_errors(self.errors, lambda _change: self.redraw()),
                                 names="value")
        controls = widgets.HBox([
            widgets.VBox([self.average_slider, self.threshold_slider]),
            widgets.VBox([self.suppression_slider, self.minimum_count_slider])])
        self.widget = FixedReprBox([controls, self.view_slider, self.accuracy, self.image,
                                    self.errors], repr_text=self.REPR)
        self.update()

    def recognize(self) -> list[Any]:
        """The detections for the sliders' settings (no redraw)."""
        from kwlesson.streaming import recognize_scores

        return recognize_scores(
            self.times_ms, self.scores, self.labels,
            average_window_duration_ms=self.average_slider.value,
            detection_threshold=self.threshold_slider.value,
            suppression_ms=self.suppression_slider.value,
            minimum_count=self.minimum_count_slider.value)

    def update(self) -> None:
        """Re-run RecognizeCommands on the scores, recount, redraw."""
        from kwlesson.streaming_test import calculate_accuracy_stats

        self.detections = self.recognize()
        self.stats = calculate_accuracy_stats(self.ground_truth, self.detections, None,
                                              self.time_tolerance_ms)
        self.accuracy.value = f"{len(self.detections)} detections · {self.stats.summary()}"
        self.redraw()

    def redraw(self) -> None:
        """Redraw the picture for the current detections and view."""
        plots.stream_figure(self.times_ms, self.scores, self.labels, self.ground_truth,
                            self.detections, average_window_ms=self.average_slider.value,
                            detection_threshold=self.threshold_slider.value,
                            start_s=self.view_slider.value, span_s=self.span_s,
                            time_tolerance_ms=self.time_tolerance_ms, fig=self._picture.figure)
        self.image.value = self._picture.png()
        self.renders += 1


def streaming_tuner(times_ms: Any, scores: np.ndarray, labels: Any, ground_truth: Any,
                    **options: Any) -> StreamingTuner:
    """Sliders for averaging window, threshold, suppression and minimum count over a stream's
    scores (from :func:`kwlesson.streaming.stream_scores`); see :class:`StreamingTuner`.
    Introduced in notebook 08.

    >>> times = np.arange(0, 3000, 30)
    >>> tuner = streaming_tuner(times, np.tile([0.0, 1.0], (len(times), 1)),
    ...                         ["_silence_", "yes"], [("yes", 0)])
    >>> tuner.accuracy.value.split(" · ")[0]
    '1 detections'
    """
    return StreamingTuner(times_ms, scores, labels, ground_truth, **options)


# --------------------------------------------------------------------------------------------
# Notebook 09: label a recording the student uploads

#: The uploader's text form, the same on every run (nbval compares it).
UPLOADER_REPR = "KeywordUploader(...)"


class KeywordUploader(FixedRepr):
    """An upload button that labels the wav (or flac) you give it with a trained model.

    Any rate, width or channel count is read (resampled to the model's rate, mixed to mono).
    A clip of 1 s or less is padded and scored once; a longer one is cut into 1 s windows every
    100 ms and each window gets its top label. The answer is a keyword if some window's top label
    is one (the window where it is surest), else ``_unknown_`` if some window hears an unknown
    word, else ``_silence_``: a wake word said anywhere in the recording counts. A file that is
    not audio gives a message naming it, not a traceback.

    Controls: ``upload`` (an ``ipywidgets.FileUpload``; :meth:`simulate_upload` feeds it bytes
    from code, as the browser would). Results: ``result`` (a Label with the answer), ``label``,
    ``score``, ``time_ms`` (start of the chosen window), ``scores`` (label -> probability in that
    window), ``audio`` (the samples read), ``error``.

    ``model``: what :func:`kwlesson.training.train` or ``load_trained`` returns (anything with
    ``model``, ``labels`` and ``settings``), or a :class:`kwlesson.streaming.StreamModel`.

    Introduced in notebook 09.

    >>> up = upload_and_label(kw.quick_model())  # doctest: +SKIP
    >>> up.simulate_upload("yes.wav", open("yes.wav", "rb").read())  # doctest: +SKIP
    >>> up.label  # doctest: +SKIP
    'yes'
    """

    REPR = UPLOADER_REPR

    def __init__(self, model: Any, *, stride_ms: float = 100) -> None:
        from kwlesson.streaming import StreamModel, keras_stream_model

        if isinstance(model, StreamModel):
            self.stream_model = model
        elif all(hasattr(model, name) for name in ("model", "labels", "settings")):
            self.stream_model = keras_stream_model(model.model, model.labels, model.settings)
        else:
            raise TypeError("model must be a trained model (with .model, .labels and .settings, "
                            f"as train() returns) or a StreamModel, not {type(model).__name__}")
        self.stride_ms = float(stride_ms)
        self.labels = list(self.stream_model.labels)
        self.label: str | None = None
        self.score: float | None = None
        self.time_ms: int | None = None
        self.scores: dict[str, float] = {}
        self.audio: np.ndarray | None = None
        self.error: str | None = None
        self.name: str | None = None
        self.upload = widgets.FileUpload(accept=".wav,.flac,audio/*", multiple=False,
                                         description="Upload a wav")
        self.result = widgets.Label("upload a recording of one word (a wav, about 1 s)")
        self.errors = _errors_area()
        self.upload.observe(_showing_errors(self.errors, self._on_upload), names="value")
        self.widget = FixedReprBox([self.upload, self.result, self.errors],
                                   repr_text=self.REPR)

    def simulate_upload(self, name: str, data: bytes) -> None:
        """Put ``data`` in the upload button as if a file called ``name`` had been chosen."""
        import datetime as dt

        entry = {"name": name, "type": "audio/wav", "size": len(data),
                 "content": memoryview(bytes(data)),
                 "last_modified": dt.datetime.now(dt.UTC)}
        self.upload.value = (entry,)

    def _on_upload(self, change: dict[str, Any]) -> None:
        files = change["new"]
        if not files:  # our own clearing below
            return
        entry = files[0]
        self.label_bytes(entry["name"], bytes(entry["content"]))
        # Forget the bytes once labelled: the file need not travel back and forth (or be saved
        # in the notebook).
        self.upload.value = ()

    def label_bytes(self, name: str, data: bytes) -> str | None:
        """Label the audio in ``data`` (the bytes of a file called ``name``); returns the label,
        or None when the file could not be read (``error`` and ``result`` then say why)."""
        import os
        import tempfile

        from kwlesson.audio import AudioError, read_wav
        from kwlesson.streaming import stream_scores

        self.name = name
        self.label = self.score = self.time_ms = self.audio = self.error = None
        self.scores = {}
        suffix = Path(name).suffix.lower() or ".wav"
        fd, tmp = tempfile.mkstemp(suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            audio = read_wav(tmp, sample_rate=self.stream_model.sample_rate)
        except AudioError as err:
            # The message names the temporary copy: name the file the student chose instead.
            self.error = str(err).replace(tmp, name)
            self.result.value = f"{name}: could not read it as audio ({self.error})"
            return None
        finally:
            os.unlink(tmp)
        if audio.size == 0:
            self.error = f"{name}: the recording is empty"
            self.result.value = self.error
            return None
        self.audio = audio
        times, scores = stream_scores(audio, self.stream_model,
                                      sample_rate=self.stream_model.sample_rate,
                                      clip_stride_ms=self.stride_ms)
        top = scores.argmax(axis=1)
        top_labels = np.array([self.labels[k] for k in top])
        keyword = np.flatnonzero(~np.isin(top_labels, ["_silence_", "_unknown_"]))
        unknown = np.flatnonzero(top_labels == "_unknown_")
        pool = keyword if len(keyword) else unknown if len(unknown) else np.arange(len(top))
        best = int(pool[np.argmax(scores[pool, top[pool]])])
        self.label = self.labels[int(top[best])]
        self.score = float(scores[best, top[best]])
        self.time_ms = int(times[best])
        self.scores = {lab: float(s) for lab, s in zip(self.labels, scores[best])}
        where = f" in the window at {self.time_ms / 1000:.1f} s" if len(times) > 1 else ""
        self.result.value = (f"{name}: {self.label} (probability {self.score:.2f}{where}, "
                             f"{audio.size / self.stream_model.sample_rate:.1f} s of audio)")
        return self.label


def upload_and_label(model: Any, **options: Any) -> KeywordUploader:
    """An upload button that labels the recording you give it with ``model``; see
    :class:`KeywordUploader`. Introduced in notebook 09.

    >>> up = upload_and_label(result)  # doctest: +SKIP
    >>> up  # doctest: +SKIP
    KeywordUploader(...)
    """
    return KeywordUploader(model, **options)
