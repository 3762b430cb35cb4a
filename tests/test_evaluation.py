"""Tests for kwlesson.evaluation: a model trained for a few steps on generated tones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from tone_corpus import WORDS  # noqa: E402

from kwlesson.audio import write_wav  # noqa: E402
from kwlesson.cli import evaluate_command  # noqa: E402
from kwlesson.evaluation import confusion_metrics, evaluate  # noqa: E402
from kwlesson.runs import load_trained  # noqa: E402


def test_confusion_metrics_by_hand():
    m = np.array([[5, 0, 0],
                  [2, 6, 1],
                  [0, 3, 0]])
    ev = confusion_metrics(m, ["a", "b", "c"])
    assert ev.n == 17 and ev.accuracy == pytest.approx(11 / 17)
    assert ev.precision == pytest.approx({"a": 5 / 7, "b": 6 / 9, "c": 0.0})
    assert ev.recall == pytest.approx({"a": 1.0, "b": 6 / 9, "c": 0.0})
    assert ev.support == {"a": 5, "b": 9, "c": 3}
    assert [(p["truth"], p["predicted"], p["count"]) for p in ev.confused_pairs] == [
        ("c", "b", 3), ("b", "a", 2), ("b", "c", 1)]
    assert ev.confused_pairs[0]["share_of_truth"] == 1.0


def test_confusion_metrics_undefined_values_are_none():
    ev = confusion_metrics(np.array([[4, 0], [0, 0]]), ["a", "b"])
    assert ev.precision["b"] is None and ev.recall["b"] is None
    assert "b " in ev.format() and ev.confused_pairs == []
    with pytest.raises(ValueError, match="3 labels"):
        confusion_metrics(np.zeros((2, 2)), ["a", "b", "c"])


def test_format_without_paths_names_the_checkpoint_and_split_only():
    ev = confusion_metrics(np.array([[4, 0], [1, 3]]), ["a", "b"],
                           source="validation split of /home/you/.cache/data/92cf",
                           checkpoint="/home/you/.cache/run/train/tc_resnet.ckpt-1500")
    assert ev.format().splitlines()[0].startswith(
        "/home/you/.cache/run/train/tc_resnet.ckpt-1500 on validation split of /home/you/")
    first = ev.format(paths=False).splitlines()[0]
    assert first == "tc_resnet.ckpt-1500 on the validation split: Accuracy 87.5% (N=8)"
    folder = confusion_metrics(np.eye(2, dtype=int), ["a", "b"], source="/data/real_clips",
                               checkpoint="/x/conv.ckpt-4")
    assert folder.format(paths=False).startswith("conv.ckpt-4 on the real_clips: ")


def test_evaluate_split_matches_the_final_test_of_training(trained):
    result = trained
    ev = evaluate(result.checkpoint_path)
    np.testing.assert_array_equal(ev.confusion, result.test_confusion)
    assert ev.accuracy == pytest.approx(result.test_accuracy)
    assert ev.labels == result.labels and ev.source.startswith("testing split of ")
    val = evaluate(load_trained(result.train_dir), split="validation")
    assert val.accuracy == pytest.approx(result.validation[-1][1])


def test_evaluate_a_canonical_test_folder(trained, corpus, tmp_path):
    result = trained
    folder = tmp_path / "test_set"
    counts = {}
    for word in WORDS:  # a few clips of each word, copied from the corpus
        (folder / word).mkdir(parents=True)
        for p in sorted((corpus / word).glob("*.wav"))[:4]:
            shutil.copy(p, folder / word / p.name)
        counts[word] = 4
    (folder / "_silence_").mkdir()
    for i in range(3):
        write_wav(folder / "_silence_" / f"silence_{i}.wav", np.zeros(16000, np.float32))
    (folder / "_unknown_").mkdir()
    for p in sorted((corpus / "cat").glob("*.wav"))[:2]:
        shutil.copy(p, folder / "_unknown_" / p.name)
    (folder / "bird").mkdir()  # another word's folder also counts as unknown
    shutil.copy(sorted((corpus / "dog").glob("*.wav"))[0], folder / "bird" / "bird_0.wav")

    json_path = tmp_path / "ev.json"
    ev = evaluate_command(result.train_dir, folder=str(folder), json_path=str(json_path))
    assert ev.support == {"_silence_": 3, "_unknown_": 3, **counts}
    assert ev.n == 3 + 3 + 4 * len(WORDS) == int(ev.confusion.sum())
    doc = json.loads(json_path.read_text())
    assert doc["accuracy"] == pytest.approx(ev.accuracy) and doc["labels"] == result.labels
    assert np.array(doc["confusion"]).shape == (5, 5)
    assert ev.accuracy > 0.5  # tones are easy; chance is 20%


def test_evaluate_errors_name_the_problem(trained, tmp_path):
    result = trained
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "missing")):
        evaluate(result.checkpoint_path, folder=tmp_path / "missing")
    (tmp_path / "only_yes" / "yes").mkdir(parents=True)
    write_wav(tmp_path / "only_yes" / "yes" / "a.wav", np.zeros(16000, np.float32))
    with pytest.raises(ValueError, match="no clips for wanted word"):
        evaluate(result.checkpoint_path, folder=tmp_path / "only_yes")
    with pytest.raises(ValueError, match="split must be"):
        evaluate(result.checkpoint_path, split="train")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        evaluate(str(Path(result.train_dir) / "tiny_conv.ckpt-999"))
