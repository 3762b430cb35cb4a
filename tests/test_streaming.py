"""Tests for kwlesson.streaming: RecognizeCommands against the reference's rules, the streaming
test generator, the reference's accuracy counting, and an end-to-end run of a small model trained
on a generated tone corpus (one tone per word) over a 20 s stream.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tone_corpus import OTHERS, WORDS  # noqa: E402

from kwlesson import cli  # noqa: E402
from kwlesson import streaming as S  # noqa: E402
from kwlesson import streaming_test as ST  # noqa: E402
from kwlesson.audio import read_wav  # noqa: E402
from kwlesson.config import shared_datasets_dir  # noqa: E402
from kwlesson.streaming import Detection, RecognizeCommands  # noqa: E402
from kwlesson.streaming_test import calculate_accuracy_stats, read_ground_truth  # noqa: E402

LABELS = ["_silence_", "_unknown_", *WORDS]


@pytest.fixture(scope="module", autouse=True)
def private_home(tmp_path_factory):
    """Keep the decoded-clip cache of these tests out of the user's data folder."""
    old = os.environ.get("KWLESSON_HOME")
    os.environ["KWLESSON_HOME"] = str(tmp_path_factory.mktemp("home"))
    yield
    if old is None:
        os.environ.pop("KWLESSON_HOME", None)
    else:
        os.environ["KWLESSON_HOME"] = old


# ------------------------------------------------------------------ RecognizeCommands

def feed(rc: RecognizeCommands, scores, times):
    return [rc.process_latest_result(scores, t) for t in times]


def test_reference_find_commands_sequence():
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

GROUND_TRUTH = [("yes", 1000), ("no", 4000), ("up", 7000), ("_unknown_", 10000)]


def test_accuracy_counts_match_the_reference_rules():
    found = [("yes", 1300),    # correct
             ("yes", 1500),    # same word detected again -> wrong
             ("left", 4500),   # wrong label
             ("up", 7760),     # 760 ms late with a 750 ms tolerance -> false positive
             ("go", 20000)]    # nothing near -> false positive
    s = calculate_accuracy_stats(GROUND_TRUTH, found, time_tolerance_ms=750)
    assert dataclasses.astuple(s) == (4, 2, 2, 1, 2)  # gt, matched, false pos, correct, wrong
    assert s.summary() == ("50.0% matched, 25.0% correctly, 50.0% wrongly, 50.0% false "
                           "positives (% of 4 ground-truth words)")
    # A wider tolerance turns the late 'up' into a correct one.
    s = calculate_accuracy_stats(GROUND_TRUTH, found, time_tolerance_ms=1000)
    assert (s.how_many_correct_words, s.how_many_false_positives) == (2, 1)


def test_a_detection_is_judged_against_the_first_word_within_tolerance():
    truth = [("yes", 1000), ("no", 1500)]
    s = calculate_accuracy_stats(truth, [Detection(1400, "no", 0.9)], time_tolerance_ms=750)
    assert (s.how_many_correct_words, s.how_many_wrong_words) == (0, 1)
    assert s.how_many_ground_truth_matched == 1


def test_up_to_time_counts_only_ground_truth_heard_so_far():
    s = calculate_accuracy_stats(GROUND_TRUTH, [("yes", 1000)], up_to_time_ms=3000,
                                 time_tolerance_ms=750)
    assert s.how_many_ground_truth_words == 1 and s.correct_percentage == 100.0
    s = calculate_accuracy_stats([], [("yes", 10)])
    assert s.summary() == "No ground truth yet, 1 false positives"


def test_read_ground_truth(tmp_path):
    p = tmp_path / "truth.txt"
    p.write_text("# made by hand\nno, 4000.500000\n\nyes, 1000.000000\n")
    assert read_ground_truth(p) == [("yes", 1000), ("no", 4000)]
    p.write_text("yes, 1000\nyes 2000\n")
    with pytest.raises(ValueError, match=re.escape(f"{p}:2: expected 'label, time_ms'")):
        read_ground_truth(p)
    p.write_text("yes, 1000\nno, soon\n")
    with pytest.raises(ValueError, match=re.escape(f"{p}:2: time 'soon' is not a number")):
        read_ground_truth(p)
    p.write_text("yes, -5\n")
    with pytest.raises(ValueError, match=re.escape(f"{p}:1: time must be")):
        read_ground_truth(p)
    p.write_text("yes, 1000\ncat, 3000\n")
    with pytest.raises(ValueError, match=re.escape(f"{p}:2: label 'cat' is not one the model "
                                                   "knows (_silence_, _unknown_, yes")):
        read_ground_truth(p, LABELS)
    with pytest.raises(FileNotFoundError, match="ground truth file not found"):
        read_ground_truth(tmp_path / "missing.txt")


# ------------------------------------------------------------------ a tone corpus
# (the session's, from conftest.py)

def generate(corpus: Path, out: Path, seconds: float = 20, **kw) -> ST.StreamingTest:
    kw.setdefault("wanted_words", WORDS)
    return ST.generate_streaming_test(corpus, out / "stream.wav", out / "stream.txt", seconds,
                                     **kw)


def test_generated_stream_is_deterministic_and_labelled_like_the_reference(corpus, tmp_path):
    a = generate(corpus, tmp_path / "a", seed=3)
    b = generate(corpus, tmp_path / "b", seed=3)
    c = generate(corpus, tmp_path / "c", seed=4)
    assert a.wav.read_bytes() == b.wav.read_bytes()
    assert a.labels_file.read_text() == b.labels_file.read_text()
    assert a.wav.read_bytes() != c.wav.read_bytes()
    lines = a.labels_file.read_text().splitlines()
    assert len(lines) == 20 // 3 == len(a.ground_truth)  # a word every clip + 2 s gap
    for i, line in enumerate(lines):
        m = re.fullmatch(r"(_unknown_|yes|no|up), (\d+\.\d{6})", line)
        assert m, line
        t = float(m.group(2))
        assert i * 3000 <= t < i * 3000 + 2000  # jitter within the word gap
    audio = read_wav(a.wav)
    assert len(audio) == 20 * 16000 and a.duration_s == 20
    # Words from the testing split only, each a clip of its label's folder.
    from kwlesson.data import split_of

    for (label, _), path in zip(a.ground_truth, a.clips):
        assert split_of(path, 10, 10) == "testing"
        folder = Path(path).parent.name
        assert folder == label or (label == "_unknown_" and folder in OTHERS)
    # Between words there is background noise, not digital silence.
    first = int(a.ground_truth[0][1] * 16)
    assert first == 0 or np.abs(audio[:first]).max() > 0


def test_unknown_percentage_and_no_background(corpus, tmp_path):
    all_unknown = generate(corpus, tmp_path / "u", seconds=30, unknown_percentage=100)
    assert {label for label, _ in all_unknown.ground_truth} == {"_unknown_"}
    none = generate(corpus, tmp_path / "n", seconds=30, unknown_percentage=0,
                    background_volume=0.0)
    assert "_unknown_" not in {label for label, _ in none.ground_truth}
    audio = read_wav(none.wav)
    t0 = int(none.ground_truth[0][1] * 16)
    assert not audio[:t0].any()  # no background: silence before the first word
    with pytest.raises(ValueError, match="duration_s must be positive"):
        generate(corpus, tmp_path / "x", seconds=0)


def test_noise_only_stream_has_the_same_background_and_no_words(corpus, tmp_path):
    words = generate(corpus, tmp_path / "w", seconds=20, seed=5)
    noise = generate(corpus, tmp_path / "q", seconds=20, seed=5, with_words=False)
    assert noise.ground_truth == [] and noise.labels_file.read_text() == ""
    with_words, alone = read_wav(words.wav), read_wav(noise.wav)
    assert len(alone) == len(with_words) == 20 * 16000 and np.abs(alone).max() > 0
    # The background is drawn first, so the words are the only difference.
    first = int(words.ground_truth[0][1] * 16)
    assert np.array_equal(alone[:first], with_words[:first])
    assert not np.array_equal(alone, with_words)


def test_generate_streaming_test_command(corpus, tmp_path, capsys):
    rc = cli.generate_streaming_test_command(
        str(corpus), str(tmp_path / "s.wav"), str(tmp_path / "s.txt"), test_duration_seconds=9,
        wanted_words="yes,no,up")
    out = capsys.readouterr().out
    assert rc == 0
    assert f"Saved streaming test wav to {tmp_path / 's.wav'} (9 s, 3 words" in out
    assert f"Saved streaming test labels to {tmp_path / 's.txt'}" in out
    rc = cli.generate_streaming_test_command(str(tmp_path / "nowhere"), str(tmp_path / "t.wav"),
                                        str(tmp_path / "t.txt"))
    err = capsys.readouterr().err
    assert rc == 2 and "nowhere: data folder not found" in err


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

@pytest.mark.real_data
def test_stream_from_the_real_test_split(tmp_path):
    shared = shared_datasets_dir()
    data = shared / "speech_commands_test_set_v0.02_dev" if shared else None
    noise = shared / "background_noise" / "_background_noise_" if shared else None
    if data is None or not data.is_dir() or not noise.is_dir():
        pytest.skip("real clips absent: set KWLESSON_SHARED_DATASETS to the folder holding "
                    "speech_commands_test_set_v0.02_dev and background_noise")
    from kwlesson.data import DataWarning, split_of

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        t = ST.generate_streaming_test(data, tmp_path / "s.wav", tmp_path / "s.txt", 60,
                                      background_dir=noise, validation_percentage=11,
                                      testing_percentage=1, seed=0)
    assert len(t.ground_truth) == 20
    labels = {label for label, _ in t.ground_truth}
    assert "_unknown_" in labels and len(labels) > 5
    assert all(split_of(p, 11, 1) == "testing" for p in t.clips)
    audio = read_wav(t.wav)
    gap = audio[: int(t.ground_truth[0][1] * 16)]
    assert len(gap) == 0 or 0 < np.abs(gap).max() < 0.3  # official noise at volume <= 0.1
