"""From a clip to the picture a network sees: spectrogram, log-mel, MFCC, 'average' and 'micro'
features.

Everything here is built from TensorFlow ops, so the very same function can sit at the front of
an exported model (``FeatureLayer``) and a phone computes exactly what training computed.

Shapes follow TensorFlow's speech_commands example (the seed) (``prepare_model_settings`` in
tensorflow/examples/speech_commands/models.py): a 1 s clip at 16 kHz, 30 ms windows every
10 ms, gives 98 frames.

Choices, and why:

* Windows: periodic Hann of ``window_size_samples``, zero-padded to the next power of two
  (``fft_length``), as the seed's ``AudioSpectrogram`` op does. No padding at the clip ends,
  so the frame count is the seed's ``1 + (samples - window) // stride``.
* ``spectrogram``: the magnitude ``|STFT|``, ``fft_length // 2 + 1`` bins.
* ``average``: the seed's 'average' preprocess: the *power* spectrogram ``|STFT|**2``,
  averaged over groups of ``average_window_width`` neighbouring bins (SAME padding, so the last,
  shorter group is averaged over the bins it has).
* ``mfcc``: the seed's ``Mfcc`` op settings: 40 mel channels from 20 Hz to 4000 Hz summing
  the *magnitude* spectrum, natural log, DCT-II keeping the first ``feature_bin_count``
  coefficients. Two deliberate differences: the log floor is ``log(mel + 1e-6)`` rather than
  ``log(max(mel, 1e-12))`` (a floor of 1e-12 turns the digital silence of padded clips into
  values near -28, far outside speech's range, which hurts training and int8 quantisation), and
  the DCT is scaled like ``tf.signal.mfccs_from_log_mel_spectrograms`` (orthonormal except
  coefficient 0, which is sqrt(2) larger).
* ``log_mel``: the same mel filterbank and log with ``feature_bin_count`` channels, so with the
  default 40 bins ``mfcc`` is exactly the DCT of ``log_mel``.
* ``micro``: TensorFlow Lite Micro's own front end (the seed's ``--preprocess=micro``, the
  TinyML course's features): the ``AudioMicrofrontend`` op on 16-bit samples, times 10/256.
  A microcontroller runs that front end in C, so its features are the training features; the
  course trains it with 30 ms windows every 20 ms (49 frames x 40 channels per second).
* Per-bin normalisation (optional, ``feature_mean`` / ``feature_scale``): MFCC coefficient 0
  spans about -124..25 while the last ones stay within +-1, so an int8 input with one scale for
  all bins leaves the small coefficients a handful of steps. Training (``normalize_features``)
  measures each bin's mean and spread on training clips once and stores them in these
  settings; every consumer of the settings then computes ``(x - mean) / scale``.
* The mel matrix (HTK mel scale, ``tf.signal.linear_to_mel_weight_matrix``) and the DCT matrix
  are computed once and embedded as constants; the DCT is a plain matrix product, not
  ``tf.signal.dct`` (an FFT of complex numbers), which TFLite converters handle more easily.
* Two ways to the same spectrum (``dft=``): ``"fft"`` (default) is ``tf.signal.stft``, what
  training and evaluation run in TensorFlow. ``"matrix"`` computes the same windowed DFT as two
  small matrix products (a 512-point DFT as 16-point DFTs, a twiddle, then 32-point DFTs, only
  for the bins the features use): what the exported models carry, because LiteRT's RFFT2D op
  costs 0.28 ms per clip and the products with their twiddle about 0.12 ms (with LiteRT's
  default XNNPACK kernels; benchmarks/RESULTS.md, "Export"). The two
  agree to float rounding (a few 1e-7 of each frame's peak) and a silent frame is exactly
  silent in both.

Introduced in notebook 02.

>>> settings = FeatureSettings(preprocess="mfcc")
>>> settings.shape
(98, 40)
>>> compute_features(tf.zeros([16000]), settings).shape  # doctest: +SKIP
TensorShape([98, 40])
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kwlesson.audio import AudioError, read_wav

__all__ = [
    "PREPROCESS_CHOICES",
    "DFT_CHOICES",
    "MEL_LOWER_HZ",
    "MEL_UPPER_HZ",
    "MFCC_MEL_BINS",
    "LOG_OFFSET",
    "FeatureSettings",
    "compute_features",
    "spectrogram",
    "power_spectrogram",
    "log_mel",
    "mfcc",
    "average",
    "micro",
    "MICRO_FRONT_END",
    "MICRO_OUTPUT_SCALE",
    "FeatureLayer",
    "normalization_stats",
]

PREPROCESS_CHOICES = ("mfcc", "log_mel", "spectrogram", "average", "micro")
#: How the spectrum is computed: TensorFlow's FFT, or the matrix DFT the exported models use.
DFT_CHOICES = ("fft", "matrix")
#: Mel filterbank range, from the seed's Mfcc op (speech sits well below 4 kHz).
MEL_LOWER_HZ = 20.0
MEL_UPPER_HZ = 4000.0
#: Mel channels the MFCC is computed from (the seed's filterbank_channel_count).
MFCC_MEL_BINS = 40
#: Added before the log so silence gives log(1e-6) ~ -13.8 rather than -inf.
LOG_OFFSET = 1e-6
#: The 'micro' front end's own settings the seed leaves at the op's defaults (and so do the
#: TinyML course and TensorFlow Lite Micro's micro_speech example): the filterbank's band,
#: noise reduction, PCAN gain control and the log's shift.
MICRO_FRONT_END = {"upper_band_limit": 7500.0, "lower_band_limit": 125.0, "smoothing_bits": 10,
                   "even_smoothing": 0.025, "odd_smoothing": 0.06,
                   "min_signal_remaining": 0.05, "enable_pcan": True, "pcan_strength": 0.95,
                   "pcan_offset": 80.0, "gain_bits": 21, "enable_log": True,
                   "scale_shift": 6}
#: The seed multiplies the op's integer output (0 to about 670) by 10/256, "for historical
#: reasons, to match up with the output of other feature generators": floats from 0 to ~26.
MICRO_OUTPUT_SCALE = 10.0 / 256.0


def _next_power_of_two(n: int) -> int:
    return 1 if n <= 1 else 2 ** math.ceil(math.log2(n))


@dataclass(frozen=True)
class FeatureSettings:
    """How a clip becomes features; the names and the shape math follow the seed.

    >>> s = FeatureSettings(window_size_ms=40, window_stride_ms=20, preprocess="average")
    >>> s.shape
    (49, 43)
    """

    sample_rate: int = 16000
    clip_duration_ms: int = 1000
    window_size_ms: float = 30.0
    window_stride_ms: float = 10.0
    feature_bin_count: int = 40
    preprocess: str = "mfcc"
    #: Per-bin normalisation, applied last: (x - feature_mean) / feature_scale. None (the
    #: default, and what runs from before it existed store) leaves the features as computed.
    #: Training computes both from training clips (``TrainConfig.normalize_features``), so
    #: every consumer of these settings (evaluation, export, streaming) applies the same.
    feature_mean: tuple[float, ...] | None = None
    feature_scale: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.preprocess not in PREPROCESS_CHOICES:
            raise ValueError(
                f"preprocess must be one of {', '.join(PREPROCESS_CHOICES)}, "
                f"not {self.preprocess!r}"
            )
        for name in ("sample_rate", "clip_duration_ms", "window_size_ms", "feature_bin_count"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)!r}")
        if self.window_size_samples < 1:
            raise ValueError(
                f"window_size_ms={self.window_size_ms} is shorter than one sample "
                f"at {self.sample_rate} Hz"
            )
        if self.window_stride_samples < 1:
            raise ValueError(
                f"window_stride_ms={self.window_stride_ms} is shorter than one sample "
                f"at {self.sample_rate} Hz"
            )
        if self.preprocess == "average" and self.feature_bin_count > self.fft_bin_count:
            raise ValueError(
                f"'average' cannot make {self.feature_bin_count} bins out of "
                f"{self.fft_bin_count} FFT bins; lower feature_bin_count or widen the window"
            )
        if self.preprocess == "mfcc" and self.feature_bin_count > MFCC_MEL_BINS:
            raise ValueError(
                f"'mfcc' keeps at most {MFCC_MEL_BINS} coefficients (one per mel channel), "
                f"not {self.feature_bin_count}"
            )
        if self.preprocess == "micro":
            self._check_micro()
        if self.preprocess in ("mfcc", "log_mel") and self.sample_rate / 2 < MEL_UPPER_HZ:
            raise ValueError(
                f"mel features go up to {MEL_UPPER_HZ:g} Hz, which needs a sample rate of at "
                f"least {2 * MEL_UPPER_HZ:g} Hz, not {self.sample_rate}"
            )
        self._check_normalisation()

    def _check_micro(self) -> None:
        for name in ("window_size_ms", "window_stride_ms"):
            value = getattr(self, name)
            if float(value) != int(value):
                raise ValueError(f"'micro' takes whole milliseconds (the device's front end "
                                 f"counts in ms): {name}={value}")
        top = MICRO_FRONT_END["upper_band_limit"]
        if self.sample_rate / 2 <= top:
            raise ValueError(f"'micro' features go up to {top:g} Hz, which needs a sample "
                             f"rate above {2 * top:g} Hz, not {self.sample_rate}")
        if self.feature_mean is not None:
            raise ValueError("'micro' features are not normalised per bin: a microcontroller "
                             "feeds its front end's values as they are (train without "
                             "normalize_features)")

    def _check_normalisation(self) -> None:
        if (self.feature_mean is None) != (self.feature_scale is None):
            raise ValueError("feature_mean and feature_scale go together: give both or neither")
        if self.feature_mean is None:
            return
        for name in ("feature_mean", "feature_scale"):
            try:
                values = tuple(float(v) for v in getattr(self, name))
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a sequence of numbers, "
                                 f"not {getattr(self, name)!r}") from None
            if len(values) != self.fingerprint_width:
                raise ValueError(f"{name} has {len(values)} values but the features have "
                                 f"{self.fingerprint_width} bins")
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"{name} must be finite numbers")
            # JSON gives lists; tuples keep the settings hashable and comparable.
            object.__setattr__(self, name, values)
        if not all(v > 0 for v in self.feature_scale):
            raise ValueError("feature_scale must be positive in every bin")

    @property
    def normalized(self) -> bool:
        """True when features are normalised per bin (feature_mean / feature_scale set)."""
        return self.feature_mean is not None

    def without_normalization(self) -> FeatureSettings:
        """The same settings with no per-bin normalisation (the raw features).

        >>> FeatureSettings(feature_bin_count=2, feature_mean=(0, 1),
        ...                 feature_scale=(1, 2)).without_normalization().normalized
        False
        """
        return dataclasses.replace(self, feature_mean=None, feature_scale=None)

    # The seed truncates with int(), so 30 ms at 16 kHz is 480 samples.
    @property
    def desired_samples(self) -> int:
        """Samples in one clip (16000 for 1 s at 16 kHz)."""
        return int(self.sample_rate * self.clip_duration_ms / 1000)

    @property
    def window_size_samples(self) -> int:
        """Samples in one analysis window (480 for 30 ms)."""
        return int(self.sample_rate * self.window_size_ms / 1000)

    @property
    def window_stride_samples(self) -> int:
        """Samples between the starts of two windows (160 for 10 ms)."""
        return int(self.sample_rate * self.window_stride_ms / 1000)

    @property
    def fft_length(self) -> int:
        """FFT size: the window length rounded up to a power of two (512 for 480)."""
        return _next_power_of_two(self.window_size_samples)

    @property
    def fft_bin_count(self) -> int:
        """Frequency bins of one spectrogram frame: fft_length // 2 + 1 (257)."""
        return self.fft_length // 2 + 1

    @property
    def spectrogram_length(self) -> int:
        """Frames per clip: 1 + (desired - window) // stride, or 0 if the clip is too short."""
        length_minus_window = self.desired_samples - self.window_size_samples
        if length_minus_window < 0:
            return 0
        return 1 + length_minus_window // self.window_stride_samples

    @property
    def average_window_width(self) -> int:
        """FFT bins averaged into one 'average' bin (6 for 257 into 40); -1 for other
        preprocesses."""
        if self.preprocess != "average":
            return -1
        return _average_window_width(self)

    @property
    def fingerprint_width(self) -> int:
        """Feature bins per frame."""
        if self.preprocess == "average":
            return int(math.ceil(self.fft_bin_count / self.average_window_width))
        if self.preprocess == "spectrogram":
            return self.fft_bin_count
        return self.feature_bin_count

    @property
    def shape(self) -> tuple[int, int]:
        """(frames, bins) of one clip's features, e.g. (98, 40)."""
        return (self.spectrogram_length, self.fingerprint_width)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, e.g. to store next to a trained model.

        >>> FeatureSettings().to_dict()["preprocess"]
        'mfcc'
        """
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSettings:
        """Inverse of ``to_dict``; missing keys take their defaults, unknown keys are an error.

        >>> FeatureSettings.from_dict({"preprocess": "average"}).shape
        (98, 43)
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown feature settings: {', '.join(unknown)}")
        return cls(**d)


def _average_window_width(settings: FeatureSettings) -> int:
    # The seed: floor(fft_bin_count / feature_bin_count).
    return int(math.floor(settings.fft_bin_count / settings.feature_bin_count))


# ---------------------------------------------------------------- constants built once


@functools.lru_cache(maxsize=32)
def _mel_matrix(num_mel_bins: int, fft_bin_count: int, sample_rate: int) -> np.ndarray:
    # init_scope runs this eagerly even while a tf.function is being traced, so the matrix
    # lands in the graph as one constant instead of the ops that build it.
    with tf.init_scope():
        m = tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins=num_mel_bins,
            num_spectrogram_bins=fft_bin_count,
            sample_rate=sample_rate,
            lower_edge_hertz=MEL_LOWER_HZ,
            upper_edge_hertz=MEL_UPPER_HZ,
        )
        return m.numpy()


@functools.lru_cache(maxsize=32)
def _dct_matrix(num_mel_bins: int, num_coefficients: int) -> np.ndarray:
    """[mel, coefficients] DCT-II scaled as tf.signal.mfccs_from_log_mel_spectrograms."""
    n = np.arange(num_mel_bins)[:, None]
    k = np.arange(num_coefficients)[None, :]
    basis = 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * num_mel_bins))
    return (basis / np.sqrt(2.0 * num_mel_bins)).astype(np.float32)


# ---------------------------------------------------------------- the front end


def _as_audio(audio: Any) -> tf.Tensor:
    audio = tf.convert_to_tensor(audio)
    if not audio.dtype.is_floating:
        raise TypeError(
            f"features expect float audio in [-1, 1], got {audio.dtype.name} "
            "(for 16-bit integers divide by 32768)"
        )
    if audio.shape.rank not in (1, 2):
        raise ValueError(
            f"features expect audio shaped [samples] or [batch, samples], got {audio.shape}"
        )
    return tf.cast(audio, tf.float32)


def _stft(audio: tf.Tensor, settings: FeatureSettings) -> tf.Tensor:
    return tf.signal.stft(
        audio,
        frame_length=settings.window_size_samples,
        frame_step=settings.window_stride_samples,
        fft_length=settings.fft_length,
        window_fn=functools.partial(tf.signal.hann_window, periodic=True),
        pad_end=False,
    )


@functools.lru_cache(maxsize=32)
def _dft_matrices(window: int, fft_length: int, bins: int) -> dict[str, np.ndarray]:
    """Constants of the two-stage DFT of a periodic-Hann window zero-padded to ``fft_length``.

    Sample ``n = n1 + p * n2`` of a frame and bin ``k = q * k1 + k2`` (``p * q = fft_length``):
    ``X[k] = sum_n1 W_p^(n1 k1) * W_N^(n1 k2) * sum_n2 x[n] W_q^(n2 k2)``, so stage 1 is a
    q-point DFT over n2 for every n1, then the twiddle ``W_N^(n1 k2)``, then a p-point DFT over
    n1 for every k2 (only the k1 the first ``bins`` bins need). Complex numbers are carried as
    [real, imaginary] halves; built in float64, stored float32.
    """
    p = 2 ** math.ceil(math.log2(fft_length) / 2)
    q = fft_length // p
    rows = -(-window // p)             # n2 values that hold samples (the rest is zero padding)
    k1_count = -(-bins // q)
    hann = np.zeros(p * rows)
    hann[:window] = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(window) / window)
    stage1 = np.exp(-2j * np.pi * np.arange(rows)[:, None] * np.arange(q)[None, :] / q)
    twiddle = np.exp(-2j * np.pi * np.arange(p)[:, None] * np.arange(q)[None, :] / fft_length)
    dft = np.exp(-2j * np.pi * np.arange(p)[:, None] * np.arange(k1_count)[None, :] / p)
    # [re | im] of n1 in -> re and im of k1 out: (a + ib)(c + id) = (ac - bd) + i(ad + bc).
    f32 = functools.partial(np.asarray, dtype=np.float32)
    return {"p": p, "q": q, "rows": rows, "k1": k1_count,
            "window": f32(hann.reshape(rows, p).T),                         # [p, rows]
            "stage1_re": f32(stage1.real), "stage1_im": f32(stage1.imag),   # [rows, q]
            "twiddle_re": f32(twiddle.real), "twiddle_im": f32(twiddle.imag),  # [p, q]
            "stage2_re": f32(np.concatenate([dft.real, -dft.imag])),        # [2p, k1]
            "stage2_im": f32(np.concatenate([dft.imag, dft.real]))}         # [2p, k1]


def _matrix_dft_magnitude(audio: tf.Tensor, settings: FeatureSettings, bins: int) -> tf.Tensor:
    """|DFT| of the first ``bins`` bins by matrix products: the ``dft="matrix"`` spectrum."""
    window, step = settings.window_size_samples, settings.window_stride_samples
    m = _dft_matrices(window, settings.fft_length, bins)
    p, q, rows, k1 = m["p"], m["q"], m["rows"], m["k1"]
    frames = tf.signal.frame(audio, window, step)                  # [..., frames, window]
    frame_count = frames.shape[-2] if frames.shape[-2] is not None else tf.shape(frames)[-2]
    if p * rows > window:
        pad = [[0, 0]] * (frames.shape.rank - 1) + [[0, p * rows - window]]
        frames = tf.pad(frames, pad)
    x = tf.reshape(frames, [-1, frame_count, rows, p])
    x = tf.transpose(x, [0, 1, 3, 2]) * m["window"]               # [b, frames, p, rows]
    # Real and imaginary parts from separate products (no SPLIT: the int8 converter would
    # quantise it, front end or not).
    re, im = tf.matmul(x, m["stage1_re"]), tf.matmul(x, m["stage1_im"])  # [b, frames, p, q]
    twiddled = tf.concat([re * m["twiddle_re"] - im * m["twiddle_im"],
                          re * m["twiddle_im"] + im * m["twiddle_re"]], axis=2)
    twiddled = tf.transpose(twiddled, [0, 1, 3, 2])                # [b, frames, q, 2p]
    re, im = tf.matmul(twiddled, m["stage2_re"]), tf.matmul(twiddled, m["stage2_im"])
    magnitude = tf.sqrt(re * re + im * im)                          # [b, frames, k2, k1]
    magnitude = tf.reshape(tf.transpose(magnitude, [0, 1, 3, 2]), [-1, frame_count, k1 * q])
    if k1 * q > bins:
        magnitude = magnitude[:, :, :bins]
    if audio.shape.rank == 1:
        return tf.reshape(magnitude, [frame_count, bins])
    return magnitude


def _magnitude(audio: Any, settings: FeatureSettings, dft: str, bins: int | None = None
               ) -> tf.Tensor:
    """|STFT|: all ``fft_bin_count`` bins from the FFT, the first ``bins`` (default: all) from
    the matrix DFT, which computes only those."""
    if dft not in DFT_CHOICES:
        raise ValueError(f"dft must be one of {', '.join(DFT_CHOICES)}, not {dft!r}")
    audio = _as_audio(audio)
    if dft == "matrix":
        return _matrix_dft_magnitude(audio, settings, bins or settings.fft_bin_count)
    return tf.abs(_stft(audio, settings))


def spectrogram(audio: Any, settings: FeatureSettings, dft: str = "fft") -> tf.Tensor:
    """Magnitude spectrogram |STFT|: [samples] -> [frames, fft_bin_count] (batched too).

    >>> spectrogram(tf.zeros([16000]), FeatureSettings()).shape
    TensorShape([98, 257])
    """
    return _magnitude(audio, settings, dft)


def power_spectrogram(audio: Any, settings: FeatureSettings, dft: str = "fft") -> tf.Tensor:
    """Power spectrogram |STFT|**2, the seed's AudioSpectrogram with magnitude_squared=True.

    >>> power_spectrogram(tf.zeros([2, 16000]), FeatureSettings()).shape
    TensorShape([2, 98, 257])
    """
    return tf.math.square(spectrogram(audio, settings, dft))


def _log_mel(audio: Any, settings: FeatureSettings, num_mel_bins: int, dft: str) -> tf.Tensor:
    weights = _mel_matrix(num_mel_bins, settings.fft_bin_count, settings.sample_rate)
    if dft == "matrix":
        # Bins above the filterbank's top (4 kHz) have zero weight: the DFT can stop there.
        weights = weights[:int(np.nonzero(weights.any(axis=1))[0].max()) + 1]
    magnitude = _magnitude(audio, settings, dft, bins=len(weights))
    # tensordot on the last axis works for [frames, bins] and [batch, frames, bins] alike.
    mel = tf.tensordot(magnitude, tf.constant(weights), axes=1)
    return tf.math.log(mel + LOG_OFFSET)


def log_mel(audio: Any, settings: FeatureSettings, dft: str = "fft") -> tf.Tensor:
    """Log mel spectrogram: feature_bin_count mel channels, 20-4000 Hz, natural log.

    >>> log_mel(tf.zeros([16000]), FeatureSettings(preprocess="log_mel")).shape
    TensorShape([98, 40])
    """
    return _log_mel(audio, settings, settings.feature_bin_count, dft)


def mfcc(audio: Any, settings: FeatureSettings, dft: str = "fft") -> tf.Tensor:
    """MFCC as the seed: 40 mel channels, 20-4000 Hz, log, DCT keeping feature_bin_count.

    >>> mfcc(tf.zeros([16000]), FeatureSettings(feature_bin_count=13)).shape
    TensorShape([98, 13])
    """
    logmel = _log_mel(audio, settings, MFCC_MEL_BINS, dft)
    dct = tf.constant(_dct_matrix(MFCC_MEL_BINS, settings.feature_bin_count))
    return tf.tensordot(logmel, dct, axes=1)


def average(audio: Any, settings: FeatureSettings, dft: str = "fft") -> tf.Tensor:
    """The seed's 'average': power spectrogram averaged over groups of neighbouring bins.

    >>> average(tf.zeros([16000]), FeatureSettings(preprocess="average")).shape
    TensorShape([98, 43])
    """
    audio = _as_audio(audio)
    power = power_spectrogram(audio, settings, dft)
    width = _average_window_width(settings)
    # avg_pool2d wants [batch, height, width, channels]: frames are the height, bins the width.
    # expand_dims/squeeze rather than slicing: strided slices trip up TFLite int8 conversion.
    images = tf.expand_dims(power, -1)
    if audio.shape.rank == 1:
        images = tf.expand_dims(images, 0)
    pooled = tf.nn.avg_pool2d(images, ksize=(1, width), strides=(1, width), padding="SAME")
    pooled = tf.squeeze(pooled, axis=-1)
    if audio.shape.rank == 1:
        pooled = tf.squeeze(pooled, axis=0)
    return pooled


def micro(audio: Any, settings: FeatureSettings, dft: str = "fft") -> tf.Tensor:
    """The seed's 'micro' preprocess: TensorFlow Lite Micro's audio front end, as the TinyML
    course and the micro_speech example train with, so the features a microcontroller computes
    are the ones the model learnt from.

    The clip as 16-bit samples (``x * 32768``, clipped), through the ``AudioMicrofrontend`` op
    (windows of ``window_size_ms`` every ``window_stride_ms``, ``feature_bin_count`` channels
    from 125 to 7500 Hz, noise reduction, PCAN gain control and a log; see
    ``MICRO_FRONT_END``), times ``MICRO_OUTPUT_SCALE`` (10/256): values from 0 to about 26.
    ``dft`` is not used (the op computes its own FFT). Each clip is a fresh start for the op's
    noise estimate, as in training. The op is TensorFlow's, not a LiteRT builtin: a model
    with this front end inside does not convert, so its exports take features (see
    kwlesson.export).

    >>> micro(tf.zeros([16000]), FeatureSettings(window_stride_ms=20, preprocess="micro")).shape
    TensorShape([49, 40])
    """
    from tensorflow.lite.experimental.microfrontend.python.ops import (
        audio_microfrontend_op as op,
    )

    audio = _as_audio(audio)
    pcm = tf.cast(tf.clip_by_value(tf.round(audio * 32768.0), -32768.0, 32767.0), tf.int16)

    @tf.autograph.experimental.do_not_convert  # plain TF ops: nothing to convert
    def one(clip: tf.Tensor) -> tf.Tensor:
        out = op.audio_microfrontend(
            clip, sample_rate=settings.sample_rate, window_size=int(settings.window_size_ms),
            window_step=int(settings.window_stride_ms),
            num_channels=settings.feature_bin_count, out_scale=1, out_type=tf.float32,
            **MICRO_FRONT_END) * MICRO_OUTPUT_SCALE
        # The op's shape function says 0 frames for a clip of unknown length; give the real
        # count (the seed's formula) so graphs of unknown length trace.
        n = tf.shape(clip)[0]
        window, stride = settings.window_size_samples, settings.window_stride_samples
        frames = tf.where(n < window, 0, 1 + (n - window) // stride)
        return tf.reshape(out, tf.stack([frames, settings.feature_bin_count]))

    if pcm.shape.rank == 1:
        return tf.ensure_shape(one(pcm), [None, settings.feature_bin_count])
    # The op takes one clip at a time.
    frames = FeatureLayer(settings).compute_output_shape(tuple(pcm.shape))[-2]
    return tf.map_fn(one, pcm, infer_shape=False, fn_output_signature=tf.TensorSpec(
        [frames, settings.feature_bin_count], tf.float32))


_DISPATCH = {"spectrogram": spectrogram, "log_mel": log_mel, "mfcc": mfcc, "average": average,
             "micro": micro}


def compute_features(audio: Any, settings: FeatureSettings, dft: str = "fft") -> tf.Tensor:
    """Features chosen by ``settings.preprocess``: [samples] -> [frames, bins], batched alike.

    A clip of ``settings.desired_samples`` gives ``settings.shape``; other lengths give
    ``1 + (samples - window) // stride`` frames.

    With ``settings.feature_mean`` / ``feature_scale`` set, each bin is then normalised:
    ``(x - mean) * (1 / scale)``.

    ``dft``: ``"fft"`` (TensorFlow's FFT, as training) or ``"matrix"`` (the same spectrum by
    matrix products, as the exported models compute it; see the module's notes).

    >>> compute_features(np.zeros([4, 16000], np.float32), FeatureSettings()).shape
    TensorShape([4, 98, 40])
    """
    features = _DISPATCH[settings.preprocess](audio, settings, dft)
    if settings.feature_mean is None:
        return features
    # Two constants and two elementwise ops: they convert to TFLite SUB/MUL and stay cheap.
    mean = tf.constant(np.asarray(settings.feature_mean, np.float32))
    inv_scale = tf.constant((1.0 / np.asarray(settings.feature_scale, np.float64))
                            .astype(np.float32))
    return (features - mean) * inv_scale


def normalization_stats(features: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, scale) per bin of raw features [clips, frames, bins], for ``FeatureSettings``.

    The mean is the per-bin mean; the scale is the per-bin standard deviation, floored at
    1e-3 of the largest bin's (and at 1e-6) so a constant bin does not blow up.

    >>> m, s = normalization_stats(np.stack([np.zeros([3, 2]), np.ones([3, 2])]))
    >>> m, s
    ((0.5, 0.5), (0.5, 0.5))
    """
    x = np.asarray(features, np.float64)
    x = x.reshape(-1, x.shape[-1])
    if x.shape[0] == 0:
        raise ValueError("normalisation needs at least one frame of features")
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.maximum(std, max(1e-6, 1e-3 * float(std.max())))
    # float32 values, stored as Python floats: what the model computes with, exact in JSON.
    return (tuple(float(v) for v in mean.astype(np.float32)),
            tuple(float(v) for v in std.astype(np.float32)))


@keras.saving.register_keras_serializable(package="kwlesson")
class FeatureLayer(keras.layers.Layer):
    """``compute_features`` as a Keras layer, to put at the front of an exported model.

    It has no weights; it is saved and reloaded with its settings.

    >>> inputs = keras.Input(shape=(16000,))
    >>> FeatureLayer(FeatureSettings())(inputs).shape
    (None, 98, 40)
    """

    def __init__(self, settings: FeatureSettings | dict | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("trainable", False)  # nothing to train; keeps summaries honest
        super().__init__(**kwargs)
        if isinstance(settings, dict):
            settings = FeatureSettings.from_dict(settings)
        self.settings = settings or FeatureSettings()

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return compute_features(inputs, self.settings)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        s = self.settings
        samples = input_shape[-1]
        if samples is None:
            frames = None
        elif samples < s.window_size_samples:
            frames = 0
        else:
            frames = 1 + (samples - s.window_size_samples) // s.window_stride_samples
        return (*input_shape[:-1], frames, s.fingerprint_width)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "settings": self.settings.to_dict()}


def wav_to_spectrogram(
    input_wav: str | os.PathLike,
    output_image: str | os.PathLike,
    window_size: int = 256,
    stride: int = 128,
    brightness: float = 64.0,
) -> np.ndarray:
    """Write a wav's spectrogram as a grayscale PNG, as the seed's wav_to_spectrogram tool.

    Rows are time (one per ``stride`` samples, top = start), columns are frequency (low on the
    left, ``window_size // 2 + 1`` of them for a power-of-two window); each pixel is the
    magnitude times ``brightness``, capped at 255. The wav is read at 16 kHz (other rates are
    resampled) as samples in [-1, 1]. The file is always PNG, whatever its extension.
    Returns the image, uint8 [frames, bins].

    >>> wav_to_spectrogram("yes.wav", "/tmp/spectrogram.png").shape  # doctest: +SKIP
    (124, 129)
    """
    if window_size < 2 or stride < 1:
        raise ValueError(f"window_size must be >= 2 and stride >= 1, got {window_size}, "
                         f"{stride}")
    if not brightness > 0:
        raise ValueError(f"brightness must be positive, not {brightness}")
    audio = read_wav(input_wav)
    rate = 16000
    settings = FeatureSettings(sample_rate=rate, window_size_ms=window_size * 1000 / rate,
                               window_stride_ms=stride * 1000 / rate, preprocess="spectrogram")
    if (settings.window_size_samples, settings.window_stride_samples) != (window_size, stride):
        # ms round trips can lose a sample; say so rather than draw a different window.
        raise ValueError(f"window_size={window_size} / stride={stride} samples do not map "
                         f"to whole samples at {rate} Hz")
    if len(audio) < window_size:
        raise AudioError(f"{input_wav}: {len(audio)} samples, shorter than one window of "
                         f"{window_size}")
    magnitude = spectrogram(audio, settings).numpy()
    image = np.minimum(magnitude * brightness, 255.0).astype(np.uint8)
    png = tf.io.encode_png(image[:, :, None]).numpy()
    target = Path(output_image).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    tmp.write_bytes(png)
    os.replace(tmp, target)
    return image
