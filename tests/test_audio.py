"""Tests for kwlesson.audio: every width, rate and channel count in, one clean clip out.

The corpus is built in tmp_path with soundfile and numpy, so no audio is kept in the repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kwlesson.audio import (
    SAMPLE_RATE,
    AudioError,
    describe_wav,
    fit_length,
    read_wav,
    write_wav,
)


def tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


@pytest.fixture
def clip() -> np.ndarray:
    """A 1 s, 440 Hz tone with a little noise: every sample value matters."""
    rng = np.random.default_rng(0)
    x = tone(440, 1.0, SAMPLE_RATE, amp=0.6) + rng.uniform(-0.1, 0.1, SAMPLE_RATE)
    return x.astype(np.float32)


# ---------------------------------------------------------------- widths


@pytest.mark.parametrize(
    ("subtype", "atol"),
    [
        ("PCM_16", 1 / 2**15),  # one 16-bit step
        ("PCM_24", 1 / 2**23),
        ("PCM_32", 1e-6),  # float32 itself limits this one
        ("FLOAT", 0.0),
        ("PCM_U8", 1 / 2**7),  # one 8-bit step
    ],
)
def test_every_width_reads_as_float_in_range(tmp_path, clip, subtype, atol):
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, clip, SAMPLE_RATE, subtype=subtype)
    x = read_wav(path)
    assert x.dtype == np.float32
    assert x.shape == (SAMPLE_RATE,)
    np.testing.assert_allclose(x, clip, atol=atol + 1e-7)


def test_unsigned_8bit_silence_is_zero_not_half(tmp_path):
    # 8-bit wav stores silence as 128; a naive reader returns 0.5 or 128.
    path = tmp_path / "u8.wav"
    sf.write(path, np.zeros(800, np.float32), SAMPLE_RATE, subtype="PCM_U8")
    raw = path.read_bytes()[-800:]
    assert set(raw) == {128}
    assert np.all(read_wav(path) == 0.0)


def test_float_wav_beyond_full_scale_is_clipped(tmp_path):
    path = tmp_path / "loud.wav"
    sf.write(path, np.array([0.5, 1.5, -2.0, 0.0], np.float32), SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_array_equal(read_wav(path), [0.5, 1.0, -1.0, 0.0])


def test_float_wav_with_nan_is_an_error(tmp_path):
    path = tmp_path / "nan.wav"
    sf.write(path, np.array([0.1, np.nan, 0.2], np.float32), SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: contains NaN or infinite samples$"):
        read_wav(path)


# ---------------------------------------------------------------- rate and channels


def test_stereo_44k_is_mixed_down_and_resampled(tmp_path):
    left = tone(1000, 1.0, 44100, amp=0.5)
    right = np.zeros_like(left)
    path = tmp_path / "stereo44k.wav"
    sf.write(path, np.stack([left, right], axis=1), 44100, subtype="PCM_16")
    x = read_wav(path)
    assert x.shape == (16000,)  # 44100 samples at 44.1 kHz = 1 s = 16000 at 16 kHz
    assert peak_hz(x, SAMPLE_RATE) == pytest.approx(1000, abs=1)
    # Mixing down averages the channels: half the left channel's amplitude.
    middle = x[1000:-1000]  # away from the resampler's edge transients
    assert np.max(np.abs(middle)) == pytest.approx(0.25, abs=0.005)


def test_odd_length_resample_rounds_the_duration(tmp_path):
    path = tmp_path / "odd.wav"
    sf.write(path, tone(1000, 0.5, 22050), 22050, subtype="PCM_16")  # 11025 samples
    assert read_wav(path).shape == (8000,)


def test_other_target_rate(tmp_path, clip):
    path = tmp_path / "a.wav"
    sf.write(path, clip, SAMPLE_RATE)
    assert read_wav(path, sample_rate=8000).shape == (8000,)


def test_flac_is_read_too(tmp_path):
    path = tmp_path / "a.flac"
    sf.write(path, tone(1000, 1.0, 22050), 22050, subtype="PCM_16")
    x = read_wav(path)
    assert x.shape == (16000,)
    assert peak_hz(x, SAMPLE_RATE) == pytest.approx(1000, abs=1)


# ---------------------------------------------------------------- length


def test_long_clip_is_trimmed_from_the_end(tmp_path):
    long = tone(300, 3.0, SAMPLE_RATE)
    path = tmp_path / "long.wav"
    sf.write(path, long, SAMPLE_RATE, subtype="FLOAT")
    x = read_wav(path, clip_samples=16000)
    np.testing.assert_array_equal(x, long[:16000])
    assert read_wav(path).shape == (48000,)  # without clip_samples nothing is cut


def test_short_clip_is_padded_with_zeros_at_the_end(tmp_path):
    short = tone(300, 0.3, SAMPLE_RATE)
    path = tmp_path / "short.wav"
    sf.write(path, short, SAMPLE_RATE, subtype="FLOAT")
    x = read_wav(path, clip_samples=16000)
    assert x.shape == (16000,)
    np.testing.assert_array_equal(x[:4800], short)
    assert np.all(x[4800:] == 0)


def test_fit_length():
    x = np.arange(1, 4, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(x, 5), [1, 2, 3, 0, 0])
    np.testing.assert_array_equal(fit_length(x, 2), [1, 2])
    np.testing.assert_array_equal(fit_length(x, 3), x)
    assert fit_length(x, 5).dtype == np.float32
    assert fit_length(x, 0).shape == (0,)
    with pytest.raises(ValueError, match="must be >= 0"):
        fit_length(x, -1)
    with pytest.raises(ValueError, match="1-D"):
        fit_length(np.zeros((2, 2)), 3)


# ---------------------------------------------------------------- broken files


def _wav_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "good.wav"
    sf.write(path, tone(440, 1.0, SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
    return path.read_bytes()


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(AudioError) as err:
        read_wav(path)
    assert str(err.value) == f"{path}: empty file (0 bytes)"


def test_truncated_header(tmp_path):
    path = tmp_path / "cut.wav"
    path.write_bytes(_wav_bytes(tmp_path)[:20])
    with pytest.raises(AudioError) as err:
        read_wav(path)
    assert str(err.value) == f"{path}: truncated header (only 20 bytes)"


def test_truncated_data_is_not_silently_padded(tmp_path):
    path = tmp_path / "cut.wav"
    path.write_bytes(_wav_bytes(tmp_path)[:1044])  # 44-byte header + 500 samples of 16000
    with pytest.raises(AudioError) as err:
        read_wav(path, clip_samples=16000)
    assert str(err.value) == (
        f"{path}: truncated data (header promises 32000 bytes of samples, 31000 are missing;"
        " only 500 frames present)"
    )


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("yes, no, up, down\nthese are the words\n")
    with pytest.raises(AudioError) as err:
        read_wav(path)
    assert str(err.value) == f"{path}: not a WAV/FLAC file (looks like text)"


def test_html_page_named_wav(tmp_path):
    path = tmp_path / "page.wav"
    path.write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>")
    with pytest.raises(AudioError, match=r"page\.wav: not a WAV/FLAC file \(looks like an HTML"):
        read_wav(path)


def test_binary_junk(tmp_path):
    path = tmp_path / "junk.wav"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(AudioError) as err:
        read_wav(path)
    assert str(err.value) == (
        f"{path}: not a WAV/FLAC file (unrecognised format, starts with "
        r"b'\x00\x01\x02\x03\x04\x05\x06\x07')"
    )


def test_header_without_samples(tmp_path):
    path = tmp_path / "nothing.wav"
    sf.write(path, np.zeros(0, np.float32), SAMPLE_RATE, subtype="PCM_16")
    with pytest.raises(AudioError) as err:
        read_wav(path)
    assert str(err.value) == f"{path}: no samples (the header is fine but the clip is empty)"


def test_truncated_flac(tmp_path):
    good = tmp_path / "good.flac"
    sf.write(good, tone(440, 1.0, SAMPLE_RATE), SAMPLE_RATE)
    path = tmp_path / "cut.flac"
    path.write_bytes(good.read_bytes()[:30])
    with pytest.raises(AudioError, match=r"cut\.flac: corrupt or truncated FLAC file"):
        read_wav(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(AudioError) as err:
        read_wav(tmp_path / "nope.wav")
    assert str(err.value) == f"{tmp_path / 'nope.wav'}: file not found"
    with pytest.raises(AudioError, match="is a folder"):
        read_wav(tmp_path)


def test_audio_error_is_a_value_error():
    assert issubclass(AudioError, ValueError)


# ---------------------------------------------------------------- writing


def test_write_wav_is_16bit_and_round_trips(tmp_path, clip):
    path = tmp_path / "sub" / "out.wav"  # missing folders are made
    write_wav(path, clip)
    info = sf.info(path)
    assert (info.subtype, info.samplerate, info.channels, info.frames) == (
        "PCM_16", SAMPLE_RATE, 1, SAMPLE_RATE)
    np.testing.assert_allclose(read_wav(path), clip, atol=1 / 2**15)


def test_write_wav_clips_instead_of_wrapping(tmp_path):
    path = tmp_path / "loud.wav"
    write_wav(path, np.array([1.7, -3.0, 0.25], np.float32))
    np.testing.assert_allclose(read_wav(path), [32767 / 32768, -1.0, 0.25], atol=1e-6)


def test_write_wav_is_atomic(tmp_path, clip):
    path = tmp_path / "out.wav"
    write_wav(path, clip)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="NaN"):
        write_wav(path, np.array([0.0, np.nan], np.float32))
    with pytest.raises(ValueError, match="1-D mono"):
        write_wav(path, np.zeros((10, 2), np.float32))
    assert path.read_bytes() == before  # a failed write leaves the old file alone
    write_wav(path, clip[:100])  # replacing an existing file works
    assert sf.info(path).frames == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]  # no temp files left


# ---------------------------------------------------------------- describe


def test_describe_wav(tmp_path):
    path = tmp_path / "s.wav"
    sf.write(path, np.zeros((22050, 2), np.float32), 44100, subtype="PCM_24")
    assert describe_wav(path) == {
        "path": os.fspath(path),
        "format": "WAV",
        "rate": 44100,
        "channels": 2,
        "frames": 22050,
        "subtype": "PCM_24",
        "duration_s": 0.5,
    }
    empty = tmp_path / "e.wav"
    empty.touch()
    with pytest.raises(AudioError, match=r"e\.wav: empty file"):
        describe_wav(empty)


def test_importing_audio_does_not_load_tensorflow():
    code = "import sys, kwlesson.audio; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- real clips, when present


@pytest.mark.real_data
def test_real_speech_commands_clips():
    from kwlesson.config import shared_datasets_dir

    root = shared_datasets_dir()
    folder = root / "speech_commands_test_set_v0.02_dev" / "yes" if root else None
    if folder is None or not folder.is_dir():
        pytest.skip("real clips absent: set KWLESSON_SHARED_DATASETS to the shared datasets folder")
    paths = sorted(folder.glob("*.wav"))[:5]
    assert paths, f"no wav files in {folder}"
    for path in paths:
        info = describe_wav(path)
        assert (info["rate"], info["channels"], info["subtype"]) == (16000, 1, "PCM_16")
        x = read_wav(path, clip_samples=SAMPLE_RATE)
        assert x.shape == (SAMPLE_RATE,) and x.dtype == np.float32
        assert 0 < np.abs(x).max() <= 1.0  # a spoken word, not silence
