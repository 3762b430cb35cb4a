"""Checking an export folder: every file run on a data split, and the promises kept.

:func:`verify` runs the Keras model (rebuilt from its checkpoint), the float and int8 LiteRT
files and the micro model (in LiteRT and, where installed, in TensorFlow Lite Micro) on the
same clips and reports accuracies and top-1 agreements; :func:`format_verification` turns that
report into the lines lesson 07 prints.

Introduced in notebook 07.

>>> report = verify("/tmp/kws", split="validation")  # doctest: +SKIP
>>> print(format_verification(report))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from kwlesson.export import (
    FLOAT_TFLITE,
    INT8_TFLITE,
    LABELS_FILE,
    MICRO_TFLITE,
    MODEL_CARD,
    SAVED_MODEL_DIR,
    export_folder,
    load_labels,
    load_model_card,
    micro_input,
    run_data,
)
from kwlesson.features import FeatureSettings, compute_features
from kwlesson.quantization import MIN_MICRO_AGREEMENT, keras_logits
from kwlesson.runtime import (
    MicroRuntimeError,
    TFLiteModel,
    litert_interpreter,
    micro_in_both_runtimes,
)

__all__ = ["MAX_INT8_DROP", "MIN_FLOAT_AGREEMENT", "MIN_INT8_LINE_CLIPS", "MIN_MICRO_AGREEMENT",
           "flips", "format_verification", "int8_line", "plain_verification", "rounded_scores",
           "score_quantization", "verify"]


#: verify()'s thresholds, the promises this module makes about its files.
MIN_FLOAT_AGREEMENT = 0.995


MAX_INT8_DROP = 0.01


#: The int8 line is judged on at least this many clips where the data has them: with 1.5-3%
#: of decisions flipping between float and int8, the drop on a few hundred clips has a
#: standard error of 0.5-1 point, so a 1-point line on one small split is crossed by chance
#: (benchmarks/RESULTS.md, "Verification"). Smaller held-out splits are pooled.
MIN_INT8_LINE_CLIPS = 600
#: The splits pooled for the int8 line, in this order.
HELD_OUT = ("validation", "testing")


def verify(
    export_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    *,
    data: Any = None,
    split: str = "validation",
    max_clips: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    micro: bool = True,
) -> dict[str, Any]:
    """Run every exported model on a split and check the promises made about them.

    Reference: the Keras model rebuilt from the checkpoint named in the model card (or
    ``checkpoint``), fed features from ``compute_features``; if the checkpoint is gone, the
    SavedModel. The micro model gets the same features through :func:`micro_input` (bin 0
    divided as its card says), as firmware would feed it. Returns accuracies (``keras``,
    ``float``, ``int8``, ``micro`` in LiteRT, ``micro_tflm`` in TensorFlow Lite Micro),
    agreements of top-1 predictions, and ``checks``:

    * ``float_agrees_with_keras``: float LiteRT and Keras agree on >= 99.5% of clips;
    * ``int8_within_1_point``: int8 accuracy is at most 1 point below float, judged on
      ``int8_line``'s clips: the split itself, or, when it is made of held-out splits and
      either held-out split alone has fewer than ``MIN_INT8_LINE_CLIPS`` clips, validation and
      testing pooled (float and int8 are run on the other split too; not with ``max_clips``).
      ``int8_line`` says which clips and how many, both accuracies, the drop, the top-1
      agreement of int8 with float there, and the sign test on its flips (what the verdict
      means where even the pool is small);
    * ``micro_runs_in_tflm``: the micro model runs in TensorFlow Lite Micro and agrees with
      LiteRT on >= 99% of clips (None when ``tflite-micro`` is not installed). The comparison
      is with LiteRT's built-in kernels, which share TensorFlow Lite Micro's int8 arithmetic
      (they agree bit for bit, but for a one-step difference in how each rounds an int8
      SUM or ADD now and then); LiteRT's default XNNPACK delegate rounds some int8 ops
      differently, which flips near ties (``micro_tflm_vs_litert_xnnpack``, reported too).

    ``passed`` is True when every check that ran passed. Accuracies: ``keras``, ``float``,
    ``int8``, ``micro`` (LiteRT defaults), ``micro_litert_builtin``, ``micro_tflm``, and
    ``keras_scores_rounded``: Keras' scores (before the softmax) rounded to the int8 file's
    score step, the int8 error no better calibration of the network can remove (clips whose
    two best scores lie within a step tie or swap); ``score_rounding_flips`` counts its flips
    as ``int8_flips`` counts the int8 file's. ``data_dir``: the data set (default:
    the run's); ``data``: a loaded :class:`kwlesson.data.SpeechCommands` instead.
    ``split``: a split name, or several joined by ``+`` (``"validation+testing"``: every
    held-out clip, when one split is too small for a 1-point check to mean much).
    ``max_clips``: a random subset of the split, for speed.

    >>> report = verify("/tmp/kws")  # doctest: +SKIP
    >>> report["accuracy"]["int8"], report["passed"]  # doctest: +SKIP
    (0.871, True)
    """
    from kwlesson.runs import TrainConfig, load_trained

    d = export_folder(Path(export_dir))
    card = load_model_card(d)
    if card is None:
        raise FileNotFoundError(f"{d / MODEL_CARD}: model card not found; is {d} a folder "
                                "written by freeze?")
    labels = load_labels(d, expected=len(card["labels"]))
    if labels != card["labels"]:
        raise ValueError(f"{d / LABELS_FILE}: labels {labels} differ from the model card's "
                         f"{card['labels']}")
    settings = FeatureSettings.from_dict(card["feature_settings"])
    config = TrainConfig.from_dict(card["train_config"])
    if data is None:
        data = run_data(config, data_dir)
    if list(data.labels) != labels:
        raise ValueError(f"{data.data_dir}: its labels {list(data.labels)} differ from the "
                         f"model's {labels}")
    # "validation+testing": both held-out splits, for a verdict on more clips.
    names = [name.strip() for name in split.split("+")]
    parts = [data.arrays(name) for name in names]
    audio = np.concatenate([a for a, _ in parts])
    truth = np.concatenate([t for _, t in parts])
    if max_clips is not None and len(audio) > max_clips:
        pick = np.sort(np.random.default_rng(0).choice(len(audio), max_clips, replace=False))
        audio, truth = audio[pick], truth[pick]
    if len(audio) == 0:
        raise ValueError(f"{data.data_dir}: the {split} split is empty")
    features = np.concatenate([compute_features(audio[i:i + 256], settings).numpy()
                               for i in range(0, len(audio), 256)])

    ckpt = checkpoint or card.get("checkpoint")
    keras_probs, reference, logits = None, None, None
    if ckpt and Path(str(ckpt) + ".index").exists() or (ckpt and Path(ckpt).is_dir()):
        trained = load_trained(ckpt)
        logits = keras_logits(trained.model, features)
        keras_probs = tf.nn.softmax(logits).numpy()
        reference = f"keras ({trained.checkpoint_path})"
    else:
        loaded = tf.saved_model.load(str(d / SAVED_MODEL_DIR))
        serve = loaded.signatures["serving_default"]
        keras_probs = np.concatenate([
            serve(audio=tf.constant(audio[i:i + 256]))["probabilities"].numpy()
            for i in range(0, len(audio), 256)])
        reference = f"saved_model ({d / SAVED_MODEL_DIR})"

    preds: dict[str, np.ndarray] = {"keras": keras_probs.argmax(-1)}
    probs: dict[str, np.ndarray] = {"keras": keras_probs}
    score_step = None
    if logits is not None and (d / INT8_TFLITE).is_file():
        # What int8 scores cost even after an exact network: Keras' scores rounded to the
        # int8 file's score step. Clips whose two best scores lie within a step tie or swap.
        score_step, zero = score_quantization(d / INT8_TFLITE)
        if score_step:
            preds["keras_scores_rounded"] = rounded_scores(logits, score_step, zero).argmax(-1)
    runners = {}
    for kind, name, x in (("float", FLOAT_TFLITE, audio), ("int8", INT8_TFLITE, audio),
                          ("micro", MICRO_TFLITE, micro_input(features, card))):
        if (d / name).is_file():
            runners[kind] = TFLiteModel(d / name)
            probs[kind] = runners[kind](x)
            preds[kind] = probs[kind].argmax(-1)
    line = None
    if "float" in preds and "int8" in preds:
        sizes = {name: sum(data.counts(name).values()) for name in HELD_OUT}
        pool = (max_clips is None and set(names) < set(HELD_OUT)
                and min(sizes.values()) < MIN_INT8_LINE_CLIPS)
        # The held-out split not asked for, run through float and int8 only, to pool with.
        more = [data.arrays(name) for name in HELD_OUT
                if pool and name not in names and sizes[name]]
        extra = {k: [runners[k](a).argmax(-1) for a, _ in more] for k in ("float", "int8")}
        line = int8_line(np.concatenate([preds["float"], *extra["float"]]),
                         np.concatenate([preds["int8"], *extra["int8"]]),
                         np.concatenate([truth, *(t for _, t in more)]),
                         "+".join(HELD_OUT) if pool else split,
                         sizes if pool else None)
    tflm_note, max_lsb, micro_failed = None, None, False
    if micro and (d / MICRO_TFLITE).is_file():
        try:
            raw, lite = micro_in_both_runtimes((d / MICRO_TFLITE).read_bytes(),
                                                micro_input(features, card))
        except ImportError as err:
            tflm_note = str(err)
        except MicroRuntimeError as err:
            tflm_note, micro_failed = f"{d / MICRO_TFLITE}: {err}", True
        else:
            preds["micro_tflm"] = raw.argmax(-1)
            preds["micro_litert_builtin"] = lite.argmax(-1)
            max_lsb = int(np.abs(raw.astype(np.int32) - lite.astype(np.int32)).max())

    def agree(a: str, b: str) -> float | None:
        return float(np.mean(preds[a] == preds[b])) if a in preds and b in preds else None

    accuracy = {k: float(np.mean(v == truth)) for k, v in preds.items()}
    agreement = {"float_vs_keras": agree("float", "keras"),
                 "int8_vs_float": agree("int8", "float"),
                 "micro_vs_keras": agree("micro", "keras"),
                 "micro_tflm_vs_litert": agree("micro_tflm", "micro_litert_builtin"),
                 "micro_tflm_vs_litert_xnnpack": agree("micro_tflm", "micro"),
                 "keras_scores_rounded_vs_keras": agree("keras_scores_rounded", "keras")}
    checks: dict[str, bool | None] = {
        "float_agrees_with_keras": (None if agreement["float_vs_keras"] is None
                                    else agreement["float_vs_keras"] >= MIN_FLOAT_AGREEMENT),
        "int8_within_1_point": None if line is None else line["within_1_point"],
        "micro_runs_in_tflm": (False if micro_failed
                               else None if agreement["micro_tflm_vs_litert"] is None
                               else agreement["micro_tflm_vs_litert"] >= MIN_MICRO_AGREEMENT),
    }
    max_diff = (float(np.abs(probs["float"] - probs["keras"]).max())
                if "float" in probs else None)
    return {
        "export_dir": str(d), "split": split, "clips": len(audio),
        "reference": reference, "accuracy": accuracy, "agreement": agreement,
        "max_probability_difference_float_vs_keras": max_diff,
        "max_int8_difference_tflm_vs_litert": max_lsb,
        "int8_flips": flips(preds, truth),
        "int8_line": line,
        "int8_score_step": score_step,
        "score_rounding_flips": (None if "keras_scores_rounded" not in preds else
                                 flips(preds, truth, "keras", "keras_scores_rounded")),
        "checks": checks, "passed": all(v for v in checks.values() if v is not None),
        "notes": [tflm_note] if tflm_note else [],
    }


def int8_line(float_preds: np.ndarray, int8_preds: np.ndarray, truth: np.ndarray, split: str,
              pooled: dict[str, int] | None = None) -> dict[str, Any]:
    """The int8 line on these clips: float's and int8's accuracy, the drop (points), their top-1
    agreement, the flips with their sign test, and whether int8 stays within 1 point of float.
    ``pooled``: clips per split where held-out splits were pooled (None: one split asked for).

    >>> int8_line(np.array([1, 1]), np.array([1, 0]), np.array([1, 1]), "testing")["drop"]
    50.0
    """
    acc_float = float(np.mean(float_preds == truth))
    acc_int8 = float(np.mean(int8_preds == truth))
    return {
        "split": split, "clips": len(truth), "pooled": pooled,
        "accuracy": {"float": acc_float, "int8": acc_int8},
        "drop": 100 * (acc_float - acc_int8),
        "int8_vs_float_agreement": float(np.mean(float_preds == int8_preds)),
        "flips": flips({"float": float_preds, "int8": int8_preds}, truth),
        "within_1_point": acc_float - acc_int8 <= MAX_INT8_DROP + 1e-9,
    }


def rounded_scores(scores: np.ndarray, step: float, zero: int) -> np.ndarray:
    """Float scores as an int8 tensor of that step and zero point holds them."""
    return np.clip(np.round(scores / step) + zero, -128, 127).astype(np.int8)


def score_quantization(path: Path) -> tuple[float | None, int]:
    """(scale, zero point) of the int8 scores going into the int8 file's SOFTMAX."""
    interp = litert_interpreter(path, delegate=False)
    tensors = interp.get_tensor_details()
    for op in interp._get_ops_details():
        if op["op_name"] == "SOFTMAX":
            scale, zero = tensors[op["inputs"][0]]["quantization"]
            return (float(scale) or None), int(zero)
    return None, 0


def flips(preds: dict[str, np.ndarray], truth: np.ndarray, a: str = "float",
           b: str = "int8") -> dict[str, Any] | None:
    """Clips right in ``a`` only and in ``b`` only, and how likely so large a difference is
    by chance (two-sided sign test: with the flips falling either way at even odds)."""
    if a not in preds or b not in preds:
        return None
    float_right, int8_right = preds[a] == truth, preds[b] == truth
    only_float = int(np.sum(float_right & ~int8_right))
    only_int8 = int(np.sum(int8_right & ~float_right))
    n, k = only_float + only_int8, max(only_float, only_int8)
    p = 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n)
    return {"right_in_float_only": only_float, "right_in_int8_only": only_int8,
            "p_value": p}


def plain_verification(report: dict[str, Any]) -> str:
    """:func:`verify`'s report for a first-time reader: each file's accuracy and how often it
    gives the answer of the one it came from, the int8 promise, and one verdict line; no
    internal names (:func:`format_verification` has every figure).

    >>> print(plain_verification(report))  # doctest: +SKIP
    """
    acc, agree = report["accuracy"], report["agreement"]
    rows = [("the trained Keras model", "keras", None, None),
            ("the float LiteRT file", "float", "float_vs_keras", "Keras"),
            ("the int8 LiteRT file", "int8", "int8_vs_float", "the float file"),
            ("the micro model in TensorFlow Lite Micro", "micro_tflm", "micro_tflm_vs_litert",
             "LiteRT")]
    lines = [f"On {report['clips']:,} {report['split']} clips:"]
    for name, key, pair, other in rows:
        if acc.get(key) is None:
            continue
        same = ("" if pair is None or agree.get(pair) is None else
                f", the same answer as {other} on {100 * agree[pair]:.1f}% of clips")
        lines.append(f"  {name:<42} {100 * acc[key]:5.1f}% correct{same}")
    line = report.get("int8_line")
    if line:
        where = (" + ".join(f"{n:,} {s}" for s, n in line["pooled"].items())
                 if line["pooled"] else f"{line['clips']:,} {line['split']}")
        verdict = "within" if line["within_1_point"] else "MORE than"
        lines.append(f"  int8 costs {line['drop']:.1f} points on {where} clips: {verdict} the "
                     f"promised 1 point")
    failed = [k for k, v in report["checks"].items() if v is False]
    lines.append("Every promise holds." if not failed else
                 f"Broken promises: {', '.join(failed)} (format_verification has the details).")
    return "\n".join(lines)


def format_verification(report: dict[str, Any]) -> str:
    """A few lines summarising :func:`verify`'s report.

    >>> print(format_verification(report))  # doctest: +SKIP
    """
    lines = [(f"{report['export_dir']}: {report['clips']} {report['split']} clips, "
             f"reference {report['reference']}")]
    for k, v in report["accuracy"].items():
        lines.append(f"  accuracy {k:<21} {100 * v:6.2f}%")
    for k, v in report["agreement"].items():
        if v is not None:
            lines.append(f"  agreement {k:<29} {100 * v:6.2f}%")
    flips = report.get("int8_flips")
    if flips:
        only = flips["right_in_float_only"]
        lines.append(f"  int8 vs float: {only} clip{'' if only == 1 else 's'} right in float "
                     f"only, {flips['right_in_int8_only']} in int8 only (so large a "
                     f"difference by chance: p = {flips['p_value']:.2f})")
    line = report.get("int8_line")
    if line:
        where = (f"{line['split']} pooled ("
                 + " + ".join(f"{n} {s}" for s, n in line["pooled"].items())
                 + f": a held-out split alone has under {MIN_INT8_LINE_CLIPS})"
                 if line["pooled"] else line["split"])
        chance = ("" if line["clips"] >= MIN_INT8_LINE_CLIPS else
                  f"; only {line['clips']} clips: p = {line['flips']['p_value']:.2f} by chance")
        lines.append(f"  int8 line on {line['clips']} clips of {where}: float "
                     f"{100 * line['accuracy']['float']:.2f}%, int8 "
                     f"{100 * line['accuracy']['int8']:.2f}%, drop {line['drop']:.2f} points, "
                     f"top-1 agreement {100 * line['int8_vs_float_agreement']:.2f}%{chance}")
    rounding = report.get("score_rounding_flips")
    if rounding:
        lines.append(f"  Keras' scores rounded to the int8 file's step "
                     f"({report['int8_score_step']:.3f}) alone: "
                     f"{rounding['right_in_float_only']} right in float only, "
                     f"{rounding['right_in_int8_only']} in rounded only (as if everything "
                     "before the scores were exact)")
    for k, v in report["checks"].items():
        lines.append(f"  check {k:<25} {'skipped' if v is None else 'ok' if v else 'FAILED'}")
    lines += [f"  note: {n}" for n in report["notes"]]
    return "\n".join(lines)
