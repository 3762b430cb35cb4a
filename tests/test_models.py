"""Tests for kwlesson.models: reference parameter counts, forward passes, MAC counting, seeding."""

from pathlib import Path

import keras
import numpy as np
import pytest

from kwlesson import models
from kwlesson.models import ARCHITECTURES, SVDF, count_macs, create_model, layer_macs

# Parameter counts for 98x40 inputs and 12 labels, from the reference's formulas:
#   single_fc            3920*12+12                                              =  47,052
#   conv                 (20*8*64+64) + (10*4*64*64+64) + (49*20*64*12+12)       = 926,860
#   low_latency_conv     (98*8*186+186) + (33*186*128+128) + (128*128+128) + (128*12+12)
#                                                                                = 949,862
#   low_latency_svdf     40*2560 + 2560*98 + 1280 + (1280*256+256) + (256*256+256) + (256*12+12)
#                                                                                = 751,372
#   tiny_conv            (10*8*8+8) + (49*20*8*12+12)                            =  94,740
#   tiny_embedding_conv  (10*8*8+8) + (10*8*8*8+8) + (7*3*8*12+12)               =   7,804
#   ds_cnn  (10*4*64+64) + 4*((9*64+64) + (64*64+64)) + (64*12+12) + 9 batch norms * 4*64
#                                                                                =  24,908
# (ds_cnn: 23,756 trainable, the count the MLPerf Tiny reference reports.)
PARAMS_98x40 = {
    "single_fc": 47_052,
    "conv": 926_860,
    "low_latency_conv": 949_862,
    "low_latency_svdf": 751_372,
    "tiny_conv": 94_740,
    "tiny_embedding_conv": 7_804,
    "ds_cnn": 24_908,
    "tc_resnet": 145_164,
}

# The same formulas for the low-latency input of 49 frames x 10 bins.
PARAMS_49x10 = {
    "single_fc": 490 * 12 + 12,
    "conv": (20 * 8 * 64 + 64) + (10 * 4 * 64 * 64 + 64) + (25 * 5 * 64 * 12 + 12),
    "low_latency_conv": (49 * 8 * 186 + 186) + (3 * 186 * 128 + 128) + (128 * 128 + 128)
    + (128 * 12 + 12),
    "low_latency_svdf": 10 * 2560 + 2560 * 49 + 1280 + (1280 * 256 + 256) + (256 * 256 + 256)
    + (256 * 12 + 12),
    "tiny_conv": (10 * 8 * 8 + 8) + (25 * 5 * 8 * 12 + 12),
    "tiny_embedding_conv": (10 * 8 * 8 + 8) + (10 * 8 * 8 * 8 + 8) + (4 * 1 * 8 * 12 + 12),
    "ds_cnn": 24_908,  # global pooling: independent of the input size
    "tc_resnet": 145_164 - 3 * 30 * 24,  # the same, but its first 3x1 conv sees 10 bins, not 40
}


def test_registry_lists_every_architecture():
    assert tuple(PARAMS_98x40) == ARCHITECTURES


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_reference_parameter_counts_and_forward_pass(name):
    model = create_model(name, input_shape=(98, 40), label_count=12)
    assert model.count_params() == PARAMS_98x40[name]
    assert model.input_shape == (None, 98, 40)
    assert model.output_shape == (None, 12)
    x = np.random.default_rng(0).normal(size=(2, 98, 40)).astype("float32")
    y = np.asarray(model(x, training=False))
    assert y.shape == (2, 12)
    assert np.all(np.isfinite(y))


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_low_latency_input_shape(name):
    model = create_model(name, input_shape=(49, 10), label_count=4)
    # Only the label count changed from 12 to 4: remove 8 final units' weights and biases.
    fc_inputs = model.get_layer("logits").kernel.shape[0]
    expected = PARAMS_49x10[name] - 8 * (fc_inputs + 1)
    assert model.count_params() == expected
    y = model(np.zeros((2, 49, 10), "float32"))
    assert tuple(y.shape) == (2, 4)


def test_shape_a_model_cannot_take_raises_clearly():
    with pytest.raises(ValueError, match=r"low_latency_conv needs at least 8 feature bins"):
        create_model("low_latency_conv", input_shape=(49, 4))
    with pytest.raises(ValueError, match=r"input_shape must be"):
        create_model("conv", input_shape=(98,))
    with pytest.raises(ValueError, match=r"positive"):
        create_model("conv", input_shape=(0, 40))
    with pytest.raises(ValueError, match=r"label_count"):
        create_model("conv", label_count=0)


def test_unknown_architecture_lists_valid_names():
    with pytest.raises(ValueError) as err:
        create_model("lstm")
    message = str(err.value)
    assert "'lstm'" in message
    assert all(name in message for name in ARCHITECTURES)


def test_options_are_checked_and_used():
    with pytest.raises(ValueError, match=r"conv does not take option\(s\) rank; it takes: no"):
        create_model("conv", rank=3)
    with pytest.raises(ValueError, match=r"num_units"):
        create_model("low_latency_svdf", units=3)
    small = create_model("low_latency_svdf", input_shape=(10, 4), label_count=3, rank=1,
                         num_units=8)
    assert small.get_layer("svdf").weights_frequency.shape == (4, 8)
    assert small.get_layer("svdf").weights_time.shape == (8, 10)
    narrow = create_model("ds_cnn", filters=16, blocks=2)
    assert narrow.get_layer("pw2").filters == 16
    assert "dw3" not in [layer.name for layer in narrow.layers]


def test_outputs_are_logits_and_channel_added_by_reshape():
    for name in ARCHITECTURES:
        model = create_model(name)
        assert model.get_layer("logits").activation is keras.activations.linear, name
        kinds = {type(layer).__name__ for layer in model.layers}
        # No slicing ops (x[..., None] would appear as a GetItem / ExpandDims operation).
        assert not any("GetItem" in k or "ExpandDims" in k or "Lambda" in k for k in kinds), name
        if name not in ("single_fc", "low_latency_svdf"):
            assert isinstance(model.layers[1], keras.layers.Reshape), name


def test_dropout_rates_follow_the_references():
    conv = create_model("conv")
    assert [lay.rate for lay in conv.layers if isinstance(lay, keras.layers.Dropout)] == [0.5, 0.5]
    svdf = create_model("low_latency_svdf")
    assert len([lay for lay in svdf.layers if isinstance(lay, keras.layers.Dropout)]) == 3
    ds = create_model("ds_cnn")
    assert [lay.rate for lay in ds.layers if isinstance(lay, keras.layers.Dropout)] == [0.2, 0.4]
    none = create_model("tiny_conv", dropout_rate=0.0)
    assert not any(isinstance(lay, keras.layers.Dropout) for lay in none.layers)
    # Dropout acts in training only.
    keras.utils.set_random_seed(0)
    tiny = create_model("tiny_embedding_conv", dropout_rate=0.5)
    x = np.random.default_rng(1).normal(size=(2, 98, 40)).astype("float32")
    np.testing.assert_array_equal(np.asarray(tiny(x)), np.asarray(tiny(x)))
    assert not np.allclose(np.asarray(tiny(x, training=True)), np.asarray(tiny(x)))


def test_models_are_deterministic_given_a_seed():
    def weights(seed, name):
        keras.utils.set_random_seed(seed)
        return [np.asarray(w) for w in create_model(name).weights]

    for name in ("tiny_conv", "low_latency_svdf", "ds_cnn"):
        first, again, other = weights(3, name), weights(3, name), weights(4, name)
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)
        assert any(not np.array_equal(a, c) for a, c in zip(first, other) if a.std() > 0), name
    # Layers do not share one draw (a shared unseeded initializer would make these equal).
    keras.utils.set_random_seed(3)
    svdf = create_model("low_latency_svdf").get_layer("svdf")
    assert not np.allclose(np.asarray(svdf.weights_time)[:, :40],
                           np.asarray(svdf.weights_frequency).T[:, :40])


def test_reference_initialisation_scale():
    keras.utils.set_random_seed(0)
    conv = create_model("conv")
    kernel = np.asarray(conv.get_layer("first_conv").kernel)
    assert 0.007 < kernel.std() < 0.01  # truncated normal, stddev 0.01, cut at 2 sigma
    assert np.abs(kernel).max() <= 0.02 + 1e-7
    assert not np.asarray(conv.get_layer("first_conv").bias).any()


def reference_svdf(x, weights_frequency, weights_time, bias, rank, num_units):
    """The reference's training graph, step by step in NumPy."""
    batch, frames, bins = x.shape
    flat = x.reshape(batch, frames * bins)[:, :, None]  # fingerprint, expanded
    # conv1d with stride = bins and VALID padding: one output per frame.
    act = np.stack([flat[:, t * bins:(t + 1) * bins, 0] @ weights_frequency
                    for t in range(frames)], axis=1)  # [batch, frames, filters]
    act = act.transpose(2, 0, 1)  # [filters, batch, frames]
    out = act @ weights_time[:, :, None]  # [filters, batch, 1]
    out = out.reshape(num_units, rank, -1).sum(axis=1)  # [units, batch]
    return out.T + bias


def test_svdf_matches_the_reference_computation():
    rng = np.random.default_rng(0)
    layer = SVDF(num_units=3, rank=2)
    x = rng.normal(size=(2, 5, 4)).astype("float32")
    layer.build(x.shape)
    layer.weights_frequency.assign(rng.normal(size=(4, 6)).astype("float32"))
    layer.weights_time.assign(rng.normal(size=(6, 5)).astype("float32"))
    layer.bias.assign(rng.normal(size=(3,)).astype("float32"))
    expected = reference_svdf(x, np.asarray(layer.weights_frequency),
                              np.asarray(layer.weights_time), np.asarray(layer.bias), 2, 3)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-5, atol=1e-5)


def test_svdf_model_saves_and_loads(tmp_path):
    model = create_model("low_latency_svdf", input_shape=(6, 4), label_count=3, num_units=5)
    x = np.random.default_rng(2).normal(size=(2, 6, 4)).astype("float32")
    path = tmp_path / "svdf.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-6)


def test_mac_counting_on_a_hand_computed_model():
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(2, (3, 3), padding="same")(inputs)  # 4*4*2 outputs x 3*3*1 = 288
    x = keras.layers.BatchNormalization()(x)  # folded: 0
    x = keras.layers.DepthwiseConv2D((3, 3), strides=2, padding="valid")(x)  # 1*1*2 x 9 = 18
    x = keras.layers.Conv2D(4, (1, 1))(x)  # 1*1*4 x 1*1*2 = 8
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(3)(x)  # 4 x 3 = 12
    model = keras.Model(inputs, x)
    rows = layer_macs(model)
    assert [r["macs"] for r in rows] == [288, 0, 18, 8, 0, 12]
    assert count_macs(model) == 326
    assert rows[0]["parameters"] == 3 * 3 * 2 + 2

    svdf_in = keras.Input((3, 2))  # 3 frames x 2 bins, 2 units of rank 1
    svdf = keras.Model(svdf_in, SVDF(num_units=2, rank=1)(svdf_in))
    assert count_macs(svdf) == 3 * 2 * 2 + 3 * 2  # feature filters + time filters = 18


def test_mac_counting_refuses_unknown_weighted_layers():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Embedding(10, 2)(inputs))
    with pytest.raises(NotImplementedError, match="Embedding"):
        count_macs(model)


def test_summary_table_and_docs_agree():
    rows = {r["architecture"]: r for r in models.model_summary_table((98, 40), 12)}
    assert {name: r["parameters"] for name, r in rows.items()} == PARAMS_98x40
    # conv: 98*40*64*(20*8) + 49*20*64*(10*4*64) + 62720*12
    assert rows["conv"]["macs"] == 40_140_800 + 160_563_200 + 752_640
    # tiny_conv: 49*20*8*(10*8) + 7840*12
    assert rows["tiny_conv"]["macs"] == 627_200 + 94_080
    assert rows["ds_cnn"]["trainable_parameters"] == 23_756
    doc = Path(__file__).resolve().parent.parent / "docs" / "models.md"
    text = doc.read_text()
    for shape in ((98, 40), (49, 10)):
        assert models.model_summary_markdown(shape, 12) in text, (
            f"docs/models.md is stale for {shape}: regenerate it with "
            "kwlesson.models.model_summary_markdown()"
        )


def test_fused_batch_norm_trains_and_infers_like_keras_batch_norm():
    import tensorflow as tf

    from kwlesson.models import FusedBatchNormalization

    x = tf.constant(np.random.default_rng(3).normal(1.0, 3.0, (8, 7, 5, 6)), tf.float32)
    plain, fused = keras.layers.BatchNormalization(momentum=0.9), FusedBatchNormalization(
        momentum=0.9)
    for layer in (plain, fused):
        layer.build(x.shape)
        layer.gamma.assign(np.linspace(0.5, 2.0, 6))
        layer.beta.assign(np.linspace(-2.0, 2.0, 6))

    def run(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y**3)
        return [y, *tape.gradient(loss, [x, layer.gamma, layer.beta])]

    for a, b in zip(run(plain), run(fused)):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-3)
    for a, b in zip(plain.non_trainable_weights, fused.non_trainable_weights):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(fused.moving_variance.numpy(), 1.0)  # the update happened
    np.testing.assert_allclose(fused(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-5)
    assert isinstance(create_model("ds_cnn").get_layer("dw1_bn"), FusedBatchNormalization)
