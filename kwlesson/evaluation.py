"""How good is a trained model, and where does it go wrong?

Evaluates a checkpoint written by :mod:`kwlesson.training` on a split of its own data set (the
same split, labels and features it was trained with, read from ``<arch>_config.json`` next to
the checkpoint) or on any folder in the canonical test-set layout (one folder per word plus
``_silence_/`` and ``_unknown_/``; folders of other words count as unknown). Reports accuracy,
the confusion matrix (rows truth, columns prediction, as the seed prints it), precision and
recall per label and the most confused pairs; :meth:`Evaluation.to_dict` is JSON-ready.

Introduced in notebook 04.

>>> from kwlesson.evaluation import evaluate  # doctest: +SKIP
>>> ev = evaluate("/tmp/speech_commands_train/conv.ckpt-18000",  # doctest: +SKIP
...               folder="speech_commands_test_set_v0.02")
>>> print(ev.format())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from kwlesson.progress import format_confusion
from kwlesson.runs import TrainedModel, load_trained
from kwlesson.training import load_data

__all__ = ["Evaluation", "confusion_metrics", "evaluate", "evaluate_model"]


@dataclass
class Evaluation:
    """Accuracy and where the errors are. Fractions in [0, 1]; None where undefined
    (precision of a label never predicted, recall of a label with no clips)."""

    labels: list[str]
    confusion: np.ndarray
    accuracy: float
    n: int
    precision: dict[str, float | None]
    recall: dict[str, float | None]
    support: dict[str, int]
    confused_pairs: list[dict[str, Any]]
    source: str = ""
    checkpoint: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, for ``json.dumps``.

        >>> import json
        >>> ev = confusion_metrics(np.array([[3, 1], [0, 4]]), ["a", "b"])
        >>> json.loads(json.dumps(ev.to_dict()))["confusion"]
        [[3, 1], [0, 4]]
        """
        d = dataclasses.asdict(self)
        d["confusion"] = np.asarray(self.confusion).astype(int).tolist()
        return d

    def format(self, pairs: int = 5, paths: bool = True) -> str:
        """A short text report: accuracy, per-label table, most confused pairs, the matrix.
        ``paths=False`` names the checkpoint and the data without their folders (for a lesson,
        where a cache path says nothing to the reader).

        >>> print(confusion_metrics(np.array([[3, 1], [0, 4]]), ["a", "b"]).format())
        Accuracy 87.5% (N=8)
        label      precision   recall      n
        a             100.0%    75.0%      4
        b              80.0%   100.0%      4
        Most confused (truth -> predicted): a -> b 1 (25.0% of a)
        Confusion Matrix (rows truth, columns prediction):
         [[3 1]
         [0 4]]
        """
        pct = lambda v: "-" if v is None else f"{v * 100:.1f}%"  # noqa: E731
        source, checkpoint = self.source, self.checkpoint
        if not paths:
            source = source.split(" of ")[0] if " of " in source else Path(source).name
            checkpoint = Path(checkpoint).name
        where = f" on the {source}" if not paths and source else f" on {source}" if source else ""
        model = f"{checkpoint}{where}: " if checkpoint else ""
        lines = [f"{model}Accuracy {self.accuracy * 100:.1f}% (N={self.n})"]
        width = max(9, *(len(lab) for lab in self.labels))
        lines.append(f"{'label':<{width}} {'precision':>10} {'recall':>8} {'n':>6}")
        for lab in self.labels:
            lines.append(f"{lab:<{width}} {pct(self.precision[lab]):>10} "
                         f"{pct(self.recall[lab]):>8} {self.support[lab]:>6}")
        shown = [f"{p['truth']} -> {p['predicted']} {p['count']} "
                 f"({p['share_of_truth'] * 100:.1f}% of {p['truth']})"
                 for p in self.confused_pairs[:pairs]]
        lines.append("Most confused (truth -> predicted): " + ("; ".join(shown) or "none"))
        lines.append("Confusion Matrix (rows truth, columns prediction):\n "
                     + format_confusion(self.confusion))
        return "\n".join(lines)


def confusion_metrics(confusion: np.ndarray, labels: list[str], source: str = "",
                      checkpoint: str = "", top: int = 10) -> Evaluation:
    """Accuracy, precision, recall and the ``top`` most confused pairs from a confusion matrix.

    >>> ev = confusion_metrics(np.array([[5, 0, 0], [2, 6, 1], [0, 3, 3]]), ["x", "y", "z"])
    >>> round(ev.accuracy, 3), ev.recall["y"], ev.confused_pairs[0]["truth"]
    (0.7, 0.6666666666666666, 'z')
    """
    m = np.asarray(confusion, np.int64)
    if m.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion matrix is {m.shape} but there are {len(labels)} labels")
    n = int(m.sum())
    diag = np.diag(m)
    predicted, actual = m.sum(axis=0), m.sum(axis=1)
    precision = {lab: (float(diag[i] / predicted[i]) if predicted[i] else None)
                 for i, lab in enumerate(labels)}
    recall = {lab: (float(diag[i] / actual[i]) if actual[i] else None)
              for i, lab in enumerate(labels)}
    off = [(int(m[i, j]), i, j) for i in range(len(labels)) for j in range(len(labels))
           if i != j and m[i, j] > 0]
    off.sort(key=lambda t: (-t[0], t[1], t[2]))
    pairs = [{"truth": labels[i], "predicted": labels[j], "count": c,
              "share_of_truth": float(c / actual[i])} for c, i, j in off[:top]]
    return Evaluation(labels=list(labels), confusion=m,
                      accuracy=float(diag.sum() / n) if n else 0.0, n=n, precision=precision,
                      recall=recall,
                      support={lab: int(actual[i]) for i, lab in enumerate(labels)},
                      confused_pairs=pairs, source=source, checkpoint=checkpoint)


def evaluate_model(model: Any, dataset: tf.data.Dataset, labels: list[str], source: str = "",
                   checkpoint: str = "") -> Evaluation:
    """Run ``model`` (logits out) over batches of (features, label index) and score it.

    >>> batches = data.dataset("testing", tm.settings)  # doctest: +SKIP
    >>> ev = evaluate_model(tm.model, batches, tm.labels)  # doctest: +SKIP
    """
    shape = tuple(model.input_shape[1:])

    @tf.function(input_signature=[tf.TensorSpec([None, *shape], tf.float32)])
    def predict(x: tf.Tensor) -> tf.Tensor:
        return tf.argmax(model(x, training=False), axis=-1, output_type=tf.int32)

    total = np.zeros((len(labels), len(labels)), np.int64)
    for x, y in dataset:
        np.add.at(total, (np.asarray(y, np.int64), predict(tf.cast(x, tf.float32)).numpy()), 1)
    return confusion_metrics(total, labels, source=source, checkpoint=checkpoint)


def _folder_data(folder: Path, tm: TrainedModel) -> Any:
    from kwlesson.data import SpeechCommands

    words = tm.labels[2:]  # after _silence_ and _unknown_, as prepare_words_list orders them
    cfg = tm.config
    # Every clip goes to 'testing' (100 %), every silence / unknown clip is kept as it is.
    return SpeechCommands(folder, wanted_words=words, silence_percentage=None,
                          unknown_percentage=None, validation_percentage=0.0,
                          testing_percentage=100.0, seed=cfg.seed,
                          sample_rate=tm.settings.sample_rate,
                          clip_duration_ms=tm.settings.clip_duration_ms)


def evaluate(checkpoint: str | os.PathLike | TrainedModel, *, split: str = "testing",
             folder: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
             batch_size: int = 100) -> Evaluation:
    """Evaluate a checkpoint (prefix, train_dir or :class:`TrainedModel`) on a split or folder.

    With ``folder``: every clip in that canonical test-set layout. Otherwise the ``split``
    ('training', 'validation' or 'testing') of the data set it was trained on (``data_dir``
    overrides where that data set is now).

    >>> ev = evaluate("/tmp/speech_commands_train", split="validation")  # doctest: +SKIP
    >>> ev.accuracy, ev.confused_pairs[0]  # doctest: +SKIP
    """
    tm = checkpoint if isinstance(checkpoint, TrainedModel) else load_trained(checkpoint)
    if folder is not None:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: evaluation folder not found")
        data = _folder_data(folder, tm)
        split, source = "testing", os.fspath(folder)
    else:
        if split not in ("training", "validation", "testing"):
            raise ValueError(f"split must be training, validation or testing, not {split!r}")
        cfg = tm.config
        if data_dir is not None:
            cfg = dataclasses.replace(cfg, data_dir=os.fspath(data_dir))
        data = load_data(cfg)
        source = f"{split} split of {cfg.data_dir}"
    if list(data.labels) != tm.labels:
        raise ValueError(f"{source}: labels {data.labels} differ from the model's {tm.labels}")
    if not len(data.index[split]):
        raise ValueError(f"{source}: no clips to evaluate")
    ds = data.dataset(split, tm.settings, batch_size=batch_size, shuffle=False, augment=False,
                      repeat=False)
    return evaluate_model(tm.model, ds, tm.labels, source=source,
                          checkpoint=tm.checkpoint_path)
