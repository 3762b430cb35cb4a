"""What notebook 03 adds to the dashboard: it awaits the dashboard (so Stop can be heard) and
stores it, and a run stopped with the dashboard's Stop button resumes, shown again in the same
dashboard, at the next step. Also the exercise checker of notebook 03. The dashboard itself is
tested in test_widgets.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tone_corpus import make_steady_tone_corpus

from kwlesson import dashboard as dashboard_module
from kwlesson.checks import check_03_learning_rate
from kwlesson.dashboard import DASHBOARD_REPR, TrainingDashboard, train_with_dashboard_async
from kwlesson.runs import TrainConfig, checkpoint_prefix, latest_checkpoint

NOTEBOOK = (Path(__file__).resolve().parent.parent / "notebooks"
            / "03_training_with_live_widgets.ipynb")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WORDS = ("yes", "no")


def _source(cell: dict) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def test_the_lesson_awaits_the_dashboard_and_stores_it():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"]
             if c["cell_type"] == "code" and "train_with_dashboard_async(" in _source(c)]
    assert len(cells) == 1, "one dashboard cell"
    cell = cells[0]
    assert "await train_with_dashboard_async(" in _source(cell), (
        "without await the kernel cannot hear the Stop button")
    shown = [o for o in cell["outputs"] if o["output_type"] == "display_data"]
    assert len(shown) == 1, "the dashboard is displayed once, under its cell"
    data = shown[0]["data"]
    assert "".join(data["text/plain"]) == DASHBOARD_REPR  # what nbval compares
    # A student opening the notebook sees the dashboard's last picture: its state is saved.
    model_id = data[WIDGET_VIEW]["model_id"]
    state = nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert model_id in state
    assert not any(o["output_type"] == "stream" and o["name"] == "stderr"
                   for o in cell["outputs"]), "training must not write to stderr"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two tone 'words' and an unknown one, a dozen 1-s clips each, plus a noise clip."""
    return make_steady_tone_corpus(tmp_path_factory.mktemp("corpus"), WORDS + ("cat",),
                                   per_word=12, base_hz=500.0, tag="ef")


class ClickStopAt(TrainingDashboard):
    """A dashboard whose Stop button is pressed after step ``click_at``, as a student would."""

    click_at = 0

    def on_step(self, step, metrics):
        super().on_step(step, metrics)
        if step == self.click_at:
            self.stop_button.click()


def test_stop_in_the_dashboard_then_resume_in_it_at_the_next_step(corpus, tmp_path,
                                                                   monkeypatch):
    # The notebook path: in a kernel, the dashboard is displayed and training runs on a
    # worker thread while the cell awaits.
    shown = []
    monkeypatch.setattr(dashboard_module, "in_notebook", lambda: True)
    monkeypatch.setattr(dashboard_module, "_display", shown.append)
    config = TrainConfig(
        data_dir=str(corpus), wanted_words=",".join(WORDS), model_architecture="tiny_conv",
        how_many_training_steps="6,4", learning_rate="0.01,0.002", batch_size=8,
        eval_step_interval=5, save_step_interval=100, optimizer="adam",
        train_dir=str(tmp_path / "train"), summaries_dir=str(tmp_path / "logs"),
        validation_percentage=25, testing_percentage=25, verbosity="warn", seed=3)
    dash = ClickStopAt(redraw_seconds=0.0)
    dash.click_at = 3

    first = asyncio.run(train_with_dashboard_async(config, dashboard=dash))
    assert shown == [dash]
    assert dash.draw and dash.text is None  # pictures, not text, in a notebook
    assert first.stopped and first.step == 3
    assert first.checkpoint_path == checkpoint_prefix(config.train_dir, "tiny_conv", 3)
    assert dash.stop_button.description == "Stopped"
    assert dash.status.value.startswith("step 3/10 · stopped · saved tiny_conv.ckpt-3")

    # What the lesson tells a student who pressed Stop: the same settings, start_checkpoint.
    dash.click_at = 0
    resumed = asyncio.run(train_with_dashboard_async(
        config.__class__(**{**config.to_dict(), "start_checkpoint": first.checkpoint_path}),
        dashboard=dash))
    assert shown == [dash, dash]
    assert not resumed.stopped and resumed.step == 10
    assert dash.history.steps == list(range(4, 11)), "the resumed run starts after the stop"
    assert [s for s, _ in dash.history.validation] == [5, 10]
    assert dash.history.rates[dash.history.steps.index(7)] == pytest.approx(0.002)
    assert dash.progress.value == dash.progress.max == 10
    assert dash.stop_button.description == "Done"
    assert dash.status.value.startswith("step 10/10 · done · saved tiny_conv.ckpt-10")
    assert latest_checkpoint(config.train_dir, "tiny_conv") == resumed.checkpoint_path
    assert dash.renders["confusion"] >= 1 and bytes(dash.curves_image.value)[:4] == b"\x89PNG"


def test_the_learning_rate_checker_accepts_the_schedule_and_explains_a_mistake(capsys):
    def right(step, steps, rates):
        end = 0
        for n, r in zip(steps.split(","), rates.split(",")):
            end += int(n)
            if step <= end:
                return float(r)
        return float(rates.split(",")[-1])

    check_03_learning_rate(right)
    assert capsys.readouterr().out == (
        "Exercise 03.1 passed: your learning rates match the schedule at 14 steps\n")

    def off_by_one(step, steps, rates):  # a phase's last step already takes the next rate
        return right(step + 1, steps, rates)

    with pytest.raises(AssertionError, match=r"step 15000 .* the schedule says 0.001.*running"):
        check_03_learning_rate(off_by_one)
    with pytest.raises(AssertionError, match="Return a float"):
        check_03_learning_rate(lambda step, steps, rates: rates.split(",")[0])
