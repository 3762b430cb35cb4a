"""Notebook 05's what-if panel, driven from code: move the sliders, press Retrain, and a new
row with those settings appears in the results, the table and the chart. Also the exercise
checker of notebook 05.

The runs train tiny_conv for a few steps on generated tones (a few seconds each), with the
result cache off unless a test is about the cache."""

from __future__ import annotations

import pytest
from tone_corpus import make_steady_tone_corpus

from kwlesson.checks import check_05_quota
from kwlesson.what_if import WHAT_IF_METRICS, WHAT_IF_REPR, WhatIf, what_if

PNG = b"\x89PNG\r\n\x1a\n"
WORDS = ("yes", "no")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two tone 'words', two 'other words' (unknown) and a noise clip; 40 clips per word."""
    return make_steady_tone_corpus(tmp_path_factory.mktemp("corpus"), WORDS + ("cat", "dog"),
                                   per_word=40, base_hz=400.0, tag="ab", noise_level=0.3,
                                   noise_samples=48000)


@pytest.fixture(scope="module")
def panel(corpus, tmp_path_factory):
    return what_if(corpus, wanted_words=",".join(WORDS), steps=8, batch_size=16,
                   architecture="tiny_conv", cache=False, work_dir=tmp_path_factory.mktemp("runs"))


def test_the_panel_starts_at_the_seeds_defaults_with_no_runs(panel):
    assert isinstance(panel, WhatIf) and repr(panel) == WHAT_IF_REPR
    assert repr(panel.widget) == WHAT_IF_REPR  # the text nbval compares
    assert (panel.unknown_slider.value, panel.silence_slider.value) == (10, 10)
    assert (panel.volume_slider.value, panel.frequency_slider.value) == (0.1, 0.8)
    assert panel.results == [] and "No runs yet" in panel.table.value
    assert panel.table_text().splitlines() == [panel.table_text()]  # a header, no rows


def test_sliders_then_retrain_add_a_row_with_those_settings(panel):
    panel.unknown_slider.value = 30
    panel.silence_slider.value = 0
    panel.volume_slider.value = 0.5
    panel.frequency_slider.value = 1.0
    config = panel.config()
    assert (config.unknown_percentage, config.silence_percentage) == (30, 0)
    assert (config.background_volume, config.background_frequency) == (0.5, 1.0)

    before = len(panel.results)
    panel.retrain_button.click()
    assert len(panel.results) == before + 1, panel.status.value
    row = panel.results[-1]
    assert row["run"] == before + 1
    assert (row["unknown_percentage"], row["silence_percentage"]) == (30, 0)
    assert (row["background_volume"], row["background_frequency"]) == (0.5, 1.0)
    for name in WHAT_IF_METRICS:
        assert 0.0 <= row[name] <= 1.0, name
    # No silence in training: the model never learns to answer silence.
    assert row["silence"] == 0.0
    assert panel.status.value.startswith(f"run {row['run']} done: accuracy ")
    assert not panel.retrain_button.disabled
    assert panel.progress.value == panel.progress.max == 8
    assert bytes(panel.image.value).startswith(PNG) and panel.image.layout.display is None
    assert panel.table.value.count("<tr>") == len(panel.results) + 1  # header + one per run
    last_line = panel.table_text().splitlines()[-1].split()
    assert last_line[:5] == [str(row["run"]), "30", "0", "0.50", "1.0"]


def test_the_yardstick_is_the_same_for_every_run(panel):
    # Whatever the sliders say, every run is measured on the same clips.
    panel.unknown_slider.value = 0
    panel.silence_slider.value = 50
    panel.retrain_button.click()
    panel.unknown_slider.value = 10
    panel.silence_slider.value = 10
    panel.retrain_button.click()
    assert len(panel.results) >= 2
    assert panel.results[-2]["unknown"] == 0.0  # never trained on unknown: never answers it
    n = panel.last.confusion.sum()
    assert n == len(panel._yardstick.index["validation"]) > 0
    assert [r["run"] for r in panel.results] == list(range(1, len(panel.results) + 1))
    assert len(panel.figure().axes[0].get_xticklabels()) == len(panel.results)


def test_the_same_settings_give_the_same_row(corpus, tmp_path):
    rows = []
    for k in range(2):
        wi = WhatIf(corpus, wanted_words=",".join(WORDS), steps=6, batch_size=16,
                    architecture="tiny_conv", cache=False, work_dir=tmp_path / f"w{k}")
        wi.retrain_button.click()
        rows.append({name: wi.results[-1][name] for name in WHAT_IF_METRICS})
    assert rows[0] == rows[1]


def test_several_seeds_give_a_mean_and_a_spread_per_column(corpus, tmp_path):
    from kwlesson.runs import TrainConfig
    from kwlesson.training import QUICK_RECIPE

    wi = WhatIf(corpus, wanted_words=",".join(WORDS), steps=6, batch_size=16, seeds=3,
                cache=False, work_dir=tmp_path)
    quick = TrainConfig(**QUICK_RECIPE)
    assert wi.base.model_architecture == quick.model_architecture
    assert wi.base.window_stride_ms == quick.window_stride_ms
    assert wi.base.optimizer == quick.optimizer
    wi.retrain_button.click()
    row = wi.results[-1]
    assert row["seeds"] == 3 and set(row["spread"]) == set(WHAT_IF_METRICS)
    assert all(v >= 0 for v in row["spread"].values())
    assert wi.progress.value == wi.progress.max == 18
    spread_line = wi.table_text().splitlines()[-1]
    assert "between 3 seeds" in spread_line
    assert "±" in wi.table.value
    # One seed: no spread to show, and it is zero.
    one = WhatIf(corpus, wanted_words=",".join(WORDS), steps=6, batch_size=16,
                 architecture="tiny_conv", cache=False, work_dir=tmp_path / "one")
    one.retrain_button.click()
    assert one.results[-1]["spread"] == dict.fromkeys(WHAT_IF_METRICS, 0.0)
    assert "between" not in one.table_text()
    with pytest.raises(ValueError, match="seeds must be 1 or more"):
        WhatIf(corpus, seeds=0)


def test_a_run_already_made_comes_from_the_cache(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("KWLESSON_HOME", str(tmp_path / "home"))

    def panel(k):
        return WhatIf(corpus, wanted_words=",".join(WORDS), steps=6, batch_size=16,
                      architecture="tiny_conv", work_dir=tmp_path / f"w{k}")

    first = panel(0)
    first.retrain_button.click()
    assert len(list((tmp_path / "home" / "what_if").glob("*.json"))) == 1

    def broken(*args, **kwargs):
        raise AssertionError("trained again although the run is cached")

    monkeypatch.setattr("kwlesson.what_if.train", broken)
    second = panel(1)
    second.retrain_button.click()
    assert second.status.value.startswith("run 1 done"), second.status.value
    same = [name for name in WHAT_IF_METRICS
            if second.results[-1][name] == first.results[-1][name]]
    assert same == list(WHAT_IF_METRICS)
    assert (second.last.confusion == first.last.confusion).all()
    # Other settings are another run: trained (here: the broken stand-in, shown to the student).
    second.unknown_slider.value = 40
    second.retrain_button.click()
    assert second.status.value.startswith("Retrain failed: trained again")
    # A damaged entry is retrained, never trusted.
    for path in (tmp_path / "home" / "what_if").glob("*.json"):
        path.write_text("{not json")
    third = panel(2)
    third.retrain_button.click()
    assert third.status.value.startswith("Retrain failed: trained again")


def test_a_failed_run_is_shown_not_lost(panel, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("no clips for wanted word 'zebra'")

    monkeypatch.setattr("kwlesson.what_if.train", broken)
    before = len(panel.results)
    panel.retrain_button.click()
    assert len(panel.results) == before
    assert panel.status.value == "Retrain failed: no clips for wanted word 'zebra'"
    assert not panel.retrain_button.disabled  # the student can press again


def test_the_quota_checker(capsys):
    import math

    check_05_quota(lambda n, percentage: math.ceil(n * percentage / 100))
    assert capsys.readouterr().out == (
        "Exercise 05.1 passed: your quotas match the data set's for 8 cases\n")
    with pytest.raises(AssertionError, match="round up"):
        check_05_quota(lambda n, percentage: int(n * percentage / 100))

    def placeholder(n, percentage):  # the student copy's cell, left as it is
        raise NotImplementedError()

    with pytest.raises(AssertionError, match=r"replace `raise NotImplementedError\(\)`"):
        check_05_quota(placeholder)
