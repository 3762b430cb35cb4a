"""kwlesson.data with the data folders students really have: broken, odd and missing files.

Every case is handled as a user wants (resampled, padded, trimmed, kept) or reported with the
file's name and the problem; loading never stops halfway and never drops a file silently.
The corpus is written to tmp_path with numpy + soundfile; no audio is committed.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kwlesson import data as D

S = 16000
SPEAKERS = [f"{k:08x}" for k in range(0xA0, 0xA0 + 12)]


@pytest.fixture(autouse=True)
def _home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("KWLESSON_HOME", str(tmp_path_factory.mktemp("home")))


def _tone(seconds: float, rate: int = S, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write(path: Path, x: np.ndarray, rate: int = S, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, rate, subtype=subtype, format="WAV")
    return path


def _wav_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, S, subtype="PCM_16", format="WAV")
    return buf.getvalue()


BAD = {  # file name in yes/ -> words the problem report must contain
    "empty_nohash_0.wav": "empty",
    "truncated_nohash_0.wav": "truncated",
    "notes_nohash_0.wav": "text",
    "cutdata_nohash_0.wav": "truncated",
}


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    for w in ("yes", "no", "bed"):
        for s in SPEAKERS:
            _write(root / w / f"{s}_nohash_0.wav", _tone(1.0, freq=300 + 50 * len(w)))
    yes = root / "yes"
    (yes / "empty_nohash_0.wav").write_bytes(b"")
    (yes / "truncated_nohash_0.wav").write_bytes(_wav_bytes(_tone(1.0))[:30])
    (yes / "notes_nohash_0.wav").write_text("these are my notes, not audio\n" * 5)
    (yes / "cutdata_nohash_0.wav").write_bytes(_wav_bytes(_tone(1.0))[:10000])
    stereo = np.stack([_tone(1.0, 44100), _tone(1.0, 44100)], axis=1)
    _write(yes / "stereo44k_nohash_0.wav", stereo, rate=44100)
    _write(yes / "eightbit_nohash_0.wav", _tone(1.0), subtype="PCM_U8")
    _write(yes / "long3s_nohash_0.wav", _tone(3.0))
    _write(yes / "short03_nohash_0.wav", _tone(0.3))
    _write(yes / "silent_nohash_0.wav", np.zeros(S, np.float32))
    _write(yes / "my clip ü é.wav", _tone(1.0))  # spaces, unicode, no _nohash_
    (root / "cat").mkdir()  # a word folder with no clips
    (root / "cat" / "README.txt").write_text("recordings to come")
    return root  # and no _background_noise_/ folder


@pytest.fixture(scope="module")
def loaded(bad_dir):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sc = D.SpeechCommands(bad_dir, ["yes", "no"], validation_percentage=0,
                              testing_percentage=0, cache=False)
    return sc, [w for w in caught if issubclass(w.category, D.DataWarning)]


def test_unreadable_files_are_skipped_and_named_with_their_problem(loaded, bad_dir):
    sc, caught = loaded
    assert len(caught) == 1  # one warning listing everything, not one per file
    message = str(caught[0].message)
    for name, word in BAD.items():
        hits = [p for p in sc.problems if name in p]
        assert len(hits) == 1, (name, sc.problems)
        assert word in hits[0].lower() and "skipped" in hits[0]
        assert name in message
        assert all(c.path is None or Path(c.path).name != name
                   for s in D.SPLITS for c in sc.index[s])


def test_odd_formats_are_converted_padded_trimmed_and_kept(loaded, bad_dir):
    sc, _ = loaded
    train = {Path(c.path).name: k for k, c in enumerate(sc.index["training"]) if c.path}
    kept = ["stereo44k_nohash_0.wav", "eightbit_nohash_0.wav", "long3s_nohash_0.wav",
            "short03_nohash_0.wav", "silent_nohash_0.wav", "my clip ü é.wav"]
    for name in kept:
        assert name in train, name
        assert sc.index["training"][train[name]].label == "yes"
    audio, labels = sc.arrays("training")
    ref = _tone(1.0)
    # 44.1 kHz stereo -> 16 kHz mono, 8-bit -> float: the same tone, within resampling/8-bit error
    for name, tol in [("stereo44k_nohash_0.wav", 0.01), ("eightbit_nohash_0.wav", 0.02)]:
        x = audio[train[name]]
        assert x.shape == (S,)
        assert np.abs(x[200:-200] - ref[200:-200]).max() < tol, name
    short = audio[train["short03_nohash_0.wav"]]
    assert np.abs(short[:4800]).max() > 0.2 and not short[4800:].any()
    np.testing.assert_allclose(audio[train["long3s_nohash_0.wav"]], ref, atol=1e-4)
    assert not audio[train["silent_nohash_0.wav"]].any()
    adjusted = "\n".join(sc.adjusted)
    assert "long3s_nohash_0.wav: 3.00 s trimmed" in adjusted
    assert "short03_nohash_0.wav: 0.30 s padded" in adjusted
    assert "silent_nohash_0.wav: every sample is zero" in adjusted


def test_empty_word_folder_and_missing_background_are_reported(loaded, bad_dir):
    sc, _ = loaded
    assert any(str(bad_dir / "cat") in p and "no .wav" in p for p in sc.problems)
    assert any("_background_noise_" in p and "missing" in p for p in sc.problems)
    assert sc.background == []


def test_pipeline_runs_over_every_split_without_background(loaded):
    from kwlesson.features import FeatureSettings

    sc, _ = loaded
    settings = FeatureSettings()
    n = 0
    for x, y in sc.dataset("training", settings, batch_size=16, repeat=False):
        assert np.isfinite(x.numpy()).all()
        n += len(y)
    assert n == len(sc.index["training"])
    audio, labels = sc.arrays("training")
    assert not audio[labels == D.SILENCE_INDEX].any()  # no noise to mix: silence is zeros
    assert (labels == D.SILENCE_INDEX).sum() > 0


def test_wanted_word_not_in_data_names_it_and_the_words_found(bad_dir):
    with pytest.raises(ValueError) as err:
        D.SpeechCommands(bad_dir, ["yes", "marvin"], cache=False)
    msg = str(err.value)
    assert "'marvin'" in msg and "bed, no, yes" in msg and str(bad_dir) in msg


def test_wanted_word_whose_folder_is_empty(bad_dir):
    with pytest.raises(ValueError, match=r"'cat'.*words found: bed, no, yes"):
        D.SpeechCommands(bad_dir, ["cat"], cache=False)


def test_missing_and_empty_data_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        D.SpeechCommands(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no .wav/.flac clips"):
        D.SpeechCommands(tmp_path)
    with pytest.raises(FileNotFoundError, match="data folder not found"):
        D.info(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="unknown-sounds folder not found"):
        D.SpeechCommands(tmp_path, unknown_dirs=["boo"])


def test_bad_and_short_background_clips_are_reported(tmp_path):
    root = tmp_path / "d"
    for s in SPEAKERS:
        _write(root / "yes" / f"{s}_nohash_0.wav", _tone(1.0))
    bg = root / "_background_noise_"
    _write(bg / "short.wav", _tone(0.5))
    bg.joinpath("broken.wav").write_bytes(b"RIFF")
    _write(bg / "fine.wav", _tone(5.0) * 0.5)
    with pytest.warns(D.DataWarning, match="broken.wav"):
        sc = D.SpeechCommands(root, ["yes"], cache=False)
    assert [Path(p).name for p in sc.background_paths] == ["fine.wav"]
    assert any("short.wav" in p and "must be longer" in p for p in sc.problems)
    assert any("broken.wav" in p for p in sc.problems)


def test_info_reports_every_problem_without_crashing(bad_dir):
    report = D.info(bad_dir, progress=False)
    problems = "\n".join(report["problems"])
    for name in BAD:
        assert name in problems
    assert "stereo44k_nohash_0.wav: 44100 Hz, 2 channel(s)" in problems
    assert "long3s_nohash_0.wav: 3.00 s long" in problems
    assert "cat: folder has no .wav" in problems
    assert "_background_noise_: folder missing" in problems
    assert report["words"]["yes"]["clips"] == len(SPEAKERS) + 6
    assert report["words"]["yes"]["unreadable"] == len(BAD)
    text = D.format_info(report)
    assert "empty_nohash_0.wav" in text and "my clip" not in problems
    assert "PCM_U8 1 ch: 1" in text and "PCM_16 2 ch: 1" in text


def test_missing_background_is_not_a_problem_for_a_pure_test_folder(tmp_path):
    # Every clip hashes to testing at 0/100 and no synthetic silence is added: noise is unused.
    for s in SPEAKERS:
        _write(tmp_path / "yes" / f"{s}_nohash_0.wav", _tone(1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", D.DataWarning)
        sc = D.SpeechCommands(tmp_path, ["yes"], validation_percentage=0, testing_percentage=100,
                              silence_percentage=None, cache=False)
    assert sc.problems == [] and len(sc.index["testing"]) == len(SPEAKERS)
