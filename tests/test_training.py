"""Tests for kwlesson.training on a tiny generated corpus (tones per word, in tmp_path).

Every run here is a few dozen steps of tiny_conv at batch 20, so the file stays well under a
minute and a half on two shared cores.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tone_corpus import OTHERS, WORDS  # noqa: E402

from kwlesson.audio import write_wav  # noqa: E402
from kwlesson.data import SpeechCommands  # noqa: E402
from kwlesson.progress import (  # noqa: E402
    BarProgress,
    TextProgress,
    TrainingObserver,
)
from kwlesson.runs import (  # noqa: E402
    TrainConfig,
    checkpoint_prefix,
    latest_checkpoint,
    load_trained,
    read_run_files,
)
from kwlesson.training import PiecewiseRate, load_data, make_optimizer, train  # noqa: E402


class Recorder(TrainingObserver):
    """Keeps everything train() reports; optionally asks to stop or raises Ctrl-C at a step."""

    def __init__(self, stop_at: int | None = None, interrupt_at: int | None = None) -> None:
        self.steps, self.evals, self.checkpoints, self.tests = [], [], [], []
        self.begin = self.end = None
        self.stop_at, self.interrupt_at = stop_at, interrupt_at

    def on_train_begin(self, info):
        self.begin = info

    def on_step(self, step, metrics):
        self.steps.append((step, dict(metrics)))
        if step == self.interrupt_at:
            raise KeyboardInterrupt

    def on_eval(self, step, accuracy, confusion, labels):
        self.evals.append((step, accuracy, confusion.copy()))

    def on_checkpoint(self, step, path):
        self.checkpoints.append((step, path))

    def on_test(self, accuracy, confusion, labels):
        self.tests.append((accuracy, confusion))

    def on_train_end(self, result):
        self.end = result

    def should_stop(self):
        return self.stop_at is not None and bool(self.steps) and self.steps[-1][0] >= self.stop_at


def weights(model) -> list[np.ndarray]:
    return [np.asarray(v) for v in model.variables]


@pytest.fixture(scope="module")
def full_run(make_config, tmp_path_factory):
    """One uninterrupted 30-step run that several tests look at."""
    run_dir = tmp_path_factory.mktemp("full")
    rec = Recorder()
    text = io.StringIO()
    result = train(make_config(run_dir),
                   [rec, TextProgress(every_seconds=0, stream=text)])
    return result, rec, text.getvalue(), run_dir


# -- schedule and config ----------------------------------------------------------------------


def test_piecewise_rate_switches_after_each_phase_like_the_seed():
    rate = PiecewiseRate([(3, 0.1), (2, 0.01)])
    # Step numbers are 1-based as in the seed's log: steps 1-3 use 0.1, steps 4-5 use 0.01,
    # and the last rate stays if training goes on.
    assert [rate.rate_at_step(s) for s in range(1, 8)] == [0.1] * 3 + [0.01] * 4
    # The optimizer asks with its 0-based update count.
    from_tensor = [float(rate(tf.constant(i))) for i in range(7)]
    np.testing.assert_allclose(from_tensor, [0.1] * 3 + [0.01] * 4, rtol=1e-6)


@pytest.mark.parametrize("change, match", [
    ({"optimizer": "rmsprop"}, "optimizer must be one of gradient_descent, momentum, adam"),
    ({"distribute": "tpu"}, "distribute must be one of"),
    ({"model_architecture": "huge"}, "model_architecture must be one of"),
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"learning_rate": "0.1"}, "same number of elements"),
    ({"preprocess": "wavelet"}, "preprocess must be one of"),
    ({"label_smoothing": 1.0}, "label_smoothing must be in"),
    ({"time_mask_frames": -2}, "time_mask_frames must be >= 0"),
])
def test_train_rejects_bad_config_before_any_work(tmp_path, change, match):
    cfg = dataclasses.replace(TrainConfig(data_dir=str(tmp_path / "nowhere"),
                                          train_dir=str(tmp_path / "t")), **change)
    with pytest.raises(ValueError, match=match):
        train(cfg)
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("name, cls, momentum", [
    ("gradient_descent", "SGD", 0.0), ("momentum", "SGD", 0.9), ("adam", "Adam", None)])
def test_make_optimizer_follows_the_reference_choices(name, cls, momentum):
    opt = make_optimizer(name, [(10, 0.1)])
    assert type(opt).__name__ == cls
    if momentum is not None:
        assert opt.momentum == momentum


# -- confusion matrix -------------------------------------------------------------------------


# -- a full run -------------------------------------------------------------------------------

def test_full_run_logs_like_the_seed(full_run):
    result, rec, text, _ = full_run
    import re

    lines = text.splitlines()
    assert lines[1].startswith("Step #1: rate 0.010000, accuracy ")
    assert any(line.startswith("Step #21: rate 0.002000, ") for line in lines)
    step_re = re.compile(r"^Step #\d+: rate \d+\.\d{6}, accuracy \d+\.\d%, cross entropy "
                         r"\d+\.\d{6} \[\d+/30, [\d.]+ steps/s, \d+:\d\d left\]$")
    assert sum(bool(step_re.match(line)) for line in lines) == 30
    assert re.search(r"^Step 10: Validation accuracy = \d+\.\d% \(N=\d+\)$", text, re.MULTILINE)
    assert re.search(r"^Final test accuracy = \d+\.\d% \(N=\d+\)$", text, re.MULTILINE)
    ckpt = Path(result.train_dir) / "tiny_conv.ckpt-10"
    assert f'Saving to "{ckpt}"' in lines
    # The confusion matrix follows the seed's "Confusion Matrix" line, which here says which
    # clips it counts, as numpy prints it, 5 x 5 here.
    i = lines.index("Confusion Matrix (validation, step 10; rows truth, columns prediction):")
    assert ("Confusion Matrix (testing, the final check; rows truth, columns prediction):"
            in lines)
    assert lines[i + 1].startswith(" [[") and lines[i + 5].endswith("]]")


def test_full_run_reports_to_observers(full_run):
    result, rec, _, _ = full_run
    assert [s for s, _ in rec.steps] == list(range(1, 31))
    m = rec.steps[0][1]
    assert set(m) >= {"rate", "accuracy", "cross_entropy", "total_steps", "elapsed",
                      "steps_per_second"}
    assert [s for s, _, _ in rec.evals] == [10, 20, 30]
    assert [s for s, _ in rec.checkpoints] == [10, 20, 30]
    assert rec.begin["start_step"] == 0 and rec.begin["total_steps"] == 30
    assert rec.begin["labels"] == ["_silence_", "_unknown_", *WORDS]
    assert rec.end is result and len(rec.tests) == 1
    # Rows are truth, columns predictions: each row sums to that label's validation count.
    data = SpeechCommands(result.config.data_dir, WORDS, seed=result.config.seed,
                          progress=False)
    counts = data.counts("validation")
    np.testing.assert_array_equal(rec.evals[-1][2].sum(axis=1), list(counts.values()))


def test_full_run_learns_and_returns_what_it_promises(full_run):
    result, rec, _, _ = full_run
    assert not result.stopped and result.step == 30
    assert result.labels == ["_silence_", "_unknown_", *WORDS]
    assert result.checkpoint_path == str(Path(result.train_dir) / "tiny_conv.ckpt-30")
    # Tones are easy: well above the 20% of guessing among five labels.
    assert result.test_accuracy > 0.6
    assert result.test_confusion.shape == (5, 5)
    assert result.test_accuracy == pytest.approx(
        np.trace(result.test_confusion) / result.test_confusion.sum())
    assert result.validation[-1][0] == 30
    losses = [m["cross_entropy"] for _, m in rec.steps]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_full_run_writes_the_seed_files(full_run):
    result, _, _, run_dir = full_run
    d = Path(result.train_dir)
    assert (d / "tiny_conv_labels.txt").read_text().splitlines() == result.labels
    doc = json.loads((d / "tiny_conv_config.json").read_text())
    assert doc["labels"] == result.labels and doc["input_shape"] == [98, 40]
    cfg, settings, labels = read_run_files(result.checkpoint_path)
    assert cfg == result.config and settings == result.settings and labels == result.labels
    for step in (10, 20, 30):
        assert (d / f"tiny_conv.ckpt-{step}.index").exists()
    assert tf.train.latest_checkpoint(str(d)) == str(d / "tiny_conv.ckpt-30")
    assert not [p for p in d.iterdir() if ".tmp" in p.name]  # no half-written files


def _events(folder: Path) -> dict[str, list]:
    from tensorflow.core.util import event_pb2

    tags: dict[str, list] = {}
    for f in folder.glob("events.out.tfevents.*"):
        for raw in tf.data.TFRecordDataset(str(f)):
            event = event_pb2.Event.FromString(raw.numpy())
            for v in event.summary.value:
                tags.setdefault(v.tag, []).append((event.step, v))
    return tags


def test_full_run_writes_tensorboard_logs(full_run):
    _, _, _, run_dir = full_run
    train_tags = _events(run_dir / "logs" / "train")
    assert set(train_tags) >= {"cross_entropy", "accuracy", "learning_rate"}
    assert [s for s, _ in train_tags["learning_rate"]] == list(range(1, 31))
    rate = {s: tf.make_ndarray(v.tensor) for s, v in train_tags["learning_rate"]}
    assert rate[20] == pytest.approx(0.01) and rate[21] == pytest.approx(0.002)
    assert train_tags["accuracy"][0][1].metadata.plugin_data.plugin_name == "scalars"
    val_tags = _events(run_dir / "logs" / "validation")
    assert [s for s, _ in val_tags["accuracy"]] == [10, 20, 30]
    step, image = val_tags["confusion_matrix"][-1]
    assert image.metadata.plugin_data.plugin_name == "images"
    width, height, png = tf.make_ndarray(image.tensor)
    decoded = tf.io.decode_png(png).numpy()
    assert decoded.shape == (int(height), int(width), 3) == (61, 61, 3)


def test_bar_progress_shows_steps_and_the_last_validation(make_config, tmp_path, capsys):
    # What quick_model() shows when it has to train: one bar that ends at the last step and
    # carries the latest validation accuracy.
    result = train(make_config(tmp_path), BarProgress("training the test model"))
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("training the test model")
    assert f"{result.step}/{result.step}" in last
    assert f"validation {result.validation[-1][1]:.1%}" in last


def test_load_trained_rebuilds_the_same_model(full_run):
    result, _, _, _ = full_run
    tm = load_trained(result.train_dir)  # a folder: its latest checkpoint
    assert tm.checkpoint_path == result.checkpoint_path and tm.step == 30
    assert tm.labels == result.labels and tm.settings == result.settings
    x = np.random.default_rng(0).standard_normal((4, 98, 40)).astype(np.float32)
    np.testing.assert_allclose(tm.model(x, training=False), result.model(x, training=False),
                               rtol=1e-6, atol=1e-6)


# -- resume, stop, interrupt, seeds -----------------------------------------------------------

def test_resumed_run_ends_with_the_same_weights(make_config, full_run, tmp_path, caplog):
    """Stop at step 13, resume: same weights at step 30 as the uninterrupted run.

    The run crosses the learning-rate boundary after the resume and uses Adam (optimizer
    state) and dropout (random state), so each of them must be restored. Tolerance: 1e-6
    absolute; on this CPU the weights agree exactly (deterministic kernels, no threads racing
    in reductions), the tolerance only allows for other BLAS builds.
    """
    result, rec_full, _, _ = full_run
    cfg = make_config(tmp_path)
    first = train(cfg, Recorder(stop_at=13))
    assert first.stopped and first.step == 13
    assert first.checkpoint_path.endswith("tiny_conv.ckpt-13")
    rec = Recorder()
    caplog.set_level("INFO", logger="kwlesson.training")
    second = train(dataclasses.replace(cfg, start_checkpoint=first.checkpoint_path), rec)
    assert "Restored" in caplog.text
    assert "Replaying" not in caplog.text  # the data set starts at the batch itself
    assert rec.begin["start_step"] == 13 and [s for s, _ in rec.steps] == list(range(14, 31))
    assert rec.steps[-1][1]["rate"] == pytest.approx(0.002)
    for a, b in zip(weights(result.model), weights(second.model)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    # Same batches after the resume: the per-step training metrics match too.
    full = dict(rec_full.steps)
    for step, m in rec.steps:
        assert m["cross_entropy"] == pytest.approx(full[step]["cross_entropy"], abs=1e-5)
    assert second.validation[-1] == pytest.approx(result.validation[-1])
    assert second.settings == first.settings == result.settings


@pytest.fixture(scope="module")
def norm_run(make_config, tmp_path_factory):
    """The full run's config with per-bin feature normalisation on."""
    run_dir = tmp_path_factory.mktemp("norm")
    return train(make_config(run_dir, normalize_features=True), [])


def test_resume_reuses_the_stored_feature_statistics(make_config, norm_run, tmp_path, monkeypatch):
    cfg = make_config(tmp_path, normalize_features=True)
    first = train(cfg, Recorder(stop_at=13))
    assert first.settings == norm_run.settings  # the same seeded draw of clips
    stored = json.loads((Path(first.train_dir) / "tiny_conv_config.json").read_text())
    from kwlesson import training

    def no_recompute(*args, **kwargs):
        raise AssertionError("resume recomputed the feature statistics")

    monkeypatch.setattr(training, "_normalized_settings", no_recompute)
    second = train(dataclasses.replace(cfg, start_checkpoint=first.checkpoint_path), [])
    assert second.settings == first.settings and second.step == 30
    # Still an exact resume: the same weights as the uninterrupted normalised run.
    for a, b in zip(weights(norm_run.model), weights(second.model)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    again = json.loads((Path(first.train_dir) / "tiny_conv_config.json").read_text())
    assert again["feature_settings"] == stored["feature_settings"]
    # A run trained with normalisation cannot be resumed without it (and vice versa).
    with pytest.raises(ValueError, match="trained with feature normalisation; resume with "
                                         "normalize_features=True"):
        train(dataclasses.replace(cfg, start_checkpoint=first.checkpoint_path,
                                  normalize_features=False), [])


def test_normalised_features_have_zero_mean_unit_scale_on_training_clips(norm_run):
    result = norm_run
    settings = result.settings
    assert settings.normalized and len(settings.feature_mean) == 40
    data = SpeechCommands(result.config.data_dir, WORDS, seed=7, progress=False)
    feats = np.concatenate([x.numpy() for x, _ in data.dataset(
        "training", settings, batch_size=100, shuffle=False, augment=False, repeat=False)])
    per_bin = feats.reshape(-1, 40)
    np.testing.assert_allclose(per_bin.mean(axis=0), 0, atol=0.15)
    np.testing.assert_allclose(per_bin.std(axis=0), 1, atol=0.15)
    # The raw MFCCs are far from that: coefficient 0 sits far below zero.
    raw = np.concatenate([x.numpy() for x, _ in data.dataset(
        "training", settings.without_normalization(), batch_size=100, shuffle=False,
        augment=False, repeat=False)]).reshape(-1, 40)
    assert raw[:, 0].mean() < -5 and raw.std(axis=0).max() / raw.std(axis=0).min() > 10


def test_normalisation_is_off_by_default(full_run):
    result, _, _, _ = full_run
    assert result.config.normalize_features is False and not result.settings.normalized
    assert result.settings == result.config.feature_settings()
    doc = json.loads((Path(result.train_dir) / "tiny_conv_config.json").read_text())
    assert doc["feature_settings"]["feature_mean"] is None


def test_run_without_stored_statistics_loads_unnormalised(full_run, tmp_path):
    """A run written before normalisation existed: no statistics, no normalize_features."""
    import shutil

    result, _, _, _ = full_run
    old = tmp_path / "old"
    shutil.copytree(result.train_dir, old)
    path = old / "tiny_conv_config.json"
    doc = json.loads(path.read_text())
    del doc["feature_settings"]["feature_mean"], doc["feature_settings"]["feature_scale"]
    del doc["train_config"]["normalize_features"]
    path.write_text(json.dumps(doc))
    tm = load_trained(old)
    assert not tm.settings.normalized and tm.settings == tm.config.feature_settings()
    clip = np.random.default_rng(0).standard_normal((1, 16000)).astype(np.float32) * 0.1
    from kwlesson.features import compute_features, mfcc

    np.testing.assert_array_equal(compute_features(clip, tm.settings).numpy(),
                                  mfcc(clip, tm.settings).numpy())


def test_same_seed_same_result(make_config, full_run, tmp_path):
    result, _, _, _ = full_run
    again = train(make_config(tmp_path))
    assert again.validation == result.validation
    assert again.test_accuracy == result.test_accuracy
    for a, b in zip(weights(result.model), weights(again.model)):
        np.testing.assert_array_equal(a, b)
    a = SpeechCommands(result.config.data_dir, WORDS, seed=7, progress=False)
    b = SpeechCommands(result.config.data_dir, WORDS, seed=7, progress=False)
    assert a.index == b.index


def test_stop_event_saves_and_still_tests(make_config, tmp_path):
    stop = threading.Event()

    class SetStop(TrainingObserver):
        def on_step(self, step, metrics):
            if step == 4:
                stop.set()  # as a dashboard's Stop button would, from any thread

    result = train(make_config(tmp_path), SetStop(), stop=stop)
    assert result.stopped and result.step == 4
    assert result.checkpoint_path == checkpoint_prefix(result.train_dir, "tiny_conv", 4)
    assert latest_checkpoint(result.train_dir, "tiny_conv") == result.checkpoint_path
    assert result.test_accuracy is not None
    # A callable works as a stop flag as well.
    result = train(make_config(tmp_path / "b"), [], stop=lambda: True)
    assert result.stopped and result.step == 1


def test_keyboard_interrupt_saves_a_checkpoint_then_raises(make_config, tmp_path):
    cfg = make_config(tmp_path)
    with pytest.raises(KeyboardInterrupt) as info:
        train(cfg, Recorder(interrupt_at=7))
    d = Path(cfg.train_dir)
    assert info.value.__notes__ == [
        f"Interrupted at step 7; resume with start_checkpoint={d / 'tiny_conv.ckpt-7'}"]
    assert tf.train.latest_checkpoint(str(d)) == str(d / "tiny_conv.ckpt-7")
    tm = load_trained(d / "tiny_conv.ckpt-7")
    assert tm.step == 7


def test_interrupted_checkpoint_write_keeps_the_previous_one(make_config, tmp_path, monkeypatch):
    cfg = make_config(tmp_path, how_many_training_steps="20", learning_rate="0.01")
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("ckpt-20.index"):
            raise OSError("disk full (simulated)")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        train(cfg, [])
    d = Path(cfg.train_dir)
    # The pointer still names the last complete checkpoint, which still loads.
    assert tf.train.latest_checkpoint(str(d)) == str(d / "tiny_conv.ckpt-10")
    assert latest_checkpoint(d, "tiny_conv") == str(d / "tiny_conv.ckpt-10")
    assert load_trained(d).step == 10


def test_old_checkpoints_are_pruned(make_config, tmp_path):
    cfg = make_config(tmp_path, how_many_training_steps="8", learning_rate="0.01",
                      save_step_interval=2, eval_step_interval=100, max_to_keep=2)
    train(cfg, [])
    d = Path(cfg.train_dir)
    assert sorted(p.name for p in d.glob("*.index")) == ["tiny_conv.ckpt-6.index",
                                                         "tiny_conv.ckpt-8.index"]
    pointer = tf.train.get_checkpoint_state(str(d))
    assert [Path(p).name for p in pointer.all_model_checkpoint_paths] == [
        "tiny_conv.ckpt-6", "tiny_conv.ckpt-8"]


def test_resume_with_other_words_is_a_clear_error(make_config, full_run, tmp_path):
    result, _, _, _ = full_run
    cfg = make_config(tmp_path, wanted_words="yes,no",
                      start_checkpoint=result.checkpoint_path)
    with pytest.raises(ValueError, match=r"tiny_conv.ckpt-30: was trained with labels"):
        train(cfg, [])


def test_missing_start_checkpoint_names_the_path(make_config, tmp_path):
    missing = tmp_path / "nothing" / "conv.ckpt-100"
    cfg = make_config(tmp_path, start_checkpoint=str(missing))
    with pytest.raises(FileNotFoundError, match=str(missing)):
        train(cfg, [])


# -- tf.distribute ----------------------------------------------------------------------------

MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    from kwlesson.progress import TrainingObserver
    from kwlesson.runs import TrainConfig
    from kwlesson.training import train
    cfg = TrainConfig.from_dict(json.loads(sys.argv[1]))
    class Replicas(TrainingObserver):
        def on_train_begin(self, info):
            print("replicas", info["replicas"])
    r = train(cfg, Replicas())
    print("result", json.dumps({"step": r.step, "test": r.test_accuracy,
                                "ckpt": r.checkpoint_path, "val": r.validation}))
""")


@pytest.mark.slow  # 13-14 s each: in the full suite only
@pytest.mark.parametrize("strategy, replicas", [("mirrored", "2"), ("multi_worker", "1")])
def test_distribute_strategies_on_two_logical_cpus(make_config, tmp_path, strategy, replicas):
    # Logical devices must be set before TensorFlow initialises, so this runs in its own process.
    # MultiWorkerMirroredStrategy without TF_CONFIG is one worker with one CPU replica: this
    # checks the flag builds it and trains through it, not a real cluster.
    cfg = make_config(tmp_path, distribute=strategy, how_many_training_steps="12",
                      learning_rate="0.01", eval_step_interval=12, save_step_interval=12)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, json.dumps(cfg.to_dict())],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"replicas {replicas}\n" in proc.stdout
    out = json.loads(proc.stdout.split("result ", 1)[1])
    assert out["step"] == 12 and out["ckpt"].endswith("tiny_conv.ckpt-12")
    assert out["test"] > 0.5
    assert load_trained(out["ckpt"]).step == 12  # a distributed checkpoint loads on one device


def test_background_dir_mixes_noise_from_outside_data_dir(corpus, make_config, tmp_path):
    noise_dir = tmp_path / "noise"
    noise_dir.mkdir()
    write_wav(noise_dir / "hum.wav", (0.2 * np.sin(np.arange(2 * 16000) / 7)).astype(np.float32))
    words_only = tmp_path / "words"
    words_only.mkdir()
    for word in WORDS + OTHERS:  # the corpus without its _background_noise_ folder
        (words_only / word).symlink_to(corpus / word, target_is_directory=True)
    cfg = make_config(tmp_path, data_dir=str(words_only), background_dir=str(noise_dir))
    data = load_data(cfg)
    assert data.background_paths == [str(noise_dir / "hum.wav")]
    assert load_data(make_config(tmp_path)).background_paths == [
        str(corpus / "_background_noise_" / "white_noise.wav")]


def test_spec_augment_and_label_smoothing_train_and_resume_exactly(make_config, full_run, tmp_path):
    """The regularisers change training (not the seed's run) and keep resume exact."""
    result, rec_full, _, _ = full_run
    cfg = make_config(tmp_path, freq_mask_bins=5, time_mask_frames=10,
                      label_smoothing=0.1)
    rec = Recorder()
    whole = train(cfg, rec)
    assert whole.step == 30
    assert rec.steps[0][1]["cross_entropy"] != pytest.approx(
        rec_full.steps[0][1]["cross_entropy"], abs=1e-6)
    first = train(dataclasses.replace(cfg, train_dir=str(tmp_path / "t2")), Recorder(stop_at=13))
    second = train(dataclasses.replace(cfg, train_dir=str(tmp_path / "t2"),
                                       start_checkpoint=first.checkpoint_path), [])
    for a, b in zip(weights(whole.model), weights(second.model)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
