"""Paths on every platform: the seed's /tmp defaults where there is no /tmp (Windows)."""

import tempfile
from pathlib import Path

from kwlesson import config
from kwlesson.runs import TrainConfig


def test_seed_defaults_stay_where_tmp_exists(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "SEED_TMP", tmp_path)  # exists
    cfg = TrainConfig()
    assert (cfg.train_dir, cfg.summaries_dir, cfg.data_dir) == (
        "/tmp/speech_commands_train", "/tmp/retrain_logs", "/tmp/speech_dataset/")


def test_without_tmp_they_move_to_the_temporary_folder_and_say_so(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(config, "SEED_TMP", tmp_path / "no-tmp-here")
    monkeypatch.setattr(config, "_moved", set())
    temp = Path("/var/no-such-temp")  # as C:\\Users\\...\\Temp: not under /tmp
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(temp))
    cfg = TrainConfig(model_architecture="tiny_conv")
    assert Path(cfg.train_dir) == temp / "speech_commands_train"
    assert Path(cfg.summaries_dir) == temp / "retrain_logs"
    assert Path(cfg.data_dir) == temp / "speech_dataset"
    said = capsys.readouterr().err.splitlines()
    assert said[1] == (f"/tmp/speech_commands_train: there is no {tmp_path / 'no-tmp-here'} on "
                       f"this machine; using {temp / 'speech_commands_train'} instead"), said
    TrainConfig()  # said once per path
    assert capsys.readouterr().err == ""
    # A round trip through the stored settings keeps the moved paths; a user's own stays.
    assert TrainConfig.from_dict(cfg.to_dict()).train_dir == cfg.train_dir
    assert TrainConfig(train_dir="/home/me/kws").train_dir == "/home/me/kws"
    assert config.seed_path("C:\\\\data\\\\kws") == "C:\\\\data\\\\kws"
