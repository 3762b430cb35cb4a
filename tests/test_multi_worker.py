"""--distribute multi_worker on a real two-worker cluster: two processes on 127.0.0.1 (TF_CONFIG,
free ports), each training with MultiWorkerMirroredStrategy.

Two workers at the same global batch (so half of it per worker) must end where one worker ends,
within TOLERANCE; only the chief writes train_dir and the logs; a two-worker run resumes from
its checkpoint. Each run is bounded in time and both processes are stopped at the end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

pytestmark = pytest.mark.slow

#: Test accuracy, two workers against one, on the tone corpus (the sharded batches differ, so
#: the runs are not identical; at 60 steps both are usually at 0.9-1.0).
TOLERANCE = 0.15
RUN_TIMEOUT_S = 300

WORKER = """
import json, sys
from kwlesson.progress import TrainingObserver
from kwlesson.runs import TrainConfig
from kwlesson.training import train
cfg = TrainConfig.from_dict(json.loads(sys.argv[1]))
class Replicas(TrainingObserver):
    def on_train_begin(self, info):
        print("replicas", info["replicas"], "start", info["start_step"], flush=True)
r = train(cfg, Replicas())
print("result", json.dumps({"step": r.step, "test": r.test_accuracy, "ckpt": r.checkpoint_path}))
"""


def _config(make_config, run: Path, **changes) -> dict:
    """The session's tone corpus (conftest.py), 60 steps at batch 40."""
    changes = {"how_many_training_steps": "60", "learning_rate": "0.01", "batch_size": 40,
               "eval_step_interval": 30, "save_step_interval": 30, **changes}
    return make_config(run, **changes).to_dict()


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _run(config: dict, workers: int) -> list[dict]:
    """Start the workers, wait for all (bounded), stop them whatever happens; their results."""
    ports = _free_ports(workers)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    try:
        for index in range(workers):
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
                   "TF_CONFIG": json.dumps({"cluster": cluster,
                                            "task": {"type": "worker", "index": index}})}
            if workers == 1:
                env.pop("TF_CONFIG")
            procs.append(subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(config)],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, env=env))
        outputs = [p.communicate(timeout=RUN_TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
    results = []
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
        head, _, tail = out.partition("result ")
        results.append({"head": head, **json.loads(tail)})
    return results


def test_two_workers_train_like_one_and_only_the_chief_writes(make_config, tmp_path):
    [one] = _run(_config(make_config, tmp_path / "one", distribute="none"), workers=1)
    two = _run(_config(make_config, tmp_path / "two", distribute="multi_worker"), workers=2)
    for r in two:
        assert "replicas 2 start 0" in r["head"], r["head"]  # one CPU replica per worker
        assert r["step"] == 60
    assert one["test"] > 0.8, one
    assert abs(two[0]["test"] - one["test"]) <= TOLERANCE, (two[0]["test"], one["test"])
    # The chief's files, once: two checkpoints, the pointer, the run files; one log per kind.
    train_dir = tmp_path / "two" / "train"
    assert sorted(p.name for p in train_dir.glob("*.index")) == [
        "tiny_conv.ckpt-30.index", "tiny_conv.ckpt-60.index"]
    assert not [p for p in train_dir.iterdir() if ".tmp" in p.name]
    for kind in ("train", "validation"):
        assert len(list((tmp_path / "two" / "logs" / kind).glob("events.out.*"))) == 1, kind

    # Resume: both workers continue from the chief's step-60 checkpoint to step 90.
    resumed = _run(_config(make_config, tmp_path / "two", distribute="multi_worker",
                           how_many_training_steps="90",
                           start_checkpoint=str(train_dir / "tiny_conv.ckpt-60")), workers=2)
    for r in resumed:
        assert "start 60" in r["head"] and r["step"] == 90
    assert resumed[0]["ckpt"].endswith("tiny_conv.ckpt-90")
    assert (train_dir / "tiny_conv.ckpt-90.index").exists()
    assert resumed[0]["test"] >= two[0]["test"] - TOLERANCE
