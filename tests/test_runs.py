"""Tests for kwlesson.runs: the seed's flags as TrainConfig and its schedule (the rest of a run
on disk, checkpoints and run files, is tested through training in test_training.py)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")


from kwlesson.runs import (  # noqa: E402
    TrainConfig,
    parse_schedule,
)
from kwlesson.training import PiecewiseRate  # noqa: E402


def test_parse_schedule_pairs_steps_and_rates():
    assert parse_schedule("15000,3000", "0.001,0.0001") == [(15000, 0.001), (3000, 0.0001)]
    assert parse_schedule("100", "0.01") == [(100, 0.01)]


def test_a_phase_of_zero_steps_is_accepted_and_skipped_as_the_seed_does():
    # kwlesson train --how_many_training_steps=300,0 --learning_rate=0.001,0.0001
    cfg = TrainConfig(how_many_training_steps="300,0", learning_rate="0.001,0.0001")
    cfg.validate()
    assert cfg.total_steps() == 300
    rate = PiecewiseRate(cfg.schedule())
    assert {rate.rate_at_step(s) for s in range(1, 301)} == {0.001}
    # A zero phase first: every step takes the next phase's rate (the seed's lookup).
    rate = PiecewiseRate(parse_schedule("0,5", "0.1,0.01"))
    assert [rate.rate_at_step(s) for s in range(1, 6)] == [0.01] * 5
    np.testing.assert_allclose([float(rate(tf.constant(i))) for i in range(5)], [0.01] * 5,
                               rtol=1e-6)


@pytest.mark.parametrize("steps, rates, match", [
    ("15000,3000", "0.001", r"same number of elements: 2 step counts .* but 1 learning rates"),
    ("15000", "0.001,0.0001", r"1 step counts .* but 2 learning rates"),
    ("15000,x", "0.001,0.0001", r"how_many_training_steps must be comma-separated numbers"),
    ("100", "fast", r"learning_rate must be comma-separated numbers"),
    ("0", "0.1", r"at least 1 in all"),
    ("0,0", "0.1,0.01", r"at least 1 in all"),
    ("10,-5", "0.1,0.01", r"0 or more per phase"),
    ("10", "-0.1", r"positive"),
])
def test_parse_schedule_rejects_bad_input(steps, rates, match):
    with pytest.raises(ValueError, match=match):
        parse_schedule(steps, rates)


def test_train_config_has_the_seed_flags_and_defaults():
    cfg = TrainConfig()
    seed_defaults = {
        "data_dir": "/tmp/speech_dataset/",
        "wanted_words": "yes,no,up,down,left,right,on,off,stop,go",
        "model_architecture": "conv", "how_many_training_steps": "15000,3000",
        "learning_rate": "0.001,0.0001", "batch_size": 100, "silence_percentage": 10.0,
        "unknown_percentage": 10.0, "background_volume": 0.1, "background_frequency": 0.8,
        "time_shift_ms": 100.0, "sample_rate": 16000, "clip_duration_ms": 1000,
        "window_size_ms": 30.0, "window_stride_ms": 10.0, "feature_bin_count": 40,
        "preprocess": "mfcc", "eval_step_interval": 400, "save_step_interval": 100,
        "train_dir": "/tmp/speech_commands_train", "summaries_dir": "/tmp/retrain_logs",
        "start_checkpoint": "", "validation_percentage": 10, "testing_percentage": 10,
        "optimizer": "gradient_descent", "check_nans": False, "verbosity": "info",
    }
    # New regularisers are off by default, so the seed's commands train as the seed did.
    assert (cfg.freq_mask_bins, cfg.time_mask_frames, cfg.label_smoothing) == (0, 0, 0.0)
    for name, value in seed_defaults.items():
        assert getattr(cfg, name) == value, name
    assert cfg.distribute == "none"
    assert cfg.total_steps() == 18000
    assert cfg.feature_settings().shape == (98, 40)
    for f in dataclasses.fields(TrainConfig):  # the CLI builds its flags from these
        assert f.metadata.get("help"), f"{f.name} has no help text"
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown training settings: colour"):
        TrainConfig.from_dict({"colour": "blue"})
