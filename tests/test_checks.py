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
    check_02_which_set,
    check_04_precision_recall,
    check_05_quota,
    check_06_conv_macs,
    check_07_quantize,
    check_08_average,
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
