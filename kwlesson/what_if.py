"""Lesson 05's what-if panel: what if the unknown and silence shares or the background noise
were different?

:class:`WhatIf` (:func:`what_if`) has sliders for the unknown and silence percentages and the
background noise's volume and frequency, and a **Retrain** button: each press trains a small
model (the course's quick network, a few hundred steps, once per seed) with the sliders'
settings, measures it on one fixed yardstick and adds a row to a table and a chart, so the
student sees accuracy move and how much of a move is only the seed.

Introduced in notebook 05 (unknown, silence and noise). It is built from the pieces of
:mod:`kwlesson.widgets` (fixed text form ``WhatIf(...)``, off-screen pictures).

>>> from kwlesson.what_if import what_if
>>> panel = what_if("speech_commands_v0.02", steps=120)  # doctest: +SKIP
>>> panel.retrain_button.click()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure

from kwlesson.progress import TrainingObserver
from kwlesson.runs import TrainConfig
from kwlesson.training import QUICK_RECIPE, train
from kwlesson.widgets import FixedRepr, FixedReprBox, Picture

__all__ = ["WHAT_IF_METRICS", "WHAT_IF_REPR", "WhatIf", "what_if"]


# --------------------------------------------------------------------------------------------
# Notebook 05: what if the unknown / silence shares or the background noise were different?

#: The what-if panel's text form, the same on every run (nbval compares it).
WHAT_IF_REPR = "WhatIf(...)"
#: The columns of :attr:`WhatIf.results` after the run number and the four settings.
WHAT_IF_METRICS = ("accuracy", "words", "unknown", "silence", "noisy")


class _RunProgress(TrainingObserver):
    """Moves the panel's progress bar every few steps (one widget message per move); ``offset``
    is the steps of the press's earlier seeds, so one bar covers them all."""

    def __init__(self, bar: Any, every: int = 5, offset: int = 0) -> None:
        self.bar, self.every, self.offset = bar, max(int(every), 1), int(offset)

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if step % self.every == 0 or step == metrics.get("total_steps"):
            self.bar.value = min(self.offset + step, self.bar.max)


class WhatIf(FixedRepr):
    """Sliders for the unknown and silence percentages and the background noise, a **Retrain**
    button, and a table and chart that gain one row per run.

    Each press trains a small model (``architecture``, ``steps`` steps; by default the network,
    features and optimizer of the course's quick recipe) on ``data_dir`` with the sliders'
    settings, once per seed (``seeds`` of them: ``seed``, ``seed + 1``, ...), then measures
    each on one fixed yardstick, the same for every run: the
    validation split as the seed's defaults build it (10% silence, 10% unknown), so that runs
    compare fairly. A row of :attr:`results` holds ``run``, ``unknown_percentage``,
    ``silence_percentage``, ``background_volume``, ``background_frequency`` and, as fractions in
    [0, 1]: ``accuracy`` (all validation clips), ``words`` (clips of the wanted words that were
    named right), ``unknown`` and ``silence`` (recall of those two labels), ``noisy`` (accuracy
    on the same clips with background noise at volume ``noisy_volume`` mixed into every one),
    each the mean over the seeds, with its standard deviation between seeds in ``spread``
    (``{"accuracy": ..., ...}``, zeros for one seed), ``seeds`` and ``seconds`` (time the press
    took). The spread says how large a difference between rows must be to mean something.

    With ``cache=True`` a run's scores are kept under ``data_home()/what_if`` (a few hundred
    bytes each), keyed by every setting, seed and the data folder: the same press on the same
    machine gives the same row at once, as a deterministic retraining would.

    Controls, to use by hand or from code: ``unknown_slider``, ``silence_slider`` (percent),
    ``volume_slider``, ``frequency_slider`` (0 to 1), ``retrain_button``; results:
    ``results`` (list of dicts), ``status`` (label), ``table`` (HTML), ``image`` (PNG chart of
    every run), ``last`` (the :class:`~kwlesson.evaluation.Evaluation` of the latest press's
    first seed). Every press uses the same seeds, so rows differ by their settings and not by
    the luck of the draw (with deterministic TensorFlow ops the same settings give the same
    row). Training holds the kernel meanwhile (the button is greyed out).

    Introduced in notebook 05.

    >>> wi = WhatIf("speech_commands_v0.02", steps=100)  # doctest: +SKIP
    >>> wi.unknown_slider.value = 30  # doctest: +SKIP
    >>> wi.retrain_button.click()  # doctest: +SKIP
    >>> wi.results[-1]["unknown_percentage"]  # doctest: +SKIP
    30
    """

    REPR = WHAT_IF_REPR

    def __init__(self, data_dir: str | Path, *, architecture: str | None = None,
                 wanted_words: str = "yes,no,up,down,left,right,on,off,stop,go",
                 steps: int = 300, learning_rate: float | None = None, batch_size: int = 100,
                 optimizer: str | None = None, window_stride_ms: float | None = None,
                 unknown_percentage: int = 10, silence_percentage: int = 10,
                 background_volume: float = 0.1, background_frequency: float = 0.8,
                 noisy_volume: float = 0.3, seeds: int = 1,
                 unknown_dirs: tuple[str | Path, ...] = (), work_dir: str | Path | None = None,
                 seed: int = 59185, cache: bool = True, dpi: float = 72) -> None:
        import tempfile

        from kwlesson.data import SpeechCommands

        if int(seeds) < 1:
            raise ValueError(f"seeds must be 1 or more, not {seeds}")
        self.data_dir = Path(data_dir)
        self.unknown_dirs = tuple(unknown_dirs)
        self.work_dir = Path(work_dir) if work_dir is not None else Path(
            tempfile.mkdtemp(prefix="kwlesson_what_if_"))
        # The quick recipe's network, features and optimizer unless told otherwise: the model
        # the lessons use, trained for a short run.
        quick = TrainConfig(**QUICK_RECIPE)
        self.base = TrainConfig(
            data_dir=str(self.data_dir), wanted_words=wanted_words,
            model_architecture=architecture or quick.model_architecture,
            window_stride_ms=float(window_stride_ms or quick.window_stride_ms),
            how_many_training_steps=str(int(steps)),
            learning_rate=str(learning_rate or quick.schedule()[0][1]),
            batch_size=int(batch_size), optimizer=optimizer or quick.optimizer,
            eval_step_interval=int(steps), save_step_interval=int(steps), verbosity="warn",
            seed=seed, max_to_keep=1)
        self.base.validate()
        self.seeds = int(seeds)
        self.cache = bool(cache)
        self.noisy_volume = float(noisy_volume)
        # The yardstick: built once, with the seed's default shares, whatever the sliders say.
        self._yardstick = SpeechCommands(self.data_dir, wanted_words=self.base.words(),
                                         unknown_dirs=self.unknown_dirs, seed=seed,
                                         progress=False)
        self.labels = list(self._yardstick.labels)
        self.results: list[dict[str, Any]] = []
        self.last: Any = None
        self._picture = Picture((7.5, 2.8), dpi)

        def slider(kind: Any, description: str, value: float, low: float, high: float,
                   step: float, **extra: Any) -> Any:
            return kind(value=value, min=low, max=high, step=step, description=description,
                        continuous_update=False, style={"description_width": "150px"},
                        layout=widgets.Layout(width="440px"), **extra)

        self.unknown_slider = slider(widgets.IntSlider, "unknown %", unknown_percentage,
                                     0, 100, 5)
        self.silence_slider = slider(widgets.IntSlider, "silence %", silence_percentage,
                                     0, 100, 5)
        self.volume_slider = slider(widgets.FloatSlider, "background volume",
                                    background_volume, 0.0, 1.0, 0.05, readout_format=".2f")
        self.frequency_slider = slider(widgets.FloatSlider, "background frequency",
                                       background_frequency, 0.0, 1.0, 0.1,
                                       readout_format=".1f")
        self.retrain_button = widgets.Button(description="Retrain", button_style="primary",
                                             icon="refresh", tooltip="Train a small model with "
                                             "these settings and add a row to the table")
        self.retrain_button.on_click(lambda _button: self._on_click())
        self.progress = widgets.IntProgress(value=0, min=0, max=int(steps) * self.seeds,
                                            layout=widgets.Layout(width="200px"))
        self.status = widgets.Label("Move the sliders, then press Retrain.")
        self.table = widgets.HTML(self.table_html())
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%",
                                                                       display="none"))
        self.widget = FixedReprBox([
            self.unknown_slider, self.silence_slider, self.volume_slider, self.frequency_slider,
            widgets.HBox([self.retrain_button, self.progress, self.status],
                         layout=widgets.Layout(align_items="center")),
            self.table, self.image], repr_text=self.REPR)

    def config(self) -> TrainConfig:
        """The training settings the sliders describe now (a fresh train_dir per run)."""

        run = len(self.results) + 1
        return dataclasses.replace(
            self.base, unknown_percentage=float(self.unknown_slider.value),
            silence_percentage=float(self.silence_slider.value),
            background_volume=round(float(self.volume_slider.value), 4),
            background_frequency=round(float(self.frequency_slider.value), 4),
            train_dir=str(self.work_dir / f"run{run}"),
            summaries_dir=str(self.work_dir / f"run{run}_logs"))

    def _on_click(self) -> None:
        # A click handler's exception would only reach the kernel's log: show it instead.
        try:
            self.retrain()
        except Exception as err:  # noqa: BLE001  # shown to the student, who can act on it
            self.status.value = f"Retrain failed: {err}"

    def retrain(self) -> dict[str, Any]:
        """Train with the sliders' settings (once per seed), measure, add a row and redraw;
        returns the row."""
        from kwlesson.data import SpeechCommands
        from kwlesson.evaluation import confusion_metrics

        config = self.config()
        run = len(self.results) + 1
        self.retrain_button.disabled = True
        self.progress.value = 0
        seeds = [self.base.seed + k for k in range(self.seeds)]
        self.status.value = (f"run {run}: training {config.total_steps()} steps x {len(seeds)} "
                             f"seed(s) with {self._describe(config)} …")
        t0 = time.monotonic()
        clean, noisy = [], []
        try:
            data = None
            for k, seed in enumerate(seeds):
                one = dataclasses.replace(config, seed=seed,
                                          train_dir=f"{config.train_dir}_seed{seed}",
                                          summaries_dir=f"{config.summaries_dir}_seed{seed}")
                found = self._cached(one)
                if found is None:
                    if data is None:
                        # Decoded anew (seconds): a decode cache per slider setting would pile
                        # up. One clip selection per press: the seeds vary the training only.
                        data = SpeechCommands(
                            self.data_dir, wanted_words=config.words(),
                            silence_percentage=config.silence_percentage,
                            unknown_percentage=config.unknown_percentage,
                            unknown_dirs=self.unknown_dirs, seed=config.seed, cache=False,
                            progress=False)
                    found = self._train_and_measure(one, data, k * config.total_steps())
                clean.append(found[0])
                noisy.append(found[1])
                self.progress.value = (k + 1) * config.total_steps()
        finally:
            self.retrain_button.disabled = False
        evaluations = [confusion_metrics(m, self.labels) for m in clean]
        noisy_evaluations = [confusion_metrics(m, self.labels) for m in noisy]
        words = slice(2, None)  # after _silence_ and _unknown_
        per_seed = {
            "accuracy": [ev.accuracy for ev in evaluations],
            "words": [float(np.trace(ev.confusion[words, words])
                            / max(ev.confusion[words].sum(), 1)) for ev in evaluations],
            "unknown": [ev.recall.get(self.labels[1]) or 0.0 for ev in evaluations],
            "silence": [ev.recall.get(self.labels[0]) or 0.0 for ev in evaluations],
            "noisy": [ev.accuracy for ev in noisy_evaluations],
        }
        row = {"run": run, "unknown_percentage": int(self.unknown_slider.value),
               "silence_percentage": int(self.silence_slider.value),
               "background_volume": config.background_volume,
               "background_frequency": config.background_frequency,
               **{name: float(np.mean(values)) for name, values in per_seed.items()},
               "spread": {name: float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
                          for name, values in per_seed.items()},
               "seeds": len(seeds),
               "seconds": time.monotonic() - t0}
        self.results.append(row)
        self.last = evaluations[0]
        self.table.value = self.table_html()
        self.image.value = self._draw()
        self.image.layout.display = None
        self.status.value = (f"run {run} done: accuracy {100 * row['accuracy']:.0f}% "
                             f"({row['seconds']:.0f} s)")
        return row

    def _train_and_measure(self, config: TrainConfig, data: Any,
                           offset: int) -> tuple[np.ndarray, np.ndarray]:
        """Train one seed and score it on the yardstick, clean and noisy (confusion matrices)."""
        from kwlesson.evaluation import evaluate_model

        result = train(config, _RunProgress(self.progress, offset=offset), data=data)
        settings = result.settings
        clean = self._yardstick.dataset("validation", settings, batch_size=100,
                                        shuffle=False, augment=False, repeat=False)
        # Every clip gets noise, at a fixed volume drawn the same way on every run.
        noisy = self._yardstick.dataset(
            "validation", settings, batch_size=100, shuffle=False, augment=True,
            repeat=False, time_shift_ms=0.0, background_frequency=1.0,
            background_volume=self.noisy_volume, seed=1)
        found = (evaluate_model(result.model, clean, result.labels).confusion,
                 evaluate_model(result.model, noisy, result.labels).confusion)
        self._store(config, found)
        return found

    def _cache_file(self, config: TrainConfig) -> Path | None:
        if not self.cache:
            return None
        import hashlib
        import json

        from kwlesson.config import data_home

        fields = {k: v for k, v in dataclasses.asdict(config).items()
                  if k not in ("train_dir", "summaries_dir", "verbosity")}
        clips = sum(1 for _ in self.data_dir.glob("*/*.wav"))  # a rebuilt folder: a new key
        key = json.dumps({"config": fields, "clips": clips, "noisy": self.noisy_volume,
                          "unknown_dirs": [str(d) for d in self.unknown_dirs], "v": 1},
                         sort_keys=True, default=str)
        return data_home() / "what_if" / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.json"

    def _cached(self, config: TrainConfig) -> tuple[np.ndarray, np.ndarray] | None:
        import json

        path = self._cache_file(config)
        if path is None or not path.exists():
            return None
        try:
            d = json.loads(path.read_text())
            return np.asarray(d["clean"], np.int64), np.asarray(d["noisy"], np.int64)
        except (OSError, ValueError, KeyError):  # a damaged entry is retrained, never trusted
            return None

    def _store(self, config: TrainConfig, found: tuple[np.ndarray, np.ndarray]) -> None:
        import json
        import os

        path = self._cache_file(config)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"clean": found[0].tolist(), "noisy": found[1].tolist()}))
            os.replace(tmp, path)
        except OSError:  # a full or read-only disk: the row is still shown, only not kept
            pass

    @staticmethod
    def _describe(config: TrainConfig) -> str:
        return (f"unknown {config.unknown_percentage:g}%, silence {config.silence_percentage:g}%"
                f", background volume {config.background_volume:g} in "
                f"{100 * config.background_frequency:g}% of clips")

    def table_text(self) -> str:
        """The results as plain text, one line per run (for a terminal or a print)."""
        head = (f"{'run':>3} {'unknown%':>8} {'silence%':>8} {'volume':>6} {'freq':>4} "
                + " ".join(f"{name:>8}" for name in WHAT_IF_METRICS))
        lines = [head]
        for r in self.results:
            lines.append(f"{r['run']:>3} {r['unknown_percentage']:>8} "
                         f"{r['silence_percentage']:>8} {r['background_volume']:>6.2f} "
                         f"{r['background_frequency']:>4.1f} "
                         + " ".join(f"{100 * r[name]:>7.0f}%" for name in WHAT_IF_METRICS))
            if r.get("seeds", 1) > 1:
                lines.append(f"{'':>3} {'± between ' + str(r['seeds']) + ' seeds':>33} "
                             + " ".join(f"{100 * r['spread'][name]:>7.0f} "
                                        for name in WHAT_IF_METRICS))
        return "\n".join(lines)

    def table_html(self) -> str:
        """The results as an HTML table (what the panel shows)."""
        if not self.results:
            return "<i>No runs yet.</i>"
        heads = ["run", "unknown %", "silence %", "volume", "frequency", "accuracy",
                 "words", "unknown", "silence", f"noisy ({self.noisy_volume:g})"]
        cells = "".join(f"<th style='padding:0 8px'>{h}</th>" for h in heads)
        rows = [f"<tr>{cells}</tr>"]
        for r in self.results:
            values = [r["run"], r["unknown_percentage"], r["silence_percentage"],
                      f"{r['background_volume']:.2f}", f"{r['background_frequency']:.1f}"]
            values += [f"{100 * r[name]:.0f}%" + (f" ± {100 * r['spread'][name]:.0f}"
                                                   if r.get("seeds", 1) > 1 else "")
                       for name in WHAT_IF_METRICS]
            rows.append("<tr>" + "".join(f"<td style='text-align:right;padding:0 8px'>{v}</td>"
                                         for v in values) + "</tr>")
        return "<table>" + "".join(rows) + "</table>"

    def figure(self, fig: Figure | None = None) -> Figure:
        """The chart of every run (grouped bars, one group per run); end with plt.show()."""
        if fig is None:
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=(7.5, 2.8))
        fig.clear()
        ax = fig.add_subplot()
        shown = self.results[-8:]  # the latest eight runs keep the bars readable
        width = 0.8 / len(WHAT_IF_METRICS)
        for k, name in enumerate(WHAT_IF_METRICS):
            x = np.arange(len(shown)) + (k - (len(WHAT_IF_METRICS) - 1) / 2) * width
            ax.bar(x, [100 * r[name] for r in shown], width, label=name,
                   yerr=[100 * r.get("spread", {}).get(name, 0.0) for r in shown],
                   error_kw={"elinewidth": 0.8, "capsize": 2})
        ax.set_xticks(range(len(shown)), [f"run {r['run']}" for r in shown])
        seeds = shown[-1].get("seeds", 1) if shown else 1
        ax.set(ylim=(0, 100), ylabel="%", title="every run on the same validation clips"
               + (f" (mean of {seeds} seeds, whiskers: ± 1 sd)" if seeds > 1 else ""))
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=len(WHAT_IF_METRICS), loc="upper center",
                  bbox_to_anchor=(0.5, -0.12), frameon=False)
        fig.tight_layout()
        return fig

    def _draw(self) -> bytes:
        self.figure(self._picture.figure)
        return self._picture.png()


def what_if(data_dir: str | Path, **options: Any) -> WhatIf:
    """A what-if panel: sliders for unknown %, silence %, background volume and frequency, and
    a Retrain button that trains a small model in seconds and adds a row to a results table.
    See :class:`WhatIf` for the options and attributes. Introduced in notebook 05.

    >>> wi = what_if(offline_dataset(), steps=120)  # doctest: +SKIP
    >>> wi.silence_slider.value = 0  # doctest: +SKIP
    >>> wi.retrain_button.click()  # doctest: +SKIP
    >>> print(wi.table_text())  # doctest: +SKIP
    """
    return WhatIf(data_dir, **options)
