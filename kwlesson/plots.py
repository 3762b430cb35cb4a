"""Plots the notebooks reuse: confusion matrix, training curves, waveform, spectrogram and a
stream's scores over time.

Every function returns a matplotlib :class:`~matplotlib.figure.Figure` and never calls
``plt.show()``: end your cell with ``plt.show()`` (house style), or save the figure with
``fig.savefig("spectrogram.png")`` as the seed's ``wav_to_spectrogram`` tool did.

Pass ``fig=`` to draw into a figure you own (it is cleared first). Without it a new pyplot
figure is made, so ``plt.show()`` displays it in a notebook. The training dashboard
(:mod:`kwlesson.dashboard`) passes its own off-screen figure, redrawn again and again, so the
notebook never collects a pile of figures.

Only the faces (dashboard, widgets, what_if, plots, checks, cli) import matplotlib; this
module needs numpy and matplotlib alone (no TensorFlow), so plotting a wav is quick.

Introduced in notebook 01 (waveform, spectrogram), notebook 03 (curves, confusion matrix) and
notebook 08 (a stream's scores, ground truth and detections).

>>> import numpy as np
>>> from kwlesson import plots
>>> fig = plots.confusion_matrix(np.array([[5, 1], [2, 7]]), ["_silence_", "yes"])
>>> fig.axes[0].get_ylabel()
'true label'
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "confusion_matrix",
    "figure_png",
    "network_figure",
    "speech_systems_figure",
    "smooth",
    "spectrogram",
    "stream_figure",
    "training_curves",
    "waveform",
]

#: Colours of the curves: training (blue), its smoothed line, validation (orange).
TRAIN_COLOR = "#1f77b4"
VALIDATION_COLOR = "#ff7f0e"


def _new_figure(fig: Figure | None, figsize: tuple[float, float]) -> Figure:
    """``fig`` cleared, or a new pyplot figure (so that ``plt.show()`` displays it)."""
    if fig is not None:
        fig.clear()
        fig.__dict__.pop("_kwlesson_curves", None)  # its lines are gone with the axes
        return fig
    import matplotlib.pyplot as plt  # only here: the dashboard's own figures never touch pyplot

    return plt.figure(figsize=figsize)


def figure_png(fig: Figure, dpi: float | None = None, compress_level: int = 6) -> bytes:
    """The figure as PNG bytes, rendered by Agg whatever backend pyplot uses.

    ``compress_level`` 1 encodes several times faster than the default 6, for slightly
    larger bytes (the dashboard uses it).

    >>> figure_png(waveform(np.zeros(160)))[:4]
    b'\\x89PNG'
    """
    buf = io.BytesIO()
    # savefig picks Agg for "png" whatever canvas the figure has, and leaves that canvas alone.
    fig.savefig(buf, format="png", dpi=dpi if dpi is not None else "figure",
                pil_kwargs={"compress_level": compress_level})
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Confusion matrix

def confusion_matrix(confusion: np.ndarray, labels: Sequence[str] | None = None, *,
                     normalize: bool = True, counts: bool | None = None,
                     title: str | None = None, fig: Figure | None = None) -> Figure:
    """The confusion matrix as a heatmap: rows are the true labels, columns the predictions.

    Labels keep the order training uses: silence, unknown, then the words. With
    ``normalize`` each cell is shaded by its share of its row (the true label), so a rare
    class stays as visible as a common one; the numbers written in the cells are the counts
    (``counts``: default when there are at most 16 labels).

    >>> cm = np.array([[258, 0, 0], [7, 6, 26], [10, 1, 107]])
    >>> fig = confusion_matrix(cm, ["_silence_", "_unknown_", "yes"], title="Step 400")
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
    ['_silence_', '_unknown_', 'yes']
    """
    m = np.asarray(confusion)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"confusion must be a square matrix, not shape {m.shape}")
    n = m.shape[0]
    names = [str(i) for i in range(n)] if labels is None else [str(s) for s in labels]
    if len(names) != n:
        raise ValueError(f"{len(names)} labels for a {n}x{n} confusion matrix")
    rows = m.sum(axis=1, keepdims=True).astype(np.float64)
    share = np.divide(m, rows, out=np.zeros(m.shape), where=rows > 0) if normalize else m
    size = max(3.0, 0.42 * n + 1.6)
    fig = _new_figure(fig, (size + 0.8, size))
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1 if normalize else None,
                      interpolation="nearest")
    cbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("share of the row" if normalize else "clips")
    ax.set_xticks(range(n), names, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    if counts is None:
        counts = n <= 16
    if counts:
        # White numbers on the darker half of the colour scale, black on the lighter half.
        top = 1.0 if normalize else float(share.max()) if share.size else 0.0
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    dark = top > 0 and share[i, j] > 0.5 * top
                    ax.text(j, i, str(int(m[i, j])), ha="center", va="center",
                            fontsize=8 if n > 8 else 10, color="white" if dark else "black")
    total = int(m.sum())
    right = int(np.trace(m))
    acc = f"accuracy {100 * right / total:.1f}% (N={total})" if total else "no clips"
    ax.set_title(f"{title}: {acc}" if title else acc)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Training curves

def smooth(values: Sequence[float], weight: float = 0.9) -> np.ndarray:
    """Exponential moving average with bias correction (TensorBoard's smoothing slider).

    >>> smooth([1.0, 1.0, 1.0]).tolist()
    [1.0, 1.0, 1.0]
    """
    x = np.asarray(values, np.float64)
    out = np.empty_like(x)
    acc = 0.0
    for i, v in enumerate(x):
        acc = weight * acc + (1 - weight) * v
        out[i] = acc / (1 - weight ** (i + 1))
    return out


def _thin(steps: np.ndarray, *series: np.ndarray, limit: int) -> tuple[np.ndarray, ...]:
    """At most ``limit`` evenly spaced points (always the last): keeps redraws cheap."""
    if len(steps) <= limit:
        return (steps, *series)
    keep = np.unique(np.linspace(0, len(steps) - 1, limit).round().astype(int))
    return (steps[keep], *(s[keep] for s in series))


def training_curves(steps: Sequence[int], losses: Sequence[float],
                    accuracies: Sequence[float],
                    validation: Sequence[tuple[int, float]] = (), *,
                    total_steps: int | None = None, smoothing: float = 0.9,
                    max_points: int = 600, title: str | None = None,
                    fig: Figure | None = None) -> Figure:
    """Cross entropy (left) and accuracy (right) against the training step.

    Training values are drawn faintly with a smoothed line over them (batches are noisy);
    validation accuracy is drawn as points joined by a line. When training accuracy keeps
    rising and validation accuracy does not, the model is **overfitting**. Accuracies are
    fractions in [0, 1] and shown as percentages. ``total_steps`` fixes the x range, so the
    curves grow from left to right during training.

    Given a ``fig`` this function drew before, it only updates the lines' data (much quicker
    than drawing anew: the live dashboard calls it every second or two).

    >>> fig = training_curves([1, 2, 3], [2.5, 2.3, 2.0], [0.1, 0.2, 0.3], [(3, 0.25)])
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['cross entropy', 'accuracy (%)']
    """
    s = np.asarray(steps, np.float64)
    loss = np.asarray(losses, np.float64)
    acc = np.asarray(accuracies, np.float64)
    if not len(s) == len(loss) == len(acc):
        raise ValueError(f"steps, losses and accuracies differ in length: "
                         f"{len(s)}, {len(loss)}, {len(acc)}")
    val = np.asarray(validation, np.float64).reshape(-1, 2)
    lines = getattr(fig, "_kwlesson_curves", None) if fig is not None else None
    new = lines is None or lines[0].axes not in fig.axes  # e.g. cleared by its owner since
    if new:
        fig, lines = _curves_layout(fig)
    (loss_raw, loss_smooth, acc_raw, acc_smooth, val_line) = lines
    ax_loss, ax_acc = loss_raw.axes, acc_raw.axes
    if len(s):
        # Smooth before thinning, so the smoothed line does not depend on the thinning.
        ts, tl, ta, tls, tas = _thin(s, loss, acc, smooth(loss, smoothing),
                                     smooth(acc, smoothing), limit=max_points)
    else:
        ts = tl = ta = tls = tas = np.zeros(0)
    loss_raw.set_data(ts, tl)
    loss_smooth.set_data(ts, tls)
    acc_raw.set_data(ts, 100 * ta)
    acc_smooth.set_data(ts, 100 * tas)
    val_line.set_data(val[:, 0], 100 * val[:, 1])
    # Fixed ranges (0 to the last step or total_steps, 0 to the largest loss, 0-100 %) change
    # rarely while training runs, so the dashboard can redraw just the lines.
    right = total_steps or (float(s[-1]) if len(s) else 1.0)
    finite = tl[np.isfinite(tl)]
    top = float(finite.max()) * 1.05 if finite.size and finite.max() > 0 else 1.0
    ax_loss.set_xlim(0, right)
    ax_acc.set_xlim(0, right)
    ax_loss.set_ylim(0, top)
    ax_acc.set_ylim(0, 100)
    fig.suptitle(title or "")
    if new:
        fig.tight_layout()
    return fig


def _curves_layout(fig: Figure | None) -> tuple[Figure, tuple]:
    """The two empty panels of :func:`training_curves`, and their lines (kept on the figure)."""
    fig = _new_figure(fig, (10, 3.4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    loss_raw, = ax_loss.plot([], [], color=TRAIN_COLOR, alpha=0.25, lw=0.8)
    loss_smooth, = ax_loss.plot([], [], color=TRAIN_COLOR, lw=1.6, label="training")
    acc_raw, = ax_acc.plot([], [], color=TRAIN_COLOR, alpha=0.25, lw=0.8)
    acc_smooth, = ax_acc.plot([], [], color=TRAIN_COLOR, lw=1.6, label="training")
    val_line, = ax_acc.plot([], [], "o-", color=VALIDATION_COLOR, ms=4, lw=1.4,
                            label="validation")
    ax_loss.set_ylabel("cross entropy")
    ax_acc.set_ylabel("accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    ax_loss.legend(loc="upper right", fontsize=8)
    ax_acc.legend(loc="lower right", fontsize=8)
    lines = (loss_raw, loss_smooth, acc_raw, acc_smooth, val_line)
    fig._kwlesson_curves = lines  # lets the next call only update the data
    return fig, lines


# --------------------------------------------------------------------------------------------
# Audio

def waveform(audio: np.ndarray, sample_rate: int = 16000, *, title: str | None = None,
             fig: Figure | None = None) -> Figure:
    """A clip as amplitude against time in seconds (y from -1 to 1).

    >>> fig = waveform(np.zeros(16000), title="silence")
    >>> fig.axes[0].get_xlabel()
    'time (s)'
    """
    x = np.asarray(audio, np.float64)
    if x.ndim != 1:
        raise ValueError(f"waveform needs mono audio [samples], not shape {x.shape}")
    fig = _new_figure(fig, (8, 2.4))
    ax = fig.add_subplot()
    ax.plot(np.arange(len(x)) / sample_rate, x, lw=0.6, color=TRAIN_COLOR)
    ax.set_xlim(0, max(len(x), 1) / sample_rate)
    ax.set_ylim(-1, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def _stft_db(x: np.ndarray, sample_rate: int, window_ms: float,
             stride_ms: float) -> np.ndarray:
    """Magnitude in dB [frames, bins] with the course's defaults (30 ms Hann, 10 ms hop)."""
    win = int(sample_rate * window_ms / 1000)
    hop = int(sample_rate * stride_ms / 1000)
    if len(x) < win:
        x = np.pad(x, (0, win - len(x)))
    n_fft = 1 << (win - 1).bit_length()
    frames = 1 + (len(x) - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(frames)[:, None]
    mag = np.abs(np.fft.rfft(x[idx] * np.hanning(win), n=n_fft))
    return 20 * np.log10(mag + 1e-6)


def spectrogram(x: np.ndarray, sample_rate: int = 16000, *, window_ms: float = 30.0,
                stride_ms: float = 10.0, title: str | None = None, ylabel: str | None = None,
                fig: Figure | None = None) -> Figure:
    """A spectrogram as an image: time to the right, frequency (or feature bin) upwards.

    ``x`` is a mono clip [samples] (its spectrogram in dB is computed here with numpy, 30 ms
    windows every 10 ms as in the seed) or features you already computed [frames, bins], for
    instance ``kwlesson.features.compute_features(audio, settings).numpy()`` (MFCC, log-mel),
    drawn as they are. This is the seed's ``wav_to_spectrogram`` picture.

    >>> fig = spectrogram(np.random.default_rng(0).standard_normal(16000) * 0.1)
    >>> fig.axes[0].get_ylabel()
    'frequency (Hz)'
    """
    x = np.asarray(x, np.float64)
    fig = _new_figure(fig, (8, 3))
    ax = fig.add_subplot()
    if x.ndim == 1:
        db = _stft_db(x, sample_rate, window_ms, stride_ms)
        extent = (0, db.shape[0] * stride_ms / 1000, 0, sample_rate / 2)
        image = ax.imshow(db.T, origin="lower", aspect="auto", extent=extent, cmap="magma",
                          vmin=db.max() - 80, vmax=db.max())
        ax.set_xlabel("time (s)")
        ax.set_ylabel(ylabel or "frequency (Hz)")
        fig.colorbar(image, ax=ax, pad=0.01).set_label("dB")
    elif x.ndim == 2:
        image = ax.imshow(x.T, origin="lower", aspect="auto", cmap="magma",
                          interpolation="nearest")
        ax.set_xlabel("frame (every 10 ms)" if stride_ms == 10.0 else "frame")
        ax.set_ylabel(ylabel or "feature bin")
        fig.colorbar(image, ax=ax, pad=0.01)
    else:
        raise ValueError(f"spectrogram needs audio [samples] or features [frames, bins], "
                         f"not shape {x.shape}")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# A stream's scores over time, with its ground truth and detections (notebook 08)

def stream_figure(times_ms: Any, scores: np.ndarray, labels: Any, ground_truth: Any = (),
                  detections: Any = (), *, average_window_ms: float = 0,
                  detection_threshold: float | None = None, start_s: float = 0,
                  span_s: float | None = 30, time_tolerance_ms: float = 750,
                  fig: Figure | None = None) -> Figure:
    """Scores over time, with the ground truth and the detections: one line per label except
    ``_silence_`` (averaged over ``average_window_ms`` when it is > 0), the threshold as a
    dashed line, each ground-truth word as a grey band over its 1 s clip with its label on top,
    and each detection as a triangle coloured by its verdict (green correct, red wrong, purple
    false positive). Points sit at the start of their 1 s window, as the ground truth does.
    Shows ``span_s`` seconds from ``start_s`` (``None``: all). End the cell with plt.show().

    Introduced in notebook 08.

    >>> fig = stream_figure([0, 30, 60], np.full((3, 2), 0.5), ["_silence_", "yes"])
    >>> fig.axes[0].get_xlabel()
    'time (s)'
    """
    from kwlesson.streaming import VERDICT_COLORS, moving_average
    from kwlesson.streaming_test import detection_verdicts

    times = np.asarray(times_ms, np.float64).reshape(-1)
    scores = np.asarray(scores, np.float64)
    labels = list(labels)
    if average_window_ms > 0:
        scores = moving_average(times, scores, average_window_ms)
    end_s = (times[-1] / 1000 + 1 if len(times) else 1.0) if span_s is None else start_s + span_s
    if fig is None:
        import matplotlib.pyplot as plt  # only here: the tuner draws into its own figure

        fig = plt.figure(figsize=(10, 3.4))
    else:
        fig.clear()
    ax = fig.add_subplot(1, 1, 1)
    seen = (times >= start_s * 1000 - 1000) & (times <= end_s * 1000)
    t = times[seen] / 1000
    words = [label for label in labels if label not in ("_silence_", "_unknown_")]
    colors = dict(zip(words, _label_colors(len(words))))
    for k, label in enumerate(labels):
        if label == "_silence_":
            continue
        if label == "_unknown_":  # legends skip labels that start with "_"
            style = {"color": "0.55", "linestyle": ":", "label": "unknown"}
        else:
            style = {"color": colors[label], "label": label}
        ax.plot(t, scores[seen, k], linewidth=0.9, **style)
    if detection_threshold is not None:
        ax.axhline(detection_threshold, color="0.2", linestyle="--", linewidth=0.8)
    for label, gt in ground_truth:
        g = gt / 1000
        if g + 1 < start_s or g > end_s:
            continue
        ax.axvspan(g, g + 1, color="0.85", zorder=0, lw=0)
        ax.text(g + 0.5, 1.08, label.strip("_"), ha="center", va="bottom", fontsize=8,
                color="0.25", clip_on=True)
    verdicts = detection_verdicts(ground_truth, detections, time_tolerance_ms)
    for det, verdict in zip(detections, verdicts):
        d = det.time_ms / 1000
        if start_s <= d <= end_s:
            ax.plot([d], [det.score], marker="v", markersize=9, color=VERDICT_COLORS[verdict],
                    markeredgecolor="black", markeredgewidth=0.6, zorder=5)
            ax.text(d, det.score + 0.04, det.label, ha="center", va="bottom", fontsize=8,
                    color=VERDICT_COLORS[verdict], fontweight="bold", zorder=6)
    ax.set(xlim=(start_s, end_s), ylim=(0, 1.2), xlabel="time (s)",
           ylabel="averaged score" if average_window_ms > 0 else "score")
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    what = f"averaged over {average_window_ms:g} ms" if average_window_ms > 0 else "raw scores"
    ax.set_title(f"Scores over time ({what}); grey: ground truth; triangles: detections "
                 "(green correct, red wrong, purple false positive)", fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


#: What each kind of layer is drawn as: (colour, what it does, in a few words).
_LAYER_KINDS = {
    "Conv2D": ("#4c72b0", "convolution"), "DepthwiseConv2D": ("#4c72b0", "convolution"),
    "Conv1D": ("#4c72b0", "convolution"), "Add": ("#8c8c8c", "add the shortcut"),
    "GlobalAveragePooling2D": ("#55a868", "average over time"),
    "MaxPooling2D": ("#55a868", "max pooling"), "AveragePooling2D": ("#55a868", "pooling"),
    "Dense": ("#dd8452", "fully connected"), "SVDF": ("#4c72b0", "SVDF"),
}


def network_figure(model: Any, features: np.ndarray | None = None, *,
                   fig: Figure | None = None) -> Figure:
    """A Keras model as a column of boxes, input at the top: one box per layer that computes
    (convolutions, shortcut additions, pooling, fully connected), with its output shape, then
    the softmax; batch norm, ReLU, dropout and reshapes are left out of the boxes (the caption
    says so). With ``features`` [frames, bins], the input spectrogram is drawn beside them.

    >>> fig = network_figure(create_model("tiny_conv", (49, 40)))  # doctest: +SKIP
    """
    shown = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in _LAYER_KINDS:
            continue
        shape = " x ".join(str(d) for d in layer.output.shape[1:] if d != 1) or "1"
        size = ""
        if hasattr(layer, "kernel_size"):
            size = " " + "x".join(str(k) for k in layer.kernel_size)
            if any(s != 1 for s in getattr(layer, "strides", (1,))):
                size += f", stride {'x'.join(str(k) for k in layer.strides)}"
        shown.append((f"{layer.name}: {_LAYER_KINDS[kind][1]}{size} -> {shape}",
                      _LAYER_KINDS[kind][0]))
    labels = int(model.output.shape[-1])
    shown.append((f"softmax -> {labels} probabilities, one per label", "#c44e52"))
    rows = len(shown) + 1
    fig = _new_figure(fig, (9.0, 0.42 * rows + 1.2))
    if features is not None:
        image_ax, ax = fig.subplots(1, 2, width_ratios=[1, 2.2])
        image = np.asarray(features)
        # MFCC coefficient 0 (loudness) dwarfs the others: colour by the range of the rest.
        low, high = np.percentile(image[:, 1:] if image.shape[1] > 1 else image, [1, 99])
        image_ax.imshow(image.T, origin="lower", aspect="auto", cmap="magma", vmin=low,
                        vmax=high)
        image_ax.set(title="input: one clip's features", xlabel="frame", ylabel="bin")
    else:
        ax = fig.subplots()
    ax.set(xlim=(0, 1), ylim=(rows, 0))
    ax.axis("off")
    frames_bins = " x ".join(str(d) for d in model.input.shape[1:])
    items = [(f"input: {frames_bins} features (frames x bins)", "#937860")] + shown
    for i, (text, color) in enumerate(items):
        ax.text(0.02, i + 0.5, text, va="center", ha="left", fontsize=9, color="white",
                bbox={"boxstyle": "round,pad=0.35", "facecolor": color, "edgecolor": "none"})
        if i:
            ax.annotate("", xy=(0.01, i + 0.5), xytext=(0.01, i - 0.5),
                        arrowprops={"arrowstyle": "->", "color": "0.4"})
    ax.set_title(f"{model.name}: {sum(1 for _ in shown) - 1} layers that compute "
                 "(batch norm, ReLU, dropout not drawn)", fontsize=10)
    fig.tight_layout()
    return fig


def _box(ax: Any, x: float, y: float, text: str, color: str) -> None:
    ax.text(x, y, text, ha="center", va="center", fontsize=8.5, color="white",
            bbox={"boxstyle": "round,pad=0.4", "facecolor": color, "edgecolor": "none"})


def _arrow(ax: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "color": "0.35"})


def speech_systems_figure(fig: Figure | None = None) -> Figure:
    """Full speech recognition next to a keyword spotter, as two rows of boxes: audio ->
    features -> acoustic model -> decoder (with the pronunciation lexicon and the language
    model) -> text, and audio -> features -> one network -> RecognizeCommands -> a keyword.

    >>> fig = speech_systems_figure()  # doctest: +SKIP
    """
    fig = _new_figure(fig, (10.0, 4.6))
    ax = fig.subplots()
    ax.set(xlim=(0, 10), ylim=(0, 6))
    ax.axis("off")
    audio, feats, model = "#937860", "#8c8c8c", "#4c72b0"
    ax.text(0.1, 5.6, "Speech recognition (ASR): writes down whatever was said", fontsize=10,
            weight="bold")
    top = 4.3
    _box(ax, 0.7, top, "audio", audio)
    _box(ax, 2.1, top, "features\n(MFCC frames)", feats)
    _box(ax, 4.0, top, "acoustic model\nframes -> phone\nprobabilities", model)
    _box(ax, 6.4, top, "decoder\nsearch for the best\nword sequence", "#c44e52")
    _box(ax, 8.9, top, 'text:\n"turn the\nlights on"', "#55a868")
    _box(ax, 5.2, 2.95, 'pronunciation lexicon\n"on" = /ɒ n/', "#dd8452")
    _box(ax, 7.6, 2.95, 'language model\n"lights on" is likely', "#dd8452")
    for a, b in ((1.05, 1.45), (2.75, 3.15), (4.85, 5.4), (7.4, 8.3)):
        _arrow(ax, (a, top), (b, top))
    _arrow(ax, (5.4, 3.3), (6.0, 3.75))
    _arrow(ax, (7.4, 3.3), (6.8, 3.75))
    ax.text(0.1, 1.95, "Keyword spotting (this course): is one of a few words in this second?",
            fontsize=10, weight="bold")
    low = 0.8
    _box(ax, 0.7, low, "audio,\n1 s windows", audio)
    _box(ax, 2.3, low, "features\n(MFCC frames)", feats)
    _box(ax, 4.4, low, "one small network\nframes -> 12 label\nprobabilities", model)
    _box(ax, 6.8, low, "RecognizeCommands\naverage, threshold,\nsuppression", "#c44e52")
    _box(ax, 8.9, low, 'a keyword:\n"on"', "#55a868")
    for a, b in ((1.4, 1.65), (2.95, 3.35), (5.45, 5.7), (7.9, 8.3)):
        _arrow(ax, (a, low), (b, low))
    fig.tight_layout()
    return fig


def _label_colors(n: int) -> list[Any]:
    """``n`` distinct colours (tab10, then tab20) for one line per label."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(k % cmap.N) for k in range(n)]
