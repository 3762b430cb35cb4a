"""Tests for kwlesson.verify on the session's export folder (conftest.py)."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

from test_runtime import degenerate_micro_model  # noqa: E402

from kwlesson import export, quantization, verify  # noqa: E402
from kwlesson.features import FeatureSettings
from kwlesson.models import create_model

RATE = 16000


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
    plain = verify.plain_verification(report)
    assert plain.splitlines()[0] == f"On {report['clips']:,} validation clips:"
    assert re.search(r"the float LiteRT file +\d+\.\d% correct, the same answer as Keras on "
                     r"\d+\.\d% of clips", plain)
    assert plain.splitlines()[-1] == "Every promise holds."
    assert "_vs_" not in plain and "keras_scores_rounded" not in plain  # no internal names
    both = verify.verify(exported, corpus, split="validation+testing", micro=False)
    testing = verify.verify(exported, corpus, split="testing", micro=False)
    assert both["clips"] == report["clips"] + testing["clips"] and testing["clips"] > 0
    assert both["split"] == "validation+testing"
    flips = report["int8_flips"]
    assert (flips["right_in_float_only"] - flips["right_in_int8_only"]
            == round((acc["float"] - acc["int8"]) * report["clips"]))



def test_the_int8_line_pools_small_held_out_splits(exported, corpus, monkeypatch):
    # The tone corpus' splits are far under 600 clips: the line is judged on both, pooled.
    report = verify.verify(exported, corpus, split="testing", micro=False)
    both = verify.verify(exported, corpus, split="validation+testing", micro=False)
    line = report["int8_line"]
    assert line["split"] == "validation+testing" and line["clips"] == both["clips"]
    assert line["pooled"]["testing"] == report["clips"]
    assert sum(line["pooled"].values()) == line["clips"]
    assert line["accuracy"] == {k: both["accuracy"][k] for k in ("float", "int8")}
    assert line["int8_vs_float_agreement"] == both["agreement"]["int8_vs_float"]
    assert report["checks"]["int8_within_1_point"] is line["within_1_point"]
    assert both["int8_line"]["pooled"] is None and both["int8_line"]["clips"] == both["clips"]
    text = verify.format_verification(report)
    assert re.search(rf"int8 line on {line['clips']} clips of validation\+testing pooled "
                     rf"\({line['pooled']['validation']} validation \+ {report['clips']} "
                     r"testing: .*top-1 agreement .*%; only \d+ clips: p = ", text), text
    # A random subset is for speed: no pooling; nor where both splits have enough clips.
    quick = verify.verify(exported, corpus, split="testing", max_clips=10, micro=False)
    assert (quick["int8_line"]["split"], quick["int8_line"]["clips"]) == ("testing", 10)
    monkeypatch.setattr(verify, "MIN_INT8_LINE_CLIPS", 10)
    alone = verify.verify(exported, corpus, split="testing", micro=False)["int8_line"]
    assert (alone["split"], alone["clips"], alone["pooled"]) == ("testing", report["clips"], None)


def test_the_int8_line_judges_the_drop_on_its_clips():
    truth = np.zeros(200, int)
    float_preds, int8_preds = truth.copy(), truth.copy()
    int8_preds[:2] = 1  # 2 of 200 lost: exactly 1 point
    line = verify.int8_line(float_preds, int8_preds, truth, "validation+testing",
                            {"validation": 120, "testing": 80})
    assert line["within_1_point"] is True and line["drop"] == pytest.approx(1.0)
    assert line["int8_vs_float_agreement"] == 0.99
    assert line["flips"] == {"right_in_float_only": 2, "right_in_int8_only": 0, "p_value": 0.5}
    int8_preds[2] = 1
    assert verify.int8_line(float_preds, int8_preds, truth, "testing")["within_1_point"] is False


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



def test_verify_reports_a_micro_model_tflm_cannot_run(exported, card, corpus, tmp_path):
    pytest.importorskip("tflite_micro")
    broken = tmp_path / "kws"
    shutil.copytree(exported, broken)
    settings = FeatureSettings.from_dict(card["feature_settings"]).without_normalization()
    (broken / export.MICRO_TFLITE).write_bytes(
        degenerate_micro_model(settings, len(card["labels"])))
    report = verify.verify(broken, corpus)
    assert report["checks"]["micro_runs_in_tflm"] is False and report["passed"] is False
    assert f"{broken / export.MICRO_TFLITE}: TensorFlow Lite Micro stopped" in report["notes"][0]
