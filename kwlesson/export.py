"""Freezing a trained keyword spotter for phones and microcontrollers, and checking the result.

The seed tutorial's ``freeze.py`` turns a checkpoint into one compact file for the Android demo;
``label_wav.py`` runs it on a wav; ``wav_to_spectrogram`` draws what the model hears. This module
does all three for today's runtimes. :func:`freeze` writes one folder::

    saved_model/         TensorFlow SavedModel; signature ``serving_default``:
                         audio float32 [16000] or [batch, 16000] -> probabilities [..., labels]
    model_float.tflite   LiteRT, float32: audio [1, 16000] -> probabilities [1, labels]
    model_int8.tflite    LiteRT, int8 weights and activations (float audio in, probabilities out;
                         the feature front end stays float inside):
                         audio [1, 16000] -> probabilities
    model_micro.tflite   int8 features in [1, frames, bins] -> int8 scores [1, labels], for
                         TensorFlow Lite Micro (the device computes the features itself and
                         divides bin 0 by the card's ``micro_input.bin0_divisor``)
    model_data.cc / .h   model_micro.tflite as a C array (``xxd -i`` style, 16-byte aligned)
    labels.txt           one label per line, in output order
    model_card.json      labels, sample rate, feature settings, every file's input and output
                         tensors (name, shape, dtype, scale, zero point), sizes, operators

The audio-in models carry the feature front end inside them: the very same
``kwlesson.features.compute_features`` that training used, with the settings read from the run's
``<arch>_config.json`` (one source of truth), with ``dft="matrix"``: the spectrum as two small
matrix products instead of an FFT (the same numbers to float rounding; LiteRT's RFFT2D op alone
took 0.28 ms of a tiny model's 0.4 ms). It is made of LiteRT built-in operators (GATHER,
FULLY_CONNECTED, MUL, SQRT, LOG, ...), so no custom op is needed on the phone.

The weights are baked in as constants (Keras' ``stateless_call``), which is what "freezing"
meant in the seed's TensorFlow 1 days, and what lets the converter fold batch normalisation
and quantise the weights.

:func:`verify` runs every file on a data split and reports accuracy and agreement (float LiteRT
against Keras, int8 against float, TensorFlow Lite Micro against LiteRT). :func:`label_wav` and
:func:`wav_to_spectrogram` are the seed's tools. LiteRT (``ai_edge_litert``) runs every
``.tflite`` here; TensorFlow Lite Micro's Python interpreter (PyPI ``tflite-micro``) runs the
micro model when it is installed.

Input that is not a 1 s, 16 kHz clip is converted, not refused: :func:`label_wav` reads every
file with ``kwlesson.audio.read_wav``, which resamples any rate to the model's rate and mixes
channels down, then pads a short clip with zeros at the end or trims a long one to the model's
clip length (1 s). The seed's label_wav expected exactly that format.

Introduced in notebook 07.

>>> from kwlesson.export import freeze, verify, label_wav  # doctest: +SKIP
>>> result = freeze("/tmp/speech_commands_train/tiny_conv.ckpt-18000", "/tmp/kws")  # doctest: +SKIP
>>> label_wav("/tmp/kws", "yes.wav")  # doctest: +SKIP
yes (score = 0.912)
_unknown_ (score = 0.043)
no (score = 0.021)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

import numpy as np
import tensorflow as tf

from kwlesson.audio import AudioError, read_wav
from kwlesson.features import FeatureSettings, compute_features

if TYPE_CHECKING:  # only the type: export loads training where it needs it
    from kwlesson.training import TrainConfig

__all__ = [
    "FLOAT_TFLITE",
    "INT8_TFLITE",
    "INT8_UNSUPPORTED",
    "LABELS_FILE",
    "MICRO_HEADER",
    "MICRO_SOURCE",
    "MICRO_TFLITE",
    "MODEL_CARD",
    "SAVED_MODEL_DIR",
    "FreezeResult",
    "TFLiteModel",
    "c_array_source",
    "calibration_audio",
    "convert",
    "format_verification",
    "freeze",
    "frozen_logits",
    "int8_body",
    "folded_logits",
    "label_wav",
    "load_labels",
    "load_model_card",
    "main_freeze",
    "main_label_wav",
    "main_wav_to_spectrogram",
    "micro_input",
    "micro_interpreter_missing",
    "run_micro",
    "MicroRuntimeError",
    "serving_module",
    "tflite_tensors",
    "verify",
    "wav_to_spectrogram",
]

SAVED_MODEL_DIR = "saved_model"
FLOAT_TFLITE = "model_float.tflite"
INT8_TFLITE = "model_int8.tflite"
MICRO_TFLITE = "model_micro.tflite"
LABELS_FILE = "labels.txt"
MODEL_CARD = "model_card.json"
MICRO_SOURCE = "model_data.cc"
MICRO_HEADER = "model_data.h"
#: Name of the C array in model_data.cc (the TensorFlow Lite Micro examples' ``g_model``).
MICRO_ARRAY = "g_model"
#: Training clips used to calibrate the int8 models' activation ranges.
DEFAULT_CALIBRATION_CLIPS = 300
#: verify()'s thresholds, the promises this module makes about its files.
MIN_FLOAT_AGREEMENT = 0.995
MAX_INT8_DROP = 0.01
MIN_MICRO_AGREEMENT = 0.99

KINDS = ("float", "int8", "micro")
#: How :func:`convert` sets the int8 activation ranges from the calibration clips.
CALIBRATIONS = ("average", "minmax", "per_tensor")
#: freeze's int8 audio-in file divides MFCC coefficient 0 by a factor (and its first layer
#: multiplies it back) when that coefficient's range is at least this many times the others'.
MIN_INPUT_RESCALE = 2.0
#: Name scope of the feature front end inside the audio-in models.
FRONT_END_SCOPE = "features"
#: Architectures whose int8 files would be useless, and why: freeze refuses to quantise them.
INT8_UNSUPPORTED: dict[str, str] = {}
# low_latency_svdf was listed here while int8 ranges were min/max over all calibration clips
# (it fell from 53.6% to 23.5%); with averaged ranges it keeps its accuracy (see convert()).
#: freeze warns when the int8 file picks the float file's top label on fewer calibration clips.
MIN_CALIBRATION_AGREEMENT = 0.9


# --------------------------------------------------------------------------------------------
# Building the functions to convert


def frozen_logits(model: Any) -> Callable[[tf.Tensor], tf.Tensor]:
    """``features -> logits`` with the model's current weights baked in as constants.

    Converting a function that reads Keras 3 variables leaves them as resource variables in
    the ``.tflite`` (VAR_HANDLE / READ_VARIABLE), which the int8 calibrator cannot run; constants
    are what the converter folds and quantises.

    >>> f = frozen_logits(create_model("tiny_conv"))  # doctest: +SKIP
    >>> f(tf.zeros([1, 98, 40])).shape  # doctest: +SKIP
    TensorShape([1, 12])
    """
    trainable = [np.asarray(v.numpy()) for v in model.trainable_variables]
    non_trainable = [np.asarray(v.numpy()) for v in model.non_trainable_variables]

    def logits(features: tf.Tensor) -> tf.Tensor:
        # tf.constant inside the traced function puts the values into the graph itself.
        out, _ = model.stateless_call([tf.constant(w) for w in trainable],
                                      [tf.constant(w) for w in non_trainable],
                                      features, training=False)
        return out

    return logits


def _keras_logits(model: Any, features: np.ndarray, batch: int = 256) -> np.ndarray:
    """The Keras model's scores (before the softmax) for ``features``, a batch at a time."""
    return np.concatenate([np.asarray(model(features[i:i + batch], training=False))
                           for i in range(0, len(features), batch)])


def folded_logits(model: Any, start: Any = None
                  ) -> tuple[Callable[[tf.Tensor], tf.Tensor], list[str]]:
    """``frozen_logits`` with a trailing run of linear Dense layers multiplied into one.

    low_latency_conv and low_latency_svdf end in two hidden Dense layers without activation,
    then the logits layer (as the reference). In float ``x W1 W2 W3`` is ``x (W1 W2 W3)``; in
    int8 each product is rounded to 8 bits, so the int8 files compute the one product
    instead: fewer roundings and far fewer weights. Dropout between them does nothing at
    inference. ``start``: a tensor inside the model to start from instead of its input (the
    rest of the network after a rewritten first layer). Returns (logits, names of the folded
    layers; empty when nothing was folded).

    >>> logits, folded = folded_logits(create_model("low_latency_conv"))  # doctest: +SKIP
    >>> folded  # doctest: +SKIP
    ['first_fc', 'second_fc', 'logits']
    """
    keras = __import__("keras")
    source = model.inputs[0] if start is None else start
    whole = model if start is None else keras.Model(start, model.output)
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    run: list = []
    for layer in reversed(layers):
        if isinstance(layer, keras.layers.Dropout):
            continue
        if type(layer) is not keras.layers.Dense or layer.get_config()["activation"] != "linear":
            break
        run.insert(0, layer)
    if len(run) < 2 or len(model.inputs) != 1:
        return frozen_logits(whole), []
    weight = np.eye(run[0].input.shape[-1])
    offset = np.zeros(run[0].input.shape[-1])
    for layer in run:
        kernel, *bias = (np.asarray(w, np.float64) for w in layer.get_weights())
        weight, offset = weight @ kernel, offset @ kernel + (bias[0] if bias else 0.0)
    head = (None if run[0].input is source
            else frozen_logits(keras.Model(source, run[0].input)))
    weight, offset = weight.astype(np.float32), offset.astype(np.float32)

    def logits(x: tf.Tensor) -> tf.Tensor:
        hidden = x if head is None else head(x)
        return tf.tensordot(hidden, tf.constant(weight), axes=1) + tf.constant(offset)

    probe = tf.random.stateless_normal([4, *source.shape[1:]], seed=(1, 2))
    want = np.asarray(whole(probe, training=False))
    got = logits(probe).numpy()
    if not np.allclose(got, want, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(want).max()))):
        return frozen_logits(whole), []  # not a plain chain after all: leave it as it is
    return logits, [layer.name for layer in run]


@dataclass
class Int8Body:
    """What the int8 audio-in file computes after its float front end (see :func:`int8_body`).

    ``prepare`` turns the features into the network's input (inside the float front end;
    None: the features as they are) and ``logits`` runs the network on it; ``folded`` names
    the linear layers it computes as one product (see :func:`folded_logits`).
    """

    logits: Callable[[tf.Tensor], tf.Tensor]
    prepare: Callable[[tf.Tensor], tf.Tensor] | None = None
    rescaled_bin: int | None = None
    divisor: float = 1.0
    folded: tuple[str, ...] = ()

    @property
    def bin0_divisor(self) -> float:
        """What the micro model's caller divides feature bin 0 by (1.0: nothing)."""
        return self.divisor if self.rescaled_bin is not None else 1.0

    def prepared(self, features: np.ndarray) -> np.ndarray:
        """``prepare`` on a numpy array (the features themselves when there is nothing to do)."""
        if self.prepare is None:
            return features
        return self.prepare(tf.constant(features, tf.float32)).numpy()


def int8_body(model: Any, features: np.ndarray, fold: bool = True) -> Int8Body:
    """The network for the int8 audio-in file, rewritten so that int8 loses less.

    int8 gives the features one scale for all bins. MFCC coefficient 0 (the log energy) spans
    about -124..25 while the others stay within about +-17, so one scale over both gives the
    others a step of 0.58 where 0.13 would do: quantising only the input of a trained tiny_conv
    flipped 5% of its decisions on real speech. So the float front end divides coefficient 0
    by ``divisor`` (chosen from the calibration ``features`` to bring its range within the
    others'), and the first convolution adds back what that took away: ``conv(x) = conv(x')
    + conv(d)``, ``x'`` the rescaled features and ``d`` zero except in bin 0, where it is
    ``(divisor - 1) * x'[bin 0]``: a small convolution over bin 0 alone (its own int8 weight
    scales), added before the first ReLU. In float it is the same function (checked here).
    (Moving coefficient 0 to a second input channel with weights times ``divisor`` instead
    shares one weight scale per filter with the others' weights, which then lose what the
    input gained.) Used when the model starts with a Conv2D on the features (tiny_conv, conv,
    low_latency_conv, tiny_embedding_conv, ds_cnn) or a Dense on the flattened features
    (single_fc: the second branch is a Dense over the frames' coefficient 0) and coefficient
    0's range is at least ``MIN_INPUT_RESCALE`` times the others'; otherwise the model as it
    is. A batch norm right after that convolution (ds_cnn) is folded into both branches.

    >>> body = int8_body(trained.model, calibration_features)  # doctest: +SKIP
    >>> body.rescaled_bin, round(body.divisor, 1)  # doctest: +SKIP
    (0, 8.8)
    """
    keras = __import__("keras")
    plain = _plain_body(model, fold)
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    first = next((i for i, layer in enumerate(layers) if layer.weights), None)
    if first is None or features.ndim != 3 or features.shape[-1] < 2:
        return plain
    conv = layers[first]
    if type(conv) is keras.layers.Dense:
        return _int8_dense_body(model, layers, first, features, fold) or plain
    from kwlesson.models import SVDF

    if isinstance(conv, SVDF):
        return _int8_svdf_body(model, conv, features, fold) or plain
    # Only a Conv2D fed by a reshape of the features to [frames, bins, 1], with no activation
    # of its own (the added branch goes between it and what follows). A batch norm right
    # after it is folded into both branches, as the converter would fold it into the one.
    if (type(conv) is not keras.layers.Conv2D or conv.get_config()["activation"] != "linear"
            or not all(isinstance(layer, keras.layers.Reshape) for layer in layers[:first])
            or tuple(conv.input.shape[1:]) != (*features.shape[1:], 1) or conv.groups != 1
            or tuple(conv.dilation_rate) != (1, 1) or first + 1 == len(layers)):
        return plain
    norm = layers[first + 1]
    if not isinstance(norm, keras.layers.BatchNormalization):
        norm = None
    elif norm.input is not conv.output or norm.axis not in (3, -1):
        return plain
    divisor = _bin0_divisor(features)
    if divisor is None:
        return plain

    frames, bins = features.shape[1:]
    kernel, *bias = (np.asarray(w, np.float64) for w in conv.get_weights())
    kh, kw, _, filters = kernel.shape
    last = conv
    if norm is not None:  # y = gamma * (x - mean) / sqrt(var + eps) + beta, per filter
        gamma = np.asarray(norm.gamma, np.float64) if norm.scale else 1.0
        beta = np.asarray(norm.beta, np.float64) if norm.center else 0.0
        factor = gamma / np.sqrt(np.asarray(norm.moving_variance, np.float64) + norm.epsilon)
        shift = beta - np.asarray(norm.moving_mean, np.float64) * factor
        kernel = kernel * factor
        bias = [(bias[0] if bias else 0.0) * factor + shift]
        last = norm
    kernel = kernel.astype(np.float32)
    bias = [b.astype(np.float32) for b in bias]
    stride_t, stride_f = conv.strides
    padding = conv.padding.upper()
    if padding == "SAME":
        positions = -(-bins // stride_f)
        left = max((positions - 1) * stride_f + kw - bins, 0) // 2
    else:
        positions, left = (bins - kw) // stride_f + 1, 0
    # The output positions whose window covers bin 0, and the kernel column that lands on it.
    covering = [p for p in range(positions) if 0 <= left - p * stride_f < kw]
    extra = (divisor - 1.0) * np.concatenate(
        [kernel[:, left - p * stride_f] for p in covering], axis=-1)[:, None]
    tail, folded = _tail(model, last.output, fold)
    prepare = _rescale_bin0(bins, divisor)

    def logits(rescaled: tf.Tensor) -> tf.Tensor:
        x = tf.reshape(rescaled, [-1, frames, bins, 1])
        main = tf.nn.conv2d(x, tf.constant(kernel), [1, stride_t, stride_f, 1], padding)
        if bias:
            main = main + tf.constant(bias[0])
        # Bin 0 alone has kernel width 1, so its time padding is the full convolution's.
        bin0 = tf.reshape(rescaled[:, :, 0], [-1, frames, 1, 1])
        fix = tf.nn.conv2d(bin0, tf.constant(extra), [1, stride_t, 1, 1], padding)
        fix = tf.reshape(fix, [-1, main.shape[1], len(covering), filters])
        fix = tf.pad(fix, [[0, 0], [0, 0], [covering[0], positions - 1 - covering[-1]], [0, 0]])
        return tail(main + fix)

    return _checked(Int8Body(logits, prepare, 0, divisor, folded), model, features)


class _Candidate(NamedTuple):
    """One network freeze tried for the micro model, and how it did on the check clips."""

    distance: float
    body: Int8Body
    micro: bytes
    report: dict[str, Any]
    tflm: float | None  # top-1 agreement of TensorFlow Lite Micro with LiteRT (None: not run)


def _plain_body(model: Any, fold: bool = True) -> Int8Body:
    """The model as trained (linear layers in a row folded into one when ``fold``)."""
    if not fold:
        return Int8Body(frozen_logits(model))
    logits, folded = folded_logits(model)
    return Int8Body(logits, folded=tuple(folded))


def _tail(model: Any, start: Any, fold: bool) -> tuple[Callable, tuple[str, ...]]:
    """The network from ``start`` (a tensor inside ``model``) to its output."""
    if not fold:
        return frozen_logits(__import__("keras").Model(start, model.output)), ()
    logits, folded = folded_logits(model, start=start)
    return logits, tuple(folded)


def _bin0_divisor(features: np.ndarray) -> float | None:
    """What to divide coefficient 0 by to bring its range within the others' (None: no need)."""
    low0, high0 = float(features[..., 0].min()), float(features[..., 0].max())
    low, high = float(features[..., 1:].min()), float(features[..., 1:].max())
    if low >= 0 or high <= 0:
        return None
    divisor = max(low0 / low, high0 / high, 1.0)
    return divisor if divisor >= MIN_INPUT_RESCALE else None


def _rescale_bin0(bins: int, divisor: float) -> Callable[[tf.Tensor], tf.Tensor]:
    scale = np.ones(bins, np.float32)
    scale[0] = 1.0 / divisor

    def prepare(x: tf.Tensor) -> tf.Tensor:
        return x * tf.constant(scale)

    return prepare


def _checked(body: Int8Body, model: Any, features: np.ndarray) -> Int8Body:
    """``body``, once it is seen to compute the model's function on some of ``features``."""
    probe = features[:64]
    want = np.asarray(model(probe, training=False))
    got = body.logits(tf.constant(body.prepared(probe))).numpy()
    if not np.allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(want).max()))):
        raise RuntimeError(f"{model.name}: the rewritten first layer for int8 does not compute "
                           f"the model's function (max difference "
                           f"{float(np.abs(got - want).max()):.3g})")
    return body


def _int8_svdf_body(model: Any, svdf: Any, features: np.ndarray, fold: bool = True
                    ) -> Int8Body | None:
    """int8_body for low_latency_svdf: its SVDF with the two sums (over the frames of memory,
    then over the rank) done as one product with a vector of ones.

    TensorFlow Lite Micro and LiteRT round an int8 SUM differently by one step, and the SVDF's
    sum over 98 frames has a wide range, so one step there flipped 10% of the micro model's
    decisions between the two runtimes; FULLY_CONNECTED they compute alike, bit for bit. The
    same function in float (checked)."""
    frames, bins = features.shape[1:]
    if svdf.input is not model.inputs[0] or tuple(svdf.input.shape[1:]) != (frames, bins):
        return None
    w_freq, w_time, bias = (np.asarray(w, np.float32) for w in
                            (svdf.weights_frequency, svdf.weights_time, svdf.bias))
    units, rank = svdf.num_units, svdf.rank
    time_weights = np.ascontiguousarray(w_time.T)          # [frames, filters]
    ones = np.ones((rank * frames, 1), np.float32)
    tail, folded = _tail(model, svdf.output, fold)

    def logits(x: tf.Tensor) -> tf.Tensor:
        weighted = tf.matmul(x, tf.constant(w_freq)) * tf.constant(time_weights)
        # Filter k belongs to unit k // rank: [batch, units, rank * frames], summed by a product.
        per_unit = tf.reshape(tf.transpose(weighted, [0, 2, 1]), [-1, units, rank * frames])
        summed = tf.reshape(tf.matmul(per_unit, tf.constant(ones)), [-1, units])
        return tail(summed + tf.constant(bias))

    return _checked(Int8Body(logits, folded=folded), model, features)


def _int8_dense_body(model: Any, layers: list, first: int, features: np.ndarray,
                     fold: bool = True) -> Int8Body | None:
    """int8_body for a model whose first layer is a Dense on the flattened features
    (single_fc): the same rescaling of coefficient 0, added back by a second, small Dense over
    the frames' coefficient 0 alone. None when the model does not have that shape."""
    keras = __import__("keras")
    dense = layers[first]
    frames, bins = features.shape[1:]
    if (dense.get_config()["activation"] != "linear"
            or not all(isinstance(layer, (keras.layers.Flatten, keras.layers.Reshape))
                       for layer in layers[:first])
            or tuple(dense.input.shape[1:]) != (frames * bins,)):
        return None
    divisor = _bin0_divisor(features)
    if divisor is None:
        return None
    kernel, *bias = (np.asarray(w, np.float32) for w in dense.get_weights())
    # Row f * bins of the kernel multiplies frame f's coefficient 0 (row-major flattening).
    extra = ((divisor - 1.0) * kernel[0::bins]).astype(np.float32)
    tail, folded = (None, ()) if first + 1 == len(layers) else _tail(model, dense.output, fold)

    def logits(rescaled: tf.Tensor) -> tf.Tensor:
        main = tf.matmul(tf.reshape(rescaled, [-1, frames * bins]), tf.constant(kernel))
        if bias:
            main = main + tf.constant(bias[0])
        out = main + tf.matmul(rescaled[:, :, 0], tf.constant(extra))
        return out if tail is None else tail(out)

    return _checked(Int8Body(logits, _rescale_bin0(bins, divisor), 0, divisor, folded), model,
                    features)


def _audio_fn(logits: Callable, settings: FeatureSettings, batch: int | None = 1,
              prepare: Callable[[tf.Tensor], tf.Tensor] | None = None) -> Any:
    """Concrete function raw audio [batch, samples] -> {"probabilities": [batch, labels]}.

    ``prepare``: applied to the features inside the (float) front end (see :class:`Int8Body`).
    """
    spec = tf.TensorSpec([batch, settings.desired_samples], tf.float32, name="audio")

    @tf.function(input_signature=[spec])
    def audio_to_probabilities(audio: tf.Tensor) -> dict[str, tf.Tensor]:
        # The scope names the front end's nodes, so int8 conversion can keep them float.
        with tf.name_scope(FRONT_END_SCOPE):
            # The matrix DFT: LiteRT's RFFT2D op would take most of the model's time.
            features = compute_features(audio, settings, dft="matrix")
            if prepare is not None:
                features = prepare(features)
        return {"probabilities": tf.nn.softmax(logits(features))}

    return audio_to_probabilities.get_concrete_function()


def _features_fn(logits: Callable, settings: FeatureSettings) -> Any:
    """Concrete function features [1, frames, bins] -> {"scores": softmax [1, labels]}."""
    spec = tf.TensorSpec([1, *settings.shape], tf.float32, name="features")

    @tf.function(input_signature=[spec])
    def features_to_scores(features: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"scores": tf.nn.softmax(logits(features))}

    return features_to_scores.get_concrete_function()


def serving_module(model: Any, settings: FeatureSettings, labels: Sequence[str]) -> tf.Module:
    """A ``tf.Module`` whose ``serving_default`` takes raw audio of any batch shape.

    ``audio`` float32 in [-1, 1], shaped ``[samples]`` or ``[batch, samples]`` (any leading
    dimensions) with ``samples = settings.desired_samples``; returns ``{"probabilities":
    [..., labels]}``. ``labels()`` returns the label strings.

    >>> m = serving_module(model, FeatureSettings(), labels)  # doctest: +SKIP
    >>> m.serve(tf.zeros([16000]))["probabilities"].shape  # doctest: +SKIP
    TensorShape([12])
    """
    logits = frozen_logits(model)
    samples = settings.desired_samples
    n_labels = len(labels)
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32, name="audio")])
    def serve(audio: tf.Tensor) -> dict[str, tf.Tensor]:
        shape = tf.shape(audio)
        checks = [
            tf.debugging.assert_greater_equal(
                tf.rank(audio), 1, message="audio must be [samples] or [batch, samples]"),
            tf.debugging.assert_equal(
                shape[-1], samples,
                message=f"audio must have {samples} samples ({settings.clip_duration_ms} ms at "
                        f"{settings.sample_rate} Hz) in its last dimension"),
        ]
        with tf.control_dependencies(checks):
            flat = tf.reshape(audio, [-1, samples])
        probs = tf.nn.softmax(logits(compute_features(flat, settings, dft="matrix")))
        out_shape = tf.concat([shape[:-1], [n_labels]], axis=0)
        return {"probabilities": tf.reshape(probs, out_shape)}

    @tf.function(input_signature=[])
    def get_labels() -> tf.Tensor:
        return tf.constant(list(labels))

    module.serve = serve
    module.labels = get_labels
    return module


def _front_end_nodes(float_model: bytes) -> list[str]:
    """Output tensor names of the ops that belong to the feature front end (and nothing else)."""
    interp = _litert_interpreter(float_model, delegate=False)
    tensors = interp.get_tensor_details()
    names = []
    for op in interp._get_ops_details():
        for i in op["outputs"]:
            parts = [p for p in tensors[i]["name"].split(";") if p]
            if parts and all(p.startswith(FRONT_END_SCOPE + "/") for p in parts):
                names.append(tensors[i]["name"])
    return names


def convert(concrete_fn: Any, kind: str,
            representative: Callable[[], Iterable[list[np.ndarray]]] | None = None,
            calibration: str = "average",
            check: tuple[np.ndarray, np.ndarray] | None = None,
            report: dict[str, Any] | None = None) -> bytes:
    """Convert a concrete function to a ``.tflite`` flatbuffer.

    ``kind``: ``"float"`` (float32 throughout), ``"int8"`` (int8 weights and activations in the
    network, float input and output, and the feature front end left in float) or ``"micro"``
    (int8 only, int8 input and output: what TensorFlow Lite Micro runs). ``representative``
    yields ``[input]`` lists for calibration (needed for int8 and micro).

    ``calibration`` sets each activation's int8 range from the representative clips:
    ``"average"`` (default) averages each clip's own minimum and maximum; ``"minmax"`` (the
    converter's own rule) takes the extremes over all clips; ``"per_tensor"`` picks one of the
    two for each tensor, keeping a change only when the int8 model's probabilities then come
    closer to ``check``'s (``check = (inputs, probabilities)``: other training clips and the
    float model's probabilities on them; closeness is the mean L1 distance between the
    probability vectors; up to two passes over the tensors, starting from the better of the two
    uniform rules). The distance, not top-1 agreement, because the model knows its training
    clips too well: agreement on them is ~99% either way, while the distance ranks range rules
    as top-1 agreement on held-out clips does. One loud outlier among hundreds of clips widens a
    min/max range for every clip, so the usual values get fewer of the 256 levels: on a trained
    ds_cnn, min/max ranges made int8 agree with float on 93-95% of real clips (1-2 points of
    accuracy lost, more with more calibration clips); averaged ranges agree on 97-98% (0-0.6
    points lost). But a saturated value can matter too: tiny_conv's one hidden layer kept
    float's decisions best with its min/max range and its scores with their averaged range,
    which neither uniform rule gives. Values beyond an averaged range saturate. The features
    going in keep their full range (their extremes are real: silence), and the scores before the
    softmax reach 50% above the largest runner-up score of any calibration clip, so a saturated
    best score still wins (see ``_averaged_ranges``). ``report`` (a dict), when given, receives
    the rule, each tensor's choice and the agreements on ``check``.

    Why the front end stays float in "int8": 8-bit audio has a noise floor of about -48 dB,
    and a log of mel energies spanning 1e-6 to 1e2 cannot be fed from one linear int8 scale;
    quantising them halved the accuracy of a trained tiny_conv. Its nodes (the
    ``FRONT_END_SCOPE`` name scope) are kept float with the quantiser's ``denylisted_nodes``.

    >>> tflite = convert(fn, "micro", lambda: ([x[None]] for x in features))  # doctest: +SKIP
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS)}, "
                         f"not {calibration!r}")
    if kind != "float" and representative is None:
        raise ValueError(f"a {kind} model needs a representative dataset for calibration")
    if kind != "float" and calibration == "per_tensor" and check is None:
        raise ValueError("per_tensor calibration needs check clips: "
                         "check=(inputs, float probabilities)")
    # An empty module as trackable_obj takes the converter's current (SavedModel) path;
    # the weights are constants already, so it has nothing to track.
    c = tf.lite.TFLiteConverter.from_concrete_functions([concrete_fn], tf.Module())
    try:
        if kind == "float":
            return c.convert()
        from tensorflow.lite.python import convert as tflite_convert

        front_end = _front_end_nodes(_convert_float(concrete_fn)) if kind == "int8" else []
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.representative_dataset = representative
        # Calibrate only (a float model carrying each tensor's observed range), then quantise
        # with our ranges: the two steps the converter runs, with our choice in between.
        c._experimental_calibrate_only = True  # noqa: SLF001 (the debugger's own route)
        calibrated = c.convert()
        io_type = tf.int8 if kind == "micro" else tf.float32
        averaged = ({} if calibration == "minmax"
                    else _averaged_ranges(calibrated, representative, keep=front_end))

        def build(choice: dict[int, str]) -> bytes | None:
            ranges = {i: averaged[i] for i, rule in choice.items() if rule == "average"}
            with _native_stderr_kept_back():
                model = tflite_convert.mlir_quantize(
                    _with_ranges(calibrated, ranges), input_data_type=io_type,
                    output_data_type=io_type, denylisted_nodes=front_end or None)
            # XNNPACK refuses an int8 op whose output scale is too small for its input and
            # weight scales (averaged ranges can do that); the converter's own ranges never do.
            return model if not ranges or _runs_in_litert(model) else None

        def score(model: bytes | None) -> tuple[float, float]:
            """(-distance, agreement) on the check clips: higher is better."""
            if model is None or check is None:
                return (-np.inf, -1.0)
            probs = TFLiteModel(model)(check[0])
            return (-float(np.mean(np.abs(probs - check[1]).sum(-1))),
                    float(np.mean(probs.argmax(-1) == check[1].argmax(-1))))

        tensors = sorted(averaged)
        tried = {rule: build(dict.fromkeys(tensors, rule)) for rule in ("average", "minmax")
                 if calibration in (rule, "per_tensor")}
        scores = {rule: score(model) for rule, model in tried.items()}
        if calibration == "per_tensor":
            # On a tie, the converter's own rule.
            start = max(scores, key=lambda r: (scores[r], r == "minmax"))
            choice, model, best = dict.fromkeys(tensors, start), tried[start], scores[start]
            for _ in range(2):  # a second pass when the first changed something
                changed = False
                for i in tensors:
                    trial = {**choice, i: "minmax" if choice[i] == "average" else "average"}
                    candidate = build(trial)
                    if (s := score(candidate)) > best:
                        choice, model, best, changed = trial, candidate, s, True
                if not changed:
                    break
        else:
            choice, model = dict.fromkeys(tensors, calibration), tried[calibration]
            if model is None:
                warnings.warn(f"the {kind} model with averaged ranges does not run in "
                              "LiteRT's default (XNNPACK) delegate; using min/max ranges",
                              stacklevel=2)
                choice, model = dict.fromkeys(tensors, "minmax"), build({})
            best = score(model)
    except Exception as err:  # the converter raises many types; say which model failed
        raise RuntimeError(f"converting to a {kind} .tflite failed: {err}") from err
    if kind == "micro":
        floats = sorted({op["op_name"] for op in _float_ops(model)})
        if floats:
            raise RuntimeError(f"converting to a micro .tflite left float operators "
                               f"({', '.join(floats)}); TensorFlow Lite Micro needs int8 only")
    if report is not None:
        names = _tensor_names(calibrated)
        report.update({
            "ranges": calibration,
            "per_tensor": {names[i]: choice[i] for i in tensors},
            "check_clips": None if check is None else len(check[1]),
            "check_probability_distance": None if check is None else -best[0],
            "check_top1_agreement": None if check is None else best[1],
            "uniform_rules_on_check": None if check is None else {
                r: {"probability_distance": -d, "top1_agreement": a}
                for r, (d, a) in scores.items() if np.isfinite(d)},
        })
    return model


@contextlib.contextmanager
def _native_stderr_kept_back() -> Iterator[None]:
    """Hold back what native code writes to stderr (the quantiser prints a line per call,
    a dozen per freeze); show it after all if the block raises."""
    fd = 2  # native code writes to file descriptor 2, whatever sys.stderr is (Jupyter, pytest)
    try:
        sys.stderr.flush()
        saved = os.dup(fd)
    except OSError:  # no file descriptor 2 at all
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), fd)
        try:
            yield
        except BaseException:
            os.dup2(saved, fd)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, fd)
            os.close(saved)


def _tensor_names(model: bytes) -> dict[int, str]:
    from tensorflow.lite.tools import flatbuffer_utils

    tensors = flatbuffer_utils.convert_bytearray_to_object(bytearray(model)).subgraphs[0].tensors
    return {i: (t.name.decode() if t.name else str(i)) for i, t in enumerate(tensors)}


def _runs_in_litert(model: bytes) -> bool:
    """Whether LiteRT with its default delegate accepts the model."""
    try:
        _litert_interpreter(model)
    except (ValueError, RuntimeError):
        return False
    return True


def _float_ops(model: bytes) -> list[dict]:
    """The operators of a .tflite that compute in float (a float32 output)."""
    interp = _litert_interpreter(model, delegate=False)
    tensors = interp.get_tensor_details()
    return [op for op in interp._get_ops_details()
            if any(tensors[i]["dtype"] == np.float32 for i in op["outputs"])]


# TFLite builtin operator codes (schema.fbs).
_ADD, _RESHAPE, _PAD, _STRIDED_SLICE = 0, 22, 34, 45
#: Operators whose output keeps its input's int8 scale: a range set on it has no effect.
_SAME_SCALE = (_RESHAPE, _PAD, _STRIDED_SLICE)


def _averaged_ranges(calibrated: bytes,
                     representative: Callable[[], Iterable[list[np.ndarray]]],
                     keep: Iterable[str] = ()) -> dict[int, tuple[float, float]]:
    """For each activation inside the network (tensor index -> (low, high)): the average of
    every clip's own min and max (the "average min/max" rule of other quantisers), instead of
    the calibrated min and max over all clips. Inputs, outputs and the tensors named in
    ``keep`` are left out (they keep the converter's range); the scores feeding an output keep
    their order (see below)."""
    keep = set(keep)
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    interp = _litert_interpreter(calibrated, delegate=False, preserve_all_tensors=True)
    inputs = [d["index"] for d in interp.get_input_details()]
    tensors = model.subgraphs[0].tensors
    # The features (the graph's input, or the float front end's output) keep their full
    # range: their extremes are real values, not outliers (every clip with digital silence
    # reaches MFCC coefficient 0's floor near -124), and clipping them cost single_fc 4 points.
    # The outputs keep the converter's range (a softmax's is fixed: [0, 1] in 256 steps).
    subgraph = model.subgraphs[0]
    outputs = {int(i) for i in subgraph.outputs}
    fixed = {int(i) for i in subgraph.inputs} | outputs
    fixed |= {i for i, t in enumerate(tensors) if t.name and t.name.decode() in keep}
    # The operands of an ADD are partial sums (int8_body's two branches of the first layer):
    # clipping one is not the benign saturation of an activation, since the other may take
    # the sum back into range. They keep their full range, and so do the tensors they are
    # reshaped or padded from (those share their int8 scale).
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    made_by = {int(o): op for op in subgraph.operators for o in op.outputs if o >= 0}
    partial = [int(i) for op in subgraph.operators if codes[op.opcodeIndex] == _ADD
               for i in op.inputs if i >= 0]
    while partial:
        i = partial.pop()
        fixed.add(i)
        op = made_by.get(i)
        if op is not None and codes[op.opcodeIndex] in _SAME_SCALE and op.inputs[0] >= 0:
            partial.append(int(op.inputs[0]))
    # The tensors the outputs are computed from (the logits before a softmax) get as top the
    # largest second-best score of any clip, plus headroom (see below): the best may
    # saturate, but should not tie with the runner-up. (Their full min/max range cost
    # low_latency_svdf 17 points: a few silent clips reach scores of 1,000; the average top
    # cost single_fc 7.)
    scores = set()
    for op in subgraph.operators:
        if any(int(o) in outputs for o in op.outputs if o >= 0):
            scores |= {int(i) for i in op.inputs if i >= 0} - fixed
    # Outputs of reshapes, pads and slices take their input's scale whatever range they are
    # given (checked: the quantised file is byte for byte the same), so per_tensor would
    # convert once per such tensor for nothing.
    inherits = {i for i, op in made_by.items() if codes[op.opcodeIndex] in _SAME_SCALE}
    ranged = [i for i, t in enumerate(tensors)
              if i not in fixed and i not in inherits and t.quantization is not None
              and t.quantization.min is not None
              and len(t.quantization.min) == 1 and t.type == 0]  # 0: FLOAT32
    lows: dict[int, list[float]] = {i: [] for i in ranged}
    highs: dict[int, list[float]] = {i: [] for i in ranged}
    seconds: dict[int, list[float]] = {i: [] for i in scores}
    for sample in representative():
        for index, value in zip(inputs, sample):
            interp.set_tensor(index, np.asarray(value, np.float32))
        interp.invoke()
        for i in ranged:
            value = interp.get_tensor(i)
            lows[i].append(float(value.min()))
            highs[i].append(float(value.max()))
            if i in scores and value.size > 1:
                seconds[i].append(float(np.partition(value.ravel(), -2)[-2]))
    ranges = {}
    for i in ranged:
        if lows[i]:
            low, top = float(np.mean(lows[i])), float(np.mean(highs[i]))
            if seconds.get(i):
                # 50% headroom: new speakers' runner-up scores run higher than training
                # clips' (a real-split tiny_conv: 21.9 on validation where 300 training clips
                # reached 13.1), and two saturated scores tie (argmax then takes the first
                # label). Measured on three trained tiny_conv, scores alone: int8 = float
                # agreement 97.9% without headroom, 98.7% with 50%, 98.5% with 100%.
                second = max(seconds[i])
                top = max(top, second + 0.5 * abs(second))
                # Scores more than 8 below a clip's best give it probabilities under 1/256
                # together (11 x e^-8), which the int8 softmax rounds to 0: no need to tell
                # them apart, so the range starts 8 below the lowest best score of any clip.
                low = max(low, min(highs[i]) - 8.0)
            ranges[i] = (low, top)
    return ranges


def _with_ranges(calibrated: bytes, ranges: dict[int, tuple[float, float]]) -> bytes:
    """The calibrated model with the given tensors' (low, high) ranges replaced."""
    if not ranges:
        return calibrated
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    tensors = model.subgraphs[0].tensors
    for i, (low, high) in ranges.items():
        tensors[i].quantization.min = np.array([low], np.float32)
        tensors[i].quantization.max = np.array([high], np.float32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _convert_float(concrete_fn: Any) -> bytes:
    """The float ``.tflite`` of a concrete function (see :func:`convert`)."""
    return convert(concrete_fn, "float")


# --------------------------------------------------------------------------------------------
# Running .tflite files


def _litert_interpreter(model: str | os.PathLike | bytes, num_threads: int | None = 1,
                        delegate: bool = True, preserve_all_tensors: bool = False) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # Without the default (XNNPACK) delegate LiteRT runs its built-in kernels, whose int8
    # arithmetic TensorFlow Lite Micro shares bit for bit; XNNPACK rounds differently.
    kwargs: dict[str, Any] = {"num_threads": num_threads}
    if preserve_all_tensors:  # to read intermediate tensors (calibration)
        kwargs["experimental_preserve_all_tensors"] = True
    if not delegate:
        kwargs["experimental_op_resolver_type"] = \
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if isinstance(model, (bytes, bytearray)):
        interp = Interpreter(model_content=bytes(model), **kwargs)
    else:
        interp = Interpreter(model_path=os.fspath(model), **kwargs)
    interp.allocate_tensors()
    return interp


def _quant(detail: dict) -> tuple[float, int]:
    scale, zero = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero)


class TFLiteModel:
    """One ``.tflite`` file in LiteRT, called on float arrays; (de)quantises int8 ends itself.

    ``kind`` is ``"audio"`` (input [1, samples]) or ``"features"`` (input [1, frames, bins]).
    Calling it on a batch runs the clips one at a time (the files have a batch of 1, as a phone
    or microcontroller runs them) and returns float probabilities [n, labels].
    ``delegate=False`` turns LiteRT's default XNNPACK delegate off (built-in kernels only).

    >>> m = TFLiteModel("/tmp/kws/model_int8.tflite")  # doctest: +SKIP
    >>> m(np.zeros([2, 16000], np.float32)).shape  # doctest: +SKIP
    (2, 12)
    """

    def __init__(self, model: str | os.PathLike | bytes, num_threads: int | None = 1,
                 name: str | None = None, delegate: bool = True) -> None:
        self.name = name or (os.fspath(model) if not isinstance(model, bytes) else "<bytes>")
        try:
            self.interpreter = _litert_interpreter(model, num_threads, delegate)
        except (ValueError, RuntimeError) as err:
            if not delegate or "XNNPACK" not in str(err):
                raise ValueError(f"{self.name}: not a LiteRT model ({err})") from err
            # XNNPACK refuses int8 scales it cannot requantise, e.g. after a layer whose
            # ReLUs all died (its range is zero); LiteRT's built-in kernels still run it.
            warnings.warn(f"{self.name}: LiteRT's XNNPACK delegate refused the model "
                          f"({str(err).splitlines()[0]}); running it with built-in kernels",
                          stacklevel=2)
            self.interpreter = _litert_interpreter(model, num_threads, delegate=False)
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{self.name}: expected one input and one output, the model has "
                             f"{len(inputs)} and {len(outputs)}")
        self.input, self.output = inputs[0], outputs[0]
        self.input_shape = tuple(int(d) for d in self.input["shape"])
        self.kind = "audio" if len(self.input_shape) == 2 else "features"
        self.num_labels = int(np.prod(self.output["shape"][1:]))

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float input -> the input tensor's dtype (int8 with its scale and zero point)."""
        dtype = self.input["dtype"]
        if np.issubdtype(dtype, np.integer):
            scale, zero = _quant(self.input)
            info = np.iinfo(dtype)
            return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)
        return np.asarray(x, dtype)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        """Output tensor -> float scores."""
        if np.issubdtype(y.dtype, np.integer):
            scale, zero = _quant(self.output)
            return (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)

    def invoke_raw(self, x: np.ndarray) -> np.ndarray:
        """Run one already-quantised input of the input tensor's exact shape; raw output."""
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).copy()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        one_shape = self.input_shape[1:]
        single = x.shape == one_shape
        if single:
            x = x[None]
        if x.shape[1:] != one_shape:
            raise ValueError(f"{self.name}: expects inputs shaped {list(one_shape)} "
                             f"(or a batch of them), got {list(x.shape)}")
        rows = [self.dequantize_output(self.invoke_raw(self.quantize_input(one[None])))
                .reshape(-1) for one in x]
        out = np.stack(rows) if rows else np.zeros((0, self.num_labels), np.float32)
        return out[0] if single else out


class MicroRuntimeError(RuntimeError):
    """TensorFlow Lite Micro stopped on a model (it aborts rather than raising)."""


# Runs in a child process: TensorFlow Lite Micro aborts the whole process on a model it cannot
# prepare (an int8 scale so small its requantisation overflows, say), which would take a
# notebook's kernel with it. numpy and tflite_micro only: no TensorFlow to import.
_MICRO_CHILD = """
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
folder, arena = sys.argv[1], int(sys.argv[2])
model = open(folder + "/model.tflite", "rb").read()
interp = runtime.Interpreter.from_bytes(model, arena_size=arena or None)
rows = []
for one in np.load(folder + "/inputs.npy"):
    interp.set_input(np.ascontiguousarray(one[None]), 0)
    interp.invoke()
    rows.append(np.array(interp.get_output(0)).reshape(-1))
np.save(folder + "/outputs.npy", np.stack(rows) if rows else np.zeros((0, 0), np.int8))
"""


def micro_interpreter_missing() -> str | None:
    """None when TensorFlow Lite Micro's Python interpreter is installed, else why not and what
    that means, in one line (PyPI's ``tflite-micro`` has wheels for Linux x86_64 only).

    >>> micro_interpreter_missing()  # doctest: +SKIP
    """
    import importlib.util
    import platform

    if importlib.util.find_spec("tflite_micro") is not None:
        return None
    where = f"{platform.system()} {platform.machine()}"
    return (f"TensorFlow Lite Micro's Python interpreter (tflite-micro) is not installed here "
            f"({where}; it has wheels for Linux x86_64 only, pip install tflite-micro there): "
            "the micro model is checked in LiteRT only")


def run_micro(model: bytes, inputs: np.ndarray, arena_size: int | None = None) -> np.ndarray:
    """Run an int8 model in TensorFlow Lite Micro's Python interpreter, one input at a time.

    ``inputs``: already-quantised int8 [n, frames, bins]; returns the raw int8 outputs
    [n, labels]. Needs ``pip install tflite-micro``. It runs in a child process (about 0.2 s
    more), so that a model TensorFlow Lite Micro cannot run is a :class:`MicroRuntimeError`
    with its message instead of the end of this process.

    >>> run_micro(open("model_micro.tflite", "rb").read(), q).shape  # doctest: +SKIP
    (100, 12)
    """
    import subprocess

    missing = micro_interpreter_missing()
    if missing:
        raise ImportError(missing)
    with tempfile.TemporaryDirectory(prefix="kwlesson-micro-") as folder:
        Path(folder, "model.tflite").write_bytes(bytes(model))
        np.save(Path(folder, "inputs.npy"), np.asarray(inputs))
        done = subprocess.run([sys.executable, "-c", _MICRO_CHILD, folder, str(arena_size or 0)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            import signal

            how = (f"signal {-done.returncode}, {signal.Signals(-done.returncode).name}"
                   if done.returncode < 0 else f"exit status {done.returncode}")
            said = " ".join(done.stderr.strip().splitlines()[-3:]) or "no message"
            raise MicroRuntimeError(f"TensorFlow Lite Micro stopped ({how}) running the model: "
                                    f"{said}")
        return np.load(Path(folder, "outputs.npy"))


def _micro_in_both_runtimes(micro: bytes, features: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
    """A micro model's raw int8 scores for ``features`` (float, as its input takes them) in
    TensorFlow Lite Micro and in LiteRT's built-in kernels: (tflm, litert). Raises
    ImportError without tflite-micro, :class:`MicroRuntimeError` when it cannot run it."""
    builtin = TFLiteModel(micro, delegate=False)
    q = builtin.quantize_input(features)
    raw = run_micro(micro, q)
    return raw, np.stack([builtin.invoke_raw(x[None]).reshape(-1) for x in q])


def _tflm_agreement(micro: bytes, features: np.ndarray) -> float | None:
    """How often TensorFlow Lite Micro and LiteRT's built-in kernels give a micro model's
    ``features`` (float, already prepared) the same top label; None without tflite-micro."""
    try:
        raw, lite = _micro_in_both_runtimes(micro, features)
    except ImportError:
        return None
    except MicroRuntimeError:
        return 0.0  # it does not run there at all
    return float(np.mean(raw.argmax(-1) == lite.argmax(-1)))


def tflite_tensors(model: str | os.PathLike | bytes) -> dict[str, Any]:
    """Inputs, outputs and operators of a ``.tflite``, as the model card lists them.

    >>> tflite_tensors("/tmp/kws/model_micro.tflite")["inputs"][0]["dtype"]  # doctest: +SKIP
    'int8'
    """
    interp = _litert_interpreter(model, delegate=False)

    def describe(d: dict) -> dict[str, Any]:
        scale, zero = _quant(d)
        return {"name": d["name"], "index": int(d["index"]),
                "shape": [int(n) for n in d["shape"]], "dtype": np.dtype(d["dtype"]).name,
                "quantization": {"scale": scale, "zero_point": zero}}

    ops = sorted({op["op_name"] for op in interp._get_ops_details()} - {"DELEGATE"})
    signatures = interp.get_signature_list()
    return {"inputs": [describe(d) for d in interp.get_input_details()],
            "outputs": [describe(d) for d in interp.get_output_details()],
            "operators": ops, "signatures": signatures}


# --------------------------------------------------------------------------------------------
# Calibration data


def _data_for(config: Any, data_dir: str | os.PathLike | None = None) -> Any:
    """The run's data set, split as training split it (same percentages and seed)."""
    from kwlesson.data import SpeechCommands

    folder = Path(data_dir if data_dir is not None else config.data_dir).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: data folder not found; the int8 models are calibrated on training "
            "clips: pass data_dir (--data_dir) or use quantize=False for float files only")
    return SpeechCommands(
        folder, wanted_words=config.words(), silence_percentage=config.silence_percentage,
        unknown_percentage=config.unknown_percentage,
        validation_percentage=config.validation_percentage,
        testing_percentage=config.testing_percentage, seed=config.seed,
        sample_rate=config.sample_rate, clip_duration_ms=config.clip_duration_ms,
        # The run's noise folder, so silence clips sound as they did in training.
        background_dir=config.background_dir or None, progress=False)


def calibration_audio(data: Any, settings: FeatureSettings,
                      count: int = DEFAULT_CALIBRATION_CLIPS, seed: int = 0,
                      augment: TrainConfig | None = None) -> np.ndarray:
    """``count`` random training clips as float32 audio [n, samples], unaugmented, or
    augmented as the run whose settings ``augment`` holds trained: its time shift, background
    volume and frequency.

    >>> calibration_audio(sc, FeatureSettings(), 100).shape  # doctest: +SKIP
    (100, 16000)
    """
    if count < 1:
        raise ValueError(f"calibration needs at least 1 clip, not {count}")
    how = {} if augment is None else {
        "time_shift_ms": augment.time_shift_ms, "background_volume": augment.background_volume,
        "background_frequency": augment.background_frequency}
    ds = data.dataset("training", settings, batch_size=count, shuffle=True,
                      augment=augment is not None, repeat=False, features=False, seed=seed,
                      **how)
    for audio, _ in ds.take(1):
        return np.asarray(audio, np.float32)
    raise ValueError(f"{data.data_dir}: the training split is empty; nothing to calibrate on")


# --------------------------------------------------------------------------------------------
# The C array for TensorFlow Lite Micro


def c_array_source(model: bytes, labels: Sequence[str], settings: FeatureSettings,
                   micro: dict[str, Any], source_note: str = "",
                   bin0_divisor: float = 1.0) -> tuple[str, str]:
    """(model_data.cc, model_data.h) for a micro model: the bytes as an aligned C array
    (``xxd -i`` style) with its length, the labels, the feature shape and the input and output
    quantisation, so firmware needs nothing else from this folder. ``bin0_divisor``: what
    feature bin 0 is divided by before quantising (see :func:`int8_body`; 1: nothing).

    >>> cc, h = c_array_source(tflite, labels, settings, tflite_tensors(tflite))  # doctest: +SKIP
    """
    inp, out = micro["inputs"][0]["quantization"], micro["outputs"][0]["quantization"]
    frames, bins = settings.shape
    guard = "KWLESSON_MODEL_DATA_H_"
    note = f"// {source_note}\n" if source_note else ""
    if settings.normalized:
        def floats(values: Sequence[float]) -> str:
            return ", ".join(f"{v!r}f" for v in values)

        what = (f"normalised features ({settings.preprocess}, then per bin\n"
                "//   x = (feature - kFeatureMean[bin]) / kFeatureScale[bin])")
        norm = (f"constexpr bool kFeatureNormalized = true;\n"
                "constexpr float kFeatureMean[kFeatureBins] = "
                f"{{{floats(settings.feature_mean)}}};\n"
                f"constexpr float kFeatureScale[kFeatureBins] = "
                f"{{{floats(settings.feature_scale)}}};\n")
    else:
        what = f"features ({settings.preprocess})"
        norm = "constexpr bool kFeatureNormalized = false;\n"
    header = f"""\
// The int8 keyword-spotting model for TensorFlow Lite Micro, written by kwlesson.export.
{note}// Input: int8 [1, {frames}, {bins}] {what}, with bin 0 divided by
//   kFeatureBin0Divisor (1 means nothing to do), quantised as
//   q = round(x / kInputScale) + kInputZeroPoint.
// Output: int8 [1, {len(labels)}] scores, probability = (q - kOutputZeroPoint) * kOutputScale.
#ifndef {guard}
#define {guard}

constexpr int kSampleRate = {settings.sample_rate};
constexpr int kClipSamples = {settings.desired_samples};
constexpr int kFeatureFrames = {frames};
constexpr int kFeatureBins = {bins};
constexpr int kLabelCount = {len(labels)};
constexpr float kInputScale = {inp['scale']!r}f;
constexpr int kInputZeroPoint = {inp['zero_point']};
constexpr float kOutputScale = {out['scale']!r}f;
constexpr int kOutputZeroPoint = {out['zero_point']};
{norm}constexpr float kFeatureBin0Divisor = {float(bin0_divisor)!r}f;

extern const char* const kLabels[kLabelCount];
extern const unsigned char {MICRO_ARRAY}[];
extern const unsigned int {MICRO_ARRAY}_len;

#endif  // {guard}
"""
    rows = []
    for i in range(0, len(model), 12):
        rows.append("  " + ", ".join(f"0x{b:02x}" for b in model[i:i + 12]) + ",")
    # json.dumps gives a C-compatible quoted string for printable labels.
    label_list = ", ".join(json.dumps(label) for label in labels)
    source = f"""\
// The int8 keyword-spotting model for TensorFlow Lite Micro, written by kwlesson.export.
{note}#include "{MICRO_HEADER}"

const char* const kLabels[kLabelCount] = {{{label_list}}};

// TensorFlow Lite Micro reads the flatbuffer in place: keep it 16-byte aligned.
alignas(16) const unsigned char {MICRO_ARRAY}[] = {{
{chr(10).join(rows)}
}};
const unsigned int {MICRO_ARRAY}_len = {len(model)};
"""
    return source, header


# --------------------------------------------------------------------------------------------
# freeze


@dataclass
class FreezeResult:
    """What :func:`freeze` wrote: the folder, each file's path and size, and the model card."""

    output_dir: Path
    files: dict[str, Path]
    card: dict[str, Any]
    seconds: float = 0.0
    sizes: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line per file with its size, for the terminal."""
        lines = [(f"Froze {self.card['model_architecture']} (step {self.card['step']}, "
                 f"{len(self.card['labels'])} labels) into {self.output_dir}")]
        for name, size in self.sizes.items():
            lines.append(f"  {name:<20} {size:>10,} bytes")
        return "\n".join(lines)


def _load_checkpoint(checkpoint: str | os.PathLike, model_architecture: str | None) -> Any:
    """load_trained, with errors that name the architectures involved."""
    from kwlesson.training import load_trained, read_run_files

    try:
        config, _, _ = read_run_files(checkpoint)
    except FileNotFoundError:
        config = None  # load_trained below says what is missing
    if model_architecture and config is not None \
            and config.model_architecture != model_architecture:
        raise ValueError(
            f"{checkpoint}: this run trained {config.model_architecture} (its "
            f"{config.model_architecture}_config.json says so), not {model_architecture}; "
            f"drop --model_architecture or pass the {model_architecture} checkpoint")
    try:
        trained = load_trained(checkpoint)
    except ValueError as err:
        if config is None or "incompatible" not in str(err) and "shape" not in str(err):
            raise
        found = _guess_architecture(checkpoint, config)
        raise ValueError(
            f"{checkpoint}: the run description says {config.model_architecture}, but the "
            f"checkpoint holds the weights of {found or 'another architecture'} "
            f"({str(err).splitlines()[0]})") from None
    if model_architecture and trained.config.model_architecture != model_architecture:
        raise ValueError(f"{trained.checkpoint_path}: a {trained.config.model_architecture} "
                         f"checkpoint, not {model_architecture}")
    # load_trained tolerates checkpoint values the model does not use (the optimizer's); make
    # sure every weight of the model did come from the checkpoint.
    status = tf.train.Checkpoint(model=trained.model).read(trained.checkpoint_path)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as err:
        raise ValueError(f"{trained.checkpoint_path}: does not hold every weight of a "
                         f"{trained.config.model_architecture} model ({err})") from None
    status.expect_partial()
    return trained


def _guess_architecture(checkpoint: str | os.PathLike, config: Any) -> str | None:
    """The architecture whose weight shapes match the checkpoint's, if one does."""
    from kwlesson import models
    from kwlesson.training import _resolve_checkpoint

    try:
        prefix = _resolve_checkpoint(os.fspath(checkpoint), None)
        shapes = sorted(tuple(s) for k, s in tf.train.list_variables(prefix)
                        if k.startswith("optimizer/_trainable_variables/"))
    except (ValueError, FileNotFoundError, tf.errors.OpError):
        return None
    settings = config.feature_settings()
    for arch in models.ARCHITECTURES:
        try:
            model = models.create_model(arch, settings.shape, len(config.words()) + 2)
        except ValueError:
            continue
        if sorted(tuple(v.shape) for v in model.trainable_variables) == shapes:
            return arch
    return None


def _replace_into(tmp: Path, out: Path) -> None:
    """Move every entry of ``tmp`` into ``out``, replacing entries of the same name; files of
    an earlier export that this one did not write (e.g. int8 files after ``quantize=False``)
    are removed, so the folder never mixes two models. Other files are left alone."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (FLOAT_TFLITE, INT8_TFLITE, MICRO_TFLITE, MICRO_SOURCE, MICRO_HEADER):
        if not (tmp / name).exists():
            (out / name).unlink(missing_ok=True)
    for entry in tmp.iterdir():
        target = out / entry.name
        if target.is_dir() and not target.is_symlink():
            old = out / f".{entry.name}.old{os.getpid()}"
            target.rename(old)
            entry.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(entry, target)


def _file_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def freeze(
    checkpoint: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    model_architecture: str | None = None,
    data_dir: str | os.PathLike | None = None,
    data: Any = None,
    calibration_clips: int = DEFAULT_CALIBRATION_CLIPS,
    quantize: bool = True,
    stream: TextIO | None = None,
    calibration: str | None = None,
    progress: bool | None = None,
) -> FreezeResult:
    """Export a trained checkpoint: SavedModel, float / int8 / micro ``.tflite``, C array,
    labels and model card (see the module docstring for what each file is).

    ``checkpoint``: a prefix (``<train_dir>/<arch>.ckpt-<step>``) or a train_dir (its latest);
    the labels and feature settings come from ``<arch>_config.json`` next to it.
    ``model_architecture``: optional, as the seed's freeze.py flag; a different architecture
    from the run's is an error naming both. An architecture listed in ``INT8_UNSUPPORTED``
    (none at present) cannot go int8: freeze it with ``quantize=False``. ``data_dir``: where
    the training clips for int8 calibration are (default: the run's ``data_dir``); ``data``:
    an already loaded :class:`kwlesson.data.SpeechCommands` instead. ``quantize=False`` writes
    only the float files (no data needed). ``calibration``: the int8 range rule
    (``"average"``, ``"minmax"`` or ``"per_tensor"``, see :func:`convert`); None (default) is
    ``"per_tensor"``, checked against the float model's top label on another draw of training
    clips (the model card records each file's choices and agreements). The int8 audio-in file
    rescales MFCC coefficient 0 inside its float front end (see :func:`int8_body`). Files are
    built in a temporary folder and moved into ``output_dir`` at the end, replacing an
    earlier export's files and leaving other files
    alone. ``stream``: where the summary lines go (default: stdout). ``progress``: a line per
    step on stderr with the time so far (a freeze takes 7-30 s); None (default): when stderr
    is a terminal.

    >>> r = freeze("/tmp/speech_commands_train/tiny_conv.ckpt-400", "/tmp/kws")  # doctest: +SKIP
    >>> sorted(r.files)[:3]  # doctest: +SKIP
    ['labels.txt', 'model_card.json', 'model_data.cc']
    """
    from kwlesson import __version__
    from kwlesson.models import count_macs
    from kwlesson.training import read_run_files

    t0 = time.monotonic()
    out = Path(output_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a folder")
    from kwlesson.faults import check_folder

    # Built beside the output folder, then moved in: its parent must take the files.
    check_folder(out.parent, f"the folder of --output_dir {out.name}",
                 "choose an --output_dir in a folder you can write")
    say = (lambda text: print(text, file=stream or sys.stdout))
    if progress is None:
        progress = sys.stderr.isatty()

    def step(text: str) -> None:
        if progress:
            print(f"freeze {time.monotonic() - t0:5.1f} s: {text}", file=sys.stderr, flush=True)
    if quantize:
        try:
            arch = read_run_files(checkpoint)[0].model_architecture
        except (FileNotFoundError, ValueError):
            arch = None  # _load_checkpoint below says what is wrong
        if arch in INT8_UNSUPPORTED:
            raise ValueError(
                f"{checkpoint}: {arch} cannot be quantised to int8: {INT8_UNSUPPORTED[arch]}. "
                "Freeze it with quantize=False (kwlesson freeze --no_quantize) for the float "
                "SavedModel and .tflite")
    trained = _load_checkpoint(checkpoint, model_architecture)
    model, labels, settings, config = (trained.model, trained.labels, trained.settings,
                                       trained.config)
    if int(model.output_shape[-1]) != len(labels):
        raise ValueError(f"{trained.checkpoint_path}: the model has {model.output_shape[-1]} "
                         f"outputs but its run lists {len(labels)} labels")

    calib = None
    if quantize:
        if data is None:
            data = _data_for(config, data_dir)
        if list(data.labels) != list(labels):
            raise ValueError(f"{data.data_dir}: its labels {list(data.labels)} differ from the "
                             f"model's {labels}; calibrate on the data the model was trained on")
        step(f"reading {calibration_clips} training clips to calibrate int8 on")
        calib = calibration_audio(data, settings, calibration_clips, seed=config.seed)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp", dir=out.parent))
    try:
        files: dict[str, Path] = {}
        module = serving_module(model, settings, labels)
        step("SavedModel")
        tf.saved_model.save(module, str(tmp / SAVED_MODEL_DIR),
                            signatures={"serving_default": module.serve,
                                        "labels": module.labels})
        files[SAVED_MODEL_DIR] = tmp / SAVED_MODEL_DIR

        logits = frozen_logits(model)
        audio_fn = _audio_fn(logits, settings)
        step("float LiteRT model")
        blobs = {FLOAT_TFLITE: convert(audio_fn, "float")}
        if calib is not None:
            def audio_rep() -> Iterable[list[np.ndarray]]:
                for clip in calib:
                    yield [clip[None]]

            feats = compute_features(calib, settings).numpy()

            # The int8 files are checked on another draw of training clips, augmented as in
            # training (noise, time shift) so that they are new to the model: the int8 files
            # should give the float model's probabilities there (see convert()'s
            # "per_tensor"). On the clean training clips the model is too sure of itself to
            # tell range rules apart (tried: it kept min/max ranges that cost
            # low_latency_conv 5 points of held-out agreement).
            step(f"reading {calibration_clips} other training clips, augmented, to check int8 on")
            check = calibration_audio(data, settings, calibration_clips, seed=config.seed + 1,
                                      augment=config)
            check_feats = compute_features(check, settings).numpy()
            float_probs = tf.nn.softmax(_keras_logits(model, check_feats)).numpy()
            rule = calibration or "per_tensor"
            reports: dict[str, dict[str, Any]] = {"micro": {}, "int8": {}}
            # Both int8 files run the same network. Where int8_body can give coefficient 0 a
            # scale of its own (the int8 file's float front end rescales it, the micro
            # model's caller does: the card's micro_input, the header's kFeatureBin0Divisor),
            # the micro model is made both ways and the one closer to float on the check
            # clips is kept: the rewrite's partial sums cost some models (ds_cnn) more than
            # the finer input gives them.
            # Likewise with linear layers in a row folded into one product (folded_logits)
            # and without: folding is kept when it is closer to float too, and when
            # TensorFlow Lite Micro still agrees with LiteRT on the check clips (where the
            # runtimes round an op differently, a folded layer can magnify it).
            bodies = []
            for fold in (True, False):
                first_body = int8_body(model, feats, fold=fold)
                bodies.append(first_body)
                if first_body.rescaled_bin is not None:
                    bodies.append(_plain_body(model, fold))
                if not any(b.folded for b in bodies):
                    break  # nothing to fold: the unfolded bodies are these
            tried: list[_Candidate] = []
            for n, candidate in enumerate(bodies, start=1):
                step(f"int8 micro model, network {n} of {len(bodies)}: "
                     + ", ".join([("coefficient 0 rescaled" if candidate.rescaled_bin
                                   is not None else "coefficient 0 as it is")]
                                 + (["linear layers folded"] if candidate.folded else [])))
                prepared = candidate.prepared(feats)
                prepared_check = candidate.prepared(check_feats)
                report: dict[str, Any] = {}
                micro = convert(_features_fn(candidate.logits, settings), "micro",
                                lambda p=prepared: ([f[None]] for f in p), rule,
                                (prepared_check, float_probs), report)
                tflm = (_tflm_agreement(micro, prepared_check)
                        if any(b.folded for b in bodies) else None)
                tried.append(_Candidate(report["check_probability_distance"], candidate, micro,
                                        report, tflm))
            eligible = [t for t in tried
                        if t.tflm is None or t.tflm >= MIN_MICRO_AGREEMENT] or tried
            kept = min(eligible, key=lambda t: t.distance)
            body, blobs[MICRO_TFLITE], reports["micro"] = kept.body, kept.micro, kept.report
            distances = {("rescaled" if t.body.rescaled_bin is not None else "as_trained"):
                         t.distance for t in tried if bool(t.body.folded) == bool(body.folded)}
            folding = {("folded" if t.body.folded else "as_trained"): (t.distance, t.tflm)
                       for t in tried
                       if (t.body.rescaled_bin is None) == (body.rescaled_bin is None)}
            step("int8 audio-in model")
            blobs[INT8_TFLITE] = convert(
                _audio_fn(body.logits, settings, prepare=body.prepare),
                "int8", audio_rep, rule, (check, float_probs), reports["int8"])
            # A cheap guard against an int8 file that lost the model: compare top labels
            # with the float file on (some of) the calibration clips.
            probe = calib[:100]
            agreement = float(np.mean(TFLiteModel(blobs[FLOAT_TFLITE])(probe).argmax(-1)
                                      == TFLiteModel(blobs[INT8_TFLITE])(probe).argmax(-1)))
            if agreement < MIN_CALIBRATION_AGREEMENT:
                warnings.warn(f"{trained.checkpoint_path}: the int8 model picks the float "
                              f"model's top label on only {100 * agreement:.0f}% of "
                              f"{len(probe)} calibration clips; check it with verify()",
                              stacklevel=2)
        for name, blob in blobs.items():
            (tmp / name).write_bytes(blob)
            files[name] = tmp / name
        (tmp / LABELS_FILE).write_text("\n".join(labels) + "\n", encoding="utf-8")
        files[LABELS_FILE] = tmp / LABELS_FILE

        tensors = {name: tflite_tensors(blob) for name, blob in blobs.items()}
        if MICRO_TFLITE in blobs:
            note = f"From {trained.checkpoint_path} (step {trained.step})."
            cc, h = c_array_source(blobs[MICRO_TFLITE], labels, settings,
                                   tensors[MICRO_TFLITE], note,
                                   body.bin0_divisor)
            (tmp / MICRO_SOURCE).write_text(cc, encoding="utf-8")
            (tmp / MICRO_HEADER).write_text(h, encoding="utf-8")
            files[MICRO_SOURCE] = tmp / MICRO_SOURCE
            files[MICRO_HEADER] = tmp / MICRO_HEADER

        card_files: dict[str, Any] = {
            SAVED_MODEL_DIR: {
                "format": "TensorFlow SavedModel",
                "signatures": {
                    "serving_default": {
                        "inputs": [{"name": "audio", "shape": None, "dtype": "float32",
                                    "note": f"[{settings.desired_samples}] or [batch, "
                                            f"{settings.desired_samples}], samples in [-1, 1]"}],
                        "outputs": [{"name": "probabilities", "shape": None,
                                     "dtype": "float32",
                                     "note": f"[{len(labels)}] or [batch, {len(labels)}], "
                                             "softmax over labels"}]},
                    "labels": {"inputs": [], "outputs": [
                        {"name": "output_0", "shape": [len(labels)], "dtype": "string"}]}},
            },
        }
        what = {FLOAT_TFLITE: "float32; raw audio in, probabilities out",
                INT8_TFLITE: "int8 weights and activations (FFT in float); raw float audio "
                             "in, float probabilities out",
                MICRO_TFLITE: "int8 only, for TensorFlow Lite Micro; int8 "
                              + ("normalised features (see feature_normalization)"
                                 if settings.normalized else "features")
                              + (", bin 0 divided by micro_input's bin0_divisor,"
                                 if calib is not None and body.rescaled_bin is not None else "")
                              + " in, int8 softmax scores out"}
        for name in blobs:
            card_files[name] = {"format": "TFLite flatbuffer (LiteRT)", "what": what[name],
                                **tensors[name]}
        if MICRO_SOURCE in files:
            card_files[MICRO_SOURCE] = {
                "format": "C++ source for TensorFlow Lite Micro", "array": MICRO_ARRAY,
                "length_variable": f"{MICRO_ARRAY}_len", "length": len(blobs[MICRO_TFLITE]),
                "alignment": 16, "header": MICRO_HEADER}
            card_files[MICRO_HEADER] = {"format": "C++ header", "declares": [
                MICRO_ARRAY, f"{MICRO_ARRAY}_len", "kLabels", "kInputScale", "kInputZeroPoint",
                "kOutputScale", "kOutputZeroPoint", "kFeatureFrames", "kFeatureBins",
                "kFeatureNormalized", "kFeatureBin0Divisor"] + (["kFeatureMean", "kFeatureScale"]
                                         if settings.normalized else [])}
        card_files[LABELS_FILE] = {"format": "text, one label per line, in output order"}
        for name, path in files.items():
            card_files[name]["bytes"] = _file_size(path)

        card = {
            "kwlesson_version": __version__,
            "model_architecture": config.model_architecture,
            "checkpoint": str(Path(trained.checkpoint_path).resolve()),
            "step": trained.step,
            "labels": list(labels),
            "sample_rate": settings.sample_rate,
            "clip_samples": settings.desired_samples,
            "clip_duration_ms": settings.clip_duration_ms,
            "feature_settings": settings.to_dict(),
            "feature_shape": list(settings.shape),
            "feature_normalization": (None if not settings.normalized else {
                "formula": "(feature - mean[bin]) / scale[bin], after the "
                           f"{settings.preprocess} features, before the network",
                "mean": list(settings.feature_mean), "scale": list(settings.feature_scale),
                "inside": [FLOAT_TFLITE, INT8_TFLITE, SAVED_MODEL_DIR],
                "caller_applies": [MICRO_TFLITE]}),
            "parameters": int(model.count_params()),
            "macs": int(count_macs(model)),
            "calibration": (None if calib is None else {
                "split": "training", "clips": len(calib),
                "data_dir": str(getattr(data, "data_dir", "")),
                "int8_float_top1_agreement": agreement,
                "ranges": rule, "check_clips": len(check),
                "check": "the float model's probabilities on another draw of training clips, "
                         "augmented as in training",
                INT8_TFLITE: reports["int8"], MICRO_TFLITE: reports["micro"],
                "int8_folded_layers": (None if "folded" not in folding else {
                    "layers": list(next(t.body.folded for t in tried if t.body.folded)),
                    "kept": bool(body.folded),
                    "check_probability_distance": {k: v[0] for k, v in folding.items()},
                    "tflm_agreement_on_check_clips": {k: v[1] for k, v in folding.items()},
                    "why": "linear Dense layers in a row are one matrix product in float; the "
                           "int8 files can compute that one product (fewer 8-bit roundings, "
                           "fewer weights). Kept when the micro model is then closer to "
                           "float on the check clips and TensorFlow Lite Micro agrees with "
                           "LiteRT on them"}),
                "int8_input_rescaling": (None if len(distances) < 2 else {
                    "bin": bodies[0].rescaled_bin, "divided_by": bodies[0].divisor,
                    "kept": body.rescaled_bin is not None,
                    "check_probability_distance": distances,
                    "where": f"{INT8_TFLITE}: inside its float front end; "
                             f"{MICRO_TFLITE}: by the caller (see micro_input); the first "
                             "layer adds back what the division took away",
                    "why": "MFCC coefficient 0 spans a much wider range than the others; "
                           "one int8 scale for all would make the others coarse. Kept when "
                           "the micro model is then closer to float on the check clips"})}),
            "micro_input": None if MICRO_TFLITE not in blobs else {
                "features": "compute_features with feature_settings"
                            + (" (normalised, see feature_normalization)"
                               if settings.normalized else ""),
                "bin0_divisor": body.bin0_divisor,
                "how": "divide feature bin 0 by bin0_divisor, then quantise with the input "
                       "tensor's scale and zero point: q = round(x / scale) + zero_point; "
                       "export.micro_input(features, card) does the first step"},
            "audio_input": "float32 samples in [-1, 1] (16-bit PCM / 32768), mono, "
                           f"{settings.sample_rate} Hz, exactly {settings.desired_samples} "
                           "samples: resample, pad or trim before calling",
            "train_config": config.to_dict(),
            "files": card_files,
        }
        (tmp / MODEL_CARD).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        files[MODEL_CARD] = tmp / MODEL_CARD
        sizes = {name: card_files[name]["bytes"] for name in card_files}
        sizes[MODEL_CARD] = _file_size(tmp / MODEL_CARD)
        _replace_into(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = FreezeResult(output_dir=out, files={n: out / n for n in files}, card=card,
                          seconds=time.monotonic() - t0, sizes=sizes)
    say(result.summary())
    return result


# --------------------------------------------------------------------------------------------
# Reading an export folder


def load_model_card(path: str | os.PathLike) -> dict[str, Any] | None:
    """The model card of an export folder (or of the folder a ``.tflite`` sits in), or None.

    >>> load_model_card("/tmp/kws")["labels"][:2]  # doctest: +SKIP
    ['_silence_', '_unknown_']
    """
    p = Path(path)
    card = (p if p.is_dir() else p.parent) / MODEL_CARD
    if not card.is_file():
        return None
    try:
        return json.loads(card.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{card}: not a valid model card ({err})") from err


def load_labels(path: str | os.PathLike, expected: int | None = None) -> list[str]:
    """Labels from a labels file, or from ``labels.txt`` in a folder / next to a ``.tflite``.

    ``expected``: the model's number of outputs; a different count is an error naming the file
    and both numbers (a labels file from another model is the usual cause).

    >>> load_labels("/tmp/kws")[:3]  # doctest: +SKIP
    ['_silence_', '_unknown_', 'yes']
    """
    p = Path(path)
    if p.is_dir():
        f = p / LABELS_FILE
    elif p.suffix == ".tflite":
        f = p.with_name(LABELS_FILE)
    else:
        f = p
    if not f.is_file():
        raise FileNotFoundError(f"{f}: labels file not found (one label per line, in the "
                                "model's output order; freeze writes it next to the model)")
    labels = [line.strip() for line in f.read_text(encoding="utf-8").splitlines()]
    labels = [x for x in labels if x]
    if not labels:
        raise ValueError(f"{f}: labels file is empty")
    if expected is not None and len(labels) != expected:
        raise ValueError(f"{f}: lists {len(labels)} labels but the model has {expected} "
                         "outputs; is it the labels file of another model?")
    return labels


def _export_dir(path: Path) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: export folder not found")
    return path


# --------------------------------------------------------------------------------------------
# verify


def micro_input(features: np.ndarray, card: dict[str, Any]) -> np.ndarray:
    """The micro model's float input from ``compute_features`` output: bin 0 divided by the
    model card's ``micro_input.bin0_divisor`` (see :func:`int8_body`). Quantise it with the
    input tensor's scale and zero point (``TFLiteModel.quantize_input``) as firmware does.

    >>> card = load_model_card("/tmp/kws")  # doctest: +SKIP
    >>> x = micro_input(compute_features(clip, settings).numpy(), card)  # doctest: +SKIP
    """
    divisor = float(((card or {}).get("micro_input") or {}).get("bin0_divisor", 1.0))
    x = np.array(features, np.float32, copy=True)
    if divisor != 1.0:
        x[..., 0] /= divisor
    return x


def verify(
    export_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    *,
    data: Any = None,
    split: str = "validation",
    max_clips: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    micro: bool = True,
) -> dict[str, Any]:
    """Run every exported model on a split and check the promises made about them.

    Reference: the Keras model rebuilt from the checkpoint named in the model card (or
    ``checkpoint``), fed features from ``compute_features``; if the checkpoint is gone, the
    SavedModel. The micro model gets the same features through :func:`micro_input` (bin 0
    divided as its card says), as firmware would feed it. Returns accuracies (``keras``,
    ``float``, ``int8``, ``micro`` in LiteRT, ``micro_tflm`` in TensorFlow Lite Micro),
    agreements of top-1 predictions, and ``checks``:

    * ``float_agrees_with_keras``: float LiteRT and Keras agree on >= 99.5% of clips;
    * ``int8_within_1_point``: int8 accuracy is at most 1 point below float;
    * ``micro_runs_in_tflm``: the micro model runs in TensorFlow Lite Micro and agrees with
      LiteRT on >= 99% of clips (None when ``tflite-micro`` is not installed). The comparison
      is with LiteRT's built-in kernels, which share TensorFlow Lite Micro's int8 arithmetic
      (they agree bit for bit, but for a one-step difference in how each rounds an int8
      SUM or ADD now and then); LiteRT's default XNNPACK delegate rounds some int8 ops
      differently, which flips near ties (``micro_tflm_vs_litert_xnnpack``, reported too).

    ``passed`` is True when every check that ran passed. Accuracies: ``keras``, ``float``,
    ``int8``, ``micro`` (LiteRT defaults), ``micro_litert_builtin``, ``micro_tflm``, and
    ``keras_scores_rounded``: Keras' scores (before the softmax) rounded to the int8 file's
    score step, the int8 error no better calibration of the network can remove (clips whose
    two best scores lie within a step tie or swap); ``score_rounding_flips`` counts its flips
    as ``int8_flips`` counts the int8 file's. ``data_dir``: the data set (default:
    the run's); ``data``: a loaded :class:`kwlesson.data.SpeechCommands` instead.
    ``split``: a split name, or several joined by ``+`` (``"validation+testing"``: every
    held-out clip, when one split is too small for a 1-point check to mean much).
    ``max_clips``: a random subset of the split, for speed.

    >>> report = verify("/tmp/kws")  # doctest: +SKIP
    >>> report["accuracy"]["int8"], report["passed"]  # doctest: +SKIP
    (0.871, True)
    """
    from kwlesson.training import TrainConfig, load_trained

    d = _export_dir(Path(export_dir))
    card = load_model_card(d)
    if card is None:
        raise FileNotFoundError(f"{d / MODEL_CARD}: model card not found; is {d} a folder "
                                "written by freeze?")
    labels = load_labels(d, expected=len(card["labels"]))
    if labels != card["labels"]:
        raise ValueError(f"{d / LABELS_FILE}: labels {labels} differ from the model card's "
                         f"{card['labels']}")
    settings = FeatureSettings.from_dict(card["feature_settings"])
    config = TrainConfig.from_dict(card["train_config"])
    if data is None:
        data = _data_for(config, data_dir)
    if list(data.labels) != labels:
        raise ValueError(f"{data.data_dir}: its labels {list(data.labels)} differ from the "
                         f"model's {labels}")
    # "validation+testing": both held-out splits, for a verdict on more clips.
    parts = [data.arrays(name.strip()) for name in split.split("+")]
    audio = np.concatenate([a for a, _ in parts])
    truth = np.concatenate([t for _, t in parts])
    if max_clips is not None and len(audio) > max_clips:
        pick = np.sort(np.random.default_rng(0).choice(len(audio), max_clips, replace=False))
        audio, truth = audio[pick], truth[pick]
    if len(audio) == 0:
        raise ValueError(f"{data.data_dir}: the {split} split is empty")
    features = np.concatenate([compute_features(audio[i:i + 256], settings).numpy()
                               for i in range(0, len(audio), 256)])

    ckpt = checkpoint or card.get("checkpoint")
    keras_probs, reference, logits = None, None, None
    if ckpt and Path(str(ckpt) + ".index").exists() or (ckpt and Path(ckpt).is_dir()):
        trained = load_trained(ckpt)
        logits = _keras_logits(trained.model, features)
        keras_probs = tf.nn.softmax(logits).numpy()
        reference = f"keras ({trained.checkpoint_path})"
    else:
        loaded = tf.saved_model.load(str(d / SAVED_MODEL_DIR))
        serve = loaded.signatures["serving_default"]
        keras_probs = np.concatenate([
            serve(audio=tf.constant(audio[i:i + 256]))["probabilities"].numpy()
            for i in range(0, len(audio), 256)])
        reference = f"saved_model ({d / SAVED_MODEL_DIR})"

    preds: dict[str, np.ndarray] = {"keras": keras_probs.argmax(-1)}
    probs: dict[str, np.ndarray] = {"keras": keras_probs}
    score_step = None
    if logits is not None and (d / INT8_TFLITE).is_file():
        # What int8 scores cost even after an exact network: Keras' scores rounded to the
        # int8 file's score step. Clips whose two best scores lie within a step tie or swap.
        score_step, zero = _score_quantization(d / INT8_TFLITE)
        if score_step:
            preds["keras_scores_rounded"] = _rounded_scores(logits, score_step, zero).argmax(-1)
    for kind, name, x in (("float", FLOAT_TFLITE, audio), ("int8", INT8_TFLITE, audio),
                          ("micro", MICRO_TFLITE, micro_input(features, card))):
        if (d / name).is_file():
            m = TFLiteModel(d / name)
            probs[kind] = m(x)
            preds[kind] = probs[kind].argmax(-1)
    tflm_note, max_lsb, micro_failed = None, None, False
    if micro and (d / MICRO_TFLITE).is_file():
        try:
            raw, lite = _micro_in_both_runtimes((d / MICRO_TFLITE).read_bytes(),
                                                micro_input(features, card))
        except ImportError as err:
            tflm_note = str(err)
        except MicroRuntimeError as err:
            tflm_note, micro_failed = f"{d / MICRO_TFLITE}: {err}", True
        else:
            preds["micro_tflm"] = raw.argmax(-1)
            preds["micro_litert_builtin"] = lite.argmax(-1)
            max_lsb = int(np.abs(raw.astype(np.int32) - lite.astype(np.int32)).max())

    def agree(a: str, b: str) -> float | None:
        return float(np.mean(preds[a] == preds[b])) if a in preds and b in preds else None

    accuracy = {k: float(np.mean(v == truth)) for k, v in preds.items()}
    agreement = {"float_vs_keras": agree("float", "keras"),
                 "int8_vs_float": agree("int8", "float"),
                 "micro_vs_keras": agree("micro", "keras"),
                 "micro_tflm_vs_litert": agree("micro_tflm", "micro_litert_builtin"),
                 "micro_tflm_vs_litert_xnnpack": agree("micro_tflm", "micro"),
                 "keras_scores_rounded_vs_keras": agree("keras_scores_rounded", "keras")}
    checks: dict[str, bool | None] = {
        "float_agrees_with_keras": (None if agreement["float_vs_keras"] is None
                                    else agreement["float_vs_keras"] >= MIN_FLOAT_AGREEMENT),
        "int8_within_1_point": (None if "int8" not in accuracy else
                                accuracy["float"] - accuracy["int8"] <= MAX_INT8_DROP + 1e-9),
        "micro_runs_in_tflm": (False if micro_failed
                               else None if agreement["micro_tflm_vs_litert"] is None
                               else agreement["micro_tflm_vs_litert"] >= MIN_MICRO_AGREEMENT),
    }
    max_diff = (float(np.abs(probs["float"] - probs["keras"]).max())
                if "float" in probs else None)
    return {
        "export_dir": str(d), "split": split, "clips": len(audio),
        "reference": reference, "accuracy": accuracy, "agreement": agreement,
        "max_probability_difference_float_vs_keras": max_diff,
        "max_int8_difference_tflm_vs_litert": max_lsb,
        "int8_flips": _flips(preds, truth),
        "int8_score_step": score_step,
        "score_rounding_flips": (None if "keras_scores_rounded" not in preds else
                                 _flips(preds, truth, "keras", "keras_scores_rounded")),
        "checks": checks, "passed": all(v for v in checks.values() if v is not None),
        "notes": [tflm_note] if tflm_note else [],
    }


def _rounded_scores(scores: np.ndarray, step: float, zero: int) -> np.ndarray:
    """Float scores as an int8 tensor of that step and zero point holds them."""
    return np.clip(np.round(scores / step) + zero, -128, 127).astype(np.int8)


def _score_quantization(path: Path) -> tuple[float | None, int]:
    """(scale, zero point) of the int8 scores going into the int8 file's SOFTMAX."""
    interp = _litert_interpreter(path, delegate=False)
    tensors = interp.get_tensor_details()
    for op in interp._get_ops_details():
        if op["op_name"] == "SOFTMAX":
            scale, zero = tensors[op["inputs"][0]]["quantization"]
            return (float(scale) or None), int(zero)
    return None, 0


def _flips(preds: dict[str, np.ndarray], truth: np.ndarray, a: str = "float",
           b: str = "int8") -> dict[str, Any] | None:
    """Clips right in ``a`` only and in ``b`` only, and how likely so large a difference is
    by chance (two-sided sign test: with the flips falling either way at even odds)."""
    if a not in preds or b not in preds:
        return None
    float_right, int8_right = preds[a] == truth, preds[b] == truth
    only_float = int(np.sum(float_right & ~int8_right))
    only_int8 = int(np.sum(int8_right & ~float_right))
    n, k = only_float + only_int8, max(only_float, only_int8)
    p = 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n)
    return {"right_in_float_only": only_float, "right_in_int8_only": only_int8,
            "p_value": p}


def format_verification(report: dict[str, Any]) -> str:
    """A few lines summarising :func:`verify`'s report.

    >>> print(format_verification(report))  # doctest: +SKIP
    """
    lines = [(f"{report['export_dir']}: {report['clips']} {report['split']} clips, "
             f"reference {report['reference']}")]
    for k, v in report["accuracy"].items():
        lines.append(f"  accuracy {k:<21} {100 * v:6.2f}%")
    for k, v in report["agreement"].items():
        if v is not None:
            lines.append(f"  agreement {k:<29} {100 * v:6.2f}%")
    flips = report.get("int8_flips")
    if flips:
        only = flips["right_in_float_only"]
        lines.append(f"  int8 vs float: {only} clip{'' if only == 1 else 's'} right in float "
                     f"only, {flips['right_in_int8_only']} in int8 only (so large a "
                     f"difference by chance: p = {flips['p_value']:.2f})")
    rounding = report.get("score_rounding_flips")
    if rounding:
        lines.append(f"  Keras' scores rounded to the int8 file's step "
                     f"({report['int8_score_step']:.3f}) alone: "
                     f"{rounding['right_in_float_only']} right in float only, "
                     f"{rounding['right_in_int8_only']} in rounded only (as if everything "
                     "before the scores were exact)")
    for k, v in report["checks"].items():
        lines.append(f"  check {k:<25} {'skipped' if v is None else 'ok' if v else 'FAILED'}")
    lines += [f"  note: {n}" for n in report["notes"]]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# label_wav


class _Labeller:
    """Whatever label_wav was given, as clip -> probabilities."""

    def __init__(self, model: str | os.PathLike, labels: str | os.PathLike | Sequence[str] | None
                 ) -> None:
        p = Path(model).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"{p}: model not found (an export folder, a .tflite file "
                                    "or a SavedModel folder)")
        self.card = load_model_card(p)
        self.name = str(p)
        if p.is_dir() and (p / "saved_model.pb").is_file():
            self._saved_model(p)
            where = p.parent
        elif p.is_dir():
            tfl = p / FLOAT_TFLITE
            if not tfl.is_file():
                found = sorted(x.name for x in p.glob("*.tflite"))
                if (p / SAVED_MODEL_DIR / "saved_model.pb").is_file():
                    self._saved_model(p / SAVED_MODEL_DIR)
                elif found:
                    tfl = p / found[0]
                else:
                    raise FileNotFoundError(f"{p}: no {FLOAT_TFLITE}, other .tflite or "
                                            f"{SAVED_MODEL_DIR}/ in this folder")
            if tfl.is_file():
                self._tflite(tfl)
            where = p
        else:
            self._tflite(p)
            where = p.parent
        if labels is None:
            self.labels = load_labels(where, expected=self.num_labels)
        elif isinstance(labels, (str, os.PathLike)):
            self.labels = load_labels(labels, expected=self.num_labels)
        else:
            self.labels = list(labels)
            if len(self.labels) != self.num_labels:
                raise ValueError(f"{len(self.labels)} labels given but {self.name} has "
                                 f"{self.num_labels} outputs")

    def _saved_model(self, path: Path) -> None:
        loaded = tf.saved_model.load(str(path))
        serve = loaded.signatures["serving_default"]
        if self.card is None:
            self.card = load_model_card(path.parent)
        if self.card is None:
            raise FileNotFoundError(f"{path.parent / MODEL_CARD}: needed to know the clip "
                                    "length of a SavedModel")
        self.num_labels = len(self.card["labels"])
        self.sample_rate = int(self.card["sample_rate"])
        self.samples = int(self.card["clip_samples"])
        self.settings = FeatureSettings.from_dict(self.card["feature_settings"])
        self._run = lambda clip: serve(audio=tf.constant(clip))["probabilities"].numpy()
        self.name = str(path)

    def _tflite(self, path: Path) -> None:
        m = TFLiteModel(path)
        self.num_labels = m.num_labels
        self.name = str(path)
        if m.kind == "audio":
            self.samples = m.input_shape[-1]
            self.sample_rate = int(self.card["sample_rate"]) if self.card else 16000
            self._run = m
            return
        if self.card is None:
            raise FileNotFoundError(f"{path}: takes features, and their settings are in "
                                    f"{MODEL_CARD}, which is not next to it")
        settings = FeatureSettings.from_dict(self.card["feature_settings"])
        if tuple(m.input_shape[1:]) != settings.shape:
            raise ValueError(f"{path}: takes features {list(m.input_shape[1:])}, but "
                             f"{MODEL_CARD} describes {list(settings.shape)}")
        self.sample_rate, self.samples = settings.sample_rate, settings.desired_samples
        card = self.card
        self._run = lambda clip: m(micro_input(compute_features(clip, settings).numpy(), card))

    def __call__(self, clip: np.ndarray) -> np.ndarray:
        return np.asarray(self._run(clip), np.float32).reshape(-1)


def _wav_files(target: Path) -> list[Path]:
    if target.is_dir():
        files = sorted(p for p in target.rglob("*") if p.suffix.lower() in (".wav", ".flac"))
        if not files:
            raise FileNotFoundError(f"{target}: no .wav or .flac files in this folder")
        return files
    if not target.exists():
        raise FileNotFoundError(f"{target}: wav file not found")
    return [target]


def label_wav(
    model: str | os.PathLike,
    wav: str | os.PathLike,
    top_k: int = 3,
    labels: str | os.PathLike | Sequence[str] | None = None,
    stream: TextIO | None = None,
) -> list[tuple[str, list[tuple[str, float]]]]:
    """Print the ``top_k`` labels of a wav (or of every wav in a folder), as the seed's
    label_wav.py: ``yes (score = 0.912)``.

    ``model``: an export folder (uses ``model_float.tflite`` and ``labels.txt``), a ``.tflite``
    file (``labels.txt`` next to it; a features-in micro model also needs ``model_card.json``)
    or a SavedModel folder. ``labels``: a labels file or list instead; its count must match the
    model's outputs. Each file is read with ``kwlesson.audio.read_wav``: any sample rate is
    resampled to the model's, channels are mixed down, and the clip is padded with zeros at
    the end or trimmed to the model's length (1 s). For a folder, each file's lines follow a
    line with its path; a file that cannot be read gets an error line and the rest go on.
    Returns ``[(path, [(label, score), ...]), ...]``.

    >>> label_wav("/tmp/kws", "left.wav")  # doctest: +SKIP
    left (score = 0.812)
    _unknown_ (score = 0.094)
    right (score = 0.030)
    """
    out = stream or sys.stdout
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, not {top_k}")
    target = Path(wav).expanduser()
    files = _wav_files(target)
    labeller = _Labeller(model, labels)
    k = min(top_k, len(labeller.labels))
    results = []
    for f in files:
        if target.is_dir():
            print(f"{f}:", file=out)
        try:
            clip = read_wav(f, sample_rate=labeller.sample_rate, clip_samples=labeller.samples)
        except AudioError as err:
            if not target.is_dir():
                raise
            print(f"  error: {err}", file=out)
            continue
        scores = labeller(clip)
        top = [(labeller.labels[i], float(scores[i])) for i in np.argsort(-scores)[:k]]
        _say_if_partial(f, labeller.samples / labeller.sample_rate, out,
                        "  " if target.is_dir() else "")
        for label, score in top:
            print(f"{'  ' if target.is_dir() else ''}{label} (score = {score:.3f})", file=out)
        results.append((str(f), top))
    return results


# --------------------------------------------------------------------------------------------
# wav_to_spectrogram


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
    from kwlesson.features import spectrogram

    magnitude = spectrogram(audio, settings).numpy()
    image = np.minimum(magnitude * brightness, 255.0).astype(np.uint8)
    png = tf.io.encode_png(image[:, :, None]).numpy()
    target = Path(output_image).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    tmp.write_bytes(png)
    os.replace(tmp, target)
    return image


# --------------------------------------------------------------------------------------------
# Command-line entry points (wired by kwlesson.cli)


def main_freeze(start_checkpoint: str, output_dir: str, model_architecture: str | None = None,
                data_dir: str | None = None,
                calibration_clips: int = DEFAULT_CALIBRATION_CLIPS,
                quantize: bool = True, verify_split: str | None = None,
                calibration: str | None = None) -> int:
    """``kwlesson freeze --start_checkpoint CKPT --output_dir DIR``; 0 on success, 2 on bad
    input, 1 when a conversion failed or ``verify_split`` was given and a check failed.
    ``calibration``: the int8 range rule, as :func:`freeze` (None: the better of both).

    >>> main_freeze("/tmp/speech_commands_train/tiny_conv.ckpt-400", "/tmp/kws")  # doctest: +SKIP
    0
    """
    try:
        result = freeze(start_checkpoint, output_dir, model_architecture=model_architecture,
                        data_dir=data_dir, calibration_clips=calibration_clips,
                        quantize=quantize, calibration=calibration)
        if verify_split:
            report = verify(result.output_dir, data_dir, split=verify_split)
            print(format_verification(report))
            return 0 if report["passed"] else 1
    except (FileNotFoundError, NotADirectoryError, ValueError, AudioError) as err:
        print(f"kwlesson freeze: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # a converter failure: not the user's input
        print(f"kwlesson freeze: {err}", file=sys.stderr)
        return 1
    return 0


def _say_if_partial(path: Any, seconds: float, out: Any, indent: str) -> None:
    """A note when a file is longer than the clip the model labels (only its start is)."""
    from kwlesson.audio import describe_wav

    try:
        length = describe_wav(path)["duration_s"]
    except AudioError:
        return
    if length > seconds + 0.05:
        print(f"{indent}note: {path} is {length:.1f} s long; these labels are for its first "
              f"{seconds:g} s only (for the whole file: kwlesson test-streaming-accuracy, or "
              "kwlesson.streaming)", file=out)


def main_label_wav(graph: str, wav: str, labels: str | None = None,
                   how_many_labels: int = 3) -> int:
    """``kwlesson label-wav --graph MODEL --wav FILE_OR_FOLDER [--labels FILE]
    [--how_many_labels 3]`` (the seed's flag names); 0 on success, 2 on bad input.

    >>> main_label_wav("/tmp/kws", "yes.wav")  # doctest: +SKIP
    0
    """
    try:
        label_wav(graph, wav, top_k=how_many_labels, labels=labels)
    except (FileNotFoundError, ValueError, AudioError) as err:
        print(f"kwlesson label-wav: {err}", file=sys.stderr)
        return 2
    return 0


def main_wav_to_spectrogram(input_wav: str, output_image: str, window_size: int = 256,
                            stride: int = 128, brightness: float = 64.0) -> int:
    """``kwlesson wav-to-spectrogram --input_wav FILE --output_image PNG [--window_size 256]
    [--stride 128] [--brightness 64]``; 0 on success, 2 on bad input.

    >>> main_wav_to_spectrogram("yes.wav", "/tmp/spectrogram.png")  # doctest: +SKIP
    0
    """
    try:
        image = wav_to_spectrogram(input_wav, output_image, window_size, stride, brightness)
    except (FileNotFoundError, ValueError, AudioError) as err:
        print(f"kwlesson wav-to-spectrogram: {err}", file=sys.stderr)
        return 2
    print(f"Wrote {output_image} ({image.shape[1]} x {image.shape[0]} pixels: frequency "
          "across, time down)")
    return 0
