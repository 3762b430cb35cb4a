"""Tests for kwlesson.streaming_test: the seed's streaming test generator (on the session's tone
corpus) and its accuracy counting."""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tone_corpus import OTHERS, WORDS  # noqa: E402

from kwlesson import cli  # noqa: E402
from kwlesson import streaming_test as ST  # noqa: E402
from kwlesson.audio import read_wav  # noqa: E402
from kwlesson.config import shared_datasets_dir  # noqa: E402
from kwlesson.streaming import Detection  # noqa: E402
from kwlesson.streaming_test import calculate_accuracy_stats, read_ground_truth  # noqa: E402

LABELS = ["_silence_", "_unknown_", *WORDS]
pytestmark = pytest.mark.usefixtures("private_home")


GROUND_TRUTH = [("yes", 1000), ("no", 4000), ("up", 7000), ("_unknown_", 10000)]



def test_accuracy_counts_match_the_seeds_rules():
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



def generate(corpus: Path, out: Path, seconds: float = 20, **kw) -> ST.StreamingTest:
    kw.setdefault("wanted_words", WORDS)
    return ST.generate_streaming_test(corpus, out / "stream.wav", out / "stream.txt", seconds,
                                     **kw)



def test_generated_stream_is_deterministic_and_labelled_like_the_seeds(corpus, tmp_path):
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
    # The same through the command line, with the seed's flag names.
    rc = cli.main(["generate-streaming-test", "--data_dir", str(corpus),
                   "--output_audio_file", str(tmp_path / "c.wav"),
                   "--output_labels_file", str(tmp_path / "c.txt"),
                   "--test_duration_seconds", "6", "--wanted_words", "yes,no", "--seed", "2"])
    assert rc == 0 and "(6 s, " in capsys.readouterr().out


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
