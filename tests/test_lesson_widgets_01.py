"""Notebook 01's spectrogram explorer, driven from code: move a slider, and the label, the
features and the picture follow. Also the exercise checker of notebook 01."""

from __future__ import annotations

import numpy as np
import pytest

from kwlesson.checks import check_01_frames
from kwlesson.features import FeatureSettings, compute_features
from kwlesson.widgets import EXPLORER_REPR, SpectrogramExplorer, spectrogram_explorer

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def clip():
    # A 1 kHz tone burst in the middle of a second: not silence, and the same on every run.
    t = np.arange(16000) / 16000
    x = 0.5 * np.sin(2 * np.pi * 1000 * t) * ((t > 0.3) & (t < 0.7))
    return x.astype(np.float32)


@pytest.fixture()
def explorer(clip):
    return spectrogram_explorer(clip)


def test_starts_at_the_course_defaults(explorer, clip):
    assert isinstance(explorer, SpectrogramExplorer)
    assert explorer.settings == FeatureSettings()
    assert explorer.shape_label.value.startswith("model input: 98 frames x 40 bins = 3,920 numbers")
    assert bytes(explorer.image.value).startswith(PNG)
    np.testing.assert_allclose(explorer.features,
                               compute_features(clip, FeatureSettings()).numpy(), rtol=1e-5)
    assert explorer.renders == 1


def test_window_slider_changes_frames_label_and_picture(explorer):
    before = bytes(explorer.image.value)
    explorer.window_slider.value = 50
    assert explorer.settings.window_size_ms == 50
    # 800-sample windows every 160 samples: 1 + (16000 - 800) // 160 = 96 frames
    assert explorer.shape_label.value.startswith("model input: 96 frames x 40 bins")
    assert "(16000 - 800) // 160" in explorer.shape_label.value
    assert explorer.features.shape == (96, 40)
    assert bytes(explorer.image.value).startswith(PNG) and bytes(explorer.image.value) != before
    assert explorer.renders == 2


def test_stride_slider_changes_frames(explorer):
    before = bytes(explorer.image.value)
    explorer.stride_slider.value = 20
    assert explorer.features.shape == FeatureSettings(window_stride_ms=20).shape == (49, 40)
    assert explorer.shape_label.value.startswith("model input: 49 frames x 40 bins = 1,960")
    assert bytes(explorer.image.value) != before


def test_bins_slider_changes_bins(explorer):
    before = bytes(explorer.image.value)
    explorer.bins_slider.value = 13
    assert explorer.features.shape == (98, 13)
    assert explorer.shape_label.value.startswith("model input: 98 frames x 13 bins = 1,274")
    assert bytes(explorer.image.value) != before


def test_spectrogram_bins_come_from_the_window(explorer):
    explorer.preprocess_buttons.value = "spectrogram"
    assert explorer.bins_slider.disabled
    assert explorer.features.shape == (98, 257)
    assert "bins = 512 // 2 + 1" in explorer.shape_label.value
    explorer.window_slider.value = 70  # 1120 samples -> a 2048-point FFT
    assert explorer.features.shape == (FeatureSettings(window_size_ms=70).spectrogram_length, 1025)
    explorer.preprocess_buttons.value = "log_mel"
    assert not explorer.bins_slider.disabled
    assert explorer.features.shape[1] == 40


def test_says_when_the_stride_skips_samples(explorer):
    assert "never looked at" not in explorer.shape_label.value
    explorer.window_slider.value = 10
    explorer.stride_slider.value = 20
    assert "stride longer than window" in explorer.shape_label.value


def test_text_form_is_stable(explorer):
    assert repr(explorer) == repr(explorer.widget) == EXPLORER_REPR
    assert explorer._repr_mimebundle_()["text/plain"] == EXPLORER_REPR


def test_short_clip_is_padded_and_bad_clips_are_refused():
    ex = spectrogram_explorer(np.zeros(4000, np.float32))
    assert ex.clip.shape == (16000,) and ex.features.shape == (98, 40)
    with pytest.raises(ValueError, match="mono"):
        spectrogram_explorer(np.zeros((2, 16000), np.float32))
    with pytest.raises(ValueError, match="preprocess"):
        spectrogram_explorer(np.zeros(16000, np.float32), preprocess="average")


def test_check_01_frames_accepts_the_formula_and_rejects_mistakes(capsys):
    def right(window_ms, stride_ms, clip_ms=1000):
        samples, window, stride = (int(16000 * v / 1000) for v in (clip_ms, window_ms, stride_ms))
        return 0 if window > samples else 1 + (samples - window) // stride

    check_01_frames(right)
    assert capsys.readouterr().out == (
        "Exercise 01.1 passed: your frame counts match FeatureSettings for 10 settings\n")

    def off_by_one(window_ms, stride_ms, clip_ms=1000):
        return right(window_ms, stride_ms, clip_ms) - 1

    with pytest.raises(AssertionError, match="you said 97, FeatureSettings says 98"):
        check_01_frames(off_by_one)

    def negative(window_ms, stride_ms, clip_ms=1000):
        samples, window, stride = (int(16000 * v / 1000) for v in (clip_ms, window_ms, stride_ms))
        return 1 + (samples - window) // stride

    with pytest.raises(AssertionError, match="return 0"):
        check_01_frames(negative)
