"""Tests for kwlesson.quantization: the converted functions and the int8 machinery (untrained
models, or the session's trained run in conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

from tone_corpus import tone  # noqa: E402

from kwlesson import export, quantization, runtime
from kwlesson.features import FeatureSettings, compute_features
from kwlesson.models import ARCHITECTURES, create_model

RATE = 16000


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_converts(arch):
    # Half the frames and bins of the default: the same layers and ops, a quicker conversion.
    settings = FeatureSettings(window_stride_ms=20.0, feature_bin_count=20)
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((3, RATE))).astype(np.float32)
    feats = compute_features(audio, settings).numpy()
    model = create_model(arch, settings.shape, 12)
    logits = quantization.frozen_logits(model)
    fl = runtime.TFLiteModel(quantization.convert(quantization.audio_fn(logits, settings), "float"))
    expected = tf.nn.softmax(model(feats, training=False)).numpy()
    np.testing.assert_allclose(fl(audio), expected, atol=1e-4)
    micro = quantization.convert(quantization.features_fn(logits, settings), "micro",
                           lambda: ([f[None]] for f in feats))
    m = runtime.TFLiteModel(micro)
    assert m.input["dtype"] == np.int8 and m.output["dtype"] == np.int8
    assert m(feats).shape == (3, 12)
    try:
        raw = runtime.run_micro(micro, m.quantize_input(feats[:1]))
    except ImportError:
        return
    assert raw.shape == (1, 12)



def test_averaged_ranges_ignore_a_rare_outlier():
    # Features usually within +-1, but one calibration clip in 50 reaches 100.
    settings = FeatureSettings(window_stride_ms=120.0, feature_bin_count=8)
    model = create_model("tiny_conv", settings.shape, 3)
    fn = quantization.features_fn(quantization.frozen_logits(model), settings)
    rng = np.random.default_rng(0)
    data = rng.uniform(-1, 1, (50, 1, *settings.shape)).astype(np.float32)
    data[7] *= 100.0

    def rep():
        return ([x] for x in data)

    def scales(calibration):
        interp = runtime.litert_interpreter(quantization.convert(fn, "micro", rep, calibration))
        found = {d["name"]: d["quantization"][0] for d in interp.get_tensor_details()}
        relu = [v for k, v in found.items() if "first_relu" in k]
        return interp.get_input_details()[0]["quantization"][0], relu[0]

    (in_minmax, relu_minmax), (in_average, relu_average) = scales("minmax"), scales("average")
    # The features keep their full range (the outlier's 100 included) ...
    assert in_average == pytest.approx(in_minmax) == pytest.approx(
        (data.max() - data.min()) / 255, rel=0.02)
    # ... the convolution's output is ranged on the usual clips, ~100 times finer.
    assert relu_average < relu_minmax / 20
    with pytest.raises(ValueError, match="calibration must be one of"):
        quantization.convert(fn, "micro", rep, "percentile")



def wide_bin0(settings: FeatureSettings, clips: int = 40, seed: int = 0) -> np.ndarray:
    """Features shaped like raw MFCCs: bin 0 spans -120..25, the others +-10."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-10, 10, (clips, *settings.shape)).astype(np.float32)
    x[..., 0] = rng.uniform(-120, 25, (clips, settings.shape[0]))
    return x



@pytest.mark.parametrize("arch", ["tiny_conv", "conv", "low_latency_conv",
                                  "tiny_embedding_conv", "ds_cnn", "single_fc"])
def test_int8_body_rescales_coefficient_0_and_keeps_the_function(arch):
    settings = FeatureSettings(window_stride_ms=120.0, feature_bin_count=8)
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(1)
    model = create_model(arch, settings.shape, 4)
    # Untrained weights are ~0.01: make the first layer matter (single_fc: a Dense on the
    # flattened features, rewritten with a second Dense over coefficient 0).
    rng = np.random.default_rng(2)
    conv = model.get_layer({"ds_cnn": "conv", "single_fc": "logits"}.get(arch, "first_conv"))
    conv.kernel.assign(rng.normal(0, 0.3, conv.kernel.shape))
    if arch == "ds_cnn":  # a batch norm with statistics of its own, folded by int8_body
        norm = model.get_layer("conv_bn")
        for var, value in ((norm.gamma, rng.uniform(0.5, 2, norm.gamma.shape)),
                           (norm.beta, rng.normal(0, 1, norm.beta.shape)),
                           (norm.moving_mean, rng.normal(0, 2, norm.moving_mean.shape)),
                           (norm.moving_variance, rng.uniform(0.5, 4, norm.moving_variance.shape))):
            var.assign(value.astype(np.float32))
    feats = wide_bin0(settings)
    body = quantization.int8_body(model, feats)
    # Bin 0 is brought within the others' range: 120 / 10.
    assert body.rescaled_bin == 0 and body.divisor == pytest.approx(12.0, rel=0.05)
    rescaled = body.prepare(tf.constant(feats)).numpy()
    assert np.abs(rescaled).max() <= 10.0 + 1e-4
    np.testing.assert_allclose(rescaled[..., 1:], feats[..., 1:])
    got = body.logits(tf.constant(rescaled)).numpy()
    want = model(feats, training=False).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())



def test_int8_body_leaves_other_models_and_even_ranges_alone():
    settings = FeatureSettings(window_stride_ms=120.0, feature_bin_count=8)
    feats = wide_bin0(settings)
    body = quantization.int8_body(create_model("low_latency_svdf", settings.shape, 4), feats)
    assert body.rescaled_bin is None and body.prepare is None  # an SVDF first: not rewritten
    even = feats.copy()
    even[..., 0] /= 8.0  # -15..3: within 2x of the others
    for arch in ("tiny_conv", "single_fc"):
        body = quantization.int8_body(create_model(arch, settings.shape, 4), even)
        assert body.rescaled_bin is None and body.prepare is None, arch



def test_int8_audio_file_gives_coefficient_0_a_scale_of_its_own(tmp_path):
    """The mechanism, in the converted file: the quantised features get a step ~divisor times
    finer than one scale over all bins, and the two partial sums keep their full ranges."""
    settings = FeatureSettings()
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(3)
    model = create_model("tiny_conv", settings.shape, 3)
    rng = np.random.default_rng(4)
    audio = np.stack([tone(f, rng) for f in rng.uniform(300, 2000, 24)])
    audio[:4] = 0.0  # digital silence: the floor of coefficient 0
    feats = compute_features(audio, settings).numpy()
    body = quantization.int8_body(model, feats)
    assert body.rescaled_bin == 0 and body.divisor > 4

    def rep():
        return ([clip[None]] for clip in audio)

    report: dict = {}
    blob = quantization.convert(quantization.audio_fn(body.logits, settings, prepare=body.prepare),
                          "int8", rep, "average", report=report)
    interp = runtime.litert_interpreter(blob, delegate=False)
    tensors = interp.get_tensor_details()
    ops = interp._get_ops_details()
    quantize = [op for op in ops if op["op_name"] == "QUANTIZE"]
    assert len(quantize) == 1  # float front end -> int8 network, once
    step = tensors[quantize[0]["outputs"][0]]["quantization"][0]
    one_scale = (feats.max() - feats.min()) / 255
    assert step < one_scale / (body.divisor / 2)
    # The ADD joins the two branches of the first layer; its operands are partial sums and
    # keep the converter's full range (never averaged).
    adds = [op for op in ops if op["op_name"] == "ADD"
            and tensors[op["outputs"][0]]["dtype"] == np.int8]  # the front end's stay float
    assert len(adds) == 1
    for i in adds[0]["inputs"]:
        assert tensors[i]["name"] not in report["per_tensor"]
    assert report["check_clips"] is None  # no check clips given: nothing to measure
    # The micro model runs the same rewritten network on features whose bin 0 the caller
    # divides (micro_input); TensorFlow Lite Micro runs its STRIDED_SLICE, PAD and ADD.
    fn = quantization.features_fn(body.logits, settings)
    prepared = body.prepared(feats)
    micro = quantization.convert(fn, "micro", lambda: ([x[None]] for x in prepared), "average")
    card = {"micro_input": {"bin0_divisor": body.divisor}}
    np.testing.assert_allclose(export.micro_input(feats, card), prepared, rtol=1e-6)
    assert np.array_equal(export.micro_input(feats, {}), feats)
    lite = runtime.TFLiteModel(micro, delegate=False)
    q = lite.quantize_input(export.micro_input(feats, card))
    want = np.stack([lite.invoke_raw(x[None]).reshape(-1) for x in q])
    pytest.importorskip("tflite_micro")
    assert np.array_equal(runtime.run_micro(micro, q), want)



@pytest.mark.parametrize("arch", ["low_latency_conv", "low_latency_svdf"])
def test_folded_logits_multiply_linear_layers_into_one(arch):
    settings = FeatureSettings(window_stride_ms=120.0, feature_bin_count=8)
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(4)
    model = create_model(arch, settings.shape, 4)
    logits, folded = quantization.folded_logits(model)
    assert folded == ["first_fc", "second_fc", "logits"]
    feats = wide_bin0(settings)
    want = model(feats, training=False).numpy()
    np.testing.assert_allclose(logits(tf.constant(feats)).numpy(), want, rtol=1e-4,
                               atol=1e-4 * np.abs(want).max())
    assert quantization.folded_logits(create_model("tiny_conv", settings.shape, 4))[1] == []



def test_int8_svdf_body_sums_with_a_product_both_runtimes_compute_alike():
    """TensorFlow Lite Micro and LiteRT round an int8 SUM differently; the rewritten SVDF has
    none, and its micro model gives the same int8 scores in both."""
    settings = FeatureSettings(window_stride_ms=40.0, feature_bin_count=10)
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(5)
    model = create_model("low_latency_svdf", settings.shape, 4)
    rng = np.random.default_rng(6)
    svdf = model.get_layer("svdf")
    svdf.weights_time.assign(rng.normal(0, 0.3, svdf.weights_time.shape).astype(np.float32))
    audio = (0.1 * rng.standard_normal((40, RATE))).astype(np.float32)
    feats = compute_features(audio, settings).numpy()
    body = quantization.int8_body(model, feats)
    assert body.folded == ("first_fc", "second_fc", "logits")
    want = model(feats, training=False).numpy()
    np.testing.assert_allclose(body.logits(tf.constant(feats)).numpy(), want, rtol=1e-4,
                               atol=1e-4 * np.abs(want).max())
    micro = quantization.convert(quantization.features_fn(body.logits, settings), "micro",
                           lambda: ([f[None]] for f in feats))
    builtin = runtime.TFLiteModel(micro, delegate=False)
    ops = {op["op_name"] for op in builtin.interpreter._get_ops_details()}
    assert "SUM" not in ops and "FULLY_CONNECTED" in ops
    q = builtin.quantize_input(feats)
    try:
        raw = runtime.run_micro(micro, q)
    except ImportError:
        pytest.skip("tflite-micro is not installed")
    lite = np.stack([builtin.invoke_raw(x[None]).reshape(-1) for x in q])
    assert np.abs(raw.astype(int) - lite.astype(int)).max() <= 1



def test_per_tensor_ranges_need_check_clips_and_report_their_choice():
    settings = FeatureSettings(window_stride_ms=120.0, feature_bin_count=8)
    model = create_model("tiny_conv", settings.shape, 3)
    fn = quantization.features_fn(quantization.frozen_logits(model), settings)
    data = wide_bin0(settings, 30, seed=5)[:, None]

    def rep():
        return ([x] for x in data)

    with pytest.raises(ValueError, match="per_tensor calibration needs check clips"):
        quantization.convert(fn, "micro", rep, "per_tensor")
    check = wide_bin0(settings, 30, seed=6)
    probs = tf.nn.softmax(model(check, training=False)).numpy()
    report: dict = {}
    blob = quantization.convert(fn, "micro", rep, "per_tensor", (check, probs), report)
    assert report["ranges"] == "per_tensor" and report["check_clips"] == 30
    assert set(report["per_tensor"].values()) <= {"average", "minmax"}
    # The model it returns is the one it measured.
    got = runtime.TFLiteModel(blob)(check)
    assert np.mean(np.abs(got - probs).sum(-1)) == pytest.approx(
        report["check_probability_distance"], abs=1e-6)
    assert report["check_probability_distance"] <= min(
        u["probability_distance"] for u in report["uniform_rules_on_check"].values())



def test_averaged_ranges_fall_back_to_min_max_when_litert_refuses_them(monkeypatch):
    settings = FeatureSettings(window_stride_ms=120.0, feature_bin_count=8)
    logits = quantization.frozen_logits(create_model("tiny_conv", settings.shape, 3))
    fn = quantization.features_fn(logits, settings)
    data = np.random.default_rng(1).uniform(-1, 1, (20, 1, *settings.shape)).astype(np.float32)

    def rep():
        return ([x] for x in data)

    minmax = quantization.convert(fn, "micro", rep, "minmax")
    monkeypatch.setattr(quantization, "runs_in_litert", lambda model: False)
    with pytest.warns(UserWarning, match="using min/max ranges"):
        assert quantization.convert(fn, "micro", rep, "average") == minmax
