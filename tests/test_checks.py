"""The exercise checkers of kwlesson.checks not tested elsewhere: each with a right answer (it
passes and says so) and with the mistakes its hints name (each wrong answer gets its own hint).
Checkers 01, 03 and 05 are tested with their lessons' widgets (test_lesson_widgets_0N.py);
05's round-instead-of-ceil and float answers are here too."""

from __future__ import annotations

import hashlib
import math
import re

import numpy as np
import pytest

from kwlesson.checks import (
    check_00_baselines,
    check_01_predict_shape,
    check_02_splits,
    check_02_which_set,
    check_03_ship,
    check_04_most_confused,
    check_04_precision_recall,
    check_05_quota,
    check_05_silence_share,
    check_06_conv_macs,
    check_06_mac_ratio,
    check_07_quantize,
    check_07_serving,
    check_08_average,
    check_08_threshold,
    check_09_threshold,
)

# ------------------------------------------------------------------------- 02 which_set


def which_set(filename, validation_percentage, testing_percentage, strip_nohash=True):
    """The seed's rule, written as a student would: SHA1 of the name before '_nohash_'."""
    name = re.sub(r"_nohash_.*$", "", filename) if strip_nohash else filename
    value = int(hashlib.sha1(name.encode()).hexdigest(), 16) % 2**27
    percentage = value * (100.0 / (2**27 - 1))
    if percentage < validation_percentage:
        return "validation"
    if percentage < validation_percentage + testing_percentage:
        return "testing"
    return "training"


def test_check_02_which_set_accepts_the_seeds_rule(capsys):
    check_02_which_set(which_set)
    assert capsys.readouterr().out == (
        "Exercise 02.1 passed: which_set agrees with the reference on 200 file names\n")


@pytest.mark.parametrize("wrong", [
    # The whole name hashed: clips of one speaker land in different splits.
    lambda name, v, t: which_set(name, v, t, strip_nohash=False),
    # No hash at all: every clip for training.
    lambda name, v, t: "training",
])
def test_check_02_which_set_says_to_hash_the_name_without_nohash(wrong):
    with pytest.raises(AssertionError, match=r"the reference says .*Hash the name without "
                                             r"'_nohash_\.\.\.'"):
        check_02_which_set(wrong)


# ------------------------------------------------------------------ 04 precision, recall


def precision_recall(m):
    m = np.asarray(m, float)
    d = np.diag(m)
    with np.errstate(invalid="ignore", divide="ignore"):
        return d / m.sum(axis=0), d / m.sum(axis=1)


def test_check_04_precision_recall_accepts_the_definition(capsys):
    check_04_precision_recall(precision_recall)
    assert capsys.readouterr().out == (
        "Exercise 04.1 passed: your precision and recall match on 3 confusion matrices\n")


def _nan_as_zero(m):
    return tuple(np.nan_to_num(x) for x in precision_recall(m))


def _recall_of_all_clips(m):
    p, _ = precision_recall(m)
    return p, np.diag(m) / np.asarray(m).sum()


@pytest.mark.parametrize("wrong, hint", [
    (lambda m: precision_recall(m)[::-1], "you swapped rows and columns"),
    (lambda m: tuple(100 * x for x in precision_recall(m)), "not percentages"),
    (_nan_as_zero, "give nan there"),
    (_recall_of_all_clips, "recall of a label = its diagonal cell / the sum of its row"),
    (lambda m: list(precision_recall(m)), "return a pair"),
    (lambda m: (precision_recall(m)[0][:-1], precision_recall(m)[1]), "one value per label"),
])
def test_check_04_precision_recall_names_the_mistake(wrong, hint):
    with pytest.raises(AssertionError, match=re.escape(hint)):
        check_04_precision_recall(wrong)


def test_check_04_precision_recall_says_to_replace_the_placeholder():
    def placeholder(m):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match=r"Exercise 04\.1: replace `raise "
                                             r"NotImplementedError\(\)`"):
        check_04_precision_recall(placeholder)


# ----------------------------------------------------------------------------- 05 quota


@pytest.mark.parametrize("wrong, hint", [
    # round(760 * 7 / 100) = 53, the data set takes 54.
    (lambda n, percentage: round(n * percentage / 100), "round up, not down"),
    (lambda n, percentage: float(math.ceil(n * percentage / 100)), "an int), not a float"),
    # The extra clips as a share of all clips, wanted and extra together.
    (lambda n, percentage: math.ceil(n * percentage / (100 - percentage)),
     "not of all clips"),
])
def test_check_05_quota_names_the_mistake(wrong, hint):
    with pytest.raises(AssertionError, match=re.escape(hint)):
        check_05_quota(wrong)


# ------------------------------------------------------------------------ 06 conv MACs


def conv_macs(shape, filters, kernel, strides=(1, 1), padding="same", *, ceil=True,
              stride=True):
    (r, c, ch), (kh, kw), (sh, sw) = shape, kernel, strides
    if not stride:
        sh = sw = 1
    if padding == "valid":
        r, c = r - kh + 1, c - kw + 1
    div = math.ceil if ceil else math.floor
    return div(r / sh) * div(c / sw) * filters * kh * kw * ch


def test_check_06_conv_macs_accepts_the_count(capsys):
    pytest.importorskip("keras")
    check_06_conv_macs(conv_macs)
    assert capsys.readouterr().out == (
        "Exercise 06.1 passed: your conv_macs matches the library on 6 convolution layers\n")


@pytest.mark.parametrize("wrong, said", [
    (lambda *a: conv_macs(*a, stride=False), "(10, 8), strides (2, 2)"),  # tiny_conv
    (lambda *a: conv_macs(*a, ceil=False), "(3, 4), strides (2, 3)"),  # 45 / 3 rounds
    (lambda shape, filters, kernel, strides, padding:  # the input's channels left out
     conv_macs(shape[:2] + (1,), filters, kernel, strides, padding), "input (49, 20, 64)"),
])
def test_check_06_conv_macs_explains_the_count(wrong, said):
    pytest.importorskip("keras")
    with pytest.raises(AssertionError) as err:
        check_06_conv_macs(wrong)
    message = str(err.value)
    assert said in message
    assert "costs kernel_h x kernel_w x in_channels MACs" in message
    assert "'same' gives ceil(in / stride) rows, 'valid' ceil((in - kernel + 1) / stride)" \
        in message


# -------------------------------------------------------------------------- 07 quantize


def quantize(x, scale, zero_point):
    q = np.round(np.asarray(x) / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def test_check_07_quantize_accepts_litert_rule(capsys):
    check_07_quantize(quantize)
    assert capsys.readouterr().out == (
        "Exercise 07.1 passed: your quantize matches LiteRT's rule on 4 tensors\n")


@pytest.mark.parametrize("wrong, hint", [
    # Not clipped: the int8 conversion wraps 1000 around.
    (lambda x, s, z: (np.round(x / s) + z).astype(np.int8), "clip to [-128, 127] before"),
    (lambda x, s, z: np.clip(np.round(x / s), -128, 127).astype(np.int8),  # no zero point
     "add the zero point"),
    (lambda x, s, z: np.clip(np.round(x * s) + z, -128, 127).astype(np.int8),
     "Divide by the scale"),
    (lambda x, s, z: quantize(x, s, z).astype(np.int32), "use .astype(np.int8)"),
    (lambda x, s, z: quantize(x, s, z)[:-1], "shape (49,), expected (50,)"),
])
def test_check_07_quantize_names_the_mistake(wrong, hint):
    with pytest.raises(AssertionError, match=re.escape(hint)):
        check_07_quantize(wrong)


# --------------------------------------------------------------------------- 08 average


def average(times_ms, scores, current_time_ms, average_window_ms, low=np.greater_equal,
            upper=True, axis=0):
    t = np.asarray(times_ms)
    keep = low(t, current_time_ms - average_window_ms)
    if upper:
        keep &= t <= current_time_ms
    return np.asarray(scores)[keep].mean(axis=axis)


def test_check_08_average_accepts_recognize_commands_window(capsys):
    check_08_average(average)
    assert capsys.readouterr().out == (
        "Exercise 08.1 passed: your averages match RecognizeCommands in 40 situations\n")


@pytest.mark.parametrize("wrong, hint", [
    (lambda t, s, now, w: average(t, s, now, w, low=lambda a, b: np.ones_like(a, bool)),
     "leave out the results older than current_time_ms - average_window_ms"),
    (lambda t, s, now, w: average(t, s, now, w, low=np.greater), "use >=, not >"),
    (lambda t, s, now, w: average(t, s, now, w, upper=False), "they have not happened yet"),
    (lambda t, s, now, w: average(t, s, now, w, axis=1), "return one average per label"),
    (lambda t, s, now, w: np.median(np.asarray(s)[(t >= now - w) & (t <= now)], axis=0),
     "keep the rows with current - window <= time <= current, then take their mean"),
])
def test_check_08_average_names_the_mistake(wrong, hint):
    with pytest.raises(AssertionError, match=re.escape(hint)):
        check_08_average(wrong)


# ------------------------------------------------------------------------ 00 baselines


def test_check_00_baselines_passes_the_right_fractions(capsys):
    check_00_baselines(1 / 12, 0.95)
    assert capsys.readouterr().out.startswith("Exercise 00.1 passed")


@pytest.mark.parametrize("guess, never, hint", [
    (1 / 10, 0.95, "_silence_ and _unknown_"),
    (1 / 12, 0.05, "how often it is wrong"),
    (8.3, 0.95, "not a percentage"),
    (1 / 12, 0.5, "19 of every 20"),
])
def test_check_00_baselines_names_the_mistake(guess, never, hint):
    with pytest.raises(AssertionError, match=re.escape(hint)):
        check_00_baselines(guess, never)


# ------------------------------------------------------------------------ 09 threshold

KEYWORD_SCORES = [0.97, 0.9, 0.8, 0.6, 0.4, 0.3]
OTHER_SCORES = [0.95, 0.7] + [0.05] * 98  # 100 clips: two may fire within 2%


def test_check_09_threshold_takes_a_threshold_inside_the_limit_near_the_best(capsys):
    check_09_threshold(0.1, KEYWORD_SCORES, OTHER_SCORES)  # fires on 0.95 and 0.7: 2%
    assert capsys.readouterr().out.startswith("Exercise 09.1 passed")


@pytest.mark.parametrize("threshold, hint", [
    (0.05, "raise it"),       # all 100 others fire
    (0.75, "lower it"),       # 1% false alarms, but half the keyword clips missed
    (1.5, "at most 1"),
])
def test_check_09_threshold_names_the_mistake(threshold, hint):
    with pytest.raises(AssertionError, match=re.escape(hint)):
        check_09_threshold(threshold, KEYWORD_SCORES, OTHER_SCORES)


# ------------------------------------------------------------------------ 04 most confused

MATRIX = [[9, 0, 1], [5, 7, 0], [2, 1, 8]]  # rows truth, columns prediction
NAMES = ["a", "b", "c"]


def test_check_04_most_confused_passes_the_largest_cell(capsys):
    check_04_most_confused(("b", "a"), MATRIX, NAMES)
    assert capsys.readouterr().out.startswith("Exercise 04.2 passed")


@pytest.mark.parametrize("answer, hint", [
    (("a", "b"), "rows are the truth"),
    (("a", "a"), "on the diagonal"),
    (("c", "a"), "holds 2 clips, but a cell off the diagonal holds 5"),
    (("b", "z"), "'z' is not a label"),
    ("b a", "give two labels"),
])
def test_check_04_most_confused_names_the_mistake(answer, hint):
    with pytest.raises(AssertionError, match=re.escape(hint)):
        check_04_most_confused(answer, MATRIX, NAMES)


# ------------------------------------------------------------------- reasoning exercises


def _passes(check, *args, **kwargs):
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        check(*args, **kwargs)
    return out.getvalue().startswith("Exercise ")


def test_check_01_predict_shape():
    assert _passes(check_01_predict_shape, (39, 20))
    for wrong, hint in (((38, 20), "one short"), ((40, 20), "16,000 / stride"),
                        ((39, 40), "feature_bin_count"), ((64, 20), "640 and the stride 400")):
        with pytest.raises(AssertionError, match=re.escape(hint)):
            check_01_predict_shape(wrong)


def test_check_02_splits():
    assert _passes(check_02_splits, True, False)
    with pytest.raises(AssertionError, match="the speaker's id"):
        check_02_splits(False, False)
    with pytest.raises(AssertionError, match="band only grows"):
        check_02_splits(True, True)
    with pytest.raises(AssertionError, match="True or False"):
        check_02_splits("yes", False)


def test_check_03_ship():
    from kwlesson.checks import SHIP_CURVES

    best = SHIP_CURVES["steps"][SHIP_CURVES["validation"].index(max(SHIP_CURVES["validation"]))]
    assert _passes(check_03_ship, best)
    with pytest.raises(AssertionError, match="the last checkpoint is not the best"):
        check_03_ship(SHIP_CURVES["steps"][-1])
    with pytest.raises(AssertionError, match="pick by the validation accuracy"):
        check_03_ship(SHIP_CURVES["steps"][0])
    with pytest.raises(AssertionError, match="only steps"):
        check_03_ship(1000)


def test_check_05_silence_share():
    assert _passes(check_05_silence_share, 76 / 912)
    for wrong, hint in ((0.1, "not of the split"), (76 / 836, "left out the unknown"),
                        (8.3, "not a percentage")):
        with pytest.raises(AssertionError, match=re.escape(hint)):
            check_05_silence_share(wrong)


def test_check_06_mac_ratio():
    assert _passes(check_06_mac_ratio, 4, 721_280, 184_000)
    with pytest.raises(AssertionError, match="a quarter of the input"):
        check_06_mac_ratio(2, 721_280, 184_000)


def test_check_07_serving():
    pcm = np.array([[100, -100], [3000, 3000]], np.int16)
    keras_top = np.array([0, 1])
    assert _passes(check_07_serving, lambda p: np.eye(2)[[0, 1]], keras_top, pcm)
    with pytest.raises(AssertionError, match=r"agrees with the trained model on 50%"):
        check_07_serving(lambda p: np.eye(2)[[0, 0]], keras_top, pcm)
    with pytest.raises(AssertionError, match="raised ValueError"):
        check_07_serving(lambda p: np.zeros(3).reshape(7), keras_top, pcm)


def test_check_08_threshold():
    labels = ["_silence_", "_unknown_", "yes"]
    times = np.arange(0, 20_000, 30)
    scores = np.tile([0.9, 0.1, 0.0], (len(times), 1))
    truth = []
    for start, peak in ((2000, 0.95), (8000, 0.95), (14000, 0.6)):  # two words, one unknown-ish
        on = (times >= start) & (times < start + 600)
        scores[on] = [0.0, 1 - peak, peak]
        if peak > 0.9:
            truth.append(("yes", start))
    settings = {"average_window_duration_ms": 500, "suppression_ms": 1500, "minimum_count": 3}
    assert _passes(check_08_threshold, 0.8, times, scores, labels, truth, **settings)
    with pytest.raises(AssertionError, match="raise it"):  # the 0.6 bump fires: 1 of 2 false
        check_08_threshold(0.5, times, scores, labels, truth, **settings)
    with pytest.raises(AssertionError, match="lower it"):  # nothing fires at all
        check_08_threshold(0.99, times, scores, labels, truth, **settings)
