"""Guards on the course's quick model: the one every lesson after 03 and `make demo` rely on.

The model is the lessons' own (``quick_model()`` in the default home, trained once per
machine and then shared with the notebooks and the microphone tests), so this costs one
training on a fresh machine and seconds afterwards. The floors sit below the spread measured
over three seeds (benchmarks/RESULTS.md, "500 speakers: TC-ResNet8 on 20 ms frames":
88.6-91.1% on the test split), so a change to the recipe, the features, the data or the
training loop that costs accuracy fails here instead of in a lesson's stored output.
"""

from __future__ import annotations

import pytest

import kwlesson as kw
from kwlesson import evaluation, streaming, streaming_test, synth
from kwlesson.data import SpeechCommands

# Three seeds scored 88.6, 90.3 and 91.1% (N=528 on the first offline dataset; one standard
# error about 1.3 points). The dataset of SYNTH_VERSION 2 has N=588 on every machine.
TEST_FLOOR = 0.85
# Lesson 08's stream (180 s, a word every 3 s, 30% unknown) at the lesson's settings: the
# lessons' model scored 60.0% of the words correct and 11.7% false positives (2026-12-03); other
# trainings of the same recipe 58.3-65.0% and 1.7-5.0% (RESULTS.md, "Lesson 08's stream, model
# by model"). The correct words are short of the course's aim (80%); the floors catch a model
# that gets worse, not the aims.
STREAM_CORRECT_FLOOR = 50.0
STREAM_FALSE_POSITIVE_CEILING = 20.0


@pytest.fixture(scope="module")
def model():
    return kw.quick_model(progress=False)


def test_quick_model_is_clearly_above_a_floor_on_its_offline_test_split(model):
    result = evaluation.evaluate(model, split="testing")
    assert result.n >= 500, f"the test split has {result.n} clips; the aim needs 500 or more"
    assert result.accuracy >= TEST_FLOOR, (
        f"quick model: {result.accuracy:.1%} on the offline test split (N={result.n}), below "
        f"the floor of {TEST_FLOOR:.0%}:\n{result.format()}")
    # No label may be left behind: the lessons read every row of the matrix. "Mostly misses"
    # is below half; the weakest label measured is _unknown_ (57% on 2026-12-04's machine).
    weak = {label: r for label, r in result.recall.items() if r < 0.5}
    assert not weak, f"labels the quick model mostly misses: {weak}"


def test_quick_model_spots_words_in_lesson_08s_stream(model, tmp_path):
    clips = SpeechCommands(synth.offline_dataset(progress=False), silence_percentage=0,
                           unknown_percentage=None, progress=False)
    test = streaming_test.generate_streaming_test(clips, tmp_path / "s.wav", tmp_path / "s.txt",
                                                  180)
    stream_model = streaming.keras_stream_model(model.model, model.labels, model.settings)
    stats = streaming_test.test_streaming_accuracy(
        test.wav, test.labels_file, stream_model, average_window_duration_ms=500,
        detection_threshold=0.7, suppression_ms=1500, minimum_count=3, out=None).stats
    assert stats.correct_percentage >= STREAM_CORRECT_FLOOR, stats.summary()
    assert stats.false_positive_percentage <= STREAM_FALSE_POSITIVE_CEILING, stats.summary()
