"""The keyword-spotting models, rebuilt in Keras 3, and how to count what they cost.

Introduced in notebook 03. Six architectures are TensorFlow's classic speech-commands example
(``tensorflow/examples/speech_commands/models.py``) layer for layer: the same filter sizes,
strides, padding, pooling, dropout positions and initialisers, so the same parameter counts
(``conv`` on 98x40 MFCCs with 12 labels: 926,860; ``tiny_conv``: 94,740). The seventh,
``ds_cnn``, is the depthwise-separable CNN of "Hello Edge" (DS-CNN small), as in the MLPerf
Tiny keyword-spotting reference: a modern small model.

Every model takes features of shape ``[frames, bins]`` (what ``kwlesson.features`` computes) and
returns **logits**: there is no softmax inside, so train with
``SparseCategoricalCrossentropy(from_logits=True)`` and apply ``softmax`` yourself for
probabilities.

>>> from kwlesson.models import create_model
>>> model = create_model("tiny_conv", input_shape=(98, 40), label_count=12)
>>> model.count_params()
94740
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import keras
from keras import layers, ops

#: The seed's default input: 1 s at 10 ms stride (98 frames) of 40 MFCCs.
DEFAULT_INPUT_SHAPE = (98, 40)
#: Silence, unknown and the ten default words.
DEFAULT_LABEL_COUNT = 12
#: The rate the seed's train.py feeds its dropout placeholder while training.
REFERENCE_DROPOUT_RATE = 0.5


def _weights(stddev: float = 0.01) -> keras.initializers.Initializer:
    # The seed draws every weight from truncated_normal(stddev=0.01) and starts biases at
    # zero. A fresh initializer per layer: one shared unseeded instance would give every layer
    # the same draw. The seed comes from keras.utils.set_random_seed.
    return keras.initializers.TruncatedNormal(stddev=stddev)


def _dropout(x, rate: float, name: str):
    # Dropout is only active in training (model(x, training=True) or fit), as the seed's
    # placeholder was only fed 0.5 during training.
    return layers.Dropout(rate, name=name)(x) if rate > 0 else x


def _image(inputs, name: str = "add_channel"):
    # A Reshape layer, not x[..., None]: TFLite's int8 converter handles a plain RESHAPE well.
    frames, bins = inputs.shape[1], inputs.shape[2]
    return layers.Reshape((frames, bins, 1), name=name)(inputs)


@keras.saving.register_keras_serializable(package="kwlesson")
class SVDF(keras.layers.Layer):
    """Singular-value-decomposition filter, the first layer of ``low_latency_svdf``.

    Each of ``num_units`` units owns ``rank`` pairs of filters: a feature filter (a 1-D
    convolution over the bins of every frame, i.e. a matmul per frame) and a time filter (one
    weight per frame of memory, applied depthwise). The ``rank`` outputs of a unit are summed and
    a bias is added, as in the seed (the ReLU follows as its own layer). Filter ``k`` belongs
    to unit ``k // rank``, the seed's ``reshape(outputs, [num_units, rank, -1])``.

    Weights: ``weights_frequency [bins, rank*num_units]``, ``weights_time [rank*num_units,
    frames]``, ``bias [num_units]``. The seed's non-trainable streaming memory is not part of
    this layer: it sees the whole window every call (the seed's training graph); streaming
    keeps its own state.

    >>> layer = SVDF(num_units=4, rank=2)
    >>> tuple(layer(keras.ops.zeros((1, 98, 40))).shape)
    (1, 4)
    """

    def __init__(self, num_units: int, rank: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if num_units < 1 or rank < 1:
            raise ValueError(f"SVDF needs num_units >= 1 and rank >= 1, got {num_units}, {rank}")
        self.num_units = int(num_units)
        self.rank = int(rank)

    @property
    def num_filters(self) -> int:
        return self.rank * self.num_units

    def build(self, input_shape) -> None:
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                f"SVDF needs inputs [batch, frames, bins] with known frames and bins, "
                f"got {tuple(input_shape)}"
            )
        frames, bins = int(input_shape[1]), int(input_shape[2])
        self.weights_frequency = self.add_weight(
            name="weights_frequency", shape=(bins, self.num_filters), initializer=_weights()
        )
        self.weights_time = self.add_weight(
            name="weights_time", shape=(self.num_filters, frames), initializer=_weights()
        )
        self.bias = self.add_weight(name="bias", shape=(self.num_units,), initializer="zeros")

    def call(self, inputs):
        # Feature filters on every frame: [batch, frames, bins] @ [bins, filters].
        activations = ops.matmul(inputs, self.weights_frequency)
        # Time filters: weight each frame's activation and sum over the memory (frames).
        outputs = ops.sum(activations * ops.transpose(self.weights_time), axis=1)
        outputs = ops.reshape(outputs, (-1, self.num_units, self.rank))
        return ops.sum(outputs, axis=-1) + self.bias

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_units)

    def macs(self, input_shape) -> int:
        """Multiply-accumulates for one window: feature filters, then time filters."""
        frames, bins = int(input_shape[1]), int(input_shape[2])
        return frames * bins * self.num_filters + frames * self.num_filters

    def get_config(self) -> dict:
        return {**super().get_config(), "num_units": self.num_units, "rank": self.rank}


@keras.saving.register_keras_serializable(package="kwlesson")
class FusedBatchNormalization(layers.BatchNormalization):
    """``BatchNormalization`` that trains with TensorFlow's fused kernel; otherwise the same.

    Keras 3 normalises with separate moment, subtract, scale and shift operations, each a pass
    over the activations; on a CPU that made batch norm most of ``ds_cnn``'s training step.
    TensorFlow's fused kernel does the same arithmetic in about a quarter of the time. The
    weights, the moving averages (updated as Keras does, from the biased batch variance) and
    inference are exactly ``BatchNormalization``'s, so checkpoints, export (batch norm folded
    into the convolution) and MAC counts are unchanged. Any case the fused kernel does not cover
    (another backend, a mask, renorm, not 4-D channels-last float32) uses the Keras code.

    >>> layer = FusedBatchNormalization()
    >>> tuple(layer(keras.ops.ones((2, 3, 4, 5)), training=True).shape)
    (2, 3, 4, 5)
    """

    def call(self, inputs, training=None, mask=None):
        fused = (training and self.trainable and mask is None and not self.renorm
                 and self.center and self.scale and keras.backend.backend() == "tensorflow"
                 and len(inputs.shape) == 4 and self.axis in (-1, 3)
                 and inputs.dtype == "float32" and self.compute_dtype == "float32")
        if not fused:
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma, self.beta, epsilon=self.epsilon, is_training=True)
        # The kernel returns the unbiased variance; Keras averages the biased one.
        n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
        variance = variance * (n - 1.0) / n
        self.moving_mean.assign(self.moving_mean * self.momentum
                                + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum
                                    + variance * (1.0 - self.momentum))
        return y


# --- The seed's six architectures ------------------------------------------------------


def _single_fc(inputs, label_count: int, dropout: float):
    """One matmul + bias on the flattened fingerprint (reference: no dropout, stddev 0.001)."""
    del dropout  # the seed creates the placeholder but never uses it here
    x = layers.Flatten(name="flatten")(inputs)
    return layers.Dense(label_count, kernel_initializer=_weights(0.001), name="logits")(x)


def _conv(inputs, label_count: int, dropout: float):
    """'cnn-trad-fpool3': conv 20x8x64 SAME, relu, dropout, maxpool 2x2, conv 10x4x64, relu, fc."""
    x = _image(inputs)
    x = layers.Conv2D(64, (20, 8), padding="same", kernel_initializer=_weights(),
                      name="first_conv")(x)
    x = layers.ReLU(name="first_relu")(x)
    x = _dropout(x, dropout, "first_dropout")
    x = layers.MaxPooling2D((2, 2), strides=(2, 2), padding="same", name="max_pool")(x)
    x = layers.Conv2D(64, (10, 4), padding="same", kernel_initializer=_weights(),
                      name="second_conv")(x)
    x = layers.ReLU(name="second_relu")(x)
    x = _dropout(x, dropout, "second_dropout")
    x = layers.Flatten(name="flatten")(x)
    return layers.Dense(label_count, kernel_initializer=_weights(), name="logits")(x)


def _low_latency_conv(inputs, label_count: int, dropout: float):
    """'cnn-one-fstride4': one conv spanning all frames (x8 bins, 186 filters, VALID), 3 fcs."""
    frames, bins = inputs.shape[1], inputs.shape[2]
    if bins < 8:
        raise ValueError(
            f"low_latency_conv needs at least 8 feature bins (its filter is 8 bins wide), "
            f"got input_shape={(frames, bins)}"
        )
    x = _image(inputs)
    x = layers.Conv2D(186, (frames, 8), padding="valid", kernel_initializer=_weights(),
                      name="first_conv")(x)
    x = layers.ReLU(name="first_relu")(x)
    x = _dropout(x, dropout, "first_dropout")
    x = layers.Flatten(name="flatten")(x)
    # The seed's two hidden fully connected layers are linear (no activation).
    x = layers.Dense(128, kernel_initializer=_weights(), name="first_fc")(x)
    x = _dropout(x, dropout, "first_fc_dropout")
    x = layers.Dense(128, kernel_initializer=_weights(), name="second_fc")(x)
    x = _dropout(x, dropout, "second_fc_dropout")
    return layers.Dense(label_count, kernel_initializer=_weights(), name="logits")(x)


def _low_latency_svdf(inputs, label_count: int, dropout: float, *, rank: int = 2,
                      num_units: int = 1280):
    """SVDF (rank 2, 1280 units, memory = all frames), relu, dropout, fc 256, fc 256, fc."""
    x = SVDF(num_units=num_units, rank=rank, name="svdf")(inputs)
    x = layers.ReLU(name="first_relu")(x)
    x = _dropout(x, dropout, "first_dropout")
    x = layers.Dense(256, kernel_initializer=_weights(), name="first_fc")(x)
    x = _dropout(x, dropout, "first_fc_dropout")
    x = layers.Dense(256, kernel_initializer=_weights(), name="second_fc")(x)
    x = _dropout(x, dropout, "second_fc_dropout")
    return layers.Dense(label_count, kernel_initializer=_weights(), name="logits")(x)


def _tiny_conv(inputs, label_count: int, dropout: float):
    """Microcontroller model: conv 10x8x8 stride 2 SAME, relu, dropout, fc."""
    x = _image(inputs)
    x = layers.Conv2D(8, (10, 8), strides=(2, 2), padding="same", kernel_initializer=_weights(),
                      name="first_conv")(x)
    x = layers.ReLU(name="first_relu")(x)
    x = _dropout(x, dropout, "first_dropout")
    x = layers.Flatten(name="flatten")(x)
    return layers.Dense(label_count, kernel_initializer=_weights(), name="logits")(x)


def _tiny_embedding_conv(inputs, label_count: int, dropout: float):
    """tiny_conv plus a second conv 10x8x8 with stride 8 (SAME) before the fc."""
    # The seed's docstring draws three convolutions; its code builds two. We follow the code.
    x = _image(inputs)
    x = layers.Conv2D(8, (10, 8), strides=(2, 2), padding="same", kernel_initializer=_weights(),
                      name="first_conv")(x)
    x = layers.ReLU(name="first_relu")(x)
    x = _dropout(x, dropout, "first_dropout")
    x = layers.Conv2D(8, (10, 8), strides=(8, 8), padding="same", kernel_initializer=_weights(),
                      name="second_conv")(x)
    x = layers.ReLU(name="second_relu")(x)
    x = _dropout(x, dropout, "second_dropout")
    x = layers.Flatten(name="flatten")(x)
    return layers.Dense(label_count, kernel_initializer=_weights(), name="logits")(x)


# --- The modern small model -----------------------------------------------------------------


def _ds_cnn(inputs, label_count: int, dropout: float | None, *, filters: int = 64,
            blocks: int = 4, weight_decay: float = 1e-4):
    """DS-CNN small: conv 10x4 stride 2, then blocks x (depthwise 3x3 + pointwise), avg pool, fc.

    As in the MLPerf Tiny reference: batchnorm + relu after every convolution, dropout 0.2 after
    the first and 0.4 before pooling, L2 weight decay 1e-4 on the convolution kernels (Keras
    adds it to the loss in ``fit``), Keras' default initialisers. One difference: the pooling is
    global (that reference's fixed pool of (frames//2, bins//2) drops the last row for odd sizes).
    """
    first_rate, last_rate = (0.2, 0.4) if dropout is None else (dropout, dropout)
    reg = keras.regularizers.L2(weight_decay) if weight_decay else None
    x = _image(inputs)
    x = layers.Conv2D(filters, (10, 4), strides=(2, 2), padding="same", kernel_regularizer=reg,
                      name="conv")(x)
    x = FusedBatchNormalization(name="conv_bn")(x)
    x = layers.ReLU(name="conv_relu")(x)
    x = _dropout(x, first_rate, "conv_dropout")
    for i in range(1, blocks + 1):
        x = layers.DepthwiseConv2D((3, 3), padding="same", depthwise_regularizer=reg,
                                   name=f"dw{i}")(x)
        x = FusedBatchNormalization(name=f"dw{i}_bn")(x)
        x = layers.ReLU(name=f"dw{i}_relu")(x)
        x = layers.Conv2D(filters, (1, 1), padding="same", kernel_regularizer=reg,
                          name=f"pw{i}")(x)
        x = FusedBatchNormalization(name=f"pw{i}_bn")(x)
        x = layers.ReLU(name=f"pw{i}_relu")(x)
    x = _dropout(x, last_rate, "final_dropout")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return layers.Dense(label_count, name="logits")(x)


def _tc_resnet(inputs, label_count: int, dropout: float | None, *, width: float = 1.5,
               kernel: int = 9):
    """TC-ResNet8: temporal convolutions over the frames, the bins as channels.

    After Choi et al. 2019 ("Temporal Convolution for Real-time Keyword Spotting on Mobile
    Devices"): a 3x1 convolution to 16 channels, then three residual blocks of two 9x1
    convolutions (the first with stride 2 in time) with 24, 32, 48 channels and a 1x1 stride-2
    shortcut, batch norm + relu, global average pooling, dropout, fc; every channel count times
    ``width`` (24, 36, 48, 72 at the default 1.5). A
    spectrogram treated as a sequence of 40-number frames rather than an image: every kernel
    sees all the bins at once, so three blocks cover the whole second cheaply.
    """
    rate = 0.5 if dropout is None else dropout
    widths = [max(1, round(c * width)) for c in (16, 24, 32, 48)]
    frames, bins = inputs.shape[1], inputs.shape[2]
    x = layers.Reshape((frames, 1, bins), name="frames_as_rows")(inputs)
    x = layers.Conv2D(widths[0], (3, 1), padding="same", use_bias=False, name="conv")(x)
    for i, w in enumerate(widths[1:], 1):
        y = layers.Conv2D(w, (kernel, 1), strides=(2, 1), padding="same", use_bias=False,
                          name=f"block{i}_conv1")(x)
        y = layers.ReLU(name=f"block{i}_relu1")(FusedBatchNormalization(name=f"block{i}_bn1")(y))
        y = layers.Conv2D(w, (kernel, 1), padding="same", use_bias=False,
                          name=f"block{i}_conv2")(y)
        y = FusedBatchNormalization(name=f"block{i}_bn2")(y)
        s = layers.Conv2D(w, (1, 1), strides=(2, 1), padding="same", use_bias=False,
                          name=f"block{i}_shortcut")(x)
        s = layers.ReLU(name=f"block{i}_relu_s")(
            FusedBatchNormalization(name=f"block{i}_bn_s")(s))
        x = layers.ReLU(name=f"block{i}_relu")(layers.Add(name=f"block{i}_add")([y, s]))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = _dropout(x, rate, "final_dropout")
    return layers.Dense(label_count, name="logits")(x)


_BUILDERS: dict[str, tuple[Callable, str]] = {
    "single_fc": (_single_fc, "reference: one fully connected layer"),
    "conv": (_conv, "reference: cnn-trad-fpool3"),
    "low_latency_conv": (_low_latency_conv, "reference: cnn-one-fstride4"),
    "low_latency_svdf": (_low_latency_svdf, "reference: SVDF rank 2, 1280 units"),
    "tiny_conv": (_tiny_conv, "reference: microcontroller conv"),
    "tiny_embedding_conv": (_tiny_embedding_conv, "reference: two-conv microcontroller model"),
    "ds_cnn": (_ds_cnn, "Hello Edge DS-CNN small (MLPerf Tiny KWS)"),
    "tc_resnet": (_tc_resnet, "TC-ResNet8 (temporal convolutions, Choi et al. 2019)"),
}

#: Valid names for ``create_model``, in the order the table lists them.
ARCHITECTURES: tuple[str, ...] = tuple(_BUILDERS)


def create_model(
    architecture: str,
    input_shape: tuple[int, int] = DEFAULT_INPUT_SHAPE,
    label_count: int = DEFAULT_LABEL_COUNT,
    dropout_rate: float | None = None,
    **options: Any,
) -> keras.Model:
    """Build one of ``ARCHITECTURES`` as a Keras functional model that outputs logits.

    ``input_shape`` is ``(frames, bins)`` of one example, e.g. ``FeatureSettings().shape``.
    ``dropout_rate=None`` uses the architecture's own rate: 0.5 for the seed's models (what
    its train.py feeds while training), 0.2 / 0.4 for ``ds_cnn``, 0.5 before ``tc_resnet``'s last
    layer; a number sets every dropout layer to it, 0 removes them. Dropout acts only with
    ``training=True`` (e.g. in ``fit``).
    ``options`` are architecture settings: ``low_latency_svdf`` takes ``rank`` and
    ``num_units``; ``ds_cnn`` takes ``filters``, ``blocks`` and ``weight_decay``; ``tc_resnet``
    takes ``width`` (channel multiplier, 1.5) and ``kernel`` (9).

    The output is logits (no softmax): use ``from_logits=True`` in the loss.

    >>> model = create_model("conv", input_shape=(98, 40), label_count=12)
    >>> model.count_params(), model.output_shape
    (926860, (None, 12))
    """
    if architecture not in _BUILDERS:
        raise ValueError(
            f"unknown model architecture {architecture!r}; valid names: {', '.join(ARCHITECTURES)}"
        )
    try:
        frames, bins = (int(n) for n in input_shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"input_shape must be (frames, bins), two positive integers, got {input_shape!r}"
        ) from None
    if frames < 1 or bins < 1:
        raise ValueError(f"input_shape must be two positive integers, got {tuple(input_shape)}")
    if int(label_count) < 1:
        raise ValueError(f"label_count must be at least 1, got {label_count}")
    if dropout_rate is not None and not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}")
    builder, _ = _BUILDERS[architecture]
    allowed = [
        p.name for p in inspect.signature(builder).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"{architecture} does not take option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(allowed) or 'no options'}"
        )
    if architecture not in ("ds_cnn", "tc_resnet") and dropout_rate is None:
        dropout_rate = REFERENCE_DROPOUT_RATE
    inputs = keras.Input(shape=(frames, bins), name="features")
    logits = builder(inputs, int(label_count), dropout_rate, **options)
    return keras.Model(inputs, logits, name=architecture)


# --- Counting multiply-accumulates ----------------------------------------------------------


def _shape(tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in tensor.shape[1:])


def layer_macs(model: keras.Model) -> list[dict]:
    """Parameters and multiply-accumulates (MACs) of each layer for one example.

    Counted from each layer's shapes: a convolution costs ``output elements x kernel height x
    kernel width x input channels (per group)``, a depthwise convolution ``output elements x
    kernel height x kernel width``, a dense layer ``inputs x units`` (per leading position), an
    SVDF ``frames x bins x filters + frames x filters``. SAME padding counts the padded zeros
    (what the hardware computes). Bias adds, activations, pooling and batch normalisation count
    0: they are not multiply-accumulates, and batch norm folds into the convolution before it
    when the model is exported. A layer with weights that this function does not know raises
    ``NotImplementedError`` rather than being counted wrongly.

    >>> rows = layer_macs(create_model("tiny_conv"))
    >>> [(r["name"], r["macs"]) for r in rows if r["macs"]]
    [('first_conv', 627200), ('logits', 94080)]
    """
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            rows.extend(layer_macs(layer))
            continue
        if isinstance(layer, layers.InputLayer):
            continue
        out_shape = _shape(layer.output)
        n_out = math.prod(out_shape)
        if isinstance(layer, layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            macs = n_out * kh * kw
        elif isinstance(layer, (layers.Conv1D, layers.Conv2D)):
            in_channels = _shape(layer.input)[-1]
            macs = n_out * math.prod(layer.kernel_size) * (in_channels // layer.groups)
        elif isinstance(layer, layers.Dense):
            macs = math.prod(_shape(layer.input)) * layer.units
        elif isinstance(layer, SVDF):
            macs = layer.macs((None, *_shape(layer.input)))
        elif isinstance(layer, layers.BatchNormalization) or not layer.weights:
            macs = 0
        else:
            raise NotImplementedError(
                f"no MAC formula for layer {layer.name!r} of type {type(layer).__name__}"
            )
        rows.append({
            "name": layer.name,
            "type": type(layer).__name__,
            "output_shape": out_shape,
            "parameters": layer.count_params(),
            "macs": int(macs),
        })
    return rows


def count_macs(model: keras.Model) -> int:
    """Total multiply-accumulates for one example (see ``layer_macs`` for the rules).

    >>> count_macs(create_model("single_fc"))  # 98*40 inputs x 12 labels
    47040
    """
    return sum(row["macs"] for row in layer_macs(model))


def model_summary_table(
    input_shape: tuple[int, int] = DEFAULT_INPUT_SHAPE,
    label_count: int = DEFAULT_LABEL_COUNT,
) -> list[dict]:
    """One row per architecture: parameters (all / trainable) and MACs for one example.

    >>> rows = model_summary_table((98, 40), 12)
    >>> rows[1]["architecture"], rows[1]["parameters"], rows[1]["macs"]
    ('conv', 926860, 201456640)
    """
    rows = []
    for name in ARCHITECTURES:
        model = create_model(name, input_shape, label_count)
        rows.append({
            "architecture": name,
            "parameters": model.count_params(),
            "trainable_parameters": sum(math.prod(w.shape) for w in model.trainable_weights),
            "macs": count_macs(model),
            "description": _BUILDERS[name][1],
        })
    return rows


def model_summary_markdown(
    input_shape: tuple[int, int] = DEFAULT_INPUT_SHAPE,
    label_count: int = DEFAULT_LABEL_COUNT,
) -> str:
    """``model_summary_table`` as a Markdown table (docs/models.md holds the default one).

    >>> print(model_summary_markdown().splitlines()[0])
    | architecture | parameters | trainable | MACs | what it is |
    """
    lines = [
        "| architecture | parameters | trainable | MACs | what it is |",
        "|---|---:|---:|---:|---|",
    ]
    for row in model_summary_table(input_shape, label_count):
        lines.append(
            f"| `{row['architecture']}` | {row['parameters']:,} | "
            f"{row['trainable_parameters']:,} | {row['macs']:,} | {row['description']} |"
        )
    return "\n".join(lines) + "\n"
