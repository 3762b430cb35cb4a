"""Exercise checkers for the notebooks.

Each exercise in a notebook has its solution between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` (nbgrader's markers) and is followed by a check cell that calls one function
here. A check prints one fixed line when the answer is right and raises ``AssertionError`` with a
hint when it is not, so the same cell works as a test (nbval) and as feedback for a student.

The solutions are removed from the student copies by :mod:`kwlesson.student_copies`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: The oldest and newest Python the course supports (pyproject's requires-python; a test checks).
SUPPORTED_PYTHON = ((3, 11), (3, 13))


def _passed(exercise: str, what: str) -> None:
    print(f"Exercise {exercise} passed: {what}")


# ------------------------------------------------------------------------------ environment


def check_environment() -> dict[str, bool]:
    """Notebook 00: is everything the course needs importable and working? One line each.

    >>> check_environment()  # doctest: +SKIP
    Python 3.11 to 3.13: ok
    ...
    """
    import importlib
    import sys

    results: dict[str, bool] = {}

    def report(what: str, ok: bool, hint: str) -> None:
        results[what] = ok
        print(f"{what}: {'ok' if ok else 'MISSING - ' + hint}")

    (lo_major, lo), (hi_major, hi) = SUPPORTED_PYTHON
    report(f"Python {lo_major}.{lo} to {hi_major}.{hi}",
           SUPPORTED_PYTHON[0] <= sys.version_info[:2] <= SUPPORTED_PYTHON[1],
           f"this is Python {sys.version.split()[0]}: create the environment with make demo")
    try:
        tf = importlib.import_module("tensorflow")
        keras = importlib.import_module("keras")
        ok = tf.__version__.startswith("2.") and keras.__version__.startswith("3.")
    except ImportError:
        ok = False
    report("TensorFlow 2 with Keras 3", ok, "pip install -e . in the project folder")
    for module, what in (("librosa", "librosa (audio analysis)"),
                         ("ipywidgets", "ipywidgets (sliders and dashboards)"),
                         ("ai_edge_litert", "LiteRT (running exported models)")):
        try:
            importlib.import_module(module)
            report(what, True, "")
        except ImportError:
            report(what, False, f"pip install {module.replace('_', '-')}")
    try:
        from kwlesson import synth

        ok = synth.speak("yes").size > 1000
    except Exception:  # any failure of the synthesiser means the same thing to a student
        ok = False
    report("espeak-ng speech synthesis (offline dataset)", ok, "pip install espeakng-loader")
    return results


# ---------------------------------------------------------------------------------- checkers
# One function per exercise, named after the notebook and the exercise number.


def check_01_frames(num_frames_fn: Callable[..., int]) -> None:
    """Notebook 01, exercise 1: frames per clip for a window and a stride, as FeatureSettings.

    ``num_frames_fn(window_ms, stride_ms, clip_ms=1000)`` must return what
    ``FeatureSettings(...).spectrogram_length`` gives at 16 kHz.

    >>> from kwlesson.features import FeatureSettings
    >>> check_01_frames(lambda window_ms, stride_ms, clip_ms=1000: FeatureSettings(
    ...     window_size_ms=window_ms, window_stride_ms=stride_ms,
    ...     clip_duration_ms=clip_ms).spectrogram_length)
    Exercise 01.1 passed: your frame counts match FeatureSettings for 10 settings
    """
    from kwlesson.features import FeatureSettings

    cases = [(30, 10, 1000), (40, 20, 1000), (20, 20, 1000), (25, 10, 1000), (30, 40, 1000),
             (100, 12.5, 1000), (30.5, 10, 1000), (30, 10, 1500), (1000, 10, 1000),
             (1200, 10, 1000)]
    for window_ms, stride_ms, clip_ms in cases:
        s = FeatureSettings(window_size_ms=window_ms, window_stride_ms=stride_ms,
                            clip_duration_ms=clip_ms)
        want = s.spectrogram_length
        got = num_frames_fn(window_ms, stride_ms, clip_ms=clip_ms)
        if got == want:
            continue
        if want == 0:
            hint = "a window longer than the clip fits no frame at all: return 0"
        else:
            hint = (f"count in samples: the clip is {s.desired_samples}, the window "
                    f"{s.window_size_samples} and the stride {s.window_stride_samples} samples "
                    "(int(16000 * ms / 1000)); one frame at the start, then one more per whole "
                    "stride that still leaves room for a window")
        raise AssertionError(f"window {window_ms} ms, stride {stride_ms} ms, clip {clip_ms} ms: "
                             f"you said {got!r}, FeatureSettings says {want}. Hint: {hint}.")
    _passed("01.1", f"your frame counts match FeatureSettings for {len(cases)} settings")


def check_02_which_set(which_set_fn: Callable[[str, float, float], str]) -> None:
    """Notebook 02, exercise 1: a student's ``which_set`` must agree with the seed.

    >>> from kwlesson.data import which_set
    >>> check_02_which_set(which_set)
    Exercise 02.1 passed: which_set agrees with the reference on 200 file names
    """
    from kwlesson.data import which_set

    names = [f"{i * 2654435761 % 16**8:08x}_nohash_{i % 5}.wav" for i in range(200)]
    for name in names:
        for validation, testing in ((10, 10), (11, 1)):
            want = which_set(name, validation, testing)
            got = which_set_fn(name, validation, testing)
            assert got == want, (
                f"{name} with validation {validation}% and testing {testing}%: you said "
                f"{got!r}, the reference says {want!r}. Hash the name without '_nohash_...'."
            )
    _passed("02.1", f"which_set agrees with the reference on {len(names)} file names")


def check_06_conv_macs(conv_macs_fn: Callable[..., int]) -> None:
    """Notebook 06, exercise 1: MACs of a Conv2D layer, by hand, against ``models.layer_macs``.

    ``conv_macs_fn(input_shape, filters, kernel_size, strides=(1, 1), padding="same")`` gets
    ``input_shape`` as (rows, cols, channels) and returns multiply-accumulates for one example.

    >>> import math
    >>> def conv_macs(shape, filters, kernel, strides=(1, 1), padding="same"):
    ...     (r, c, ch), (kh, kw), (sh, sw) = shape, kernel, strides
    ...     if padding == "valid":
    ...         r, c = r - kh + 1, c - kw + 1
    ...     return math.ceil(r / sh) * math.ceil(c / sw) * filters * kh * kw * ch
    >>> check_06_conv_macs(conv_macs)  # doctest: +SKIP
    Exercise 06.1 passed: your conv_macs matches the library on 6 convolution layers
    """
    import keras

    from kwlesson.models import layer_macs

    # (input rows, cols, channels), filters, kernel, strides, padding: the layers of the
    # course's models plus two odd sizes, where stride and padding round differently.
    cases = [
        ((98, 40, 1), 64, (20, 8), (1, 1), "same"),    # conv, first layer
        ((49, 20, 64), 64, (10, 4), (1, 1), "same"),   # conv, second layer
        ((98, 40, 1), 186, (98, 8), (1, 1), "valid"),  # low_latency_conv
        ((98, 40, 1), 8, (10, 8), (2, 2), "same"),     # tiny_conv
        ((49, 20, 3), 5, (3, 4), (2, 3), "valid"),
        ((7, 9, 2), 4, (3, 3), (2, 2), "same"),
    ]
    for shape, filters, kernel, strides, padding in cases:
        inputs = keras.Input(shape=shape)
        layer = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding)
        want = layer_macs(keras.Model(inputs, layer(inputs)))[0]["macs"]
        got = conv_macs_fn(shape, filters, kernel, strides, padding)
        assert got == want, (
            f"input {shape}, {filters} filters of {kernel}, strides {strides}, {padding!r} "
            f"padding: you said {got!r}, the library counts {want:,}. Each output value (rows x "
            f"cols x filters) costs kernel_h x kernel_w x in_channels MACs; 'same' gives "
            f"ceil(in / stride) rows, 'valid' ceil((in - kernel + 1) / stride)."
        )
    _passed("06.1", f"your conv_macs matches the library on {len(cases)} convolution layers")


def check_07_quantize(quantize_fn: Callable[..., object]) -> None:
    """Notebook 07, exercise 1: float -> int8 with a tensor's scale and zero point.

    ``quantize_fn(x, scale, zero_point)`` takes a float array and returns an int8 array:
    ``q = round(x / scale) + zero_point``, clipped to [-128, 127].

    >>> import numpy as np
    >>> def quantize(x, scale, zero_point):
    ...     q = np.round(np.asarray(x) / scale) + zero_point
    ...     return np.clip(q, -128, 127).astype(np.int8)
    >>> check_07_quantize(quantize)
    Exercise 07.1 passed: your quantize matches LiteRT's rule on 4 tensors
    """
    import numpy as np

    rng = np.random.default_rng(7)
    cases = [(0.5, -3), (0.0431, 12), (0.2, -128), (1.7, 100)]
    for scale, zero in cases:
        x = rng.uniform(-300 * scale, 300 * scale, 50).astype(np.float32)
        x[:3] = [0.0, 1000 * scale, -1000 * scale]  # zero, and values that must clip
        want = np.clip(np.round(x / np.float32(scale)) + zero, -128, 127).astype(np.int8)
        got = np.asarray(quantize_fn(x, scale, zero))
        assert got.shape == x.shape, f"scale {scale}: shape {got.shape}, expected {x.shape}"
        assert got.dtype == np.int8, (
            f"scale {scale}: dtype {got.dtype}; the model's input is int8: use .astype(np.int8) "
            "after clipping")
        bad = np.nonzero(got.astype(np.int32) != want)[0]
        assert not bad.size, (
            f"scale {scale}, zero point {zero}: x = {x[bad[0]]:.4g} gave {got[bad[0]]}, "
            f"expected {want[bad[0]]}. Divide by the scale, round, add the zero point, then "
            "clip to [-128, 127] before converting to int8.")
    _passed("07.1", f"your quantize matches LiteRT's rule on {len(cases)} tensors")


def _attempt(exercise: str, fn: Callable[..., object], *args: object) -> object:
    """Call a student's function; a placeholder left in place becomes a clear hint."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise AssertionError(
            f"Exercise {exercise}: replace `raise NotImplementedError()` in the cell above with "
            "your code, run that cell, then run this check again.") from None


def check_03_learning_rate(rate_fn: Callable[[int, str, str], float]) -> None:
    """Notebook 03, exercise 1: the learning rate a training step uses, from the seed's flags.

    ``rate_fn(step, steps, rates)`` takes a 1-based step and the comma-separated
    ``how_many_training_steps`` and ``learning_rate`` strings, and returns the rate of the phase
    that step falls in (after the last phase, the last rate).

    >>> from kwlesson.runs import parse_schedule
    >>> from kwlesson.training import PiecewiseRate
    >>> check_03_learning_rate(lambda step, steps, rates: PiecewiseRate(
    ...     parse_schedule(steps, rates)).rate_at_step(step))
    Exercise 03.1 passed: your learning rates match the schedule at 14 steps
    """
    cases = [(1, "15000,3000", "0.001,0.0001", 0.001), (15000, "15000,3000", "0.001,0.0001", 0.001),
             (15001, "15000,3000", "0.001,0.0001", 0.0001),
             (18000, "15000,3000", "0.001,0.0001", 0.0001),
             (18001, "15000,3000", "0.001,0.0001", 0.0001),
             (1, "20000,6000", "0.01,0.001", 0.01), (20001, "20000,6000", "0.01,0.001", 0.001),
             (180, "180,60", "0.01,0.002", 0.01), (181, "180,60", "0.01,0.002", 0.002),
             (5, "10", "0.5", 0.5), (11, "10,10,10", "0.3,0.2,0.1", 0.2),
             (20, "10,10,10", "0.3,0.2,0.1", 0.2), (21, "10,10,10", "0.3,0.2,0.1", 0.1),
             (99, "10,10,10", "0.3,0.2,0.1", 0.1)]
    for step, steps, rates, want in cases:
        got = _attempt("03.1", rate_fn, step, steps, rates)
        if isinstance(got, (int, float)) and abs(float(got) - want) <= 1e-12 * want:
            continue
        ends = []
        for n in steps.split(","):
            ends.append((ends[-1] if ends else 0) + int(n))
        raise AssertionError(
            f"step {step} with steps {steps!r} and rates {rates!r}: you said {got!r}, the "
            f"schedule says {want}. Hint: the phases end at steps {ends} (a running total); "
            "a step uses the rate of the first phase whose end is >= the step, and after the "
            "last phase the last rate stays. Return a float, not a string.")
    _passed("03.1", f"your learning rates match the schedule at {len(cases)} steps")


def check_04_precision_recall(precision_recall_fn: Callable[..., tuple]) -> None:
    """Notebook 04, exercise 1: precision and recall per label from a confusion matrix.

    ``precision_recall_fn(confusion)`` takes a square matrix (rows truth, columns prediction)
    and returns ``(precision, recall)``: two sequences of fractions in [0, 1], one per label,
    with ``nan`` as the precision of a label that is never predicted (and as the recall of a
    label with no clips).

    >>> import numpy as np
    >>> def pr(m):
    ...     m = np.asarray(m, float)
    ...     d = np.diag(m)
    ...     with np.errstate(invalid="ignore", divide="ignore"):
    ...         return d / m.sum(axis=0), d / m.sum(axis=1)
    >>> check_04_precision_recall(pr)
    Exercise 04.1 passed: your precision and recall match on 3 confusion matrices
    """
    import numpy as np

    seed = np.array([
        [258, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [7, 6, 26, 94, 7, 49, 1, 15, 40, 2, 0, 11],
        [10, 1, 107, 80, 13, 22, 0, 13, 10, 1, 0, 4], [1, 3, 16, 163, 6, 48, 0, 5, 10, 1, 0, 17],
        [15, 1, 17, 114, 55, 13, 0, 9, 22, 5, 0, 9], [1, 1, 6, 97, 3, 87, 1, 12, 46, 0, 0, 10],
        [8, 6, 86, 84, 13, 24, 1, 9, 9, 1, 0, 6], [9, 3, 32, 112, 9, 26, 1, 36, 19, 0, 0, 9],
        [8, 2, 12, 94, 9, 52, 0, 6, 72, 0, 0, 2], [16, 1, 39, 74, 29, 42, 0, 6, 37, 9, 0, 3],
        [15, 6, 17, 71, 50, 37, 0, 6, 32, 2, 1, 9], [11, 1, 6, 151, 5, 42, 0, 8, 16, 0, 0, 20]])
    rng = np.random.default_rng(4)
    lopsided = rng.integers(0, 9, size=(5, 5)) + np.diag([30, 1, 12, 7, 20])
    never_predicted = np.array([[5, 0, 1], [2, 0, 3], [0, 0, 4]])  # the middle label: no column
    for name, m in (("the seed's step-400 matrix", seed), ("a random 5x5 matrix", lopsided),
                    ("a matrix whose middle label is never predicted", never_predicted)):
        d = np.diag(m).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            want_p, want_r = d / m.sum(axis=0), d / m.sum(axis=1)
        got = _attempt("04.1", precision_recall_fn, m.copy())
        assert isinstance(got, tuple) and len(got) == 2, (
            f"{name}: return a pair (precision, recall), not {type(got).__name__}")
        p, r = (np.asarray(x, float) for x in got)
        for what, have, want in (("precision", p, want_p), ("recall", r, want_r)):
            assert have.shape == want.shape, (
                f"{name}: {what} has shape {have.shape}, expected one value per label "
                f"{want.shape}")
            if np.allclose(have, want, equal_nan=True):
                continue
            other = want_r if what == "precision" else want_p
            if np.allclose(have, other, equal_nan=True):
                hint = ("you swapped rows and columns: rows are the truth, columns the "
                        "prediction; precision divides by a column's sum, recall by a row's")
            elif np.allclose(have, 100 * want, equal_nan=True):
                hint = "give fractions in [0, 1], not percentages"
            elif np.isnan(want).any() and not np.isnan(have).any():
                hint = ("a label that is never predicted has no precision: give nan there "
                        "(0 / 0), not 0")
            elif what == "precision":
                hint = ("precision of a label = its diagonal cell / the sum of its column "
                        "(of the clips predicted as that label, the share that really were)")
            else:
                hint = ("recall of a label = its diagonal cell / the sum of its row "
                        "(of the clips that really were that label, the share found)")
            raise AssertionError(f"{name}: your {what} {np.round(have, 3).tolist()} differs from "
                                 f"{np.round(want, 3).tolist()}. Hint: {hint}.")
    _passed("04.1", "your precision and recall match on 3 confusion matrices")


def check_08_average(average_fn: Callable[..., object]) -> None:
    """Notebook 08, exercise 1: the averaging step of RecognizeCommands.

    ``average_fn(times_ms, scores, current_time_ms, average_window_ms)`` gets every result so
    far (times ``[n]`` in increasing order, scores ``[n, labels]``) and must return the mean
    score per label over the results with ``current_time_ms - average_window_ms <= time <=
    current_time_ms`` (a result exactly that old still counts), as RecognizeCommands keeps them.

    >>> import numpy as np
    >>> def average(times_ms, scores, current_time_ms, average_window_ms):
    ...     t = np.asarray(times_ms)
    ...     keep = (t >= current_time_ms - average_window_ms) & (t <= current_time_ms)
    ...     return np.asarray(scores)[keep].mean(axis=0)
    >>> check_08_average(average)
    Exercise 08.1 passed: your averages match RecognizeCommands in 40 situations
    """
    import numpy as np

    rng = np.random.default_rng(8)
    cases = [(np.array([0, 30, 60, 90]), 60, 60), (np.array([0, 30, 60, 90]), 90, 0),
             (np.array([0, 100, 200, 300, 400]), 250, 1000)]
    for _ in range(37):
        n = int(rng.integers(1, 40))
        times = np.sort(rng.choice(np.arange(0, 3000, 30), size=n, replace=False))
        current = int(times[rng.integers(n)])
        cases.append((times, current, int(rng.choice([0, 90, 250, 500, 1000]))))
    for times, current, window in cases:
        scores = rng.random((len(times), 4))
        keep = (times >= current - window) & (times <= current)
        want = scores[keep].mean(axis=0)
        got = np.asarray(average_fn(times.copy(), scores.copy(), current, window), dtype=float)
        if got.shape == want.shape and np.allclose(got, want):
            continue
        if got.shape != want.shape:
            hint = (f"return one average per label, shape {want.shape}, not {got.shape} "
                    "(average over the rows, axis=0)")
        elif np.allclose(got, scores[times <= current].mean(axis=0)):
            hint = "leave out the results older than current_time_ms - average_window_ms"
        elif np.allclose(got, scores[(times > current - window) & (times <= current)].mean(0)):
            hint = "a result exactly average_window_ms old still counts: use >=, not >"
        elif np.allclose(got, scores[times >= current - window].mean(axis=0)):
            hint = "leave out the results after current_time_ms: they have not happened yet"
        else:
            hint = "keep the rows with current - window <= time <= current, then take their mean"
        raise AssertionError(f"times {times.tolist()}, current_time_ms={current}, "
                             f"average_window_ms={window}: your average {np.round(got, 3)} "
                             f"differs from {np.round(want, 3)}. Hint: {hint}.")
    _passed("08.1", f"your averages match RecognizeCommands in {len(cases)} situations")


def check_05_quota(quota_fn: Callable[[int, float], int]) -> None:
    """Notebook 05, exercise 1: how many silence (or unknown) clips a split gets.

    ``quota_fn(n, percentage)`` takes the number of wanted-word clips in a split and a
    percentage, and returns how many clips of the extra class the split gets, as
    :class:`kwlesson.data.SpeechCommands` (and the seed) count them.

    >>> import math
    >>> check_05_quota(lambda n, percentage: math.ceil(n * percentage / 100))
    Exercise 05.1 passed: your quotas match the data set's for 8 cases
    """
    import math

    import numpy as np

    # (wanted-word clips, percentage, quota): the offline set's splits, and fractional cases.
    cases = [(760, 10, 76), (150, 10, 15), (90, 10, 9), (760, 30, 228), (760, 0, 0),
             (760, 7, 54), (150, 25, 38), (91, 10, 10)]
    for n, percentage, want in cases:
        got = _attempt("05.1", quota_fn, n, percentage)
        if got == want and isinstance(got, (int, np.integer)):
            continue
        if isinstance(got, (int, float, np.number)) and got == want:
            hint = "return a whole number of clips (an int), not a float"
        elif isinstance(got, (int, float, np.number)) and got == math.floor(n * percentage / 100):
            hint = "round up, not down: a part of a clip still counts as a clip (math.ceil)"
        else:
            hint = ("the percentage is of the wanted-word clips in the split, not of all "
                    "clips: n * percentage / 100, rounded up")
        raise AssertionError(f"{n} wanted-word clips at {percentage}%: you said {got!r}, the "
                             f"data set uses {want}. Hint: {hint}.")
    _passed("05.1", f"your quotas match the data set's for {len(cases)} cases")


# ------------------------------------------------------------------------------ reasoning


def check_00_baselines(random_guess: float, never_fires: float) -> None:
    """Notebook 00, exercise 1: what two 'models' that learnt nothing score, as fractions.

    ``random_guess``: the accuracy of picking one of the 12 labels at random;
    ``never_fires``: the accuracy, on a recording where 19 windows in 20 hold no keyword, of a
    spotter that always answers "no keyword".

    >>> check_00_baselines(1 / 12, 19 / 20)
    Exercise 00.1 passed: both baselines are right; a useful model must beat them
    """
    for name, got in (("random_guess", random_guess), ("never_fires", never_fires)):
        if not isinstance(got, (int, float)) or not 0 <= got <= 1:
            raise AssertionError(f"{name} = {got!r}: give a fraction between 0 and 1 "
                                 "(0.5 for one half), not a percentage. Hint: divide.")
    if abs(random_guess - 1 / 12) > 0.005:
        hint = ("count the labels: the ten words and also _silence_ and _unknown_, twelve "
                "in all" if abs(random_guess - 0.1) < 0.005 else
                "a random pick among 12 labels is right once in 12 tries, whatever the clip")
        raise AssertionError(f"random_guess = {random_guess:.3f} is not right. Hint: {hint}.")
    if abs(never_fires - 0.95) > 0.005:
        hint = ("that is how often it is wrong: it is right on every window without a keyword"
                if abs(never_fires - 0.05) < 0.005 else
                "it is right exactly on the windows with no keyword: 19 of every 20")
        raise AssertionError(f"never_fires = {never_fires:.3f} is not right. Hint: {hint}.")
    _passed("00.1", "both baselines are right; a useful model must beat them")


def check_09_threshold(threshold: float, keyword_scores: Any, other_scores: Any,
                       max_false_alarms: float = 0.02) -> None:
    """Notebook 09, exercise 1: a detection threshold for a one-word detector.

    ``keyword_scores``: the detector's probability of the keyword on validation clips of the
    keyword; ``other_scores``: on every other validation clip. A clip fires when its score is
    at least ``threshold``. Right: at most ``max_false_alarms`` of the other clips fire, and the
    keyword is found within 5 points as often as with the best threshold that keeps that limit.

    >>> check_09_threshold(0.3, [0.95, 0.99, 0.5], [0.1, 0.2, 0.95] + [0.0] * 97)
    Exercise 09.1 passed: few false alarms, and nearly as many finds as any threshold allows
    """
    import numpy as np

    if not isinstance(threshold, (int, float, np.floating)) or not 0 < threshold <= 1:
        raise AssertionError(f"THRESHOLD = {threshold!r}: a probability above 0 and at most 1. "
                             "Hint: read it off the x axis of the histograms.")
    keyword = np.asarray(keyword_scores, np.float64)
    other = np.sort(np.asarray(other_scores, np.float64))
    fa = float(np.mean(other >= threshold))
    found = float(np.mean(keyword >= threshold))
    # The lowest threshold that keeps the limit finds the most: just above the score of the
    # other clip that would be one false alarm too many.
    allowed = int(np.floor(max_false_alarms * len(other)))
    best = 0.0 if allowed >= len(other) else float(np.nextafter(other[-allowed - 1], 2))
    best_found = float(np.mean(keyword >= best))
    if fa > max_false_alarms:
        raise AssertionError(
            f"at {threshold:.3f}, {fa:.1%} of the other clips fire, more than "
            f"{max_false_alarms:.0%}. Hint: raise it, past most of the orange histogram's tail.")
    if found < best_found - 0.05:
        raise AssertionError(
            f"at {threshold:.3f} only {found:.0%} of the keyword clips fire, though a threshold "
            f"that keeps false alarms under {max_false_alarms:.0%} can find {best_found:.0%}. "
            "Hint: lower it, to just above the highest scores of the other clips you must keep "
            "out.")
    _passed("09.1", "few false alarms, and nearly as many finds as any threshold allows")


def check_04_most_confused(answer: Any, confusion: Any, labels: list[str]) -> None:
    """Notebook 04, exercise 2: the (truth, predicted) pair a confusion matrix confuses most,
    read off the matrix (rows truth, columns prediction).

    >>> check_04_most_confused(("b", "a"), [[5, 1], [3, 4]], ["a", "b"])
    Exercise 04.2 passed: you read the largest cell off the diagonal, the right way round
    """
    import numpy as np

    m = np.asarray(confusion)
    if (not isinstance(answer, (tuple, list)) or len(answer) != 2
            or not all(isinstance(a, str) for a in answer)):
        raise AssertionError(f"MOST_CONFUSED = {answer!r}: give two labels, (truth, predicted), "
                             'for example ("yes", "no").')
    unknown = [a for a in answer if a not in labels]
    if unknown:
        raise AssertionError(f"{unknown[0]!r} is not a label; the labels are {', '.join(labels)}.")
    truth, predicted = (labels.index(a) for a in answer)
    off = m - np.diag(np.diag(m))
    most = int(off.max())
    if truth == predicted:
        raise AssertionError(f"row {answer[0]}, column {answer[1]} is on the diagonal: those "
                             "clips were answered right. Hint: look off the diagonal.")
    if m[truth, predicted] == most:
        _passed("04.2", "you read the largest cell off the diagonal, the right way round")
        return
    if m[predicted, truth] == most:
        raise AssertionError(f"{answer[1]} clips called {answer[0]} are the most common mistake, "
                             f"not the other way round. Hint: rows are the truth, columns the "
                             "model's answer.")
    raise AssertionError(f"row {answer[0]}, column {answer[1]} holds {int(m[truth, predicted])} "
                         f"clips, but a cell off the diagonal holds {most}. Hint: the darkest "
                         "square off the diagonal of the picture; check its count in the matrix.")


def check_01_predict_shape(prediction: Any) -> None:
    """Notebook 01, exercise 2: the model's input for 40 ms windows every 25 ms and 20 bins,
    predicted before it is computed: (frames, bins).

    >>> check_01_predict_shape((39, 20))
    Exercise 01.2 passed: 39 frames of 20 bins, as FeatureSettings computes it
    """
    from kwlesson.features import FeatureSettings

    want = FeatureSettings(window_size_ms=40, window_stride_ms=25, feature_bin_count=20).shape
    if not isinstance(prediction, (tuple, list)) or len(prediction) != 2:
        raise AssertionError(f"PREDICTED_SHAPE = {prediction!r}: give (frames, bins), two "
                             "whole numbers.")
    frames, bins = prediction
    if bins != want[1]:
        raise AssertionError(f"{bins} bins: the bins are the features per frame, here the 20 "
                             "MFCCs asked for, whatever the window. Hint: the second number is "
                             "feature_bin_count.")
    if frames == want[0] - 1:
        raise AssertionError(f"{frames} frames: one short. Hint: the first window counts too: "
                             "1 + (samples - window) // stride.")
    if frames == 16000 // 400:
        raise AssertionError(f"{frames} frames: that is 16,000 / stride. Hint: the last window "
                             "must fit inside the clip: 1 + (16000 - 640) // 400.")
    if frames != want[0]:
        raise AssertionError(f"{frames} frames is not right. Hint: in samples, the window is "
                             "640 and the stride 400; frames = 1 + (16000 - 640) // 400.")
    _passed("01.2", f"{want[0]} frames of {want[1]} bins, as FeatureSettings computes it")


def check_02_splits(same_split: Any, can_leave_validation: Any) -> None:
    """Notebook 02, exercise 2: two predictions about the hash split, True or False each.

    ``same_split``: do ``yes/3c4a1b2d_nohash_0.wav`` and ``no/3c4a1b2d_nohash_3.wav`` land in
    the same split? ``can_leave_validation``: raising validation_percentage from 10 to 20
    (testing 10), can a file that was in validation land somewhere else?

    >>> check_02_splits(True, False)
    Exercise 02.2 passed: a speaker's clips stay together, and validation only grows
    """
    for name, value in (("SAME_SPLIT", same_split),
                        ("CAN_LEAVE_VALIDATION", can_leave_validation)):
        if not isinstance(value, bool):
            raise AssertionError(f"{name} = {value!r}: answer True or False.")
    if not same_split:
        raise AssertionError("SAME_SPLIT: the hash is taken of the name without _nohash_ and what "
                             "follows, the speaker's id; the word's folder is not part of it. "
                             "Hint: both names start 3c4a1b2d.")
    if can_leave_validation:
        raise AssertionError("CAN_LEAVE_VALIDATION: a file's hash is a fixed number in [0, 100); "
                             "validation takes those below validation_percentage, so from 10 to "
                             "20 its band only grows (testing's moves up). Hint: which files "
                             "move, and where to?")
    _passed("02.2", "a speaker's clips stay together, and validation only grows")


#: Lesson 03's exercise: a run's validation and training accuracy at each checkpoint.
SHIP_CURVES = {"steps": [400, 800, 1200, 1600, 2000, 2400],
               "training": [0.41, 0.66, 0.80, 0.89, 0.95, 0.98],
               "validation": [0.39, 0.61, 0.72, 0.75, 0.73, 0.70]}


def check_03_ship(step: Any) -> None:
    """Notebook 03, exercise 2: the checkpoint to ship from a run's curves (``SHIP_CURVES``).

    >>> check_03_ship(1600)
    Exercise 03.2 passed: the checkpoint that does best on clips it never trained on
    """
    steps, train, val = (SHIP_CURVES[k] for k in ("steps", "training", "validation"))
    if step not in steps:
        raise AssertionError(f"SHIP_STEP = {step!r}: only steps {steps} have a checkpoint.")
    best = steps[val.index(max(val))]
    if step == best:
        _passed("03.2", "the checkpoint that does best on clips it never trained on")
        return
    if step == steps[-1]:
        hint = ("the last checkpoint is not the best: after its peak the validation accuracy "
                "falls while training accuracy still rises (overfitting, lesson 04)")
    else:
        hint = "pick by the validation accuracy: the clips the model never learnt from"
    raise AssertionError(f"step {step}: validation accuracy {val[steps.index(step)]:.0%}, "
                         f"training {train[steps.index(step)]:.0%}. Hint: {hint}.")


def check_05_silence_share(share: Any) -> None:
    """Notebook 05, exercise 2: the share of a split's clips that are silence, for 760
    wanted-word clips with silence_percentage and unknown_percentage both 10.

    >>> check_05_silence_share(76 / 912)
    Exercise 05.2 passed: 76 silence clips of 912, about 8.3%
    """
    if not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise AssertionError(f"SILENCE_SHARE = {share!r}: a fraction between 0 and 1, not a "
                             "percentage.")
    if abs(share - 0.1) < 0.002:
        raise AssertionError("0.1 is the percentage of the wanted-word clips, not of the split. "
                             "Hint: the split also holds the unknown clips and the silence ones.")
    if abs(share - 76 / 836) < 0.002:
        raise AssertionError("you left out the unknown clips. Hint: 760 + 76 unknown + 76 silence.")
    if abs(share - 76 / 912) > 0.002:
        raise AssertionError(f"{share:.3f} is not right. Hint: 76 silence clips among 760 words, "
                             "76 unknown and the 76 silence themselves.")
    _passed("05.2", "76 silence clips of 912, about 8.3%")


def check_06_mac_ratio(ratio: Any, big_macs: int, small_macs: int) -> None:
    """Notebook 06, exercise 2: tiny_conv's MACs on 98 x 40 over its MACs on 49 x 20,
    predicted within 15% before the table is read.

    >>> check_06_mac_ratio(4, 400, 101)
    Exercise 06.2 passed: the work falls about as the input does
    """
    want = big_macs / small_macs
    if not isinstance(ratio, (int, float)) or ratio <= 0:
        raise AssertionError(f"MAC_RATIO = {ratio!r}: a positive number, how many times fewer.")
    if abs(ratio - want) / want <= 0.15:
        _passed("06.2", "the work falls about as the input does")
        return
    hint = ("half the frames and half the bins make a quarter of the input, and every layer of "
            "tiny_conv works per input position" if abs(ratio - 2) < 0.5 else
            "count the input: 98 x 40 values against 49 x 20")
    raise AssertionError(f"{ratio:g} times fewer is not it. Hint: {hint}.")


def check_07_serving(serve: Callable[[Any], Any], keras_top: Any, pcm: Any) -> None:
    """Notebook 07, exercise 2: a serving function that gives the trained model's answers.

    ``serve(pcm)`` takes 16-bit clips (int16 [n, samples]) as an app records them and returns
    scores [n, labels]; right when its top answer is Keras's (``keras_top``, computed as in
    training) on at least 95% of the clips.
    """
    import numpy as np

    try:
        out = np.asarray(serve(pcm))
    except Exception as err:  # noqa: BLE001 - any error is the student's to fix
        raise AssertionError(f"serve(pcm) raised {type(err).__name__}: {err}. Hint: the features "
                             "must be computed with the model's own settings.") from None
    agree = float(np.mean(out.argmax(-1) == np.asarray(keras_top)))
    if agree >= 0.95:
        _passed("07.2", "the serving path computes what training computed")
        return
    raise AssertionError(f"serve agrees with the trained model on {agree:.0%} of the clips. "
                         "Hint: compare what the app feeds with what training fed: samples in "
                         "[-1, 1], and the features of the model's own settings.")


def check_08_threshold(threshold: Any, times_ms: Any, scores: Any, labels: list[str],
                       ground_truth: Any, max_false_positives: float = 2.0,
                       **recognize: Any) -> None:
    """Notebook 08, exercise 2: a threshold for a wake word on the lesson's stream: at most
    ``max_false_positives`` percent false positives, and within 5 points of the most correct
    words any threshold gives with that limit (thresholds 0.30 to 0.99 tried).
    ``recognize``: the other RecognizeCommands settings."""
    import numpy as np

    from kwlesson.streaming import recognize_scores
    from kwlesson.streaming_test import calculate_accuracy_stats

    if not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise AssertionError(f"WAKE_THRESHOLD = {threshold!r}: a probability above 0, at most 1.")

    def stats(t: float) -> Any:
        found = recognize_scores(times_ms, scores, labels, detection_threshold=t, **recognize)
        return calculate_accuracy_stats(ground_truth, found)

    mine = stats(float(threshold))
    allowed = [s.correct_percentage for t in np.arange(0.30, 1.0, 0.01)
               if (s := stats(float(t))).false_positive_percentage <= max_false_positives]
    if mine.false_positive_percentage > max_false_positives:
        raise AssertionError(f"at {threshold:.2f}: {mine.false_positive_percentage:.1f}% false "
                             f"positives, more than {max_false_positives:g}%. Hint: raise it.")
    if allowed and mine.correct_percentage < max(allowed) - 5:
        raise AssertionError(f"at {threshold:.2f}: {mine.correct_percentage:.1f}% of the words "
                             f"correct, though a threshold within the limit gets "
                             f"{max(allowed):.1f}%. Hint: lower it, step by step, watching the "
                             "false positives.")
    _passed("08.2", "few false alarms, and nearly as many words as any threshold allows")
