"""From a trained Keras model to ``.tflite`` flatbuffers: the functions that are converted
(raw audio in with the feature front end inside, or features in) and the int8 machinery behind
lesson 07's three files.

Lesson 07 shows the result (:func:`kwlesson.export.freeze`); this module is the engineering
under it, for those who want to know why an int8 file keeps its float model's accuracy:

- :func:`frozen_logits` bakes the weights in as constants ("freezing" in TensorFlow 1's sense);
  :func:`folded_logits` computes linear Dense layers in a row as one product.
- :func:`int8_body` gives MFCC coefficient 0, whose range is far wider than the others', a
  scale of its own (the first layer multiplies back what the front end divided).
- :func:`convert` runs the TFLite converter (float, int8 audio-in, int8 micro) and sets the
  int8 activation ranges by a rule chosen on held-out clips (``"average"``, ``"minmax"`` or
  ``"per_tensor"``), editing the calibrated flatbuffer's ranges where the rule needs it.
- :func:`int8_files` tries the candidate networks (rescaled or not, folded or not) and keeps
  the one whose micro model is closest to float.

>>> from kwlesson.quantization import frozen_logits, audio_fn, convert  # doctest: +SKIP
>>> tflite = convert(audio_fn(frozen_logits(model), settings), "float")  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from kwlesson.features import FeatureSettings, compute_features
from kwlesson.runtime import (
    TFLiteModel,
    litert_interpreter,
    micro_agreement,
    native_stderr_kept_back,
    runs_in_litert,
    tensor_names,
)

KINDS = ("float", "int8", "micro")



#: How :func:`convert` sets the int8 activation ranges from the calibration clips.
CALIBRATIONS = ("average", "minmax", "per_tensor")



#: freeze's int8 audio-in file divides MFCC coefficient 0 by a factor (and its first layer
#: multiplies it back) when that coefficient's range is at least this many times the others'.
MIN_INPUT_RESCALE = 2.0



#: The int8 input scale of a micro model on 'micro' features, as TensorFlow Lite Micro's
#: micro_speech example quantises its front end's integer output f (0 to about 670):
#: q = (f * 256 + 333) / 666 - 128, clamped (micro_features_generator.cc, and the same sum
#: inside its audio_preprocessor model). The float feature is x = f * 10 / 256, so
#: q = round(x / scale) - 128 with scale = 666 * 10 / 256**2, zero point -128.
MICRO_SPEECH_INPUT_SCALE = 666 * 10 / 256**2
#: ... which the converter gets from this range (255 steps above 0; louder saturates).
MICRO_FEATURES_RANGE = (0.0, 255 * MICRO_SPEECH_INPUT_SCALE)

#: Name scope of the feature front end inside the audio-in models.
FRONT_END_SCOPE = "features"



MIN_MICRO_AGREEMENT = 0.99



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



def keras_logits(model: Any, features: np.ndarray, batch: int = 256) -> np.ndarray:
    """The Keras model's scores (before the softmax) for ``features``, a batch at a time."""
    return np.concatenate([np.asarray(model(features[i:i + batch], training=False))
                           for i in range(0, len(features), batch)])



def folded_logits(model: Any, start: Any = None
                  ) -> tuple[Callable[[tf.Tensor], tf.Tensor], list[str]]:
    """``frozen_logits`` with a trailing run of linear Dense layers multiplied into one.

    low_latency_conv and low_latency_svdf end in two hidden Dense layers without activation,
    then the logits layer (as the seed). In float ``x W1 W2 W3`` is ``x (W1 W2 W3)``; in
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



def audio_fn(logits: Callable, settings: FeatureSettings, batch: int | None = 1,
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



def features_fn(logits: Callable, settings: FeatureSettings) -> Any:
    """Concrete function features [1, frames, bins] -> {"scores": softmax [1, labels]}."""
    spec = tf.TensorSpec([1, *settings.shape], tf.float32, name="features")

    @tf.function(input_signature=[spec])
    def features_to_scores(features: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"scores": tf.nn.softmax(logits(features))}

    return features_to_scores.get_concrete_function()



def front_end_nodes(float_model: bytes) -> list[str]:
    """Output tensor names of the ops that belong to the feature front end (and nothing else)."""
    interp = litert_interpreter(float_model, delegate=False)
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
            report: dict[str, Any] | None = None,
            input_range: tuple[float, float] | None = None) -> bytes:
    """Convert a concrete function to a ``.tflite`` flatbuffer.

    ``kind``: ``"float"`` (float32 throughout), ``"int8"`` (int8 weights and activations in the
    network, float input and output, and the feature front end left in float) or ``"micro"``
    (int8 only, int8 input and output: what TensorFlow Lite Micro runs). ``representative``
    yields ``[input]`` lists for calibration (needed for int8 and micro): for a function of
    several inputs (the TF Speech app's audio and rate), one array each, in the converter's
    order.

    ``calibration`` sets each activation's int8 range from the representative clips:
    ``"average"`` (default) averages each clip's own minimum and maximum; ``"minmax"`` (the
    converter's own rule) takes the extremes over all clips; ``"per_tensor"`` picks one of the
    two for each tensor, keeping a change only when the int8 model's probabilities then come
    closer to ``check``'s (``check = (inputs, probabilities)``: other training clips and the
    float model's probabilities on them; ``inputs`` may be a function running a candidate
    ``.tflite`` on them instead, for several inputs; closeness is the mean L1 distance between the
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
    best score still wins (see ``averaged_ranges``). ``report`` (a dict), when given, receives
    the rule, each tensor's choice and the agreements on ``check``. ``input_range``: (low,
    high) for a micro model's input instead of the calibration clips' range, for a device
    that quantises its features with a fixed scale (see ``MICRO_FEATURES_RANGE``).

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

        front_end = front_end_nodes(_convert_float(concrete_fn)) if kind == "int8" else []
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.representative_dataset = representative
        # Calibrate only (a float model carrying each tensor's observed range), then quantise
        # with our ranges: the two steps the converter runs, with our choice in between.
        c._experimental_calibrate_only = True  # noqa: SLF001 (the debugger's own route)
        calibrated = c.convert()
        io_type = tf.int8 if kind == "micro" else tf.float32
        averaged = ({} if calibration == "minmax"
                    else averaged_ranges(calibrated, representative, keep=front_end))

        pinned = {} if input_range is None else {_graph_input(calibrated): input_range}

        def build(choice: dict[int, str]) -> bytes | None:
            ranges = {i: averaged[i] for i, rule in choice.items() if rule == "average"}
            with native_stderr_kept_back():
                model = tflite_convert.mlir_quantize(
                    _with_ranges(calibrated, {**ranges, **pinned}), input_data_type=io_type,
                    output_data_type=io_type, denylisted_nodes=front_end or None)
            # XNNPACK refuses an int8 op whose output scale is too small for its input and
            # weight scales (averaged ranges can do that); the converter's own ranges never do.
            return model if not ranges or runs_in_litert(model) else None

        def score(model: bytes | None) -> tuple[float, float]:
            """(-distance, agreement) on the check clips: higher is better."""
            if model is None or check is None:
                return (-np.inf, -1.0)
            # A callable runs a model TFLiteModel cannot feed (the app file's two inputs).
            probs = check[0](model) if callable(check[0]) else TFLiteModel(model)(check[0])
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
        names = tensor_names(calibrated)
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



def _float_ops(model: bytes) -> list[dict]:
    """The operators of a .tflite that compute in float (a float32 output)."""
    interp = litert_interpreter(model, delegate=False)
    tensors = interp.get_tensor_details()
    return [op for op in interp._get_ops_details()
            if any(tensors[i]["dtype"] == np.float32 for i in op["outputs"])]



# TFLite builtin operator codes (schema.fbs).
_ADD, _RESHAPE, _PAD, _STRIDED_SLICE = 0, 22, 34, 45



#: Operators whose output keeps its input's int8 scale: a range set on it has no effect.
_SAME_SCALE = (_RESHAPE, _PAD, _STRIDED_SLICE)



def averaged_ranges(calibrated: bytes,
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
    interp = litert_interpreter(calibrated, delegate=False, preserve_all_tensors=True)
    # (index, dtype) in the converter's order, the order of each representative sample.
    inputs = [(d["index"], d["dtype"]) for d in interp.get_input_details()]
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
        for (index, dtype), value in zip(inputs, sample):  # dtype: an int32 rate stays int32
            interp.set_tensor(index, np.asarray(value, dtype))
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



def _graph_input(model: bytes) -> int:
    """The tensor index of a one-input model's input."""
    from tensorflow.lite.tools import flatbuffer_utils

    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(model)).subgraphs[0]
    if len(graph.inputs) != 1:
        raise ValueError(f"a pinned input range needs a one-input model, not {len(graph.inputs)}")
    return int(graph.inputs[0])


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
# The int8 files of a model: the candidate networks tried and the one kept


@dataclass
class Int8Files:
    """What :func:`int8_files` made: the int8 audio-in file (None for 'micro' features: the
    front end's op does not convert), the micro model, the network they compute, and what was
    compared to choose it (for the model card)."""

    int8: bytes | None
    micro: bytes
    body: Int8Body
    rule: str
    reports: dict[str, dict[str, Any]]
    check_clips: int
    #: The first candidate (coefficient 0 rescaled where the model allows it).
    first: Int8Body
    #: check-clip distance to float: rescaled vs as trained (same folding as the kept one).
    distances: dict[str, float]
    #: (distance, TFLM agreement): folded vs as trained (same rescaling as the kept one).
    folding: dict[str, tuple[float, float | None]]
    #: The layers a folded candidate folded, () when nothing could be folded.
    folded_layers: tuple[str, ...]


def _candidate_bodies(model: Any, features: np.ndarray) -> list[Int8Body]:
    """The networks to try: coefficient 0 rescaled (where int8_body can) and as trained, each
    with linear layers folded into one product (where there are any) and not."""
    bodies = []
    for fold in (True, False):
        first = int8_body(model, features, fold=fold)
        bodies.append(first)
        if first.rescaled_bin is not None:
            bodies.append(_plain_body(model, fold))
        if not any(b.folded for b in bodies):
            break  # nothing to fold: the unfolded bodies are these
    return bodies


def _describe(body: Int8Body) -> str:
    return ", ".join([("coefficient 0 rescaled" if body.rescaled_bin is not None
                       else "coefficient 0 as it is")]
                     + (["linear layers folded"] if body.folded else []))


def int8_files(model: Any, settings: FeatureSettings, calib: np.ndarray, check: np.ndarray,
               rule: str = "per_tensor",
               step: Callable[[str], None] = lambda text: None) -> Int8Files:
    """The int8 audio-in file and the micro model of a Keras model.

    ``calib``: training clips (float audio [n, samples]) to calibrate the ranges on;
    ``check``: another draw of training clips, augmented as in training, on which the files
    should give the float model's probabilities (new to the model, so the range rules can be
    told apart: on the clean training clips the model is too sure of itself; tried, it kept
    min/max ranges that cost low_latency_conv 5 points of held-out agreement). ``rule``: see
    :func:`convert`. ``step``: called with a line per stage (progress).

    Both files run the same network. Where :func:`int8_body` can give coefficient 0 a scale of
    its own, the micro model is made both ways and the one closer to float on the check clips
    is kept (the rewrite's partial sums cost some models, ds_cnn, more than the finer input
    gives them); likewise with linear layers folded into one product and without, where
    folding is kept only when TensorFlow Lite Micro still agrees with LiteRT on the check
    clips (where the runtimes round an op differently, a folded layer can magnify it).
    """
    feats = compute_features(calib, settings).numpy()
    check_feats = compute_features(check, settings).numpy()
    float_probs = tf.nn.softmax(keras_logits(model, check_feats)).numpy()
    bodies = _candidate_bodies(model, feats)
    any_folded = any(b.folded for b in bodies)
    tried: list[_Candidate] = []
    for n, candidate in enumerate(bodies, start=1):
        step(f"int8 micro model, network {n} of {len(bodies)}: {_describe(candidate)}")
        prepared = candidate.prepared(feats)
        prepared_check = candidate.prepared(check_feats)
        report: dict[str, Any] = {}
        micro = convert(features_fn(candidate.logits, settings), "micro",
                        lambda p=prepared: ([f[None]] for f in p), rule,
                        (prepared_check, float_probs), report,
                        MICRO_FEATURES_RANGE if settings.preprocess == "micro" else None)
        tflm = micro_agreement(micro, prepared_check) if any_folded else None
        tried.append(_Candidate(report["check_probability_distance"], candidate, micro,
                                report, tflm))
    eligible = [t for t in tried if t.tflm is None or t.tflm >= MIN_MICRO_AGREEMENT] or tried
    kept = min(eligible, key=lambda t: t.distance)
    body = kept.body
    int8_report: dict[str, Any] = {}
    int8 = None
    if settings.preprocess != "micro":
        step("int8 audio-in model")

        def audio_rep() -> Iterable[list[np.ndarray]]:
            for clip in calib:
                yield [clip[None]]

        int8 = convert(audio_fn(body.logits, settings, prepare=body.prepare), "int8",
                       audio_rep, rule, (check, float_probs), int8_report)
    return Int8Files(
        int8=int8, micro=kept.micro, body=body, rule=rule,
        reports={"micro": kept.report, "int8": int8_report or None}, check_clips=len(check),
        first=bodies[0],
        distances={("rescaled" if t.body.rescaled_bin is not None else "as_trained"):
                   t.distance for t in tried if bool(t.body.folded) == bool(body.folded)},
        folding={("folded" if t.body.folded else "as_trained"): (t.distance, t.tflm)
                 for t in tried if (t.body.rescaled_bin is None) == (body.rescaled_bin is None)},
        folded_layers=next((tuple(t.body.folded) for t in tried if t.body.folded), ()))
