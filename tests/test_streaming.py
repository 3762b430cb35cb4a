"""Tests for kwlesson.streaming: RecognizeCommands against the seed's rules, models on windows,
and an end-to-end run of the session's small trained model (conftest.py) over a 20 s stream of
the tone corpus (the stream itself is tested in test_streaming_test.py)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from test_streaming_test import generate  # noqa: E402
from tone_corpus import WORDS  # noqa: E402

from kwlesson import cli  # noqa: E402
from kwlesson import streaming as S  # noqa: E402
from kwlesson import streaming_test as ST  # noqa: E402
from kwlesson.audio import read_wav  # noqa: E402
from kwlesson.streaming import Detection, RecognizeCommands  # noqa: E402

LABELS = ["_silence_", "_unknown_", *WORDS]
pytestmark = pytest.mark.usefixtures("private_home")


# ------------------------------------------------------------------ RecognizeCommands

def feed(rc: RecognizeCommands, scores, times):
    return [rc.process_latest_result(scores, t) for t in times]


def test_the_seeds_find_commands_sequence():
    # The reference's recognize_commands_test.cc FindCommands case, with its exact timings.
    rc = RecognizeCommands(["_silence_", "a", "b"], 1000, 0.2)
    out = feed(rc, [0.0, 1.0, 0.0], range(0, 1000, 100))
    new = [(t, r.found_command) for t, r in zip(range(0, 1000, 100), out) if r.is_new_command]
    # 0-200 ms: fewer than 3 results or under a quarter of the 1000 ms window -> no decision.
    assert [r.score for r in out[:3]] == [0.0, 0.0, 0.0]
    assert new == [(300, "a")]
    out = feed(rc, [0.0, 0.0, 1.0], range(1000, 2000, 100))
    new = [(t, r.found_command) for t, r in zip(range(1000, 2000, 100), out) if r.is_new_command]
    # 'b' leads the average from 1500 ms but is suppressed until 1500 ms after 'a' (at 300 ms).
    assert [r.found_command for r in out[5:]] == ["b"] * 5
    assert new == [(1900, "b")]


def test_warm_up_answers_previous_top_label_with_zero_score():
    rc = RecognizeCommands(["_silence_", "a"], average_window_duration_ms=1000, minimum_count=3)
    assert rc.process_latest_result([0, 1], 0) == ("_silence_", 0.0, False)
    assert rc.process_latest_result([0, 1], 100) == ("_silence_", 0.0, False)
    # three results but only 200 ms < 1000 / 4 -> still no decision
    assert rc.process_latest_result([0, 1], 200) == ("_silence_", 0.0, False)
    assert rc.process_latest_result([0, 1], 250) == ("a", 1.0, True)


def test_minimum_count_and_pruning():
    rc = RecognizeCommands(["_silence_", "a"], average_window_duration_ms=400, minimum_count=3)
    # Results 500 ms apart: the window only ever holds two, so nothing is ever decided.
    assert not any(r.score for r in feed(rc, [0, 1], range(0, 5000, 500)))
    rc = RecognizeCommands(["_silence_", "a", "b"], average_window_duration_ms=400,
                           minimum_count=1, suppression_ms=0)
    rc.process_latest_result([0, 1, 0], 0)
    # A result exactly at the window's edge (t - 400) is kept: the average is (a + b) / 2 -> a.
    r = rc.process_latest_result([0, 0, 1], 400)
    assert r.found_command == "a" and r.score == pytest.approx(0.5)
    assert r.is_new_command
    # One ms later the first result is dropped; the two left span 1 ms < 400 / 4: no decision.
    assert rc.process_latest_result([0, 0, 1], 401) == ("a", 0.0, False)
    r = rc.process_latest_result([0, 0, 1], 500)
    assert r == ("b", 1.0, True)


def test_threshold_is_strict_and_ties_go_to_the_first_label():
    rc = RecognizeCommands(["_silence_", "a", "b"], detection_threshold=0.5, minimum_count=1,
                           average_window_duration_ms=0)
    assert rc.process_latest_result([0, 0.5, 0.5], 0) == ("a", 0.5, False)
    assert rc.process_latest_result([0, 0.4, 0.6], 10) == ("b", 0.6, True)


def test_same_label_never_new_twice_without_another_top_label_between():
    rc = RecognizeCommands(["_silence_", "a"], minimum_count=1, average_window_duration_ms=0)
    out = feed(rc, [0, 1], range(0, 20000, 100))
    assert sum(r.is_new_command for r in out) == 1
    assert rc.previous_top_label == "a"


def test_silence_rearms_without_suppression():
    labels = ["_silence_", "a", "b"]
    rc = RecognizeCommands(labels, average_window_duration_ms=0, minimum_count=1,
                           suppression_ms=1500)
    assert rc.process_latest_result([0, 1, 0], 0).is_new_command            # a
    assert not rc.process_latest_result([1, 0, 0], 1000).is_new_command     # silence, too soon
    assert rc.process_latest_result([1, 0, 0], 1600).is_new_command         # silence is new
    assert rc.previous_top_label == "_silence_"
    # Right after silence no suppression applies: 'b' 10 ms later is new ...
    assert rc.process_latest_result([0, 0, 1], 1610) == ("b", 1.0, True)
    # ... and 'a' again after 'b' is suppressed until 1500 ms have passed.
    assert not rc.process_latest_result([0, 1, 0], 3000).is_new_command
    assert rc.process_latest_result([0, 1, 0], 3111).is_new_command
    # The same is true of a label 'a' after 'a' via silence (never twice in a row without it).
    rc.reset()
    assert rc.previous_top_label == "_silence_"
    assert rc.process_latest_result([0, 1, 0], 0).is_new_command


def test_bad_input_length_and_time_going_backwards():
    rc = RecognizeCommands(["_silence_", "a", "b"], 1000, 0.2)
    with pytest.raises(ValueError, match="should contain 3 elements.*there are 2"):
        rc.process_latest_result([1.0, 0.0], 0)
    rc.process_latest_result([1.0, 0.0, 0.0], 100)
    rc.process_latest_result([1.0, 0.0, 0.0], 100)  # equal time is fine
    with pytest.raises(ValueError, match="increasing time order.*timestamp of 0.*of 100"):
        rc.process_latest_result([1.0, 0.0, 0.0], 0)
    rc.process_latest_result([1.0, 0.0, 0.0], 200)
    # Refused even though 150 is later than the oldest result kept (the reference lets it in).
    with pytest.raises(ValueError, match="increasing time order"):
        rc.process_latest_result([1.0, 0.0, 0.0], 150)


def test_recognize_scores_never_reports_silence():
    labels = ["_silence_", "a"]
    scores = np.array([[0, 1]] * 10 + [[1, 0]] * 70 + [[0, 1]] * 10, np.float32)
    times = np.arange(len(scores)) * 30
    found = S.recognize_scores(times, scores, labels, average_window_duration_ms=90,
                               minimum_count=1, detection_threshold=0.5)
    assert [d.label for d in found] == ["a", "a"]
    assert all(isinstance(d, Detection) for d in found)


def one_at_a_time(times, scores, labels, **kw):
    rc = RecognizeCommands(labels, **kw)
    out = []
    for t, s in zip(times, scores):
        label, score, new = rc.process_latest_result(s, int(t))
        if new and label != "_silence_":
            out.append((int(t), label, round(score, 6)))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_batch_recognition_equals_feeding_results_one_at_a_time(seed):
    rng = np.random.default_rng(seed)
    labels = ["_silence_", "_unknown_", "a", "b"]
    # Stretches of one dominant label with noise, irregular time steps (some equal).
    n = 600
    dominant = np.repeat(rng.integers(0, 4, n // 20), 20)
    scores = rng.dirichlet(np.ones(4) * 0.5, n)
    scores[np.arange(n), dominant] += rng.uniform(0, 2, n)
    scores /= scores.sum(axis=1, keepdims=True)
    times = np.cumsum(rng.integers(0, 60, n))
    kw = dict(average_window_duration_ms=int(rng.choice([0, 300, 1000])),
              detection_threshold=float(rng.choice([0.2, 0.5, 0.7])),
              suppression_ms=int(rng.choice([0, 500, 1500])),
              minimum_count=int(rng.choice([1, 3])))
    want = one_at_a_time(times, scores, labels, **kw)
    got = [tuple(d) for d in S.recognize_scores(times, scores, labels, **kw)]
    assert got == want and len(want) > 0
    with pytest.raises(ValueError, match="increasing time order.*timestamp of 5 after 10"):
        S.recognize_scores([0, 10, 5], scores[:3], labels)


# ------------------------------------------------------------------ counting


# ------------------------------------------------------------------ a tone corpus
# (the session's, from conftest.py)


# ------------------------------------------------------------------ a trained model

@pytest.fixture(scope="module")
def stream_model(trained):
    return S.load_stream_model(trained.checkpoint_path)


@pytest.fixture(scope="module")
def stream(corpus, tmp_path_factory):
    return generate(corpus, tmp_path_factory.mktemp("stream"), seconds=20, seed=1)


def test_shared_features_give_the_per_window_scores(stream_model, stream):
    audio = read_wav(stream.wav)[: 4 * 16000]
    t1, fast = S.stream_scores(audio, stream_model, batch_size=32)
    t2, slow = S.stream_scores(audio, stream_model, batch_size=32, share_features=False)
    assert np.array_equal(t1, t2)
    assert list(t1[:4]) == [0, 30, 60, 90] and t1[-1] == 3000
    assert fast.shape == (len(t1), len(LABELS))
    np.testing.assert_allclose(fast.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(fast, slow, atol=2e-4)


def test_a_plain_model_function_plugs_in(stream_model):
    seen = []

    def model_fn(windows):
        seen.append(windows.shape)
        return stream_model.predict(windows)

    audio = np.zeros(16000 + 480 * 9, np.float32)
    times, scores = S.stream_scores(audio, model_fn, labels=LABELS, batch_size=4)
    assert seen == [(4, 16000), (4, 16000), (2, 16000)]
    assert list(times) == [30 * k for k in range(10)]
    with pytest.raises(ValueError, match="needs labels"):
        S.stream_scores(audio, model_fn)
    with pytest.raises(ValueError, match=r"scores of shape \(4, 5\).*expected \(4, 2\)"):
        S.stream_scores(audio, model_fn, labels=["_silence_", "yes"], batch_size=4)
    # Shorter than one clip: padded to one window.
    times, _ = S.stream_scores(np.zeros(8000, np.float32), model_fn, labels=LABELS)
    assert list(times) == [0]


def test_end_to_end_streaming_accuracy(trained, stream_model, stream):
    out = io.StringIO()
    r = ST.test_streaming_accuracy(stream.wav, stream.labels_file, trained.checkpoint_path,
                                  verbose=True, out=out)
    text = out.getvalue()
    s = r.stats
    assert s.how_many_ground_truth_words == len(stream.ground_truth) == 6
    assert text.splitlines()[-1] == s.summary()
    assert "ground-truth words)" in text
    # Every detection is accounted for exactly once.
    assert (s.how_many_correct_words + s.how_many_wrong_words + s.how_many_false_positives
            == len(r.detections))
    # Tones are easy: most words are found with the right label, few false alarms.
    assert s.how_many_correct_words >= 4, text
    assert s.how_many_false_positives <= 2, text
    assert r.windows == (20 * 16000 - 16000) // 480 + 1
    # The same detections from recognize_stream on the array and from a stored model object.
    again = S.recognize_stream(read_wav(stream.wav), stream_model)
    assert again == r.detections
    if r.detections:
        assert re.search(rf"^{r.detections[0].time_ms}ms: {r.detections[0].label}: "
                         r"\d\.\d{3} \((Correct|Wrong|False Positive)\)$", text, re.MULTILINE)


def test_wrong_rate_stereo_wav_is_resampled(stream_model, stream, tmp_path):
    import soundfile as sf
    import soxr

    audio = read_wav(stream.wav)
    hi = soxr.resample(audio, 16000, 44100)
    path = tmp_path / "stream_44k.wav"
    sf.write(path, np.stack([hi, hi], axis=1), 44100, subtype="PCM_16")
    out = io.StringIO()
    r = ST.test_streaming_accuracy(path, stream.ground_truth, stream_model, out=out)
    assert f"note: {path}: resampled from 44100 Hz to 16000 Hz; 2 channels mixed down" \
        in out.getvalue()
    ref = ST.test_streaming_accuracy(stream.wav, stream.ground_truth, stream_model, out=None)
    assert [d.label for d in r.detections] == [d.label for d in ref.detections]


def test_bad_ground_truth_and_files(stream_model, stream, tmp_path, capsys):
    bad = tmp_path / "truth.txt"
    bad.write_text("yes, 1000.0\nmeow, 4000.0\n")
    with pytest.raises(ValueError, match=re.escape(f"{bad}:2: label 'meow' is not one")):
        ST.test_streaming_accuracy(stream.wav, bad, stream_model, out=None)
    with pytest.raises(ValueError, match="meow"):
        ST.test_streaming_accuracy(stream.wav, [("meow", 10)], stream_model, out=None)
    rc = cli.test_streaming_accuracy_command(str(stream.wav), str(bad), str(tmp_path / "nope"))
    assert rc == 2
    rc = cli.test_streaming_accuracy_command(str(stream.wav), str(bad), stream_model)
    err = capsys.readouterr().err
    assert rc == 2 and f"kwlesson test-streaming-accuracy: {bad}:2: label 'meow'" in err
    late = tmp_path / "late.txt"
    late.write_text(stream.labels_file.read_text() + "yes, 95000.0\n")
    out = io.StringIO()
    r = ST.test_streaming_accuracy(stream.wav, late, stream_model, out=out)
    assert f"note: {late}: 1 word(s) start after the end of the audio (20 s)" in out.getvalue()
    assert r.stats.how_many_ground_truth_words == 7
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("these are my notes")
    rc = cli.test_streaming_accuracy_command(str(not_audio), str(stream.labels_file), stream_model)
    err = capsys.readouterr().err
    assert rc == 2 and f"{not_audio}: not a WAV/FLAC file" in err


def test_tflite_model_on_raw_audio(trained, stream_model, stream, tmp_path):
    import keras

    from kwlesson.features import FeatureLayer

    inputs = keras.Input(shape=(16000,), batch_size=1, name="audio")
    x = FeatureLayer(trained.settings)(inputs)
    logits = trained.model(x, training=False)
    raw = keras.Model(inputs, logits)
    path = tmp_path / "kws.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(raw).convert())
    (tmp_path / "kws_labels.txt").write_text("\n".join(trained.labels) + "\n")
    lite = S.load_stream_model(path)
    assert lite.labels == trained.labels and lite.clip_samples == 16000
    audio = read_wav(stream.wav)[: 2 * 16000]
    _, want = S.stream_scores(audio, stream_model)
    _, got = S.stream_scores(audio, lite, batch_size=8)
    np.testing.assert_allclose(got, want, atol=1e-3)  # logits -> softmax applied
    (tmp_path / "kws_labels.txt").unlink()
    with pytest.raises(ValueError, match="give the labels"):
        S.load_stream_model(path)


# ------------------------------------------------------------------ the real clips


def test_the_command_takes_the_seeds_flags(trained, stream, capsys):
    rc = cli.main(["test-streaming-accuracy", "--wav", str(stream.wav),
                   "--ground_truth", str(stream.labels_file), "--graph", trained.checkpoint_path,
                   "--average_window_ms", "400", "--sample_stride_ms", "30",
                   "--detection_threshold", "0.6", "--clip_duration_ms", "0"])
    out = capsys.readouterr().out
    assert rc == 0 and "detections in" in out and "ground-truth words matched" in out
