"""The ``kwlesson`` command: each subcommand reaches its library function and fails readably."""

import json
import socket
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from kwlesson import cli


def _corpus(root, words=("yes", "no"), speakers=("aaaa1111", "bbbb2222", "cccc3333")):
    rng = np.random.default_rng(0)
    for word in words:
        (root / word).mkdir(parents=True)
        for spk in speakers:
            sf.write(root / word / f"{spk}_nohash_0.wav",
                     (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000,
                     subtype="PCM_16")
    return root


def test_help_is_fast_and_does_not_load_tensorflow():
    code = ("import sys; from kwlesson import cli\n"
            "try:\n    cli.main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "assert 'tensorflow' not in sys.modules, 'kwlesson --help loaded TensorFlow'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_data_info_prints_a_table(tmp_path, capsys):
    data_dir = _corpus(tmp_path / "data")
    assert cli.main(["data", "info", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "6 readable clips" in out
    assert "yes" in out and "no" in out


def test_data_info_json(tmp_path, capsys):
    data_dir = _corpus(tmp_path / "data")
    assert cli.main(["data", "info", str(data_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clips"] == 6


def test_data_info_missing_folder_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert cli.main(["data", "info", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err


def test_data_download_offline_points_to_the_offline_dataset(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = cli.main(["data", "download", "--dataset", "test_v0.02", "--dest", str(tmp_path),
                     "--base_url", f"http://127.0.0.1:{port}/"])
    assert code == 1
    err = capsys.readouterr().err
    assert "kwlesson data synth" in err


def test_train_flags_keep_the_seed_names_and_record_only_what_was_given():
    parser = cli.build_parser(with_train_flags=True)
    args = parser.parse_args(["train", "--model_architecture", "tiny_conv",
                              "--how_many_training_steps", "10,5", "--batch_size", "32"])
    given = {k for k in vars(args) if k in cli.TRAIN_FIELDS}
    assert given == {"model_architecture", "how_many_training_steps", "batch_size"}
    assert args.batch_size == 32
    for flag in ("data_dir", "wanted_words", "model_architecture", "how_many_training_steps",
                 "learning_rate", "batch_size", "silence_percentage", "unknown_percentage",
                 "background_volume", "background_frequency", "time_shift_ms", "window_size_ms",
                 "window_stride_ms", "feature_bin_count", "preprocess", "eval_step_interval",
                 "save_step_interval", "train_dir", "summaries_dir", "start_checkpoint",
                 "validation_percentage", "testing_percentage"):
        assert flag in cli.TRAIN_FIELDS, f"--{flag} is missing"


def test_a_named_recipe_fills_the_flags_not_given(tmp_path, monkeypatch, capsys):
    from kwlesson import training
    from kwlesson.recipes import RECIPES

    seen = []

    class Stopped(Exception):
        pass

    def fake_train(cfg):  # what would be trained, without training
        seen.append(cfg)
        raise Stopped

    monkeypatch.setattr(training, "train", fake_train)
    data = _corpus(tmp_path / "data")
    with pytest.raises(Stopped):
        cli.main(["train", "--recipe", "real_speech", "--data_dir", str(data),
                  "--how_many_training_steps", "30,10"])
    [cfg] = seen
    real = RECIPES["real_speech"]
    assert cfg.model_architecture == real["model_architecture"] == "ds_cnn"
    assert cfg.background_volume == real["background_volume"] != 0.1  # TrainConfig's
    assert cfg.learning_rate == real["learning_rate"]
    assert cfg.how_many_training_steps == "30,10"  # the flag given wins
    said = capsys.readouterr().out
    assert "Recipe real_speech: --model_architecture=ds_cnn" in said
    assert "how_many_training_steps" not in said


def test_an_unknown_recipe_names_the_recipes(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--recipe", "fastest"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'fastest'" in err and "quick" in err and "real_speech" in err


def test_train_rejects_an_unknown_architecture(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--model_architecture", "resnet"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
