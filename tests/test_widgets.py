"""Tests for the live training dashboard (kwlesson.dashboard) and the plot helpers (kwlesson.plots).

The dashboard is driven from code, as train() drives it: fake hooks with a fake clock for the
drawing and throttling, then two tiny real training runs (a few dozen generated tones in
tmp_path) where pressing Stop ends training with a checkpoint at that step.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import threading
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from tone_corpus import make_steady_tone_corpus

from kwlesson import dashboard as dashboard_module
from kwlesson import plots
from kwlesson.dashboard import (
    DASHBOARD_REPR,
    History,
    TrainingDashboard,
    format_progress,
    in_notebook,
    train_with_dashboard,
    train_with_dashboard_async,
)
from kwlesson.progress import TrainingObserver
from kwlesson.runs import TrainConfig, TrainResult, checkpoint_prefix, latest_checkpoint
from kwlesson.training import train

LABELS = ["_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off",
          "stop", "go"]
# The seed tutorial's confusion matrix after 400 steps (rows truth, columns prediction).
SEED_CONFUSION = np.array([
    [258, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [7, 6, 26, 94, 7, 49, 1, 15, 40, 2, 0, 11],
    [10, 1, 107, 80, 13, 22, 0, 13, 10, 1, 0, 4],
    [1, 3, 16, 163, 6, 48, 0, 5, 10, 1, 0, 17],
    [15, 1, 17, 114, 55, 13, 0, 9, 22, 5, 0, 9],
    [1, 1, 6, 97, 3, 87, 1, 12, 46, 0, 0, 10],
    [8, 6, 86, 84, 13, 24, 1, 9, 9, 1, 0, 6],
    [9, 3, 32, 112, 9, 26, 1, 36, 19, 0, 0, 9],
    [8, 2, 12, 94, 9, 52, 0, 6, 72, 0, 0, 2],
    [16, 1, 39, 74, 29, 42, 0, 6, 37, 9, 0, 3],
    [15, 6, 17, 71, 50, 37, 0, 6, 32, 2, 1, 9],
    [11, 1, 6, 151, 5, 42, 0, 8, 16, 0, 0, 20]])
PNG = b"\x89PNG\r\n\x1a\n"


class FakeClock:
    """Time that moves only when told, in steps exact in binary (no rounding surprises)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def metrics(step: int, total: int = 1000, speed: float = 40.0) -> dict[str, float]:
    return {"rate": 0.001, "accuracy": min(1.0, step / total), "cross_entropy": 2.5 / step,
            "total_steps": total, "elapsed": step / speed, "steps_per_second": speed}


def begin(dash: TrainingDashboard, total: int = 1000, start: int = 0) -> None:
    dash.on_train_begin({"config": TrainConfig(model_architecture="tiny_conv"),
                         "labels": LABELS, "settings": None, "start_step": start,
                         "total_steps": total, "train_dir": "/tmp/x", "replicas": 1})


def fake_result(step: int, stopped: bool, path: str = "") -> TrainResult:
    return TrainResult(model=None, labels=LABELS, test_accuracy=0.61, test_confusion=None,
                       checkpoint_path=path, step=step, stopped=stopped, validation=[],
                       settings=None, config=None, train_dir="")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# -- the dashboard, driven by fake hooks --------------------------------------------------------

def test_progress_line_reads_like_the_issue_asks():
    assert format_progress(300, 1200, 41.2) == "step 300/1200 · 41 steps/s · 0:22 left"
    assert format_progress(10, 18000, 2.5) == "step 10/18000 · 2.5 steps/s · 1:59:56 left"
    assert format_progress(1, 1200, 0.0) == "step 1/1200"  # no speed yet: no guess


def test_text_form_never_changes():
    dash = TrainingDashboard(total_steps=20, labels=LABELS, text=False, clock=FakeClock())
    forms = [repr(dash), repr(dash.widget), dash._repr_mimebundle_()["text/plain"]]
    begin(dash, total=20)
    for step in range(1, 21):
        dash.on_step(step, metrics(step, 20))
    dash.on_eval(20, 0.4, SEED_CONFUSION, LABELS)
    dash.stop_button.click()
    forms += [repr(dash), repr(dash.widget), dash._repr_mimebundle_()["text/plain"]]
    assert forms == [DASHBOARD_REPR] * 6
    bundle = dash._repr_mimebundle_()
    # The live view is an ipywidgets view, nothing else: JupyterLab 4 needs no extension.
    assert set(bundle) == {"text/plain", "application/vnd.jupyter.widget-view+json"}
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == \
        dash.widget.model_id


def test_hooks_fill_the_history_and_draw_the_pictures():
    clock = FakeClock()
    dash = TrainingDashboard(text=False, clock=clock, max_overhead=1.0)
    begin(dash, total=100)
    first_curves = bytes(dash.curves_image.value)
    assert first_curves.startswith(PNG) and bytes(dash.confusion_image.value) == b""
    for step in range(1, 51):
        clock.now += 0.125
        dash.on_step(step, metrics(step, 100))
    dash.on_eval(50, 0.263, SEED_CONFUSION, LABELS)

    h = dash.history
    assert h.steps == list(range(1, 51))
    assert h.losses == pytest.approx([2.5 / s for s in range(1, 51)])
    assert h.accuracies == pytest.approx([s / 100 for s in range(1, 51)])
    assert h.validation == [(50, pytest.approx(0.263))]
    np.testing.assert_array_equal(dash.last_confusion, SEED_CONFUSION)
    assert dash.labels == LABELS
    assert bytes(dash.curves_image.value).startswith(PNG)
    assert bytes(dash.curves_image.value) != first_curves  # the curves grew
    assert bytes(dash.confusion_image.value).startswith(PNG)
    assert dash.curves_image.layout.display is None  # shown once drawn

    # The curves drawn are the history's data (smoothed line over the raw one).
    ax_loss, ax_acc = dash._curves.figure.axes
    raw_loss = ax_loss.get_lines()[0]
    np.testing.assert_allclose(raw_loss.get_xdata(), h.steps)
    np.testing.assert_allclose(raw_loss.get_ydata(), h.losses)
    validation_line = ax_acc.get_lines()[-1]
    np.testing.assert_allclose(validation_line.get_xdata(), [50])
    np.testing.assert_allclose(validation_line.get_ydata(), [26.3])
    assert ax_loss.get_xlim() == (0, 100)  # room for the whole run

    dash.on_checkpoint(50, "/tmp/x/tiny_conv.ckpt-50")
    dash.on_test(0.61, SEED_CONFUSION, LABELS)
    dash.on_train_end(fake_result(50, stopped=False, path="/tmp/x/tiny_conv.ckpt-50"))
    assert h.checkpoints == [(50, "/tmp/x/tiny_conv.ckpt-50")]
    assert h.test_accuracy == pytest.approx(0.61)
    assert dash.status.value == ("step 50/100 · done · saved tiny_conv.ckpt-50 · "
                                 "test accuracy 61.0%")
    assert dash.stop_button.disabled and dash.progress.bar_style == "success"


def test_redraws_are_throttled_and_every_evaluation_redraws():
    clock = FakeClock()
    # max_overhead=1 leaves the pace to redraw_seconds alone, so the count is exact.
    dash = TrainingDashboard(redraw_seconds=1.5, text=False, clock=clock, max_overhead=1.0)
    begin(dash, total=1000)
    assert dash.renders == {"curves": 1, "confusion": 0}  # empty axes at the start
    for step in range(1, 1001):  # 1000 steps of 1/64 s: 15.6 s, one redraw per 96 steps
        clock.now += 1 / 64
        dash.on_step(step, metrics(step))
    assert dash.renders == {"curves": 1 + 1000 // 96, "confusion": 0}
    dash.on_eval(1000, 0.5, SEED_CONFUSION, LABELS)  # not throttled
    assert dash.renders == {"curves": 2 + 1000 // 96, "confusion": 1}


def test_slow_drawing_is_redrawn_less_often():
    clock = FakeClock()
    # Any real drawing time is far above 1e-9 of the time: only the start and evals draw.
    dash = TrainingDashboard(text=False, clock=clock, max_overhead=1e-9)
    begin(dash, total=200)
    for step in range(1, 201):
        clock.now += 0.5
        dash.on_step(step, metrics(step, 200))
    assert dash.renders["curves"] == 1
    dash.on_eval(200, 0.5, SEED_CONFUSION, LABELS)
    assert dash.renders == {"curves": 2, "confusion": 1}


def test_progress_bar_and_time_left():
    clock = FakeClock()
    dash = TrainingDashboard(text=False, draw=False, clock=clock, progress_seconds=0.25)
    begin(dash, total=1200)
    assert (dash.progress.value, dash.progress.max) == (0, 1200)
    for step in range(1, 301):
        clock.now += 1 / 32
        dash.on_step(step, metrics(step, 1200, speed=41.0))
    # Updated at the first step, then every 0.25 s (8 steps): not at every step.
    assert dash.progress.value == 297
    clock.now += 1
    dash.on_step(301, metrics(301, 1200, speed=41.0))
    assert dash.progress.value == 301
    assert dash.status.value == "step 301/1200 · 41 steps/s · 0:22 left"
    # The last step always shows, however soon it comes.
    dash.on_step(1200, metrics(1200, 1200, speed=41.0))
    assert dash.progress.value == 1200 and dash.status.value.startswith("step 1200/1200")


def test_resumed_run_starts_the_bar_where_it_left_off():
    dash = TrainingDashboard(text=False, draw=False, clock=FakeClock())
    begin(dash, total=1200, start=400)
    assert dash.progress.value == 400
    assert dash.status.value == "resuming at step 400/1200"


def test_stop_button_sets_the_stop_flag_training_polls():
    dash = TrainingDashboard(text=False, draw=False, clock=FakeClock())
    begin(dash, total=100)
    dash.on_step(1, metrics(1, 100))
    assert not dash.should_stop() and not dash.stop_button.disabled
    dash.stop_button.click()
    assert dash.should_stop() and dash.stop_requested
    assert dash.stop_button.disabled and dash.stop_button.description == "Stopping…"
    assert dash.status.value.endswith("· stopping after this step")
    dash.on_checkpoint(1, "/tmp/x/tiny_conv.ckpt-1")
    assert dash.status.value == "stopped at step 1/100 · saved tiny_conv.ckpt-1"
    dash.on_train_end(fake_result(1, stopped=True, path="/tmp/x/tiny_conv.ckpt-1"))
    assert dash.stop_button.description == "Stopped" and dash.progress.bar_style == "warning"
    begin(dash, total=100)  # a new run with the same dashboard starts unstopped
    assert not dash.should_stop() and not dash.stop_button.disabled


def test_stop_button_is_greyed_out_when_training_blocks_the_kernel(monkeypatch):
    # In a kernel, training on the main thread keeps clicks from being heard; on a worker
    # thread (the awaitable form) the button works.
    monkeypatch.setattr(dashboard_module, "in_notebook", lambda: True)
    dash = TrainingDashboard(text=False, draw=False, clock=FakeClock())
    begin(dash)
    assert dash.stop_button.disabled
    assert dash.stop_button.description == "Stop: press ■ Interrupt"
    worker = threading.Thread(target=begin, args=(dash,))
    worker.start()
    worker.join()
    assert not dash.stop_button.disabled and dash.stop_button.description == "Stop"


def test_outside_a_notebook_the_dashboard_prints_text():
    assert not in_notebook()
    out = io.StringIO()
    dash = TrainingDashboard(stream=out, text_seconds=0)  # default: text, since no notebook
    assert dash.text is not None and not dash.draw
    begin(dash, total=2)
    dash.on_step(1, metrics(1, 2))
    dash.on_eval(1, 0.263, SEED_CONFUSION, LABELS)
    dash.on_checkpoint(1, "/tmp/x/tiny_conv.ckpt-1")
    lines = out.getvalue().splitlines()
    assert lines[0] == "Training tiny_conv on 12 labels, starting, 2 steps in all"
    assert lines[1].startswith("Step #1: rate 0.001000, accuracy 50.0%, cross entropy 2.5")
    assert lines[2] == "Confusion Matrix (validation, step 1; rows truth, columns prediction):"
    assert "Step 1: Validation accuracy = 26.3% (N=3093)" in lines
    assert lines[-1] == 'Saving to "/tmp/x/tiny_conv.ckpt-1"'
    assert dash.renders == {"curves": 0, "confusion": 0}
    assert dash.history.steps == [1]  # the history is kept all the same


def test_dashboard_figures_stay_out_of_pyplot():
    before = plt.get_fignums()
    dash = TrainingDashboard(text=False, clock=FakeClock())
    begin(dash, total=10)
    dash.on_eval(1, 0.5, SEED_CONFUSION, LABELS)
    # A notebook's inline backend shows every pyplot figure at the end of a cell; the
    # dashboard's pictures must not turn up there a second time.
    assert plt.get_fignums() == before


# -- plots ------------------------------------------------------------------------------------

def test_confusion_matrix_rows_are_truth_columns_predictions():
    fig = plots.confusion_matrix(SEED_CONFUSION, LABELS, title="Step 400")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == LABELS
    assert [t.get_text() for t in ax.get_yticklabels()] == LABELS
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted label", "true label")
    shown = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(shown, SEED_CONFUSION / SEED_CONFUSION.sum(1, keepdims=True))
    assert shown[0, 0] == 1.0  # silence is all in its first cell
    assert ax.get_title() == "Step 400: accuracy 26.3% (N=3093)"
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
             for t in ax.texts}
    assert texts[(0, 0)] == "258" and texts[(11, 3)] == "151"  # row 'go', column 'no'
    assert (0, 1) not in texts  # zeros stay blank


def test_confusion_matrix_rejects_bad_shapes():
    with pytest.raises(ValueError, match="square"):
        plots.confusion_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="3 labels for a 2x2"):
        plots.confusion_matrix(np.eye(2), ["a", "b", "c"])


def test_training_curves_plot_the_data_and_update_in_place():
    fig = plots.training_curves([1, 2, 3], [2.5, 2.0, 1.5], [0.1, 0.2, 0.4], [(3, 0.25)],
                                total_steps=10)
    ax_loss, ax_acc = fig.axes
    np.testing.assert_allclose(ax_loss.get_lines()[0].get_ydata(), [2.5, 2.0, 1.5])
    np.testing.assert_allclose(ax_acc.get_lines()[0].get_ydata(), [10, 20, 40])
    np.testing.assert_allclose(ax_acc.get_lines()[-1].get_xydata(), [[3, 25]])
    assert ax_loss.get_xlim() == (0, 10) and ax_acc.get_ylim() == (0, 100)
    lines = ax_loss.get_lines()
    again = plots.training_curves([1, 2, 3, 4], [2.5, 2.0, 1.5, 1.0], [.1, .2, .4, .5],
                                  fig=fig)
    assert again is fig and ax_loss.get_lines() == lines  # same artists, new data
    np.testing.assert_allclose(lines[0].get_xdata(), [1, 2, 3, 4])
    assert len(ax_acc.get_lines()[-1].get_xdata()) == 0  # no validation this time
    with pytest.raises(ValueError, match="differ in length"):
        plots.training_curves([1, 2], [1.0], [0.5, 0.6])


def test_long_runs_are_thinned_but_keep_the_last_step():
    n = 18000
    fig = plots.training_curves(np.arange(1, n + 1), np.ones(n), np.ones(n) / 2)
    x = fig.axes[0].get_lines()[0].get_xdata()
    assert len(x) <= 600 and x[0] == 1 and x[-1] == n


def test_waveform_and_spectrogram():
    rng = np.random.default_rng(0)
    clip = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    ax = plots.waveform(clip, title="noise").axes[0]
    assert (ax.get_xlabel(), ax.get_ylim()) == ("time (s)", (-1.0, 1.0))
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), clip)
    fig = plots.spectrogram(clip)
    # 30 ms windows every 10 ms: the seed's 98 frames; a 512-point FFT gives 257 bins.
    assert np.asarray(fig.axes[0].images[0].get_array()).shape == (257, 98)
    features = rng.standard_normal((98, 40))
    image = plots.spectrogram(features, title="MFCC").axes[0].images[0]
    np.testing.assert_allclose(image.get_array(), features.T)  # time runs to the right
    with pytest.raises(ValueError, match="shape"):
        plots.spectrogram(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="mono"):
        plots.waveform(np.zeros((2, 100)))


def test_plots_return_figures_and_never_show(monkeypatch):
    def no_show(*args, **kwargs):
        raise AssertionError("plots must leave plt.show() to the notebook")

    monkeypatch.setattr(plt, "show", no_show)
    figs = [plots.confusion_matrix(np.eye(3, dtype=int)),
            plots.training_curves([1], [1.0], [0.5]),
            plots.waveform(np.zeros(100)), plots.spectrogram(np.zeros(1600)),
            History(steps=[1], losses=[1.0], accuracies=[0.5]).plot()]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figs)
    assert all(plots.figure_png(f).startswith(PNG) for f in figs)


# -- real training runs on a tiny corpus -------------------------------------------------------

WORDS = ("yes", "no")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A few dozen 1-s tones: one pitch per word, 'cat' becomes _unknown_."""
    return make_steady_tone_corpus(tmp_path_factory.mktemp("corpus"), WORDS + ("cat",),
                                   per_word=12, base_hz=400.0, tag="cd", clip_noise=0.01)


def tiny_config(corpus: Path, run_dir: Path, **changes) -> TrainConfig:
    cfg = TrainConfig(
        data_dir=str(corpus), wanted_words=",".join(WORDS), model_architecture="tiny_conv",
        how_many_training_steps="12", learning_rate="0.01", batch_size=8,
        eval_step_interval=4, save_step_interval=100, optimizer="adam",
        train_dir=str(run_dir / "train"), summaries_dir=str(run_dir / "logs"),
        validation_percentage=25, testing_percentage=25, verbosity="warn", seed=3)
    return dataclasses.replace(cfg, **changes)


class ClickStopAt(TrainingObserver):
    """Presses the dashboard's Stop button after step k, as a student would."""

    def __init__(self, dash: TrainingDashboard, k: int) -> None:
        self.dash, self.k = dash, k

    def on_step(self, step, metrics):
        if step == self.k:
            self.dash.stop_button.click()


def test_stop_button_ends_real_training_with_a_checkpoint_at_that_step(corpus, tmp_path):
    cfg = tiny_config(corpus, tmp_path)
    dash = TrainingDashboard(text=False, max_overhead=1.0)  # draws, as in a notebook
    result = train(cfg, [dash, ClickStopAt(dash, 5)])
    assert result.stopped and result.step == 5
    expected = checkpoint_prefix(cfg.train_dir, "tiny_conv", 5)
    assert result.checkpoint_path == expected
    assert latest_checkpoint(cfg.train_dir, "tiny_conv") == expected
    assert Path(expected + ".index").exists()
    assert dash.history.checkpoints == [(5, expected)]  # no other checkpoint was due
    assert dash.history.steps == [1, 2, 3, 4, 5]
    assert [s for s, _ in dash.history.validation] == [4]
    assert dash.last_confusion.shape == (4, 4)  # silence, unknown, yes, no
    assert dash.renders["confusion"] == 1 and bytes(dash.confusion_image.value).startswith(PNG)
    assert dash.status.value.startswith("step 5/12 · stopped · saved tiny_conv.ckpt-5")
    assert result.test_accuracy is not None  # a stopped run is still tested


def test_stop_from_another_thread_while_training_runs(corpus, tmp_path):
    # As in a notebook cell that awaits: training on a worker thread, the click on this one.
    cfg = tiny_config(corpus, tmp_path, how_many_training_steps="2000",
                      eval_step_interval=1000)
    dash = TrainingDashboard(text=False, draw=False)

    async def press_stop_after_three_steps() -> TrainResult:
        run = asyncio.create_task(train_with_dashboard_async(cfg, dashboard=dash))
        while len(dash.history.steps) < 3 and not run.done():
            await asyncio.sleep(0.01)
        dash.stop_button.click()
        return await run

    result = asyncio.run(press_stop_after_three_steps())
    assert result.stopped and 3 <= result.step < 2000
    assert result.checkpoint_path == checkpoint_prefix(cfg.train_dir, "tiny_conv", result.step)
    assert Path(result.checkpoint_path + ".index").exists()
    assert dash.history.steps[-1] == result.step


def test_train_with_dashboard_outside_a_notebook_prints_the_run(corpus, tmp_path, capsys):
    cfg = tiny_config(corpus, tmp_path, how_many_training_steps="4", verbosity="info")
    result = train_with_dashboard(cfg)
    out = capsys.readouterr().out
    assert isinstance(result, TrainResult) and result.step == 4 and not result.stopped
    assert out.splitlines()[0] == "Training tiny_conv on 4 labels, starting, 4 steps in all"
    assert "Step #4: rate 0.010000" in out
    assert "Step 4: Validation accuracy = " in out
    assert f'Saving to "{checkpoint_prefix(cfg.train_dir, "tiny_conv", 4)}"' in out
    assert "Final test accuracy = " in out
