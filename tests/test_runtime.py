"""Tests for kwlesson.runtime: the one LiteRT / TensorFlow Lite Micro wrapper and its one
quantisation rule."""

from __future__ import annotations

import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

from tone_corpus import WORDS, clip_of  # noqa: E402

from kwlesson import export, quantization, runtime
from kwlesson.features import FeatureSettings, compute_features
from kwlesson.models import create_model

RATE = 16000


def test_micro_model_runs_in_tensorflow_lite_micro(exported, trained):
    pytest.importorskip("tflite_micro", reason="pip install tflite-micro")
    clips = np.stack([clip_of(w, seed=30 + i) for i, w in enumerate(WORDS * 2)])
    feats = compute_features(clips, trained.settings).numpy()
    # LiteRT's built-in kernels share TensorFlow Lite Micro's int8 arithmetic.
    litert = runtime.TFLiteModel(exported / export.MICRO_TFLITE, delegate=False)
    q = litert.quantize_input(feats)
    assert q.dtype == np.int8
    tflm = runtime.run_micro((exported / export.MICRO_TFLITE).read_bytes(), q)
    lite = np.stack([litert.invoke_raw(x[None]).reshape(-1) for x in q])
    assert tflm.dtype == np.int8 and tflm.shape == lite.shape
    assert np.abs(tflm.astype(int) - lite.astype(int)).max() <= 2  # rounding, on near ties



def degenerate_micro_model(settings: FeatureSettings | None = None, labels: int = 4) -> bytes:
    """A micro model whose scores are always 0: its last layer's int8 scale is ~1e-8, which
    TensorFlow Lite Micro cannot requantise to (it aborts; LiteRT runs it)."""
    settings = settings or FeatureSettings(window_stride_ms=40.0, feature_bin_count=10)
    model = create_model("tiny_conv", settings.shape, labels)
    real = quantization.frozen_logits(model)
    feats = np.random.default_rng(0).normal(0, 5, (20, *settings.shape)).astype(np.float32)
    fn = quantization.features_fn(lambda x: 0.0 * real(x), settings)
    return quantization.convert(fn, "micro", lambda: ([f[None]] for f in feats))



def test_a_model_tflm_cannot_run_is_an_error_not_the_end_of_the_process():
    pytest.importorskip("tflite_micro")
    micro = degenerate_micro_model()
    m = runtime.TFLiteModel(micro, delegate=False)
    q = np.zeros((1, *m.input["shape"][1:]), np.int8)
    assert m.invoke_raw(q).shape == (1, 4)  # LiteRT runs it
    with pytest.raises(runtime.MicroRuntimeError, match=r"stopped \(signal 6, SIGABRT\)"):
        runtime.run_micro(micro, q)
    assert runtime.micro_agreement(micro, np.zeros((2, *m.input["shape"][1:]), np.float32)) == 0.0



def test_a_model_xnnpack_refuses_runs_with_litert_builtin_kernels():
    # Every ReLU of the convolution dead: its int8 range is zero, a scale XNNPACK refuses.
    settings = FeatureSettings(window_stride_ms=120.0, feature_bin_count=8)
    model = create_model("tiny_conv", settings.shape, 3)
    conv = model.get_layer("first_conv")
    conv.bias.assign(np.full(conv.bias.shape, -1e3, np.float32))
    fn = quantization.features_fn(quantization.frozen_logits(model), settings)
    data = np.random.default_rng(2).uniform(-100, 100, (10, 1, *settings.shape)).astype(
        np.float32)
    blob = quantization.convert(fn, "micro", lambda: ([x] for x in data), "minmax")
    assert not runtime.runs_in_litert(blob)
    with pytest.warns(UserWarning, match="running it with built-in kernels"):
        m = runtime.TFLiteModel(blob)
    scores = m(data[:, 0])
    # A dead layer gives every clip the same scores, from the logits layer's bias alone.
    assert scores.shape == (10, 3) and np.allclose(scores, scores[0])
    assert runtime.tflite_tensors(blob)["inputs"][0]["dtype"] == "int8"  # the card can list it



def test_native_stderr_is_held_back_unless_the_block_fails(capfd):
    with runtime.native_stderr_kept_back():
        os.write(2, b"fully_quantize: 0, chatter\n")
    assert "chatter" not in capfd.readouterr().err
    with pytest.raises(RuntimeError, match="boom"), runtime.native_stderr_kept_back():
        os.write(2, b"the reason it failed\n")
        raise RuntimeError("boom")
    assert "the reason it failed" in capfd.readouterr().err
    os.write(2, b"after\n")  # stderr works again
    assert "after" in capfd.readouterr().err


def test_one_quantisation_rule_rounds_then_adds_the_zero_point():
    # TFLite's rule, q = round(x / scale) + zero_point, clipped. On a tie it differs from
    # round(x / scale + zero_point), which streaming once used: 0.25 / 0.5 = 0.5 rounds to 0
    # (half to even), then + 1 = 1, where round(1.5) would give 2.
    detail = {"dtype": np.int8, "quantization": (0.5, 1)}
    q = runtime.quantize(np.array([0.25, -0.25, 100.0, -100.0], np.float32), detail)
    assert q.dtype == np.int8 and q.tolist() == [1, 1, 127, -128]
    np.testing.assert_allclose(runtime.dequantize(q, detail), [0.0, 0.0, 63.0, -64.5])
    assert runtime.quantize(np.array([0.3]), {"dtype": np.float32}).dtype == np.float32


def test_streaming_verify_and_the_lessons_feed_a_file_alike(exported):
    from kwlesson import streaming

    clips = np.stack([clip_of(w, seed=s) for s, w in enumerate(("yes", "no", "up", "cat"))])
    for name in (export.FLOAT_TFLITE, export.INT8_TFLITE):
        model = runtime.TFLiteModel(exported / name)
        one_by_one = model(clips)
        # One invoke for the whole batch gives what one invoke per clip gives.
        np.testing.assert_allclose(model.run_batch(clips), one_by_one, atol=1e-6)
        stream_model = streaming.tflite_stream_model(exported / name, exported / "labels.txt",
                                                     softmax=False)
        np.testing.assert_allclose(stream_model.predict(clips), one_by_one, atol=1e-6)
        assert model.latency_ms(runs=5, warmup=1) > 0


def test_a_model_without_a_batch_axis_runs_one_clip_at_a_time(tmp_path):
    # An audio model whose input is [samples] (no batch axis), as some apps' models are.
    spec = tf.TensorSpec([400], tf.float32)
    fn = tf.function(lambda x: tf.nn.softmax(tf.stack([tf.reduce_mean(x), tf.reduce_max(x)])),
                     input_signature=[spec]).get_concrete_function()
    model = runtime.TFLiteModel(quantization.convert(fn, "float"))
    assert not model.batched and model.one_shape == (400,) and model.num_labels == 2
    x = np.random.default_rng(0).uniform(-1, 1, (3, 400)).astype(np.float32)
    out = model.run_batch(x)
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out[1], model(x[1]), atol=1e-6)


def test_litert_says_nothing_on_stderr_when_it_creates_its_delegate(exported):
    # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." once per process
    # from C++; a lesson showed it as a red stray line. A fresh process, so it is the first.
    import subprocess
    import sys

    code = ("from kwlesson.runtime import litert_interpreter; import sys; "
            f"litert_interpreter({str(exported / export.FLOAT_TFLITE)!r}); "
            "from ai_edge_litert.interpreter import Interpreter; "
            f"Interpreter(model_path={str(exported / export.FLOAT_TFLITE)!r}).allocate_tensors()")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert run.returncode == 0, run.stderr
    assert "XNNPACK" not in run.stderr, run.stderr
