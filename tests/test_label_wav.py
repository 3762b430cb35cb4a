"""Tests for kwlesson.label_wav, the seed's label_wav, on the session's export folder."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

from tone_corpus import clip_of  # noqa: E402

from kwlesson import cli, export, runtime, verify
from kwlesson.audio import fit_length, write_wav
from kwlesson.label_wav import label_wav

RATE = 16000
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
