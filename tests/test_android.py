"""Tests for kwlesson.android: the TF Speech app's two files, fed as the app feeds them, on the
session's export folder (conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

from kwlesson import android, export, verify  # noqa: E402
from kwlesson.features import FeatureSettings, compute_features  # noqa: E402
from kwlesson.models import create_model  # noqa: E402
from kwlesson.quantization import convert, frozen_logits  # noqa: E402
from kwlesson.runtime import litert_interpreter  # noqa: E402
from kwlesson.training import load_data  # noqa: E402


def test_the_app_files_keep_its_contract_and_agree_with_keras(exported, card, trained):
    folder = exported / android.APP_DIR
    tflite = (folder / android.APP_MODEL).read_bytes()
    assert (folder / android.APP_LABELS).read_text().splitlines() == trained.labels
    interp = litert_interpreter(tflite)
    audio_in, rate_in = interp.get_input_details()
    assert (list(audio_in["shape"]), audio_in["dtype"]) == ([16000, 1], np.float32)
    assert (list(rate_in["shape"]), rate_in["dtype"]) == ([1], np.int32)
    (out,) = interp.get_output_details()
    assert list(out["shape"]) == [1, len(trained.labels)]
    assert card["android_app"]["written"] is True
    assert card["android_app"]["tensors"]["inputs"][0]["shape"] == [16000, 1]

    clips, _ = load_data(trained.config).arrays("validation")
    assert len(clips) >= 40
    app = android.run_like_the_app(tflite, clips)
    keras = trained.model(compute_features(clips, trained.settings), training=False).numpy()
    agreement = float(np.mean(app.argmax(-1) == keras.argmax(-1)))
    assert agreement >= 0.995, agreement
    np.testing.assert_allclose(app.sum(-1), 1.0, atol=1e-4)  # probabilities, as the app shows
    # At another rate than the model's nothing is recognised (the seed's graph used the rate).
    assert not android.run_like_the_app(tflite, clips[:2], rate=8000).any()


def test_the_int8_app_file_keeps_the_contract_and_keeps_the_accuracy(exported, card, trained):
    folder = exported / android.APP_DIR / android.APP_INT8_DIR
    entry = card["android_app"]["int8"]
    assert entry["written"] is True and entry["folder"] == "android/int8", entry
    assert sorted(card["files"][android.APP_DIR]["files"]) == sorted(
        [android.APP_MODEL, android.APP_LABELS, f"int8/{android.APP_MODEL}",
         f"int8/{android.APP_LABELS}"])
    tflite = (folder / android.APP_MODEL).read_bytes()
    assert (folder / android.APP_LABELS).read_text().splitlines() == trained.labels
    assert android.app_file_problem(tflite, trained.settings, len(trained.labels)) is None
    interp = litert_interpreter(tflite, delegate=False)
    audio_in, rate_in = interp.get_input_details()  # the order the app feeds, after quantising
    assert (list(audio_in["shape"]), audio_in["dtype"]) == ([16000, 1], np.float32)
    assert (list(rate_in["shape"]), rate_in["dtype"]) == ([1], np.int32)
    assert interp.get_output_details()[0]["dtype"] == np.float32
    # The network is int8 (its convolution and softmax), the front end float (its log).
    tensors = interp.get_tensor_details()
    kinds = {op["op_name"]: tensors[op["outputs"][0]]["dtype"]
             for op in interp._get_ops_details()}
    assert kinds["CONV_2D"] == kinds["SOFTMAX"] == np.int8 and kinds["LOG"] == np.float32, kinds

    clips, truth = load_data(trained.config).arrays("validation")
    app = android.run_like_the_app(tflite, clips).argmax(-1)
    keras = trained.model(compute_features(clips, trained.settings), training=False).numpy()
    drop = float(np.mean(keras.argmax(-1) == truth) - np.mean(app == truth))
    # verify's int8 line: at most 1 point below float.
    assert drop <= verify.MAX_INT8_DROP + 1e-9, (drop, float(np.mean(app == keras.argmax(-1))))
    assert not android.run_like_the_app(tflite, clips[:2], rate=8000).any()


def test_the_contract_check_names_what_a_file_breaks(trained):
    settings, labels = trained.settings, len(trained.labels)
    raw = convert(android.app_function(frozen_logits(trained.model), settings), "float")
    assert "where the app feeds" in android.app_file_problem(raw, settings, labels)  # rate first
    fixed = android.audio_input_first(raw)
    assert android.app_file_problem(fixed, settings, labels) is None
    assert "output 0" in android.app_file_problem(fixed, settings, labels + 1)


def test_freeze_goes_on_when_the_int8_app_file_cannot_keep_the_contract(trained, tmp_path,
                                                                       monkeypatch):
    import io
    import json

    def broken(*args, **kwargs):
        raise RuntimeError("the int8 app file does not keep the app's contract: inputs [...]")

    monkeypatch.setattr(android, "app_int8_model", broken)
    out = tmp_path / "kws"
    export.freeze(trained.checkpoint_path, out, calibration_clips=20, stream=io.StringIO())
    card = json.loads((out / export.MODEL_CARD).read_text())
    assert card["android_app"]["written"] is True
    assert card["android_app"]["int8"] == {
        "written": False,
        "why": "the int8 app file does not keep the app's contract: inputs [...]"}
    assert (out / android.APP_DIR / android.APP_MODEL).is_file()
    assert not (out / android.APP_DIR / android.APP_INT8_DIR).exists()
    assert card["files"][android.APP_DIR]["files"] == sorted([android.APP_LABELS,
                                                              android.APP_MODEL])


def test_the_audio_is_input_0_whatever_order_the_converter_picks():
    settings = FeatureSettings(window_stride_ms=40.0, feature_bin_count=10)
    model = create_model("tiny_conv", settings.shape, 4)
    raw = convert(android.app_function(frozen_logits(model), settings), "float")
    # TF 2.21's converter puts the int32 rate first; the app resizes input 0 to [16000, 1].
    for tflite in (android.audio_input_first(raw), android.audio_input_first(
            android.audio_input_first(raw))):
        assert [d["dtype"] for d in litert_interpreter(tflite).get_input_details()] == [
            np.float32, np.int32]


@pytest.mark.parametrize("change, constant", [({"sample_rate": 8000}, "SAMPLE_RATE"),
                                              ({"clip_duration_ms": 750}, "SAMPLE_DURATION_MS")])
def test_a_model_the_app_cannot_feed_is_a_clear_error_naming_the_constant(change, constant):
    settings = FeatureSettings(**change)
    assert constant in android.app_contract_problem(settings)
    model = create_model("tiny_conv", settings.shape, 4)
    with pytest.raises(ValueError, match=f"TF Speech app cannot feed this model: .*{constant}"):
        android.app_model(model, settings)
    assert android.app_contract_problem(FeatureSettings()) is None


def test_freeze_lists_the_app_folder_in_the_card(card):
    assert export.FLOAT_TFLITE in card["files"] and android.APP_DIR in card["files"]
    assert card["files"][android.APP_DIR]["bytes"] > 0
    assert card["android_app"]["recognize_commands"]["detection_threshold"] == 0.5


def test_the_app_constants_carry_the_settings_tuned_in_lesson_08():
    import re

    java = android.speech_activity_constants(FeatureSettings(), detection_threshold=0.7,
                                             average_window_duration_ms=500)
    values = dict(re.findall(r"static final \w+ (\w+) = ([^;]+);", java))
    assert values["SAMPLE_RATE"] == "16000" and values["SAMPLE_DURATION_MS"] == "1000"
    assert values["DETECTION_THRESHOLD"] == "0.70f"
    assert values["AVERAGE_WINDOW_DURATION_MS"] == "500"
    # Not given: the app's own (SpeechActivity.java).
    assert values["SUPPRESSION_MS"] == "1500" and values["MINIMUM_COUNT"] == "3"
    assert values["MINIMUM_TIME_BETWEEN_SAMPLES_MS"] == "30"
    assert values["MODEL_FILENAME"] == f'"file:///android_asset/{android.APP_MODEL}"'
    assert values["LABEL_FILENAME"] == f'"file:///android_asset/{android.APP_LABELS}"'
    with pytest.raises(ValueError, match="unknown RecognizeCommands settings"):
        android.speech_activity_constants(threshold=0.5)
