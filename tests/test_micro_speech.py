"""The micro front end's model for TensorFlow Lite Micro's micro_speech example: a 'micro' run
exports files that replace the example's model, and the model gives Keras's answers when fed
what the example feeds it (its own integer front end, quantised by its integer formula)."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
import tensorflow as tf

from kwlesson import export, micro_speech
from kwlesson.features import FeatureSettings, compute_features
from kwlesson.quantization import MICRO_SPEECH_INPUT_SCALE
from kwlesson.recipes import recipe
from kwlesson.runtime import TFLiteModel, quantize


@pytest.fixture(scope="module")
def micro_run(make_config, tmp_path_factory):
    """A yes/no tiny_conv on the 'micro' front end, the micro_speech recipe's shape, frozen."""
    from kwlesson.training import train

    shape = {k: v for k, v in recipe("micro_speech").items()
             if k in ("wanted_words", "model_architecture", "preprocess", "window_size_ms",
                      "window_stride_ms", "feature_bin_count")}
    cfg = make_config(tmp_path_factory.mktemp("micro"), how_many_training_steps="120,40",
                      eval_step_interval=160, save_step_interval=160,
                      validation_percentage=30.0, **shape)
    result = train(cfg, [])
    out = tmp_path_factory.mktemp("micro_export") / "kws"
    export.freeze(result.checkpoint_path, out, calibration_clips=60, stream=io.StringIO())
    return result, out


def test_device_int8_formula_is_the_models_input_quantisation_for_every_value():
    # f: every value the front end's uint16 output can take in practice (0 to about 670).
    f = np.arange(0, 1024)
    x = (f * np.float32(10 / 256)).astype(np.float32)  # what kwlesson trains on
    detail = {"dtype": np.int8, "quantization": (MICRO_SPEECH_INPUT_SCALE, -128)}
    np.testing.assert_array_equal(quantize(x, detail), micro_speech.device_features_int8(f))
    # hand-computed: f = 0 -> -128, f = 333 -> (85248 + 333) // 666 - 128 = 0, 671 -> 127
    assert micro_speech.device_features_int8(np.array([0, 333, 671])).tolist() == [-128, 0, 127]


def test_dropin_problem_names_the_setting_to_change():
    ok = micro_speech.EXAMPLE_FEATURES
    labels = ["_silence_", "_unknown_", "yes", "no"]
    assert micro_speech.dropin_problem(ok, labels) is None
    assert "--preprocess micro" in micro_speech.dropin_problem(FeatureSettings(), labels)
    stride10 = FeatureSettings(preprocess="micro")
    assert "--window_stride_ms 20" in micro_speech.dropin_problem(stride10, labels)
    bins32 = FeatureSettings(preprocess="micro", window_stride_ms=20, feature_bin_count=32)
    assert "--feature_bin_count 40" in micro_speech.dropin_problem(bins32, labels)


def test_a_micro_run_exports_the_example_files_and_no_audio_in_files(micro_run):
    _, out = micro_run
    card = json.loads((out / export.MODEL_CARD).read_text())
    entry = card["micro_speech"]
    assert entry["written"], entry
    assert entry["labels"] == ["silence", "unknown", "yes", "no"]
    assert set(entry["operators"]) <= set(micro_speech.EXAMPLE_OPS)
    # The seed's micro model's class: about 20 KB for 4 labels (the example's is 18,800 bytes).
    assert 10_000 < entry["model_bytes"] < 30_000
    folder = out / micro_speech.DROPIN_DIR
    for name in entry["files"]:
        assert (folder / name).is_file(), name
    # The names the example's sources use for the array, its length and the labels.
    cc = (folder / "tflite-micro/models/micro_speech_quantized_model_data.cc").read_text()
    h = (folder / "tflite-micro/models/micro_speech_quantized_model_data.h").read_text()
    settings_h = (folder / "tflite-micro/micro_model_settings.h").read_text()
    assert "alignas(16) const unsigned char g_micro_speech_quantized_model_data[]" in cc
    assert f"g_micro_speech_quantized_model_data_size = {entry['model_bytes']};" in h
    assert 'kCategoryLabels[kCategoryCount] = {"silence", "unknown", "yes", "no"}' in settings_h
    assert "kFeatureSize = 40;" in settings_h and "kFeatureCount = 49;" in settings_h
    arduino = (folder / "arduino/micro_features_model.cpp").read_text()
    assert "const unsigned char g_model[]" in arduino
    assert f"const int g_model_len = {entry['model_bytes']};" in arduino
    # The C array holds exactly the .tflite's bytes.
    tflite = (folder / "tflite-micro/models/micro_speech_quantized.tflite").read_bytes()
    values = bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})", cc.split("= {", 1)[1]))
    assert values == tflite
    # The front end's op is not LiteRT's: the audio-in files and the app's are not written.
    assert not (out / export.FLOAT_TFLITE).exists() and not (out / export.INT8_TFLITE).exists()
    assert card["android_app"]["written"] is False
    assert card["android_app"]["why"] == export.MICRO_NOT_FOR_THE_APP
    model = TFLiteModel(tflite, delegate=False)
    assert list(model.input["shape"]) == [1, 1960] and model.input["dtype"] == np.int8
    assert model.input["quantization"] == (pytest.approx(MICRO_SPEECH_INPUT_SCALE), -128)
    assert list(model.output["shape"]) == [1, 4] and model.output["dtype"] == np.int8


def test_the_example_fed_as_on_the_device_agrees_with_keras(micro_run):
    pytest.importorskip("tflite_micro", reason="TensorFlow Lite Micro's Python interpreter "
                        "(pip install tflite-micro) is not installed")
    from tensorflow.lite.experimental.microfrontend.python.ops import (
        audio_microfrontend_op as op,
    )

    from kwlesson.runs import load_trained
    from kwlesson.runtime import run_micro
    from kwlesson.training import load_data

    result, out = micro_run
    trained = load_trained(result.checkpoint_path)
    data = load_data(trained.config)
    x, y = (np.concatenate(a) for a in zip(*(data.arrays(s) for s in ("validation", "testing")),
                                           strict=True))
    assert len(x) >= 40
    # On the device: 16-bit samples, the front end's integers, the example's int8 formula.
    q = micro_speech.device_inputs(x)
    pcm = np.clip(np.round(x[:3] * 32768), -32768, 32767).astype(np.int16)
    raw = np.stack([op.audio_microfrontend(tf.constant(c), sample_rate=16000, window_size=30,
                                           window_step=20, num_channels=40).numpy()
                    for c in pcm])  # the op's defaults are the example's settings
    np.testing.assert_array_equal(q[:3], micro_speech.device_features_int8(raw).reshape(3, -1))
    tflite = (out / micro_speech.DROPIN_DIR / "tflite-micro/models"
              / micro_speech.TFLM_MODEL).read_bytes()
    device = run_micro(tflite, q).argmax(-1)
    keras = trained.model.predict(compute_features(x, trained.settings).numpy(),
                                  verbose=0).argmax(-1)
    assert np.mean(device == keras) >= 0.95
    assert np.mean(keras == y) > 0.5  # the model learnt something: agreement means something


def test_streaming_a_micro_model_scores_each_window_as_training_saw_clips(micro_run):
    from kwlesson.runs import load_trained
    from kwlesson.streaming import keras_stream_model, stream_scores

    trained = load_trained(micro_run[0].checkpoint_path)
    sm = keras_stream_model(trained.model, trained.labels, trained.settings)
    # The front end's state runs on from frame to frame: no shared stream frames for it.
    assert sm.features is None
    audio = np.random.default_rng(2).normal(0, 0.05, 3 * 16000).astype(np.float32)
    times, scores = stream_scores(audio, sm, clip_stride_ms=500)
    alone = sm.predict(np.stack([audio[i * 8000:i * 8000 + 16000] for i in range(len(times))]))
    np.testing.assert_allclose(scores, alone, atol=1e-5)


def test_a_micro_run_refuses_per_bin_normalisation_with_the_reason():
    from kwlesson.runs import TrainConfig

    with pytest.raises(ValueError, match="normalize_features does not go with --preprocess micro"):
        TrainConfig(preprocess="micro", normalize_features=True).feature_settings()
    assert TrainConfig(preprocess="micro").feature_settings().preprocess == "micro"
