"""Fixtures shared by the test files that train on the tone corpus (tests/tone_corpus.py).

* ``corpus``: one tone corpus per session (three words, two unknown ones, a noise clip).
  Read-only: a test that needs a changed corpus links or copies clips into its own tmp_path.
* ``make_config``: ``make_config(run_dir, **changes)``, a few dozen tiny_conv steps on the
  corpus, written under ``run_dir``; ``data_dir=`` points it elsewhere.
* ``exported`` / ``card``: that run frozen once (every file of an export folder) and its model
  card; read-only.
* ``private_home``: a module's own ``KWLESSON_HOME`` (use it with
  ``pytestmark = pytest.mark.usefixtures("private_home")``), so caches stay out of the user's.
* ``trained``: one small trained run per session (tiny_conv, 200 steps, normalised features,
  30% validation): the union of what test_export, test_streaming and test_evaluation need.
  Read-only too: a test that changes checkpoint files copies them into its tmp_path first.

The widget tests keep their own two-word steady-tone corpora (their labels and sizes are part
of what they check), and test_data its own noise corpus.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from tone_corpus import WORDS, make_tone_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """40 one-second tones per folder (6000-9000 samples long, starting at 1000-5000).

    40, not 30: the trained run's export calibrates on 60 training clips and verifies on at
    least 40 validation clips, and 30 per folder give 59 and 41.
    """
    return make_tone_corpus(tmp_path_factory.mktemp("tone_corpus"), 40, 0, jitter=0.05,
                            onset=(1000, 5000), length=(6000, 9000), noise_seconds=3)


@pytest.fixture(scope="session")
def make_config(corpus):
    """``make_config(run_dir, **changes)``: a 30-step tiny_conv TrainConfig on the corpus."""
    from kwlesson.runs import TrainConfig

    def make(run_dir: Path, **changes) -> TrainConfig:
        cfg = TrainConfig(
            data_dir=str(corpus), wanted_words=",".join(WORDS), model_architecture="tiny_conv",
            how_many_training_steps="20,10", learning_rate="0.01,0.002", batch_size=20,
            eval_step_interval=10, save_step_interval=10, optimizer="adam",
            train_dir=str(run_dir / "train"), summaries_dir=str(run_dir / "logs"),
            verbosity="warn", seed=7)
        return dataclasses.replace(cfg, **changes)

    return make


@pytest.fixture(scope="session")
def trained(make_config, tmp_path_factory):
    """The session's one trained run (a TrainResult).

    test_export asserts a model card of step 200, normalised features and at least 40
    validation clips (hence 30%), and that int8 keeps the accuracy; test_streaming that most
    words of a stream are found; test_evaluation that evaluating its checkpoint again gives
    the training's final test and validation results (an evaluation at the last step).
    """
    from kwlesson.training import train

    cfg = make_config(tmp_path_factory.mktemp("trained"), how_many_training_steps="150,50",
                      eval_step_interval=200, save_step_interval=200,
                      validation_percentage=30.0, testing_percentage=10.0,
                      normalize_features=True, seed=3)
    return train(cfg, [])


@pytest.fixture(scope="session")
def exported(trained, tmp_path_factory) -> Path:
    """The trained run frozen once: an export folder every export, verify and label_wav test
    reads."""
    import io

    from kwlesson import export

    out = tmp_path_factory.mktemp("export") / "kws"
    export.freeze(trained.checkpoint_path, out, calibration_clips=60, stream=io.StringIO())
    return out


@pytest.fixture(scope="session")
def card(exported) -> dict:
    import json

    from kwlesson import export

    return json.loads((exported / export.MODEL_CARD).read_text())


@pytest.fixture(scope="module")
def private_home(tmp_path_factory):
    """Keep the caches a test module makes (decoded clips) out of the user's data folder."""
    import os

    old = os.environ.get("KWLESSON_HOME")
    os.environ["KWLESSON_HOME"] = str(tmp_path_factory.mktemp("home"))
    yield
    if old is None:
        os.environ.pop("KWLESSON_HOME", None)
    else:
        os.environ["KWLESSON_HOME"] = old
