"""Tests for kwlesson.export (freeze, the model card, the C array) on the session's trained run,
frozen once (conftest.py: ``trained``, ``exported``, ``card``), on tones."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

from tone_corpus import WORDS, clip_of  # noqa: E402

from kwlesson import cli, export, quantization, runtime, verify
from kwlesson.features import FeatureSettings, compute_features
from kwlesson.runs import load_trained

RATE = 16000


# ------------------------------------------------------------------------------- the files


def test_freeze_writes_every_file_and_a_complete_model_card(exported, card, trained):
    for name in (export.SAVED_MODEL_DIR, export.FLOAT_TFLITE, export.INT8_TFLITE,
                 export.MICRO_TFLITE, export.MICRO_SOURCE, export.MICRO_HEADER,
                 export.LABELS_FILE, export.MODEL_CARD):
        assert (exported / name).exists(), name
    assert not list(exported.parent.glob(".kws.tmp*")), "temporary folder left behind"
    labels = trained.labels
    assert (exported / "labels.txt").read_text().splitlines() == labels
    assert card["labels"] == labels
    assert card["sample_rate"] == 16000 and card["clip_samples"] == 16000
    # One source of truth: the settings the run was trained with.
    assert FeatureSettings.from_dict(card["feature_settings"]) == trained.settings
    assert card["model_architecture"] == "tiny_conv" and card["step"] == 200
    assert card["parameters"] == trained.model.count_params()
    n = len(labels)
    files = card["files"]
    for name in (export.FLOAT_TFLITE, export.INT8_TFLITE, export.MICRO_TFLITE):
        assert files[name]["bytes"] == (exported / name).stat().st_size
        for t in files[name]["inputs"] + files[name]["outputs"]:
            assert set(t) >= {"name", "shape", "dtype", "quantization"}
            assert set(t["quantization"]) == {"scale", "zero_point"}
    float_in, float_out = files[export.FLOAT_TFLITE]["inputs"][0], \
        files[export.FLOAT_TFLITE]["outputs"][0]
    assert (float_in["shape"], float_in["dtype"]) == ([1, 16000], "float32")
    assert (float_out["shape"], float_out["dtype"]) == ([1, n], "float32")
    assert files[export.INT8_TFLITE]["inputs"][0]["dtype"] == "float32"
    micro_in, micro_out = files[export.MICRO_TFLITE]["inputs"][0], \
        files[export.MICRO_TFLITE]["outputs"][0]
    assert (micro_in["shape"], micro_in["dtype"]) == ([1, *trained.settings.shape], "int8")
    assert micro_in["quantization"]["scale"] > 0
    assert (micro_out["shape"], micro_out["dtype"]) == ([1, n], "int8")
    # int8 softmax output: the full [0, 1) range on 256 steps.
    assert micro_out["quantization"] == {"scale": 1 / 256, "zero_point": -128}
    assert set(files[export.MICRO_TFLITE]["operators"]) <= {
        "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "RESHAPE", "SOFTMAX", "MEAN",
        "MAX_POOL_2D", "AVERAGE_POOL_2D", "MUL", "SUM", "RELU", "ADD"}
    assert files[export.MICRO_SOURCE]["length"] == files[export.MICRO_TFLITE]["bytes"]
    # The micro model takes normalised features: the card says how to make them.
    assert trained.settings.normalized
    norm = card["feature_normalization"]
    assert norm["mean"] == list(trained.settings.feature_mean)
    assert norm["scale"] == list(trained.settings.feature_scale)
    assert export.MICRO_TFLITE in norm["caller_applies"]
    assert "normalised features" in files[export.MICRO_TFLITE]["what"]
    assert card["calibration"]["clips"] == 60
    assert card["calibration"]["int8_float_top1_agreement"] >= 0.9
    # Ranges chosen per tensor (the default), for each int8 file, checked on other clips:
    # the choice is at least as close to float as either uniform rule.
    calibration = card["calibration"]
    assert calibration["ranges"] == "per_tensor" and calibration["check_clips"] == 60
    for name in (export.INT8_TFLITE, export.MICRO_TFLITE):
        report = calibration[name]
        assert report["ranges"] == "per_tensor" and report["check_clips"] == 60
        assert report["per_tensor"] and set(report["per_tensor"].values()) <= {"average",
                                                                               "minmax"}
        uniform = report["uniform_rules_on_check"]
        assert set(uniform) == {"average", "minmax"}
        assert report["check_probability_distance"] <= min(
            u["probability_distance"] for u in uniform.values())
    # These features are normalised per bin already: nothing to rescale.
    assert calibration["int8_input_rescaling"] is None


def test_saved_model_serving_signature_takes_raw_audio(exported, trained):
    loaded = tf.saved_model.load(str(exported / export.SAVED_MODEL_DIR))
    serve = loaded.signatures["serving_default"]
    clips = np.stack([clip_of(w, seed=i) for i, w in enumerate(WORDS)])
    batch = serve(audio=tf.constant(clips))["probabilities"].numpy()
    one = serve(audio=tf.constant(clips[0]))["probabilities"].numpy()
    n = len(trained.labels)
    assert batch.shape == (3, n) and one.shape == (n,)
    np.testing.assert_allclose(batch.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(one, batch[0], atol=1e-5)
    keras = tf.nn.softmax(trained.model(compute_features(clips, trained.settings))).numpy()
    np.testing.assert_allclose(batch, keras, atol=1e-4)
    labels = [s.decode() for s in loaded.signatures["labels"]()["output_0"].numpy()]
    assert labels == trained.labels
    with pytest.raises(tf.errors.InvalidArgumentError, match="16000 samples"):
        serve(audio=tf.zeros([8000]))


def test_tflite_audio_models_take_raw_audio_with_a_float_front_end(exported):
    clips = np.stack([clip_of(w, seed=7 + i) for i, w in enumerate(WORDS)])
    loaded = tf.saved_model.load(str(exported / export.SAVED_MODEL_DIR))
    reference = loaded.signatures["serving_default"](audio=tf.constant(clips))[
        "probabilities"].numpy()
    fl = runtime.TFLiteModel(exported / export.FLOAT_TFLITE)
    np.testing.assert_allclose(fl(clips), reference, atol=1e-4)
    q = runtime.TFLiteModel(exported / export.INT8_TFLITE)
    assert q.kind == "audio"
    probs = q(clips)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=0.02)
    assert (probs.argmax(-1) == reference.argmax(-1)).all()
    # Which ops run in which type: the front end (matrix DFT, magnitude, log) in float, the
    # network in int8; no RFFT2D (slow in LiteRT: see kwlesson.features, dft="matrix").
    interp = q.interpreter
    tensors = interp.get_tensor_details()
    out_type = {}
    for op in interp._get_ops_details():
        out_type.setdefault(op["op_name"], set()).add(tensors[op["outputs"][0]]["dtype"])
    assert "RFFT2D" not in out_type
    assert out_type["SQRT"] == out_type["LOG"] == out_type["CONCATENATION"] == {np.float32}
    assert out_type["FULLY_CONNECTED"] == {np.float32, np.int8}
    assert out_type["CONV_2D"] == {np.int8}


def test_c_array_is_the_micro_model(exported, card):
    source = (exported / export.MICRO_SOURCE).read_text()
    header = (exported / export.MICRO_HEADER).read_text()
    blob = (exported / export.MICRO_TFLITE).read_bytes()
    body = source.split("g_model[] = {", 1)[1].split("};", 1)[0]
    data = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))
    assert data == blob
    assert f"const unsigned int g_model_len = {len(blob)};" in source
    assert "alignas(16) const unsigned char g_model[]" in source
    micro_in = card["files"][export.MICRO_TFLITE]["inputs"][0]["quantization"]
    assert f"constexpr int kInputZeroPoint = {micro_in['zero_point']};" in header
    assert f"constexpr int kLabelCount = {len(card['labels'])};" in header
    assert all(f'"{label}"' in source for label in card["labels"])
    assert "constexpr bool kFeatureNormalized = true;" in header
    mean = re.search(r"kFeatureMean\[kFeatureBins\] = \{([^}]*)\}", header).group(1)
    scale = re.search(r"kFeatureScale\[kFeatureBins\] = \{([^}]*)\}", header).group(1)
    assert [float(v.rstrip("f")) for v in mean.split(", ")] == card["feature_normalization"]["mean"]
    assert [float(v.rstrip("f")) for v in scale.split(", ")] == \
        card["feature_normalization"]["scale"]
    # Normalised features: coefficient 0 needs no rescaling, and the header says so.
    assert card["micro_input"]["bin0_divisor"] == 1.0
    assert "constexpr float kFeatureBin0Divisor = 1.0f;" in header
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler:  # the strongest check that it is valid C++: compile it
        done = subprocess.run([compiler, "-std=c++17", "-Wall", "-Werror", "-fsyntax-only",
                               str(exported / export.MICRO_SOURCE)], capture_output=True,
                              text=True, check=False)
        assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------------------- verify


def test_without_tflite_micro_freeze_writes_every_file_and_verify_says_why(
        trained, corpus, tmp_path, monkeypatch):
    """Where tflite-micro has no wheel (macOS, Windows, Raspberry Pi) the export is complete and
    verify names what it skipped, in one line."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tflite_micro" else real(name, *a))
    message = runtime.micro_interpreter_missing()
    assert message and "tflite-micro" in message and "Linux x86_64" in message
    with pytest.raises(ImportError, match="Linux x86_64 only"):
        runtime.run_micro(b"", np.zeros((1, 2, 2), np.int8))
    out = tmp_path / "kws"
    export.freeze(trained.checkpoint_path, out, calibration_clips=60, stream=io.StringIO())
    for name in (export.SAVED_MODEL_DIR, export.FLOAT_TFLITE, export.INT8_TFLITE,
                 export.MICRO_TFLITE, export.MICRO_SOURCE, export.MICRO_HEADER,
                 export.LABELS_FILE, export.MODEL_CARD):
        assert (out / name).exists(), name
    report = verify.verify(out, corpus)
    assert report["checks"]["micro_runs_in_tflm"] is None and report["passed"] is True
    assert report["notes"] == [message]
    assert f"note: {message}" in verify.format_verification(report)


# ------------------------------------------------------------------------------- label_wav


# ------------------------------------------------------------------------------- bad input


def test_checkpoint_of_another_architecture_is_a_clear_error(trained, tmp_path):
    with pytest.raises(ValueError, match=r"trained tiny_conv .* not ds_cnn"):
        export.freeze(trained.checkpoint_path, tmp_path / "out", model_architecture="ds_cnn",
                      quantize=False, stream=io.StringIO())
    assert not (tmp_path / "out").exists()
    # The weights of one architecture filed under another's name.
    fake = tmp_path / "fake"
    fake.mkdir()
    src = Path(trained.checkpoint_path)
    for f in src.parent.glob(src.name + ".*"):
        shutil.copy(f, fake / f.name.replace("tiny_conv", "ds_cnn"))
    doc = json.loads((src.parent / "tiny_conv_config.json").read_text())
    doc["model_architecture"] = doc["train_config"]["model_architecture"] = "ds_cnn"
    (fake / "ds_cnn_config.json").write_text(json.dumps(doc))
    ckpt = fake / src.name.replace("tiny_conv", "ds_cnn")
    with pytest.raises(ValueError, match=r"says ds_cnn, but the checkpoint holds the weights "
                                         r"of tiny_conv"):
        export.freeze(ckpt, tmp_path / "out2", quantize=False, stream=io.StringIO())
    assert cli.freeze_command(str(ckpt), str(tmp_path / "out3"), quantize=False) == 2


def test_an_architecture_that_cannot_go_int8_is_a_clear_error(trained, tmp_path,
                                                              monkeypatch):
    monkeypatch.setitem(export.INT8_UNSUPPORTED, "tiny_conv", "a reason given here")
    with pytest.raises(ValueError, match=r"tiny_conv cannot be quantised to int8: a reason "
                                         r"given here.*--no_quantize"):
        export.freeze(trained.checkpoint_path, tmp_path / "out", stream=io.StringIO())
    assert not (tmp_path / "out").exists()


def test_freeze_keeps_the_rescaled_network_only_when_it_is_closer_to_float(
        trained, tmp_path, monkeypatch):
    real_body = quantization.int8_body

    def worse(model, features, fold=True):  # "rescaled", but computing something else
        plain = real_body(model, features, fold)
        return quantization.Int8Body(lambda x: 0.0 * plain.logits(x), lambda x: x * 1.0, 0, 3.0)

    monkeypatch.setattr(quantization, "int8_body", worse)
    result = export.freeze(trained.checkpoint_path, tmp_path / "kws", calibration_clips=30,
                           stream=io.StringIO())
    rescaling = result.card["calibration"]["int8_input_rescaling"]
    assert rescaling["kept"] is False and rescaling["divided_by"] == 3.0
    distances = rescaling["check_probability_distance"]
    assert distances["as_trained"] < distances["rescaled"]
    assert result.card["micro_input"]["bin0_divisor"] == 1.0
    assert "kFeatureBin0Divisor = 1.0f;" in (tmp_path / "kws" / export.MICRO_HEADER).read_text()
    assert "bin 0 divided" not in result.card["files"][export.MICRO_TFLITE]["what"]


def test_freeze_folds_linear_layers_only_when_that_is_closer_to_float(
        trained, tmp_path, monkeypatch, capsys):
    real_folded = quantization.folded_logits

    def worse(model, start=None):  # "folded", but the labels come out in reverse order
        logits, _ = real_folded(model, start)
        return (lambda x: tf.reverse(logits(x), [-1])), ["logits"]

    monkeypatch.setattr(quantization, "folded_logits", worse)
    result = export.freeze(trained.checkpoint_path, tmp_path / "kws", calibration_clips=30,
                           stream=io.StringIO(), progress=True)
    # A line per step on stderr, with the time so far. Two networks were tried here (folded
    # or not; this run's features are normalised, so coefficient 0 needs no rescaling).
    steps = [line for line in capsys.readouterr().err.splitlines() if line.startswith("freeze ")]
    assert re.match(r"freeze +\d+\.\d s: reading 30 training clips", steps[0])
    assert sum("int8 micro model, network" in line for line in steps) == 2
    assert [line.split(": ", 1)[1] for line in steps[-3:]] == [
        "int8 audio-in model", "the TF Speech app's model", "the TF Speech app's int8 model"]
    folding = result.card["calibration"]["int8_folded_layers"]
    assert folding["kept"] is False and folding["layers"] == ["logits"]
    distances = folding["check_probability_distance"]
    assert distances["as_trained"] < distances["folded"]
    report = verify.verify(tmp_path / "kws", micro=False)
    assert report["agreement"]["int8_vs_float"] > 0.5  # the real network, not the zeros


def test_nothing_to_fold_is_said_in_the_card(card):
    assert card["calibration"]["int8_folded_layers"] is None


def test_check_clips_are_augmented_as_the_run_trained(trained, corpus):
    data = export.run_data(trained.config)
    clean = export.calibration_audio(data, trained.settings, 20, seed=7)
    noisy = export.calibration_audio(data, trained.settings, 20, seed=7, augment=trained.config)
    again = export.calibration_audio(data, trained.settings, 20, seed=7, augment=trained.config)
    assert clean.shape == noisy.shape == (20, 16000)
    np.testing.assert_array_equal(noisy, again)  # seeded: the same check clips every freeze
    assert not np.allclose(clean, noisy)


def test_float_only_freeze_needs_no_data_and_calibration_needs_it(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"gone: data folder not found"):
        export.freeze(trained.checkpoint_path, tmp_path / "q", data_dir=tmp_path / "gone",
                      stream=io.StringIO())
    out = tmp_path / "float_only"
    out.mkdir()
    (out / export.MICRO_TFLITE).write_bytes(b"from an earlier export")
    (out / "notes.txt").write_text("mine")
    result = export.freeze(trained.checkpoint_path, out, quantize=False, stream=io.StringIO())
    assert (out / export.FLOAT_TFLITE).is_file() and not (out / export.MICRO_TFLITE).exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert result.card["calibration"] is None
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(NotADirectoryError):
        export.freeze(trained.checkpoint_path, tmp_path / "a_file", quantize=False)


def test_load_trained_round_trip_matches_the_export(trained, card):
    again = load_trained(card["checkpoint"])
    assert again.labels == card["labels"] and again.step == card["step"]


# ------------------------------------------------------------------------------- spectrogram


