"""Faults of the machine a classroom meets, each with its one-line message and nothing earlier
lost: a damaged checkpoint, a read-only or full disk, SIGTERM, two runs in one folder, a
re-run over an unfinished run, a NaN loss, numeric flags out of range, a killed synthesis and
TensorFlow's start-up noise.

Read-only and full disks are real: small tmpfs mounts (root only; skipped with the reason
otherwise, since root ignores chmod and anyone else cannot mount). Signals go to a child
process. Every run is a few dozen tiny_conv steps on the tone corpus.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tone_corpus import WORDS  # noqa: E402

from kwlesson import cli, faults  # noqa: E402
from kwlesson.faults import (  # noqa: E402
    DamagedCheckpoint,
    Diverged,
    FolderError,
    FolderInUse,
    RunError,
    RunWarning,
    check_numbers,
    damaged_files,
)
from kwlesson.progress import TrainingObserver  # noqa: E402
from kwlesson.runs import TrainConfig, latest_checkpoint, load_trained  # noqa: E402
from kwlesson.training import train  # noqa: E402

TESTS = Path(__file__).parent


def cli_flags(cfg: TrainConfig) -> list[str]:
    names = ("data_dir", "wanted_words", "model_architecture", "how_many_training_steps",
             "learning_rate", "batch_size", "eval_step_interval", "save_step_interval",
             "optimizer", "train_dir", "summaries_dir", "verbosity", "seed", "max_to_keep")
    return [f"--{n}={getattr(cfg, n)}" for n in names]


class StopAt(TrainingObserver):
    def __init__(self, step: int) -> None:
        self.step, self.begin = step, None
        self.seen = []

    def on_train_begin(self, info):
        self.begin = info

    def on_step(self, step, metrics):
        self.seen.append(step)

    def should_stop(self):
        return bool(self.seen) and self.seen[-1] >= self.step


def stopped_run(make_config, run_dir: Path, at: int = 20, **changes) -> TrainConfig:
    """A run stopped at step ``at`` of 30, checkpoints every 10 steps."""
    cfg = make_config(run_dir, **changes)
    result = train(cfg, StopAt(at))
    assert result.stopped and result.step == at
    return cfg


# -- mounts --------------------------------------------------------------------------------------

@pytest.fixture
def mount(tmp_path):
    """mount(name, size, read_only): a tmpfs folder under tmp_path; skipped unless root."""
    mounted: list[Path] = []

    def make(name: str, size: str = "2m", read_only: bool = False) -> Path:
        if os.geteuid() != 0:
            pytest.skip("needs root: a size-limited or read-only folder is a tmpfs mount "
                        "(chmod does not stop root, and others cannot mount)")
        d = tmp_path / name
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
                           capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode})")
        mounted.append(d)
        if read_only:
            r = subprocess.run(["mount", "-o", "remount,ro", str(d)], capture_output=True,
                               text=True)
            if r.returncode:
                pytest.skip(f"cannot remount a tmpfs read-only ({r.stderr.strip()})")
        return d

    yield make
    for d in reversed(mounted):
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


# -- 1. a damaged checkpoint ------------------------------------------------------------------

def cut_short(prefix: str) -> Path:
    data = next(Path(prefix).parent.glob(Path(prefix).name + ".data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    return data


def test_damaged_latest_checkpoint_falls_back_to_the_newest_intact(make_config, tmp_path):
    cfg = stopped_run(make_config, tmp_path)
    d = Path(cfg.train_dir)
    assert damaged_files(str(d / "tiny_conv.ckpt-20")) == []
    cut = cut_short(str(d / "tiny_conv.ckpt-20"))
    assert damaged_files(str(d / "tiny_conv.ckpt-20")) == [str(cut)]
    # load_trained (and so evaluate and freeze) of the folder: ckpt-10, with a warning
    with pytest.warns(RunWarning, match=rf"damaged checkpoint \({cut.name} cut short.*"
                                        r"using the newest intact one, .*tiny_conv\.ckpt-10"):
        tm = load_trained(d)
    assert tm.step == 10
    # resume, by folder and by the damaged prefix itself: from step 10 to the end
    rec = StopAt(10**9)
    with pytest.warns(RunWarning, match=cut.name):
        result = train(dataclasses.replace(cfg, start_checkpoint=str(d / "tiny_conv.ckpt-20")),
                       rec)
    assert rec.begin["start_step"] == 10 and result.step == 30 and not result.stopped


def test_no_intact_checkpoint_is_one_line_naming_the_folder(make_config, tmp_path, capsys):
    cfg = stopped_run(make_config, tmp_path)
    d = Path(cfg.train_dir)
    for prefix in ("tiny_conv.ckpt-10", "tiny_conv.ckpt-20"):
        cut_short(str(d / prefix))
    with pytest.raises(DamagedCheckpoint, match=rf"{d}: no intact checkpoint of tiny_conv "
                       r"\(damaged: tiny_conv\.ckpt-20\.data.*tiny_conv\.ckpt-10\.data.*\); copy "
                       "the folder again"):
        load_trained(d)
    assert cli.main(["freeze", "--start_checkpoint", str(d),
                     "--output_dir", str(tmp_path / "export")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kwlesson freeze: {d}: no intact checkpoint") and "Traceback" not in err


def test_checkpoint_without_sidecar_is_read_back(make_config, tmp_path):
    """Checkpoints written before the checksums: TensorFlow's reader decides."""
    cfg = stopped_run(make_config, tmp_path)
    d = Path(cfg.train_dir)
    for side in d.glob("*.sha256"):
        side.unlink()
    assert damaged_files(str(d / "tiny_conv.ckpt-20")) == []
    cut_short(str(d / "tiny_conv.ckpt-20"))
    assert damaged_files(str(d / "tiny_conv.ckpt-20"))
    with pytest.warns(RunWarning, match="ckpt-20"):
        assert load_trained(d).step == 10


# -- 2. folders checked before any data is loaded ---------------------------------------------

def test_read_only_train_dir_is_named_before_loading_data(make_config, tmp_path, mount, capsys):
    ro = mount("ro", read_only=True)
    cfg = make_config(tmp_path,  # data would fail later, not first
                      data_dir=str(tmp_path / "no-such-data"), train_dir=str(ro / "train"))
    with pytest.raises(FolderError, match=rf"{ro / 'train'}: cannot create --train_dir "
                                          r"\(read-only file system\); choose another"):
        train(cfg)
    cfg = dataclasses.replace(cfg, train_dir=str(tmp_path / "train"), summaries_dir=str(ro))
    assert cli.main(["train", *cli_flags(cfg)]) == 2
    err = capsys.readouterr().err
    assert err == (f"kwlesson train: {ro}: cannot write in --summaries_dir (read-only file "
                   "system); choose another --summaries_dir\n")


def test_nearly_full_train_dir_is_named(make_config, tmp_path, mount):
    small = mount("small", size="256k")
    with pytest.raises(FolderError, match=rf"{small}: only .* free in --train_dir, a checkpoint "
                                          "needs about 1.0 MB; free some space"):
        train(make_config(tmp_path, data_dir=str(tmp_path / "no-such-data"), train_dir=str(small)))


def test_read_only_kwlesson_home_and_output_dir(tmp_path, mount, monkeypatch, capsys):
    ro = mount("ro", read_only=True)
    monkeypatch.setenv("KWLESSON_HOME", str(ro / "home"))
    monkeypatch.setattr(cli, "SEED_DATA_DIR", str(tmp_path / "none"))
    assert cli.main(["train"]) == 2
    assert capsys.readouterr().err == (
        f"kwlesson train: {ro / 'home'}: cannot create KWLESSON_HOME (read-only file system); "
        "set KWLESSON_HOME to a folder you can write\n")
    assert cli.main(["freeze", "--start_checkpoint", str(tmp_path),
                     "--output_dir", str(ro / "export")]) == 2
    assert capsys.readouterr().err == (
        f"kwlesson freeze: {ro}: cannot write in the folder of --output_dir export (read-only "
        "file system); choose an --output_dir in a folder you can write\n")


# -- 3. a disk that fills mid-run ---------------------------------------------------------------

def test_full_disk_mid_run_names_step_and_last_good_checkpoint(make_config, tmp_path, mount,
                                                               capsys):
    full = mount("full", size="2m")  # a tiny_conv checkpoint with Adam's slots is ~640 KB
    cfg = make_config(tmp_path, train_dir=str(full), save_step_interval=1,
                      max_to_keep=100)
    assert cli.main(["train", *cli_flags(cfg)]) == 1
    err = capsys.readouterr().err
    last = latest_checkpoint(full, "tiny_conv")
    step = int(last.rsplit("-", 1)[1])
    assert err == (f"kwlesson train: {full}: the disk is full; training reached step "
                   f"{step + 1} and the last good checkpoint is {last}; free some space (or "
                   "choose another --train_dir and copy the folder there), then resume with "
                   f"--start_checkpoint {full}\n")
    assert step >= 1 and damaged_files(last) == []
    assert not [p for p in full.iterdir() if p.name.startswith(".tiny_conv")]  # no temp files
    assert load_trained(last).step == step


# -- 4. SIGTERM -----------------------------------------------------------------------------

def run_cli(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import sys; from kwlesson import cli; "
                             "print('ready', flush=True); sys.exit(cli.main(sys.argv[1:]))",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kw)


def wait_for(proc: subprocess.Popen, text: str, timeout: float = 120) -> list[str]:
    lines = []
    t0 = time.monotonic()
    for line in proc.stdout:
        lines.append(line)
        if text in line or time.monotonic() - t0 > timeout:
            break
    return lines


@pytest.mark.parametrize("signum, status, said", [(signal.SIGTERM, 143, "stopped by SIGTERM"),
                                                  (signal.SIGINT, 130, "interrupted")])
def test_sigterm_saves_a_checkpoint_like_ctrl_c(make_config, tmp_path, signum, status, said):
    cfg = make_config(tmp_path, how_many_training_steps="5000", learning_rate="0.01",
                      save_step_interval=1000, eval_step_interval=1000, verbosity="debug")
    proc = run_cli(["train", *cli_flags(cfg), "--progress_seconds=0"])
    seen = wait_for(proc, "Step #3:")
    assert any("Step #3:" in s for s in seen), seen
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status
    assert faults.SIGTERM_EXIT_STATUS == 143
    last = latest_checkpoint(cfg.train_dir, "tiny_conv")
    step = int(last.rsplit("-", 1)[1])
    assert step >= 3 and damaged_files(last) == []
    assert err.strip().splitlines()[-1] == (f"kwlesson: {said}; Interrupted at step "
                                            f"{step}; resume with start_checkpoint={last}")
    assert "Traceback" not in err and "cuInit" not in err  # and a quiet start-up


class SignalAt(TrainingObserver):
    """Sends the process a signal from inside a step (as the culler's SIGTERM lands)."""

    def __init__(self, step: int, signums: list[int]) -> None:
        self.step, self.signums, self.seen, self.went_on = step, signums, [], False

    def on_step(self, step, metrics):
        self.seen.append(step)
        if step == self.step:
            for signum in self.signums:
                os.kill(os.getpid(), signum)
            self.went_on = True  # the step's own work is not cut short


@pytest.mark.parametrize("signum, error", [(signal.SIGTERM, faults.Terminated),
                                           (signal.SIGINT, KeyboardInterrupt)])
def test_a_signal_during_a_step_stops_at_the_end_of_that_step(make_config, tmp_path, signum, error):
    cfg = make_config(tmp_path)
    rec = SignalAt(12, [signum])
    with pytest.raises(error) as stopped:
        train(cfg, rec)
    # Not raised inside the step: the step finished, was saved, and no later one ran.
    assert rec.went_on and rec.seen[-1] == 12
    assert latest_checkpoint(cfg.train_dir, "tiny_conv").endswith("tiny_conv.ckpt-12")
    assert stopped.value.__notes__ == [f"Interrupted at step 12; resume with start_checkpoint="
                                       f"{Path(cfg.train_dir, 'tiny_conv.ckpt-12')}"]
    # Outside a run, the handlers are the ones that were there before.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_second_signal_during_a_step_is_raised_at_once(make_config, tmp_path):
    cfg = make_config(tmp_path)
    rec = SignalAt(12, [signal.SIGINT, signal.SIGTERM])
    with pytest.raises(faults.Terminated):  # the second: the user insists
        train(cfg, rec)
    assert not rec.went_on and rec.seen[-1] == 12


def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    proc = run_cli(["evaluate", "--start_checkpoint", str(tmp_path)])
    wait_for(proc, "ready")
    time.sleep(0.3)  # inside main(), which then imports TensorFlow for seconds
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err == "kwlesson: interrupted\n"


# -- 5. one run per train_dir ------------------------------------------------------------------

def test_second_run_into_a_folder_in_use_is_refused_then_stale_lock_taken_over(make_config,
                                                                              tmp_path):
    cfg = make_config(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from kwlesson.faults import RunLock; "
         "lock = RunLock(sys.argv[1]).acquire(); print(lock.info['started'], flush=True); "
         "time.sleep(600)", cfg.train_dir], stdout=subprocess.PIPE, text=True)
    try:
        started = holder.stdout.readline().strip()
        with pytest.raises(FolderInUse, match=rf"{cfg.train_dir}: another training run is "
                           rf"writing here \(process {holder.pid} on .*, started {started}\); "
                           "wait for it to finish"):
            train(cfg)
        assert not Path(cfg.train_dir, "checkpoint").exists()  # refused before any work
    finally:
        holder.kill()  # as kill -9: the lock file stays, naming a dead process
        holder.wait()
    assert json.loads(Path(cfg.train_dir, faults.LOCK_NAME).read_text())["pid"] == holder.pid
    result = train(cfg)
    assert result.step == 30 and not Path(cfg.train_dir, faults.LOCK_NAME).exists()


def test_rerun_resumes_an_unfinished_run_of_the_same_recipe(make_config, tmp_path):
    cfg = stopped_run(make_config, tmp_path)
    rec = StopAt(10**9)
    with pytest.warns(RunWarning, match=rf"{cfg.train_dir}: resuming the unfinished run with the "
                      r"same settings at step 20 of 30 \(tiny_conv\.ckpt-20\)"):
        result = train(dataclasses.replace(cfg, verbosity="info"), rec)
    assert rec.begin["start_step"] == 20 and result.step == 30


def test_rerun_with_other_settings_is_refused_naming_start_checkpoint(make_config, tmp_path):
    cfg = stopped_run(make_config, tmp_path)
    with pytest.raises(RunError, match=rf"{cfg.train_dir}: holds an unfinished run \(step 20 of "
                       r"30, tiny_conv\.ckpt-20\) with other settings \(learning_rate\); "
                       rf"continue it with --start_checkpoint {cfg.train_dir}, or use another"):
        train(dataclasses.replace(cfg, learning_rate="0.1,0.01"))
    assert latest_checkpoint(cfg.train_dir, "tiny_conv").endswith("ckpt-20")  # untouched


# -- 6. a NaN loss ------------------------------------------------------------------------------

@pytest.mark.parametrize("check_nans", [False, True])
def test_nan_loss_stops_at_once_and_keeps_the_last_finite_checkpoint(make_config, tmp_path,
                                                                     check_nans, capsys):
    cfg = make_config(tmp_path, optimizer="gradient_descent", learning_rate="1e6,1e6",
                      save_step_interval=1, check_nans=check_nans)
    flags = cli_flags(cfg) + [f"--check_nans={check_nans}"]
    assert cli.main(["train", *flags]) == 1
    err = capsys.readouterr().err
    last = latest_checkpoint(cfg.train_dir, "tiny_conv")
    step = int(last.rsplit("-", 1)[1])
    assert err == (f"kwlesson train: Step {step + 1}: the loss became NaN or infinite"
                   f"{'' if check_nans else ' (nan)'} at learning rate 1e+06; training stopped "
                   f"and the latest checkpoint stays {last}; try a smaller --learning_rate "
                   "(e.g. 100000) or --optimizer adam, and check the clips with kwlesson data "
                   "info\n")
    tm = load_trained(cfg.train_dir)  # finite, so it loads
    assert tm.step == step


def test_evaluate_and_freeze_refuse_nan_weights_by_name(make_config, tmp_path, capsys):
    cfg = stopped_run(make_config, tmp_path)
    prefix = str(Path(cfg.train_dir) / "tiny_conv.ckpt-20")
    tm = load_trained(prefix)
    var = tm.model.trainable_variables[0]
    var.assign(np.full(var.shape, np.nan, np.float32))
    for f in Path(cfg.train_dir).glob("tiny_conv.ckpt-20.*"):
        f.unlink()
    tf.train.Checkpoint(model=tm.model, step=tf.Variable(20, dtype=tf.int64)).write(prefix)
    name = getattr(var, "path", var.name)
    with pytest.raises(Diverged, match=rf"{prefix}: NaN or infinite weights \({name}\)"):
        load_trained(prefix)
    assert cli.main(["evaluate", "--start_checkpoint", prefix]) == 2
    assert capsys.readouterr().err.startswith(f"kwlesson evaluate: {prefix}: NaN or infinite "
                                              f"weights ({name}): the run diverged")
    assert cli.main(["freeze", "--start_checkpoint", prefix,
                     "--output_dir", str(tmp_path / "export")]) == 2
    assert capsys.readouterr().err.startswith(f"kwlesson freeze: {prefix}: NaN or infinite")


# -- 7. numeric flags ---------------------------------------------------------------------------

@pytest.mark.parametrize("values, message", [
    ({"validation_percentage": 150, "testing_percentage": 10},
     "validation_percentage must be within 0-100, not 150"),
    ({"validation_percentage": 10, "testing_percentage": -5},
     "testing_percentage must be within 0-100, not -5"),
    ({"validation_percentage": 50, "testing_percentage": 50},
     r"validation_percentage \+ testing_percentage must be below 100 \(leaving clips to "
     r"train on\), not 100"),
    ({"unknown_percentage": -10}, "unknown_percentage must not be negative, not -10"),
    ({"silence_percentage": -1}, "silence_percentage must not be negative"),
    ({"background_volume": 2}, "background_volume must be between 0 and 1, not 2"),
    ({"window_size_ms": 30, "window_stride_ms": 40},
     r"window_stride_ms \(40\) must be at most window_size_ms \(30\)"),
    ({"window_size_ms": 30, "clip_duration_ms": 20},
     r"window_size_ms \(30\) must be at most clip_duration_ms \(20\): a clip must hold one "
     "window"),
    ({"batch_size": 0}, "batch_size must be (a whole number )?>= 1, not 0"),
    ({"batch_size": 10**8}, r"batch_size 100000000 needs about .* of memory for one batch, but "
                            r".* is available; use a smaller batch_size"),
    ({"window_size_ms": float("nan")}, "window_size_ms must be a finite number"),
])
def test_numeric_flags_checked_in_one_place(make_config, values, message, tmp_path, capsys):
    with pytest.raises(RunError, match=message):
        check_numbers(**values)
    with pytest.raises(ValueError, match=message):  # train and the notebooks' configs
        make_config(tmp_path, data_dir=str(tmp_path), **values).validate()


def test_data_info_and_evaluate_use_the_same_checks(tmp_path, capsys):
    assert cli.main(["data", "info", str(tmp_path), "--validation_percentage", "150"]) == 2
    assert capsys.readouterr().err == ("kwlesson data info: validation_percentage must be "
                                       "within 0-100, not 150\n")
    assert cli.main(["evaluate", "--start_checkpoint", str(tmp_path), "--batch_size", "0"]) == 2
    assert capsys.readouterr().err == ("kwlesson evaluate: batch_size must be a whole number "
                                       ">= 1, not 0\n")


def test_a_wanted_word_without_training_clips_is_a_warning_naming_it(corpus, make_config, tmp_path):
    from kwlesson.data import which_set

    # 'up' clips whose names hash into testing only
    data_dir = tmp_path / "data"
    for folder in [*WORDS, "cat", "dog", "_background_noise_"]:
        (data_dir / folder).mkdir(parents=True)
        for f in sorted((corpus / folder).glob("*.wav")):
            if folder != "up" or which_set(f.name, 10, 10) == "testing":
                os.link(f, data_dir / folder / f.name)
    assert list((data_dir / "up").iterdir())
    with pytest.warns(RunWarning, match=rf"{data_dir}: no training clips of 'up' \(by the name "
                      r"hash split\); the model cannot learn it"):
        train(make_config(tmp_path, data_dir=str(data_dir), how_many_training_steps="2,1"))


def test_label_wav_says_it_labels_only_the_start_of_a_long_file(tmp_path, capsys):
    from kwlesson.audio import write_wav
    from kwlesson.label_wav import say_if_partial

    long = tmp_path / "long.wav"
    write_wav(long, np.zeros(16000 * 12, np.float32))
    import io

    out = io.StringIO()
    say_if_partial(long, 1.0, out, "")
    assert out.getvalue() == (f"note: {long} is 12.0 s long; these labels are for its first 1 s "
                              "only (for the whole file: kwlesson test-streaming-accuracy, or "
                              "kwlesson.streaming)\n")
    out = io.StringIO()
    say_if_partial(long, 12.0, out, "")
    assert out.getvalue() == ""


# -- 8. synthesis, dashboard, start-up noise ---------------------------------------------------

def test_killed_synthesis_partial_folder_is_removed(tmp_path, capsys):
    from kwlesson import synth

    out = tmp_path / "tiny"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    partial = tmp_path / f".tiny.partial-{dead.pid}-1"
    (partial / "yes").mkdir(parents=True)
    alive = tmp_path / f".tiny.partial-{os.getpid()}-1"  # a synthesis still running: kept
    alive.mkdir()
    synth.synthesize_dataset(out, words=["yes"], speakers=1, seed=0, progress=False)
    assert not partial.exists() and alive.exists()
    assert f"Removed {partial}: left by an interrupted synthesis (process {dead.pid} is gone)" \
        in capsys.readouterr().err
    assert sorted(p.name for p in (out / "yes").iterdir())


def test_dashboard_shows_the_message_not_a_traceback(make_config, tmp_path, mount):
    from kwlesson.dashboard import TrainingDashboard, train_with_dashboard

    ro = mount("ro", read_only=True)
    cfg = make_config(tmp_path, data_dir=str(tmp_path), train_dir=str(ro / "train"))
    dashboard = TrainingDashboard(total_steps=30, text=False, draw=False)
    with pytest.raises(FolderError) as info:
        train_with_dashboard(cfg, dashboard=dashboard)
    assert dashboard.status.value == f"stopped: {info.value}"
    assert dashboard.progress.bar_style == "danger"
    assert info.value._render_traceback_() == [f"FolderError: {info.value}"]  # IPython's view


@pytest.mark.parametrize("argv", [["data", "info", "{corpus}"],
                                  ["evaluate", "--start_checkpoint", "{tmp}"]])
def test_quiet_tensorflow_start_up_in_every_command(argv, corpus, tmp_path):
    args = [a.format(corpus=corpus, tmp=tmp_path) for a in argv]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    r = subprocess.run([sys.executable, "-m", "kwlesson.cli", *args], capture_output=True,
                       text=True, env=env, timeout=300)
    for noise in ("cuInit", "absl::InitializeLog", "oneDNN", "cpu_feature_guard", "cuda"):
        assert noise not in r.stderr, r.stderr


def test_data_info_names_nan_files_and_symlink_loops(corpus, tmp_path):
    import soundfile as sf

    from kwlesson import data

    d = tmp_path / "data"
    (d / "yes").mkdir(parents=True)
    for f in sorted((corpus / "yes").glob("*.wav"))[:3]:
        os.link(f, d / "yes" / f.name)
    sf.write(d / "yes" / "nan_nohash_0.wav", np.full(16000, np.nan, np.float32), 16000,
             subtype="FLOAT")
    (d / "yes" / "loop_nohash_0.wav").symlink_to("loop_nohash_0.wav")
    report = data.info(d)
    assert report["words"]["yes"]["clips"] == 3 and report["words"]["yes"]["unreadable"] == 1
    assert f"{d / 'yes' / 'nan_nohash_0.wav'}: contains NaN or infinite samples" in \
        report["problems"]
    assert f"{d / 'yes' / 'loop_nohash_0.wav'}: a symlink loop; skipped" in report["problems"]
