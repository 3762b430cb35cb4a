"""Notebook 08's widget: the streaming tuner (kwlesson.widgets.streaming_tuner), driven from code.

The scores are made by hand (no model), so each test knows which words a setting must find:
moving a slider re-runs RecognizeCommands on the same scores and must change the detections,
the accuracy line and the picture as the lesson says.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from kwlesson.plots import stream_figure
from kwlesson.streaming import Detection, RecognizeCommands, moving_average, recognize_scores
from kwlesson.streaming_test import calculate_accuracy_stats, detection_verdicts
from kwlesson.widgets import TUNER_REPR, StreamingTuner, streaming_tuner

matplotlib.use("Agg")

LABELS = ["_silence_", "_unknown_", "yes", "no"]
STRIDE = 30


def make_scores(words, blips=(), seconds=12.0):
    """Scores every 30 ms: silence, except each word's label at 0.9 over 200-800 ms of its clip
    and each blip's label at 0.95 for its duration."""
    times = np.arange(0, int(seconds * 1000) - 1000 + 1, STRIDE)
    scores = np.zeros((len(times), len(LABELS)))
    scores[:, 0] = 1.0
    for label, start in words:
        on = (times >= start + 200) & (times < start + 800)
        scores[on] = 0.1 / (len(LABELS) - 1)
        scores[on, LABELS.index(label)] = 0.9
    for label, start, length in blips:
        on = (times >= start) & (times < start + length)
        scores[on] = 0.0
        scores[on, LABELS.index(label)] = 0.95
    return times, scores


WORDS = [("yes", 1000), ("no", 4000), ("yes", 7000)]


def test_defaults_find_every_word_and_say_so():
    times, scores = make_scores(WORDS)
    tuner = streaming_tuner(times, scores, LABELS, WORDS)
    assert [d.label for d in tuner.detections] == ["yes", "no", "yes"]
    assert tuner.stats.how_many_correct_words == 3
    assert tuner.accuracy.value.startswith("3 detections · 100.0% matched, 100.0% correctly")
    assert tuner.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert tuner.renders == 1


def test_threshold_slider_removes_detections():
    times, scores = make_scores(WORDS)
    tuner = streaming_tuner(times, scores, LABELS, WORDS)
    before = tuner.image.value
    tuner.threshold_slider.value = 0.95  # the words never average above 0.9
    assert tuner.detections == []
    assert tuner.accuracy.value.startswith("0 detections · 0.0% matched")
    assert tuner.renders == 2 and tuner.image.value != before


def test_suppression_slider_lets_a_close_second_word_through():
    words = [("yes", 1000), ("no", 2200)]  # the second word comes 1.2 s after the first
    times, scores = make_scores(words, seconds=5)
    tuner = streaming_tuner(times, scores, LABELS, words, suppression_ms=1500)
    assert [d.label for d in tuner.detections] == ["yes"]
    tuner.suppression_slider.value = 500
    assert [d.label for d in tuner.detections] == ["yes", "no"]
    assert tuner.stats.how_many_correct_words == 2


def test_averaging_slider_smooths_away_a_short_blip():
    times, scores = make_scores(WORDS, blips=[("no", 9500, 150)])
    tuner = streaming_tuner(times, scores, LABELS, WORDS, average_window_ms=90,
                            detection_threshold=0.5)
    assert tuner.stats.how_many_false_positives == 1  # 150 ms of "no" is enough on 90 ms
    assert [d.label for d in tuner.detections][-1] == "no"
    tuner.average_slider.value = 990  # words average 0.9 * 600 / 990 = 0.55, the blip 0.14
    assert tuner.stats.how_many_false_positives == 0
    assert tuner.stats.how_many_correct_words == 3


def test_minimum_count_slider_needs_enough_results_in_the_window():
    times, scores = make_scores(WORDS)
    tuner = streaming_tuner(times, scores, LABELS, WORDS, average_window_ms=300)
    assert len(tuner.detections) == 3
    tuner.minimum_count_slider.value = 20  # a 300 ms window holds 11 results every 30 ms
    assert tuner.detections == []


def test_sliders_give_what_recognize_commands_gives():
    rng = np.random.default_rng(0)
    times = np.arange(0, 20000, STRIDE)
    scores = rng.dirichlet(np.full(len(LABELS), 0.3), size=len(times))
    tuner = streaming_tuner(times, scores, LABELS, [])
    tuner.average_slider.value = 300
    tuner.threshold_slider.value = 0.5
    tuner.suppression_slider.value = 700
    tuner.minimum_count_slider.value = 4
    rc = RecognizeCommands(LABELS, 300, 0.5, 700, 4)
    want = []
    for t, s in zip(times, scores):
        r = rc.process_latest_result(s, int(t))
        if r.is_new_command and r.found_command != "_silence_":
            want.append((int(t), r.found_command))
    assert want, "the random scores should give some detections"
    assert [(d.time_ms, d.label) for d in tuner.detections] == want


def test_view_slider_redraws_without_recounting():
    times, scores = make_scores(WORDS, seconds=60)
    tuner = streaming_tuner(times, scores, LABELS, WORDS, span_s=10)
    detections, before = list(tuner.detections), tuner.image.value
    assert tuner.view_slider.max == pytest.approx(59 - 10 + 1 - 1, abs=1)
    tuner.view_slider.value = 5
    assert tuner.renders == 2 and tuner.image.value != before
    assert tuner.detections == detections


def test_text_form_is_stable():
    times, scores = make_scores(WORDS)
    tuner = streaming_tuner(times, scores, LABELS, WORDS)
    assert repr(tuner) == repr(tuner.widget) == TUNER_REPR
    assert isinstance(tuner, StreamingTuner)
    assert "text/plain" in tuner._repr_mimebundle_()
    assert tuner._repr_mimebundle_()["text/plain"] == TUNER_REPR


def test_scores_of_the_wrong_shape_are_refused():
    times, scores = make_scores(WORDS)
    with pytest.raises(ValueError, match="scores must be"):
        streaming_tuner(times, scores[:, :3], LABELS, WORDS)


def test_verdicts_add_up_to_the_accuracy_counts():
    truth = [("yes", 1000), ("no", 4000), ("yes", 7000)]
    found = [Detection(1100, "yes", 0.9), Detection(1300, "yes", 0.9),
             Detection(4100, "yes", 0.8), Detection(9000, "no", 0.8)]
    verdicts = detection_verdicts(truth, found)
    stats = calculate_accuracy_stats(truth, found)
    assert verdicts == ["correct", "wrong", "wrong", "false positive"]
    assert verdicts.count("correct") == stats.how_many_correct_words
    assert verdicts.count("wrong") == stats.how_many_wrong_words
    assert verdicts.count("false positive") == stats.how_many_false_positives


def test_moving_average_is_what_recognize_scores_thresholds():
    rng = np.random.default_rng(1)
    times = np.arange(0, 6000, STRIDE)
    scores = rng.random((len(times), 2))
    avg = moving_average(times, scores, 500)
    k = 100  # 500 ms back from 3000 ms: the results at 2500..3000 ms, both ends included
    assert np.allclose(avg[k], scores[(times >= times[k] - 500) & (times <= times[k])].mean(0))
    found = recognize_scores(times, scores, ["_silence_", "yes"],
                             average_window_duration_ms=500, detection_threshold=0.0)
    assert found and found[0].score == pytest.approx(avg[times == found[0].time_ms][0, 1])


def test_stream_figure_draws_truth_and_detections():
    times, scores = make_scores(WORDS)
    found = recognize_scores(times, scores, LABELS)
    fig = stream_figure(times, scores, LABELS, WORDS, found, average_window_ms=500,
                        detection_threshold=0.7, span_s=None)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("yes") == 4 and texts.count("no") == 2  # truth marks + detections
    assert [line.get_label() for line in ax.get_lines()][:3] == ["unknown", "yes", "no"]
    assert ax.get_xlim() == (0, times[-1] / 1000 + 1)
    plt.close(fig)
