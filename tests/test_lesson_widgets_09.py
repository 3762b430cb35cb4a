"""Notebook 09's widget: the upload button that labels a recording
(kwlesson.widgets.upload_and_label).

Bytes go in through the FileUpload widget, as a browser would send them. A stand-in model that
hears pitch (a high tone is "banana", a low tone an unknown word, quiet is silence) lets each test
know the right label; one test uses a real Keras model to cover the trained-model path.
"""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from kwlesson.streaming import StreamModel
from kwlesson.widgets import UPLOADER_REPR, KeywordUploader, upload_and_label

LABELS = ["_silence_", "_unknown_", "banana"]
RATE = 16000


def pitch_model(windows: np.ndarray) -> np.ndarray:
    """Silence when quiet, 'banana' when the strongest frequency is above 600 Hz, else unknown."""
    out = np.zeros((len(windows), len(LABELS)), np.float32)
    for i, w in enumerate(windows):
        if np.sqrt(np.mean(w ** 2)) < 0.01:
            out[i] = [0.9, 0.05, 0.05]
            continue
        peak_hz = np.argmax(np.abs(np.fft.rfft(w))) * RATE / len(w)
        out[i] = [0.05, 0.05, 0.9] if peak_hz > 600 else [0.05, 0.9, 0.05]
    return out


def uploader() -> KeywordUploader:
    return upload_and_label(StreamModel(predict=pitch_model, labels=list(LABELS)))


def tone(hz: float, seconds: float, rate: int = RATE) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def recording(seconds: float, *parts: tuple[float, np.ndarray], rate: int = RATE) -> np.ndarray:
    x = np.zeros(int(seconds * rate), np.float32)
    for start, sound in parts:
        k = int(start * rate)
        x[k:k + len(sound)] = sound[:len(x) - k]
    return x


def wav_bytes(x: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def test_a_one_second_banana_is_labelled_banana():
    up = uploader()
    up.simulate_upload("mine.wav", wav_bytes(recording(1.0, (0.2, tone(1000, 0.5)))))
    assert up.label == "banana"
    assert up.score == pytest.approx(0.9)
    assert up.time_ms == 0
    assert up.result.value.startswith("mine.wav: banana (probability 0.90")
    assert set(up.scores) == set(LABELS)
    assert up.audio is not None and up.audio.size == RATE


def test_the_upload_is_emptied_once_labelled():
    up = uploader()
    up.simulate_upload("mine.wav", wav_bytes(tone(1000, 1.0)))
    assert up.upload.value == ()
    assert up.label == "banana"


def test_a_keyword_anywhere_in_a_long_recording_wins_over_unknown_words():
    up = uploader()
    x = recording(3.0, (0.1, tone(300, 0.4)), (1.8, tone(1000, 0.4)))
    up.simulate_upload("long.wav", wav_bytes(x))
    assert up.label == "banana"
    # the chosen window reaches the high tone (1.8 s to 2.2 s) and none of the low one (to 0.5 s)
    assert 900 <= up.time_ms <= 1800
    assert "in the window at" in up.result.value and "3.0 s of audio" in up.result.value


def test_unknown_and_silence():
    up = uploader()
    up.simulate_upload("other.wav", wav_bytes(recording(2.0, (0.5, tone(300, 0.5)))))
    assert up.label == "_unknown_"
    up.simulate_upload("quiet.wav", wav_bytes(np.zeros(RATE, np.float32)))
    assert up.label == "_silence_"


def test_any_rate_and_channels_are_read():
    up = uploader()
    rate = 44100
    mono = recording(1.0, (0.2, tone(1000, 0.5, rate)), rate=rate)
    stereo = np.stack([mono, mono], axis=1)
    up.simulate_upload("phone.wav", wav_bytes(stereo, rate, "PCM_24"))
    assert up.label == "banana"
    assert up.audio.size == RATE


def test_a_file_that_is_not_audio_names_the_file():
    up = uploader()
    up.simulate_upload("notes.wav", b"RIFF0000WAVEnot really audio")
    assert up.label is None
    assert up.error.startswith("notes.wav:")
    assert "/tmp" not in up.error and "notes.wav" in up.result.value
    up.simulate_upload("mine.wav", wav_bytes(tone(1000, 1.0)))  # and it still works after
    assert up.label == "banana" and up.error is None


def test_label_bytes_without_the_widget():
    up = uploader()
    assert up.label_bytes("x.wav", wav_bytes(tone(300, 1.0))) == "_unknown_"


def test_a_trained_keras_model_is_accepted():
    from kwlesson.features import FeatureSettings
    from kwlesson.models import create_model

    settings = FeatureSettings()
    trained = SimpleNamespace(model=create_model("tiny_conv", settings.shape, len(LABELS)),
                              labels=list(LABELS), settings=settings)
    up = upload_and_label(trained)
    up.simulate_upload("mine.wav", wav_bytes(recording(1.5, (0.3, tone(800, 0.4)))))
    assert up.label in LABELS
    assert sum(up.scores.values()) == pytest.approx(1.0, abs=1e-4)


def test_something_else_is_refused():
    with pytest.raises(TypeError, match="trained model"):
        upload_and_label("model.ckpt")


def test_text_form_is_stable():
    up = uploader()
    assert repr(up) == repr(up.widget) == UPLOADER_REPR
    assert up._repr_mimebundle_()["text/plain"] == UPLOADER_REPR
