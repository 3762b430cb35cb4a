"""Tests for kwlesson.features: reference shapes, tones where they belong, librosa agreement."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kwlesson import cli
from kwlesson.audio import write_wav
from kwlesson.features import (
    DFT_CHOICES,
    LOG_OFFSET,
    MICRO_FRONT_END,
    MICRO_OUTPUT_SCALE,
    PREPROCESS_CHOICES,
    FeatureLayer,
    FeatureSettings,
    average,
    compute_features,
    log_mel,
    mfcc,
    micro,
    power_spectrogram,
    spectrogram,
    wav_to_spectrogram,
)

SR = 16000
RATE = SR


def reference_shape(sample_rate, clip_duration_ms, window_size_ms, window_stride_ms,
                    feature_bin_count, preprocess):
    """prepare_model_settings from tensorflow/examples/speech_commands/models.py, transcribed."""
    desired_samples = int(sample_rate * clip_duration_ms / 1000)
    window_size_samples = int(sample_rate * window_size_ms / 1000)
    window_stride_samples = int(sample_rate * window_stride_ms / 1000)
    length_minus_window = desired_samples - window_size_samples
    if length_minus_window < 0:
        spectrogram_length = 0
    else:
        spectrogram_length = 1 + int(length_minus_window / window_stride_samples)
    if preprocess == "average":
        fft_bin_count = 1 + (2 ** int(np.ceil(np.log2(window_size_samples))) / 2)
        average_window_width = int(math.floor(fft_bin_count / feature_bin_count))
        fingerprint_width = int(math.ceil(fft_bin_count / average_window_width))
    else:  # mfcc
        fingerprint_width = feature_bin_count
    return spectrogram_length, fingerprint_width


def tone_burst(freq=1000.0, start_s=0.3, stop_s=0.6, amp=0.5, seconds=1.0):
    """Silence, then a tone from start_s to stop_s, then silence."""
    x = np.zeros(int(seconds * SR), np.float32)
    n0, n1 = int(start_s * SR), int(stop_s * SR)
    t = np.arange(n1 - n0) / SR
    x[n0:n1] = amp * np.sin(2 * np.pi * freq * t)
    return x


# ---------------------------------------------------------------- shape math


@pytest.mark.parametrize(
    ("kwargs", "shape"),
    [
        ({}, (98, 40)),
        ({"preprocess": "average"}, (98, 43)),  # 257 bins in groups of 6
        ({"window_size_ms": 20, "window_stride_ms": 10}, (99, 40)),
        ({"window_size_ms": 20, "window_stride_ms": 10, "preprocess": "average"}, (99, 43)),
        ({"window_size_ms": 40, "window_stride_ms": 20}, (49, 40)),
        ({"window_size_ms": 40, "window_stride_ms": 20, "preprocess": "average"}, (49, 43)),
        ({"feature_bin_count": 13}, (98, 13)),
        ({"preprocess": "spectrogram"}, (98, 257)),
        ({"window_size_ms": 40, "preprocess": "spectrogram"}, (97, 513)),
        ({"preprocess": "log_mel", "feature_bin_count": 32}, (98, 32)),
        ({"clip_duration_ms": 20}, (0, 40)),  # clip shorter than one window
    ],
)
def test_known_shapes(kwargs, shape):
    s = FeatureSettings(**kwargs)
    assert s.shape == shape


def test_default_settings_numbers():
    s = FeatureSettings()
    assert (s.desired_samples, s.window_size_samples, s.window_stride_samples) == (16000, 480, 160)
    assert (s.fft_length, s.fft_bin_count, s.spectrogram_length) == (512, 257, 98)
    assert FeatureSettings(preprocess="average").average_window_width == 6
    assert s.average_window_width == -1


@pytest.mark.parametrize("preprocess", ["mfcc", "average"])
@pytest.mark.parametrize("window_ms", [10, 20, 25, 30, 40, 64])
@pytest.mark.parametrize("stride_ms", [5, 10, 12.5, 20])
@pytest.mark.parametrize("bins", [10, 13, 40])
def test_shape_math_matches_the_reference(preprocess, window_ms, stride_ms, bins):
    s = FeatureSettings(window_size_ms=window_ms, window_stride_ms=stride_ms,
                        feature_bin_count=bins, preprocess=preprocess)
    assert s.shape == reference_shape(SR, 1000, window_ms, stride_ms, bins, preprocess)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"preprocess": p} for p in PREPROCESS_CHOICES
    ] + [
        {"window_size_ms": 20, "window_stride_ms": 10, "preprocess": "average"},
        {"window_size_ms": 40, "window_stride_ms": 20, "preprocess": "mfcc"},
        {"window_size_ms": 40, "window_stride_ms": 20, "preprocess": "average"},
        {"feature_bin_count": 13, "preprocess": "mfcc"},
    ],
)
def test_computed_shape_is_the_promised_shape(kwargs):
    s = FeatureSettings(**kwargs)
    x = np.zeros(s.desired_samples, np.float32)
    assert tuple(compute_features(x, s).shape) == s.shape
    assert tuple(compute_features(np.stack([x, x, x]), s).shape) == (3, *s.shape)


def test_batched_equals_unbatched():
    rng = np.random.default_rng(1)
    batch = rng.uniform(-0.5, 0.5, (3, SR)).astype(np.float32)
    for p in PREPROCESS_CHOICES:
        s = FeatureSettings(preprocess=p)
        together = compute_features(batch, s).numpy()
        for i in range(3):
            np.testing.assert_allclose(together[i], compute_features(batch[i], s).numpy(),
                                       rtol=1e-5, atol=1e-5, err_msg=p)


def test_settings_round_trip_and_validation():
    s = FeatureSettings(window_size_ms=20, preprocess="average")
    assert FeatureSettings.from_dict(s.to_dict()) == s
    assert FeatureSettings.from_dict({}) == FeatureSettings()
    with pytest.raises(ValueError, match="unknown feature settings: colour"):
        FeatureSettings.from_dict({"colour": "blue"})
    with pytest.raises(ValueError, match="preprocess must be one of mfcc, log_mel"):
        FeatureSettings(preprocess="mel")
    with pytest.raises(ValueError, match="'mfcc' keeps at most 40"):
        FeatureSettings(feature_bin_count=41)
    with pytest.raises(ValueError, match="'average' cannot make 300 bins out of 257"):
        FeatureSettings(feature_bin_count=300, preprocess="average")
    with pytest.raises(ValueError, match="window_stride_ms=0.01 is shorter than one sample"):
        FeatureSettings(window_stride_ms=0.01)
    with pytest.raises(ValueError, match="needs a sample rate of at least 8000"):
        FeatureSettings(sample_rate=4000)


def test_bad_audio_is_refused_with_a_reason():
    s = FeatureSettings()
    with pytest.raises(TypeError, match="float audio .* got int16"):
        compute_features(np.zeros(SR, np.int16), s)
    with pytest.raises(ValueError, match=r"\[samples\] or \[batch, samples\]"):
        compute_features(np.zeros((2, 2, SR), np.float32), s)


# ---------------------------------------------------------------- a tone lands where it should


def test_tone_burst_in_the_spectrogram():
    """A 1 kHz tone from 0.3 s to 0.6 s: peak bin 32, energy only in frames that overlap it."""
    s = FeatureSettings(preprocess="spectrogram")
    spec = spectrogram(tone_burst(), s).numpy()
    tone_bin = round(1000 * s.fft_length / SR)  # 32
    # Frame t covers samples [160 t, 160 t + 480); the tone covers [4800, 9600).
    stride, window = s.window_stride_samples, s.window_size_samples
    frames = np.arange(s.spectrogram_length)
    overlaps = (frames * stride + window > 4800) & (frames * stride < 9600)
    inside = (frames * stride >= 4800) & (frames * stride + window <= 9600)
    assert (frames[overlaps].min(), frames[overlaps].max()) == (28, 59)
    assert np.all(spec[~overlaps] == 0.0)  # silence is exactly zero
    assert np.all(spec[overlaps].max(axis=1) > 1.0)
    assert np.all(np.argmax(spec[inside], axis=1) == tone_bin)
    # A periodic Hann window's sum is 480 / 2; a sine of amplitude A puts A * 240 / 2 in its bin.
    np.testing.assert_allclose(spec[inside, tone_bin], 0.5 * 240 / 2, rtol=0.01)


def test_tone_burst_in_average_log_mel_and_mfcc():
    x = tone_burst()
    silent = np.r_[0:28, 60:98]  # frames that do not touch the tone (see the test above)
    inside = np.r_[30:58]

    s = FeatureSettings(preprocess="average")
    avg = average(x, s).numpy()
    assert np.all(avg[silent] == 0.0)
    assert np.all(np.argmax(avg[inside], axis=1) == 32 // s.average_window_width)  # bins 30-35

    s = FeatureSettings(preprocess="log_mel")
    lm = log_mel(x, s).numpy()
    np.testing.assert_allclose(lm[silent], np.log(LOG_OFFSET), rtol=1e-6)
    # The loudest mel channel is the one whose centre is nearest 1 kHz.
    mel = lambda hz: 1127.0 * np.log1p(hz / 700.0)  # noqa: E731 (HTK, as tf.signal)
    centres = np.linspace(mel(20.0), mel(4000.0), 42)[1:-1]
    assert np.all(np.argmax(lm[inside], axis=1) == np.argmin(np.abs(centres - mel(1000.0))))

    s = FeatureSettings(preprocess="mfcc")
    m = mfcc(x, s).numpy()
    # Silence: every mel channel equals log(1e-6), so only coefficient 0 is non-zero, and it is
    # 2 * 40 * log(1e-6) / sqrt(2 * 40) with tf.signal's DCT scaling.
    np.testing.assert_allclose(m[silent, 0], np.log(LOG_OFFSET) * np.sqrt(2 * 40), rtol=1e-5)
    np.testing.assert_allclose(m[silent, 1:], 0.0, atol=1e-4)
    assert np.all(np.abs(m[inside, 1:]).max(axis=1) > 1.0)


def test_average_is_the_reference_pooling():
    """'average' = mean of power over groups of 6 bins; the last group has the 5 bins left."""
    rng = np.random.default_rng(2)
    x = rng.uniform(-0.5, 0.5, SR).astype(np.float32)
    s = FeatureSettings(preprocess="average")
    power = power_spectrogram(x, s).numpy()
    w = s.average_window_width
    expected = np.stack([power[:, i:i + w].mean(axis=1) for i in range(0, 257, w)], axis=1)
    assert expected.shape == (98, 43)
    np.testing.assert_allclose(average(x, s).numpy(), expected, rtol=1e-5)


def test_mfcc_is_the_dct_of_log_mel_as_tf_signal_does_it():
    """Our DCT is a constant matrix; it must equal tf.signal.mfccs_from_log_mel_spectrograms."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-0.5, 0.5, (2, SR)).astype(np.float32)
    lm = log_mel(x, FeatureSettings(preprocess="log_mel"))
    expected = tf.signal.mfccs_from_log_mel_spectrograms(lm).numpy()
    np.testing.assert_allclose(mfcc(x, FeatureSettings()).numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(mfcc(x, FeatureSettings(feature_bin_count=13)).numpy(),
                               expected[..., :13], atol=1e-4)


# ---------------------------------------------------------------- agreement with librosa


@pytest.fixture(scope="module")
def speechlike():
    """Two tones and noise, loud enough that every mel channel is well above the log floor."""
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234 * t)
    return (x + 0.05 * rng.standard_normal(SR)).astype(np.float32)


def librosa_magnitude(x, s):
    """librosa's STFT framed as tf.signal.stft frames: window at the start of an fft_length buffer.

    librosa centres a short window inside n_fft and frames n_fft samples, tf frames only the
    window and pads it to fft_length at the end; a window array of length n_fft that is the
    periodic Hann followed by zeros, plus fft_length - window zeros after the clip, gives the
    very same frames.
    """
    librosa = pytest.importorskip("librosa")
    scipy_signal = pytest.importorskip("scipy.signal")
    n, fft = s.window_size_samples, s.fft_length
    window = np.pad(scipy_signal.get_window("hann", n, fftbins=True), (0, fft - n))  # periodic
    stft = librosa.stft(np.pad(x, (0, fft - n)), n_fft=fft, hop_length=s.window_stride_samples,
                        win_length=fft, window=window, center=False)
    return np.abs(stft).T


@pytest.mark.parametrize(("window_ms", "stride_ms"), [(30, 10), (20, 10), (40, 20)])
def test_spectrogram_agrees_with_librosa(speechlike, window_ms, stride_ms):
    """Tolerance 1e-5 of the largest magnitude.

    Both compute the same sums; the only difference is float32 rounding in two FFT
    implementations (pocketfft vs Eigen): measured 2e-7 of the peak for these settings. We leave
    a factor ~50 of margin, and real mistakes stay 100 times above it (measured: a symmetric
    instead of periodic Hann 2e-3 of the peak, frames shifted by one sample 9e-4).
    """
    s = FeatureSettings(window_size_ms=window_ms, window_stride_ms=stride_ms,
                        preprocess="spectrogram")
    ours = spectrogram(speechlike, s).numpy()
    theirs = librosa_magnitude(speechlike, s)
    assert ours.shape == theirs.shape == s.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-5 * theirs.max())


def test_log_mel_and_mfcc_agree_with_librosa(speechlike):
    """Tolerances: log-mel 0.03 (about 3 %), MFCC 0.03 absolute; the DCT alone 1e-4.

    Both use the HTK mel scale (librosa's htk=True, norm=None, i.e. peak-1 triangles), but
    tf.signal draws each triangle as a straight line in mel, librosa as a straight line in Hz,
    and tf.signal zeroes the DC bin. The weights differ by up to ~0.006 per bin, which moves a
    channel's sum by ~1 % (measured: at most 0.012 in log units). The DCT itself is the same
    maths in float32 (librosa's 'ortho' DCT differs from tf.signal's only by sqrt(2) on
    coefficient 0, which we undo), so it gets a tight 1e-4.
    """
    librosa = pytest.importorskip("librosa")
    s = FeatureSettings(preprocess="log_mel")
    weights = librosa.filters.mel(sr=SR, n_fft=s.fft_length, n_mels=40, fmin=20.0, fmax=4000.0,
                                  htk=True, norm=None)
    theirs_log_mel = np.log(librosa_magnitude(speechlike, s) @ weights.T + LOG_OFFSET)
    ours_log_mel = log_mel(speechlike, s).numpy()
    np.testing.assert_allclose(ours_log_mel, theirs_log_mel, atol=0.03)

    def librosa_dct(log_mel_frames):
        c = librosa.feature.mfcc(S=log_mel_frames.T, n_mfcc=40, dct_type=2, norm="ortho").T
        c[:, 0] *= np.sqrt(2.0)
        return c

    ours_mfcc = mfcc(speechlike, FeatureSettings()).numpy()
    np.testing.assert_allclose(ours_mfcc, librosa_dct(ours_log_mel), atol=1e-4)
    np.testing.assert_allclose(ours_mfcc, librosa_dct(theirs_log_mel), atol=0.03)


# ---------------------------------------------------------------- inside graphs and models


def test_works_inside_tf_function_with_unknown_batch_and_length():
    rng = np.random.default_rng(4)
    x = rng.uniform(-0.5, 0.5, (2, SR)).astype(np.float32)
    for p in PREPROCESS_CHOICES:
        s = FeatureSettings(preprocess=p)
        fn = tf.function(lambda a, s=s: compute_features(a, s),
                         input_signature=[tf.TensorSpec([None, None], tf.float32)])
        np.testing.assert_allclose(fn(x).numpy(), compute_features(x, s).numpy(),
                                   rtol=1e-5, atol=1e-5, err_msg=p)
        assert tuple(fn(x[:, :8000]).shape) == (2, 48, s.fingerprint_width)


# ---------------------------------------------------------------- the matrix DFT (export)


@pytest.mark.parametrize("kwargs", [
    {},                                                   # 480-sample windows, 512-point DFT
    {"feature_bin_count": 13},
    {"preprocess": "log_mel"},
    {"preprocess": "spectrogram"},                        # every bin, up to Nyquist
    {"preprocess": "average"},
    {"window_size_ms": 40, "window_stride_ms": 20},       # 640 samples, 1024-point
    {"window_size_ms": 20},                               # 320 samples, 512-point
    {"window_size_ms": 64, "window_stride_ms": 32, "preprocess": "spectrogram"},  # no padding
    {"window_size_ms": 8, "window_stride_ms": 4, "preprocess": "spectrogram"},    # 128-point
])
def test_matrix_dft_gives_the_fft_features(kwargs):
    s = FeatureSettings(**kwargs)
    rng = np.random.default_rng(11)
    x = np.stack([rng.normal(0, 0.1, SR), tone_burst(3000.0), tone_burst(150.0, amp=0.01)])
    x = x.astype(np.float32)
    want = spectrogram(x, s).numpy()
    got = spectrogram(x, s, dft="matrix").numpy()
    assert got.shape == want.shape
    # Float rounding only: within 2e-6 of each frame's peak (measured ~5e-7).
    peak = np.maximum(want.max(axis=-1, keepdims=True), 1e-12)
    assert (np.abs(got - want) / peak).max() < 2e-6
    fft_features = compute_features(x, s).numpy()
    matrix_features = compute_features(x, s, dft="matrix").numpy()
    # Noise fills every bin, so the log does not magnify rounding (tone bursts: next test).
    np.testing.assert_allclose(matrix_features[0], fft_features[0], atol=2e-5 * max(
        1.0, float(np.abs(fft_features[0]).max())))
    # One clip alone gives its row of the batch, to float rounding: a batched matrix product
    # may sum in another order (seen on one CPU: 4e-6 apart on coefficients near 0 of a frame
    # whose coefficient 0 is -124), so the tolerance scales with the row as above.
    one = compute_features(x[1], s, dft="matrix").numpy()
    np.testing.assert_allclose(one, matrix_features[1], rtol=1e-6, atol=2e-7 * max(
        1.0, float(np.abs(matrix_features[1]).max())))


def test_matrix_dft_mfcc_is_as_close_to_float64_as_the_fft():
    """Where a tone starts, bins far from it hold 1e-6 of the frame's energy and the log
    magnifies float32 rounding (TensorFlow's FFT included): compare both to float64."""
    s = FeatureSettings()
    x = np.stack([tone_burst(3000.0), tone_burst(150.0, amp=0.01), tone_burst(440.0)])
    idx = (np.arange(s.spectrogram_length)[:, None] * s.window_stride_samples
           + np.arange(s.window_size_samples)[None, :])
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(s.window_size_samples)
                              / s.window_size_samples)
    magnitude = np.abs(np.fft.rfft(x.astype(np.float64)[:, idx] * hann, s.fft_length))
    mel = tf.signal.linear_to_mel_weight_matrix(40, s.fft_bin_count, SR, 20.0, 4000.0).numpy()
    n, k = np.arange(40)[:, None], np.arange(40)[None, :]
    dct = 2 * np.cos(np.pi * k * (2 * n + 1) / 80) / np.sqrt(80)
    truth = np.log(magnitude @ mel.astype(np.float64) + LOG_OFFSET) @ dct
    fft_error = np.abs(compute_features(x, s).numpy() - truth)
    matrix_error = np.abs(compute_features(x, s, dft="matrix").numpy() - truth)
    assert fft_error.max() > 1e-3  # the magnification is real (measured 0.02)
    assert matrix_error.max() <= 2 * fft_error.max()      # measured 1.0-1.4x
    assert matrix_error.mean() <= 3 * fft_error.mean()    # measured 1.7x


def test_matrix_dft_keeps_silent_frames_exactly_silent():
    s = FeatureSettings()
    x = tone_burst(1000.0, start_s=0.5, stop_s=1.0)
    features = compute_features(x, s, dft="matrix").numpy()
    silent = features[: (8000 - s.window_size_samples) // s.window_stride_samples + 1]
    np.testing.assert_array_equal(silent, compute_features(x, s).numpy()[: len(silent)])
    # Coefficient 0 of silence: 40 mel bins at log(1e-6), times the DCT-II weight 2 / sqrt(80).
    assert silent[0, 0] == pytest.approx(40 * math.log(LOG_OFFSET) * 2 / math.sqrt(80), rel=1e-5)


def test_matrix_dft_works_inside_tf_function_and_refuses_unknown_methods():
    s = FeatureSettings()
    x = np.random.default_rng(12).uniform(-0.5, 0.5, (2, SR)).astype(np.float32)
    fn = tf.function(lambda a: compute_features(a, s, dft="matrix"),
                     input_signature=[tf.TensorSpec([None, None], tf.float32)])
    np.testing.assert_allclose(fn(x).numpy(), compute_features(x, s).numpy(), atol=2e-5)
    assert tuple(fn(x[:, :8000]).shape) == (2, 48, 40)
    assert DFT_CHOICES == ("fft", "matrix")
    with pytest.raises(ValueError, match="dft must be one of fft, matrix, not 'cuda'"):
        compute_features(x, s, dft="cuda")


def test_feature_layer_in_a_model_saves_and_reloads(tmp_path):
    s = FeatureSettings(preprocess="average", window_size_ms=40, window_stride_ms=20)
    inputs = keras.Input(shape=(SR,))
    features = FeatureLayer(s)(inputs)
    assert tuple(features.shape) == (None, 49, 43)
    model = keras.Model(inputs, keras.layers.Flatten()(features))
    x = np.random.default_rng(5).uniform(-0.5, 0.5, (2, SR)).astype(np.float32)
    expected = compute_features(x, s).numpy().reshape(2, -1)
    np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-5)

    path = tmp_path / "front.keras"
    model.save(path)
    again = keras.models.load_model(path)
    assert again.layers[1].settings == s
    np.testing.assert_allclose(again(x).numpy(), expected, rtol=1e-5)
    assert FeatureLayer().settings == FeatureSettings()
    assert FeatureLayer({"preprocess": "log_mel"}).settings.preprocess == "log_mel"


@pytest.mark.real_data
def test_real_yes_clip_gives_finite_features_with_speech_in_them():
    from kwlesson.audio import read_wav
    from kwlesson.config import shared_datasets_dir

    root = shared_datasets_dir()
    folder = root / "speech_commands_test_set_v0.02_dev" / "yes" if root else None
    if folder is None or not folder.is_dir():
        pytest.skip("real clips absent: set KWLESSON_SHARED_DATASETS to the shared datasets folder")
    x = read_wav(sorted(folder.glob("*.wav"))[0], clip_samples=SR)
    for p in PREPROCESS_CHOICES:
        s = FeatureSettings(preprocess=p)
        f = compute_features(x, s).numpy()
        assert f.shape == s.shape and np.isfinite(f).all(), p
    # A word is louder than the quietest part of its clip by a wide margin (> 20 dB in power).
    frame_power = power_spectrogram(x, FeatureSettings()).numpy().sum(axis=1)
    assert frame_power.max() > 100 * np.percentile(frame_power, 5)


# -- per-bin normalisation --------------------------------------------------------------------

def test_normalisation_is_applied_last_per_bin():
    raw = FeatureSettings(feature_bin_count=13)
    rng = np.random.default_rng(0)
    mean = tuple(float(v) for v in rng.standard_normal(13))
    scale = tuple(float(v) for v in rng.uniform(0.5, 3.0, 13))
    norm = FeatureSettings(feature_bin_count=13, feature_mean=mean, feature_scale=scale)
    audio = (0.1 * rng.standard_normal((2, SR))).astype(np.float32)
    want = (compute_features(audio, raw).numpy() - np.float32(mean)) / np.float32(scale)
    np.testing.assert_allclose(compute_features(audio, norm).numpy(), want, rtol=1e-5,
                               atol=1e-5)
    assert norm.shape == raw.shape and norm.normalized and not raw.normalized
    assert norm.without_normalization() == raw
    # Inside an exported model too: FeatureLayer reads the same settings.
    layer = FeatureLayer(norm.to_dict())
    np.testing.assert_allclose(layer(audio).numpy(), want, rtol=1e-5, atol=1e-5)


def test_normalisation_round_trips_and_old_settings_load_unnormalised():
    import json

    norm = FeatureSettings(feature_bin_count=2, preprocess="log_mel", feature_mean=(1.5, -2.0),
                           feature_scale=(0.25, 4.0))
    back = FeatureSettings.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert back == norm and hash(back) == hash(norm)
    # What runs from before normalisation existed stored: no such keys, plain features.
    old = FeatureSettings.from_dict({"sample_rate": 16000, "clip_duration_ms": 1000,
                                     "window_size_ms": 30.0, "window_stride_ms": 10.0,
                                     "feature_bin_count": 40, "preprocess": "mfcc"})
    assert old == FeatureSettings() and not old.normalized
    audio = np.random.default_rng(1).standard_normal(SR).astype(np.float32) * 0.1
    np.testing.assert_array_equal(compute_features(audio, old).numpy(),
                                  mfcc(audio, FeatureSettings()).numpy())


@pytest.mark.parametrize("change, match", [
    ({"feature_mean": (0.0,) * 40}, "go together"),
    ({"feature_mean": (0.0,) * 39, "feature_scale": (1.0,) * 39}, "39 values but the features "
                                                                  "have 40 bins"),
    ({"feature_mean": (0.0,) * 40, "feature_scale": (1.0,) * 39 + (0.0,)}, "positive"),
    ({"feature_mean": (float("nan"),) * 40, "feature_scale": (1.0,) * 40}, "finite"),
    ({"feature_mean": "abc", "feature_scale": (1.0,) * 40}, "sequence of numbers"),
])
def test_bad_normalisation_is_a_clear_error(change, match):
    with pytest.raises(ValueError, match=match):
        FeatureSettings(**change)


def test_normalization_stats_give_zero_mean_unit_scale():
    from kwlesson.features import normalization_stats

    rng = np.random.default_rng(2)
    x = rng.normal([-100.0, 3.0, 0.01], [30.0, 1.0, 0.1], size=(50, 98, 3))
    mean, scale = normalization_stats(x)
    z = (x - np.array(mean)) / np.array(scale)
    np.testing.assert_allclose(z.reshape(-1, 3).mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(z.reshape(-1, 3).std(axis=0), 1, atol=1e-3)
    # A constant bin gets a floor, not a division by zero.
    const = np.concatenate([x[:, :, :1], np.full((50, 98, 1), 7.0)], axis=-1)
    mean, scale = normalization_stats(const)
    assert mean[1] == 7.0 and 0 < scale[1] < 1e-1 * scale[0]


def test_wav_to_spectrogram_writes_the_seeds_png(tmp_path):
    t = np.arange(RATE) / RATE
    wav = tmp_path / "tone.wav"
    # Quiet enough that brightness 64 does not saturate the peak: the argmax is the peak.
    write_wav(wav, (0.02 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    png = tmp_path / "out" / "spectrogram.png"
    image = wav_to_spectrogram(wav, png)
    assert image.dtype == np.uint8 and image.shape == (1 + (RATE - 256) // 128, 129)
    decoded = tf.io.decode_png(png.read_bytes()).numpy()
    assert decoded.shape == (*image.shape, 1)
    np.testing.assert_array_equal(decoded[..., 0], image)
    # 1 kHz with 256-sample windows at 16 kHz: bin 1000 / (16000 / 256) = 16.
    assert np.bincount(image.argmax(axis=1)).argmax() == 16
    assert 0 < image.max() < 255
    assert cli.wav_to_spectrogram_command(str(wav), str(tmp_path / "b.png")) == 0
    assert cli.wav_to_spectrogram_command(str(tmp_path / "none.wav"), str(png)) == 2


# -- the 'micro' front end (TensorFlow Lite Micro's) -------------------------------------------

MICRO = FeatureSettings(window_stride_ms=20, preprocess="micro")  # the TinyML course's


def micro_channel(freq_hz, channels=40):
    """The channel whose centre is nearest freq_hz: the op's filterbank spaces channel centres
    evenly in mel (1127 ln(1 + f / 700)) from its lower to its upper band limit."""
    def mel(f):
        return 1127.0 * math.log1p(f / 700.0)

    low, high = mel(MICRO_FRONT_END["lower_band_limit"]), mel(MICRO_FRONT_END["upper_band_limit"])
    spacing = (high - low) / (channels + 1)
    return round((mel(freq_hz) - low) / spacing) - 1


def test_micro_has_the_tinyml_course_shape_for_a_clip_and_a_batch():
    assert MICRO.shape == (49, 40)  # 30 ms windows every 20 ms: 49 frames a second
    x = tone_burst()
    assert tuple(micro(x, MICRO).shape) == (49, 40)
    assert tuple(compute_features(np.stack([x, x]), MICRO).shape) == (2, 49, 40)
    assert FeatureSettings(preprocess="micro").shape == (98, 40)
    assert FeatureSettings(preprocess="micro", feature_bin_count=32).shape == (98, 32)


@pytest.mark.parametrize("freq", [500.0, 1000.0, 3000.0])
def test_micro_puts_a_tone_in_its_channel_and_silence_at_zero(freq):
    f = micro(tone_burst(freq), MICRO).numpy()
    tone = f[int(0.35 * 49):int(0.55 * 49)].mean(axis=0)  # frames well inside the burst
    assert abs(int(tone.argmax()) - micro_channel(freq)) <= 1
    assert f[:10].max() == 0.0  # digital silence before the burst: the log of nothing is 0
    assert np.isfinite(f).all()


def test_micro_is_the_ops_integer_output_times_10_over_256():
    from tensorflow.lite.experimental.microfrontend.python.ops import (
        audio_microfrontend_op as op,
    )

    x = np.random.default_rng(6).uniform(-0.3, 0.3, SR).astype(np.float32)
    pcm = np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)
    raw = op.audio_microfrontend(tf.constant(pcm), sample_rate=SR, window_size=30,
                                 window_step=20, num_channels=40).numpy()  # uint16, the C values
    assert raw.dtype == np.uint16 and 0 < raw.max() < 1024
    np.testing.assert_array_equal(micro(x, MICRO).numpy(), raw * np.float32(MICRO_OUTPUT_SCALE))
    # ... values from 0 to about 26, the range the micro_speech example's int8 input covers
    assert micro(x, MICRO).numpy().min() >= 0.0 and micro(x, MICRO).numpy().max() < 30.0


@pytest.mark.parametrize(("change", "match"), [
    ({"window_size_ms": 30.5}, "whole milliseconds"),
    ({"window_stride_ms": 12.5}, "whole milliseconds"),
    ({"sample_rate": 8000}, "above 15000 Hz, not 8000"),
    ({"feature_mean": (0.0,) * 40, "feature_scale": (1.0,) * 40}, "not normalised per bin"),
])
def test_micro_refuses_what_the_device_front_end_cannot_do(change, match):
    with pytest.raises(ValueError, match=match):
        FeatureSettings(preprocess="micro", **change)


def test_micro_trains_in_the_tf_data_pipeline_outside_xla():
    from kwlesson.pipeline import _front_end  # reaches in: the compiled front end itself

    front = _front_end(MICRO, SR, 0, False)
    clips = (tone_burst()[None] * 32767).astype(np.int16)
    zeros = tf.zeros([1], tf.int32)
    out = front(tf.constant(clips), zeros, zeros, tf.zeros([1]), tf.zeros([SR]))
    np.testing.assert_allclose(out.numpy()[0], micro(clips[0] / 32768.0, MICRO).numpy(),
                               atol=1e-6)
