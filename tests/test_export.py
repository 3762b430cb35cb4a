"""Tests for kwlesson.export on a tiny model trained here, on tones generated in tmp_path.

One tiny_conv is trained for a couple of hundred steps on a corpus where each word is a tone
of its own pitch, frozen once, and every test reads that export folder. Each architecture is
also converted (untrained: conversion does not care) to check that every one of them freezes.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

from kwlesson import cli, export, features, quantization, runtime, verify
from kwlesson.audio import fit_length, write_wav
from kwlesson.features import FeatureSettings, compute_features
from kwlesson.label_wav import label_wav
from kwlesson.models import ARCHITECTURES, create_model
from kwlesson.runs import load_trained

WORDS = ("yes", "no", "up")
OTHERS = ("cat", "dog")  # folders that become _unknown_
RATE = 16000


def tone(freq: float, rng: np.random.Generator, samples: int = RATE, rate: int = RATE,
         level: float = 0.4) -> np.ndarray:
    """A tone with a smooth envelope at a random time, plus a little noise."""
    t = np.arange(samples) / rate
    on = int(rng.integers(samples // 16, samples // 3))
    off = min(samples, on + int(rng.integers(samples * 3 // 8, samples // 2)))
    env = np.zeros(samples)
    env[on:off] = np.hanning(off - on)
    x = level * env * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(samples)
    return x.astype(np.float32)


def word_freq(k: int) -> float:
    return 300.0 * (k + 1)


def make_corpus(root: Path, per_word: int = 40, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for k, word in enumerate(WORDS + OTHERS):
        (root / word).mkdir(parents=True)
        for i in range(per_word):
            f = word_freq(k) * (1 + 0.03 * rng.standard_normal())
            write_wav(root / word / f"{i:04x}{k:02x}ab_nohash_{i % 2}.wav", tone(f, rng))
    (root / "_background_noise_").mkdir()
    noise = (0.3 * rng.standard_normal(3 * RATE)).clip(-1, 1).astype(np.float32)
    write_wav(root / "_background_noise_" / "white_noise.wav", noise)
    return root


@pytest.fixture(scope="session")
def exported(trained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "kws"
    export.freeze(trained.checkpoint_path, out, calibration_clips=60, stream=io.StringIO())
    return out


@pytest.fixture(scope="session")
def card(exported) -> dict:
    return json.loads((exported / export.MODEL_CARD).read_text())


def clip_of(word: str, seed: int = 100, samples: int = RATE, rate: int = RATE) -> np.ndarray:
    k = (WORDS + OTHERS).index(word)
    return tone(word_freq(k), np.random.default_rng(seed), samples=samples, rate=rate)


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


def test_verify_keeps_the_promises(exported, corpus):
    report = verify.verify(exported, corpus)
    assert report["clips"] >= 40
    assert report["reference"].startswith("keras")
    acc, agree = report["accuracy"], report["agreement"]
    assert acc["keras"] > 0.9, report  # tones are easy: the model did learn
    assert agree["float_vs_keras"] >= 0.995
    assert acc["float"] - acc["int8"] <= 0.01
    assert report["max_probability_difference_float_vs_keras"] < 1e-3
    assert report["checks"]["float_agrees_with_keras"] is True
    assert report["checks"]["int8_within_1_point"] is True
    try:
        import tflite_micro  # noqa: F401
    except ImportError:
        assert report["checks"]["micro_runs_in_tflm"] is None
        assert "tflite-micro" in report["notes"][0]
    else:
        assert agree["micro_tflm_vs_litert"] >= 0.99
        assert report["max_int8_difference_tflm_vs_litert"] <= 2
        assert report["checks"]["micro_runs_in_tflm"] is True
    assert report["passed"] is True
    assert re.search(r"check float_agrees_with_keras +ok", verify.format_verification(report))
    both = verify.verify(exported, corpus, split="validation+testing", micro=False)
    testing = verify.verify(exported, corpus, split="testing", micro=False)
    assert both["clips"] == report["clips"] + testing["clips"] and testing["clips"] > 0
    assert both["split"] == "validation+testing"
    flips = report["int8_flips"]
    assert (flips["right_in_float_only"] - flips["right_in_int8_only"]
            == round((acc["float"] - acc["int8"]) * report["clips"]))


def test_verify_measures_what_rounding_the_scores_alone_costs(exported, corpus, monkeypatch):
    report = verify.verify(exported, corpus, micro=False)
    step, zero = verify.score_quantization(exported / export.INT8_TFLITE)
    assert report["int8_score_step"] == step > 0
    assert report["agreement"]["keras_scores_rounded_vs_keras"] >= 0.9
    assert "rounded to the int8 file's step" in verify.format_verification(report)
    # Two scores 0.05 apart: a step of 0.1 makes them tie (argmax: the first label), 0.01 not;
    # beyond the int8 range they saturate and tie too.
    scores = np.array([[1.0, 1.05, -3.0]])
    assert verify.rounded_scores(scores, 0.1, 0).tolist() == [[10, 10, -30]]
    assert verify.rounded_scores(scores, 0.01, 0).argmax() == 1
    assert verify.rounded_scores(scores, 0.001, 0).tolist() == [[127, 127, -128]]
    # So coarse a step that every score ties: the first label wins every clip.
    monkeypatch.setattr(verify, "score_quantization", lambda path: (1e3, 0))
    coarse = verify.verify(exported, corpus, micro=False)
    truth_first = coarse["accuracy"]["keras_scores_rounded"]
    assert truth_first < 0.5 and coarse["agreement"]["keras_scores_rounded_vs_keras"] < 0.5


def test_int8_flips_count_each_way_with_a_sign_test():
    truth = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    preds = {"float": np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
             "int8": np.array([1, 1, 1, 1, 1, 1, 0, 0, 1, 1])}
    flips = verify.flips(preds, truth)
    # float alone right on 6 clips, int8 alone on 1: P(>= 6 of 7 one way) = 2 * 8 / 128.
    assert flips == {"right_in_float_only": 6, "right_in_int8_only": 1, "p_value": 0.125}
    assert verify.flips({"float": truth, "int8": truth}, truth)["p_value"] == 1.0
    assert verify.flips({"float": truth}, truth) is None
    text = verify.format_verification({
        "export_dir": "x", "clips": 10, "split": "validation", "reference": "keras",
        "accuracy": {}, "agreement": {}, "checks": {}, "notes": [], "int8_flips": flips})
    assert "6 clips right in float only, 1 in int8 only" in text and "p = 0.12" in text


def test_verify_catches_a_float_model_that_is_not_the_checkpoint(exported, corpus, tmp_path,
                                                                 trained):
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    other = create_model("tiny_conv", trained.settings.shape, len(trained.labels))
    fn = quantization.audio_fn(quantization.frozen_logits(other), trained.settings)
    (broken / export.FLOAT_TFLITE).write_bytes(quantization.convert(fn, "float"))
    report = verify.verify(broken, corpus, micro=False)
    assert report["checks"]["float_agrees_with_keras"] is False
    assert report["passed"] is False


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


# ------------------------------------------------------------------------------- label_wav


LINE = re.compile(r"^(\S+) \(score = (\d\.\d{3})\)$")


def test_label_wav_prints_the_seeds_lines(exported, tmp_path):
    wav = tmp_path / "up.wav"
    write_wav(wav, clip_of("up"))
    out = io.StringIO()
    results = label_wav(exported, wav, top_k=3, stream=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert parsed[0].group(1) == "up"
    scores = [float(m.group(2)) for m in parsed]
    assert scores == sorted(scores, reverse=True)
    assert results[0][1][0][0] == "up"


def test_label_wav_reads_every_kind_of_model_alike(exported, tmp_path):
    wav = tmp_path / "no.wav"
    write_wav(wav, clip_of("no", seed=5))
    tops = {}
    for model in (exported, exported / export.FLOAT_TFLITE, exported / export.INT8_TFLITE,
                  exported / export.MICRO_TFLITE, exported / export.SAVED_MODEL_DIR):
        res = label_wav(model, wav, top_k=1, stream=io.StringIO())
        tops[model.name] = res[0][1][0][0]
    assert set(tops.values()) == {"no"}, tops


def test_label_wav_on_a_folder_goes_on_past_a_broken_file(exported, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    write_wav(folder / "a_yes.wav", clip_of("yes", seed=1))
    (folder / "b_broken.wav").write_bytes(b"RIFF\x00\x00not really a wav")
    write_wav(folder / "c_up.wav", clip_of("up", seed=2))
    out = io.StringIO()
    results = label_wav(exported, folder, top_k=2, stream=out)
    text = out.getvalue()
    assert [Path(p).name for p, _ in results] == ["a_yes.wav", "c_up.wav"]
    assert [top[0][0] for _, top in results] == ["yes", "up"]
    assert "b_broken.wav" in text and "error:" in text


# ------------------------------------------------------------------------------- bad input


def test_missing_labels_file_is_a_clear_error(exported, tmp_path):
    model = tmp_path / "alone.tflite"
    shutil.copy(exported / export.FLOAT_TFLITE, model)
    wav = tmp_path / "yes.wav"
    write_wav(wav, clip_of("yes"))
    with pytest.raises(FileNotFoundError, match=r"labels\.txt: labels file not found"):
        label_wav(model, wav, stream=io.StringIO())
    assert cli.label_wav_command(str(model), str(wav)) == 2


def test_labels_file_of_another_model_is_a_clear_error(exported, tmp_path, card):
    folder = tmp_path / "mismatch"
    shutil.copytree(exported, folder)
    (folder / export.LABELS_FILE).write_text("yes\nno\n")
    wav = tmp_path / "yes.wav"
    write_wav(wav, clip_of("yes"))
    n = len(card["labels"])
    with pytest.raises(ValueError, match=rf"labels\.txt: lists 2 labels but the model has {n} "
                                         "outputs"):
        label_wav(folder, wav, stream=io.StringIO())
    with pytest.raises(ValueError, match=r"lists 2 labels"):
        verify.verify(folder)


@pytest.mark.parametrize("rate", [8000, 44100])
def test_a_wav_at_another_rate_is_resampled(exported, tmp_path, rate):
    wav = tmp_path / f"up_{rate}.wav"
    write_wav(wav, clip_of("up", seed=9, samples=rate, rate=rate), sample_rate=rate)
    res = label_wav(exported, wav, top_k=1, stream=io.StringIO())
    assert res[0][1][0][0] == "up"


@pytest.mark.parametrize("samples", [RATE // 2, RATE * 17 // 10])
def test_a_short_or_long_wav_is_padded_or_trimmed(exported, tmp_path, samples):
    x = clip_of("yes", seed=11, samples=samples)
    wav = tmp_path / f"yes_{samples}.wav"
    write_wav(wav, x)
    res = label_wav(exported, wav, top_k=12, stream=io.StringIO())
    # Same scores as the clip padded with zeros / trimmed to 1 s by hand.
    expected = runtime.TFLiteModel(exported / export.FLOAT_TFLITE)(fit_length(
        np.round(x * 32767) / 32768, RATE).astype(np.float32))
    labels = (exported / "labels.txt").read_text().split()
    got = dict(res[0][1])
    np.testing.assert_allclose([got[label] for label in labels], expected, atol=2e-3)


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
    assert steps[-1].endswith("int8 audio-in model")
    folding = result.card["calibration"]["int8_folded_layers"]
    assert folding["kept"] is False and folding["layers"] == ["logits"]
    distances = folding["check_probability_distance"]
    assert distances["as_trained"] < distances["folded"]
    report = verify.verify(tmp_path / "kws", micro=False)
    assert report["agreement"]["int8_vs_float"] > 0.5  # the real network, not the zeros


def test_nothing_to_fold_is_said_in_the_card(card):
    assert card["calibration"]["int8_folded_layers"] is None


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


def _degenerate_micro_model(settings: FeatureSettings | None = None, labels: int = 4) -> bytes:
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
    micro = _degenerate_micro_model()
    m = runtime.TFLiteModel(micro, delegate=False)
    q = np.zeros((1, *m.input["shape"][1:]), np.int8)
    assert m.invoke_raw(q).shape == (1, 4)  # LiteRT runs it
    with pytest.raises(runtime.MicroRuntimeError, match=r"stopped \(signal 6, SIGABRT\)"):
        runtime.run_micro(micro, q)
    assert runtime.micro_agreement(micro, np.zeros((2, *m.input["shape"][1:]), np.float32)) == 0.0


def test_verify_reports_a_micro_model_tflm_cannot_run(exported, card, corpus, tmp_path):
    pytest.importorskip("tflite_micro")
    broken = tmp_path / "kws"
    shutil.copytree(exported, broken)
    settings = FeatureSettings.from_dict(card["feature_settings"]).without_normalization()
    (broken / export.MICRO_TFLITE).write_bytes(
        _degenerate_micro_model(settings, len(card["labels"])))
    report = verify.verify(broken, corpus)
    assert report["checks"]["micro_runs_in_tflm"] is False and report["passed"] is False
    assert f"{broken / export.MICRO_TFLITE}: TensorFlow Lite Micro stopped" in report["notes"][0]


def test_check_clips_are_augmented_as_the_run_trained(trained, corpus):
    data = export.run_data(trained.config)
    clean = export.calibration_audio(data, trained.settings, 20, seed=7)
    noisy = export.calibration_audio(data, trained.settings, 20, seed=7, augment=trained.config)
    again = export.calibration_audio(data, trained.settings, 20, seed=7, augment=trained.config)
    assert clean.shape == noisy.shape == (20, 16000)
    np.testing.assert_array_equal(noisy, again)  # seeded: the same check clips every freeze
    assert not np.allclose(clean, noisy)


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


def test_wav_to_spectrogram_writes_the_seeds_png(tmp_path):
    t = np.arange(RATE) / RATE
    wav = tmp_path / "tone.wav"
    # Quiet enough that brightness 64 does not saturate the peak: the argmax is the peak.
    write_wav(wav, (0.02 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    png = tmp_path / "out" / "spectrogram.png"
    image = features.wav_to_spectrogram(wav, png)
    assert image.dtype == np.uint8 and image.shape == (1 + (RATE - 256) // 128, 129)
    decoded = tf.io.decode_png(png.read_bytes()).numpy()
    assert decoded.shape == (*image.shape, 1)
    np.testing.assert_array_equal(decoded[..., 0], image)
    # 1 kHz with 256-sample windows at 16 kHz: bin 1000 / (16000 / 256) = 16.
    assert np.bincount(image.argmax(axis=1)).argmax() == 16
    assert 0 < image.max() < 255
    assert cli.wav_to_spectrogram_command(str(wav), str(tmp_path / "b.png")) == 0
    assert cli.wav_to_spectrogram_command(str(tmp_path / "none.wav"), str(png)) == 2


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
