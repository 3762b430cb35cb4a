"""Freezing a trained keyword spotter for phones and microcontrollers.

The seed tutorial's ``freeze.py`` turns a checkpoint into one compact file for the Android demo.
:func:`freeze` does that for today's runtimes, and writes one folder::

    saved_model/         TensorFlow SavedModel; signature ``serving_default``:
                         audio float32 [16000] or [batch, 16000] -> probabilities [..., labels]
    model_float.tflite   LiteRT, float32: audio [1, 16000] -> probabilities [1, labels]
    model_int8.tflite    LiteRT, int8 weights and activations (float audio in, probabilities out;
                         the feature front end stays float inside):
                         audio [1, 16000] -> probabilities
    model_micro.tflite   int8 features in [1, frames, bins] -> int8 scores [1, labels], for
                         TensorFlow Lite Micro (the device computes the features itself and
                         divides bin 0 by the card's ``micro_input.bin0_divisor``)
    model_data.cc / .h   model_micro.tflite as a C array (``xxd -i`` style, 16-byte aligned)
    labels.txt           one label per line, in output order
    model_card.json      labels, sample rate, feature settings, every file's input and output
                         tensors (name, shape, dtype, scale, zero point), sizes, operators

The audio-in models carry the feature front end inside them: the very same
``kwlesson.features.compute_features`` that training used, with the settings read from the run's
``<arch>_config.json`` (one source of truth), with ``dft="matrix"``: the spectrum as two small
matrix products instead of an FFT (the same numbers to float rounding; LiteRT's RFFT2D op alone
took 0.28 ms of a tiny model's 0.4 ms). It is made of LiteRT built-in operators (GATHER,
FULLY_CONNECTED, MUL, SQRT, LOG, ...), so no custom op is needed on the phone.

The weights are baked in as constants (Keras' ``stateless_call``), which is what "freezing"
meant in the seed's TensorFlow 1 days, and what lets the converter fold batch normalisation
and quantise the weights.

How the files are made (the int8 rules, the candidate networks) is :mod:`kwlesson.quantization`;
:func:`kwlesson.verify.verify` runs every file on a data split and checks the promises made
about them; :func:`kwlesson.label_wav.label_wav` is the seed's label_wav. LiteRT
(``ai_edge_litert``) and TensorFlow Lite Micro run the files through :mod:`kwlesson.runtime`.

Introduced in notebook 07.

>>> from kwlesson.export import freeze  # doctest: +SKIP
>>> result = freeze("/tmp/speech_commands_train/tiny_conv.ckpt-18000", "/tmp/kws")  # doctest: +SKIP
>>> result.files["model_micro.tflite"]  # doctest: +SKIP
PosixPath('/tmp/kws/model_micro.tflite')
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import tensorflow as tf

from kwlesson.android import (
    APP_DIR,
    APP_INT8_DIR,
    APP_LABELS,
    APP_MODEL,
    APP_RECOGNIZE,
    app_contract_problem,
    app_model,
    write_app_int8_files,
)
from kwlesson.features import FeatureSettings, compute_features
from kwlesson.micro_speech import DROPIN_DIR, c_bytes, dropin_files, dropin_problem, example_labels
from kwlesson.quantization import Int8Files, audio_fn, convert, frozen_logits, int8_files
from kwlesson.runtime import TFLiteModel, tflite_tensors

if TYPE_CHECKING:  # only the type: export loads training where it needs it
    from kwlesson.runs import TrainConfig

__all__ = [
    "FLOAT_TFLITE",
    "INT8_TFLITE",
    "INT8_UNSUPPORTED",
    "LABELS_FILE",
    "MICRO_HEADER",
    "MICRO_SOURCE",
    "MICRO_TFLITE",
    "MODEL_CARD",
    "SAVED_MODEL_DIR",
    "FreezeResult",
    "c_array_source",
    "calibration_audio",
    "export_folder",
    "freeze",
    "load_labels",
    "load_model_card",
    "micro_input",
    "run_data",
    "serving_module",
]

SAVED_MODEL_DIR = "saved_model"
FLOAT_TFLITE = "model_float.tflite"
INT8_TFLITE = "model_int8.tflite"
MICRO_TFLITE = "model_micro.tflite"
LABELS_FILE = "labels.txt"
MODEL_CARD = "model_card.json"
MICRO_SOURCE = "model_data.cc"
MICRO_HEADER = "model_data.h"
#: Name of the C array in model_data.cc (the TensorFlow Lite Micro examples' ``g_model``).
MICRO_ARRAY = "g_model"
#: Why a model on 'micro' features has no TF Speech app file (nor float / int8 audio-in ones).
MICRO_NOT_FOR_THE_APP = (
    "its 'micro' front end is TensorFlow's AudioMicrofrontend op, which LiteRT does not have, "
    "so no model file can take the app's audio: train with --preprocess mfcc for the app")
#: Training clips used to calibrate the int8 models' activation ranges.
DEFAULT_CALIBRATION_CLIPS = 300

#: Architectures whose int8 files would be useless, and why: freeze refuses to quantise them.
INT8_UNSUPPORTED: dict[str, str] = {}
# low_latency_svdf was listed here while int8 ranges were min/max over all calibration clips
# (it fell from 53.6% to 23.5%); with averaged ranges it keeps its accuracy (see convert()).
#: freeze warns when the int8 file picks the float file's top label on fewer calibration clips.
MIN_CALIBRATION_AGREEMENT = 0.9


# --------------------------------------------------------------------------------------------
# Building the functions to convert


def serving_module(model: Any, settings: FeatureSettings, labels: Sequence[str]) -> tf.Module:
    """A ``tf.Module`` whose ``serving_default`` takes raw audio of any batch shape.

    ``audio`` float32 in [-1, 1], shaped ``[samples]`` or ``[batch, samples]`` (any leading
    dimensions) with ``samples = settings.desired_samples``; returns ``{"probabilities":
    [..., labels]}``. ``labels()`` returns the label strings.

    >>> m = serving_module(model, FeatureSettings(), labels)  # doctest: +SKIP
    >>> m.serve(tf.zeros([16000]))["probabilities"].shape  # doctest: +SKIP
    TensorShape([12])
    """
    logits = frozen_logits(model)
    samples = settings.desired_samples
    n_labels = len(labels)
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32, name="audio")])
    def serve(audio: tf.Tensor) -> dict[str, tf.Tensor]:
        shape = tf.shape(audio)
        checks = [
            tf.debugging.assert_greater_equal(
                tf.rank(audio), 1, message="audio must be [samples] or [batch, samples]"),
            tf.debugging.assert_equal(
                shape[-1], samples,
                message=f"audio must have {samples} samples ({settings.clip_duration_ms} ms at "
                        f"{settings.sample_rate} Hz) in its last dimension"),
        ]
        with tf.control_dependencies(checks):
            flat = tf.reshape(audio, [-1, samples])
        probs = tf.nn.softmax(logits(compute_features(flat, settings, dft="matrix")))
        out_shape = tf.concat([shape[:-1], [n_labels]], axis=0)
        return {"probabilities": tf.reshape(probs, out_shape)}

    @tf.function(input_signature=[])
    def get_labels() -> tf.Tensor:
        return tf.constant(list(labels))

    module.serve = serve
    module.labels = get_labels
    return module


# --------------------------------------------------------------------------------------------
# Calibration data


def run_data(config: Any, data_dir: str | os.PathLike | None = None) -> Any:
    """The run's data set, split as training split it (same percentages and seed)."""
    from kwlesson.data import SpeechCommands

    folder = Path(data_dir if data_dir is not None else config.data_dir).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: data folder not found; the int8 models are calibrated on training "
            "clips: pass data_dir (--data_dir) or use quantize=False for float files only")
    return SpeechCommands(
        folder, wanted_words=config.words(), silence_percentage=config.silence_percentage,
        unknown_percentage=config.unknown_percentage,
        validation_percentage=config.validation_percentage,
        testing_percentage=config.testing_percentage, seed=config.seed,
        sample_rate=config.sample_rate, clip_duration_ms=config.clip_duration_ms,
        # The run's noise folder, so silence clips sound as they did in training.
        background_dir=config.background_dir or None, progress=False)


def calibration_audio(data: Any, settings: FeatureSettings,
                      count: int = DEFAULT_CALIBRATION_CLIPS, seed: int = 0,
                      augment: TrainConfig | None = None) -> np.ndarray:
    """``count`` random training clips as float32 audio [n, samples], unaugmented, or
    augmented as the run whose settings ``augment`` holds trained: its time shift, background
    volume and frequency.

    >>> calibration_audio(sc, FeatureSettings(), 100).shape  # doctest: +SKIP
    (100, 16000)
    """
    if count < 1:
        raise ValueError(f"calibration needs at least 1 clip, not {count}")
    how = {} if augment is None else {
        "time_shift_ms": augment.time_shift_ms, "background_volume": augment.background_volume,
        "background_frequency": augment.background_frequency}
    ds = data.dataset("training", settings, batch_size=count, shuffle=True,
                      augment=augment is not None, repeat=False, features=False, seed=seed,
                      **how)
    for audio, _ in ds.take(1):
        return np.asarray(audio, np.float32)
    raise ValueError(f"{data.data_dir}: the training split is empty; nothing to calibrate on")


# --------------------------------------------------------------------------------------------
# The C array for TensorFlow Lite Micro


def c_array_source(model: bytes, labels: Sequence[str], settings: FeatureSettings,
                   micro: dict[str, Any], source_note: str = "",
                   bin0_divisor: float = 1.0) -> tuple[str, str]:
    """(model_data.cc, model_data.h) for a micro model: the bytes as an aligned C array
    (``xxd -i`` style) with its length, the labels, the feature shape and the input and output
    quantisation, so firmware needs nothing else from this folder. ``bin0_divisor``: what
    feature bin 0 is divided by before quantising (see :func:`int8_body`; 1: nothing).

    >>> cc, h = c_array_source(tflite, labels, settings, tflite_tensors(tflite))  # doctest: +SKIP
    """
    inp, out = micro["inputs"][0]["quantization"], micro["outputs"][0]["quantization"]
    frames, bins = settings.shape
    guard = "KWLESSON_MODEL_DATA_H_"
    note = f"// {source_note}\n" if source_note else ""
    if settings.normalized:
        def floats(values: Sequence[float]) -> str:
            return ", ".join(f"{v!r}f" for v in values)

        what = (f"normalised features ({settings.preprocess}, then per bin\n"
                "//   x = (feature - kFeatureMean[bin]) / kFeatureScale[bin])")
        norm = (f"constexpr bool kFeatureNormalized = true;\n"
                "constexpr float kFeatureMean[kFeatureBins] = "
                f"{{{floats(settings.feature_mean)}}};\n"
                f"constexpr float kFeatureScale[kFeatureBins] = "
                f"{{{floats(settings.feature_scale)}}};\n")
    else:
        what = f"features ({settings.preprocess})"
        norm = "constexpr bool kFeatureNormalized = false;\n"
    header = f"""\
// The int8 keyword-spotting model for TensorFlow Lite Micro, written by kwlesson.export.
{note}// Input: int8 [1, {frames}, {bins}] {what}, with bin 0 divided by
//   kFeatureBin0Divisor (1 means nothing to do), quantised as
//   q = round(x / kInputScale) + kInputZeroPoint.
// Output: int8 [1, {len(labels)}] scores, probability = (q - kOutputZeroPoint) * kOutputScale.
#ifndef {guard}
#define {guard}

constexpr int kSampleRate = {settings.sample_rate};
constexpr int kClipSamples = {settings.desired_samples};
constexpr int kFeatureFrames = {frames};
constexpr int kFeatureBins = {bins};
constexpr int kLabelCount = {len(labels)};
constexpr float kInputScale = {inp['scale']!r}f;
constexpr int kInputZeroPoint = {inp['zero_point']};
constexpr float kOutputScale = {out['scale']!r}f;
constexpr int kOutputZeroPoint = {out['zero_point']};
{norm}constexpr float kFeatureBin0Divisor = {float(bin0_divisor)!r}f;

extern const char* const kLabels[kLabelCount];
extern const unsigned char {MICRO_ARRAY}[];
extern const unsigned int {MICRO_ARRAY}_len;

#endif  // {guard}
"""
    # json.dumps gives a C-compatible quoted string for printable labels.
    label_list = ", ".join(json.dumps(label) for label in labels)
    source = f"""\
// The int8 keyword-spotting model for TensorFlow Lite Micro, written by kwlesson.export.
{note}#include "{MICRO_HEADER}"

const char* const kLabels[kLabelCount] = {{{label_list}}};

// TensorFlow Lite Micro reads the flatbuffer in place: keep it 16-byte aligned.
alignas(16) const unsigned char {MICRO_ARRAY}[] = {{
{c_bytes(model)}
}};
const unsigned int {MICRO_ARRAY}_len = {len(model)};
"""
    return source, header


# --------------------------------------------------------------------------------------------
# freeze


@dataclass
class FreezeResult:
    """What :func:`freeze` wrote: the folder, each file's path and size, and the model card."""

    output_dir: Path
    files: dict[str, Path]
    card: dict[str, Any]
    seconds: float = 0.0
    sizes: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line per file with its size, for the terminal."""
        lines = [(f"Froze {self.card['model_architecture']} (step {self.card['step']}, "
                 f"{len(self.card['labels'])} labels) into {self.output_dir}")]
        for name, size in self.sizes.items():
            lines.append(f"  {name:<20} {size:>10,} bytes")
        return "\n".join(lines)


def _load_checkpoint(checkpoint: str | os.PathLike, model_architecture: str | None) -> Any:
    """load_trained, with errors that name the architectures involved."""
    from kwlesson.runs import load_trained, read_run_files

    try:
        config, _, _ = read_run_files(checkpoint)
    except FileNotFoundError:
        config = None  # load_trained below says what is missing
    if model_architecture and config is not None \
            and config.model_architecture != model_architecture:
        raise ValueError(
            f"{checkpoint}: this run trained {config.model_architecture} (its "
            f"{config.model_architecture}_config.json says so), not {model_architecture}; "
            f"drop --model_architecture or pass the {model_architecture} checkpoint")
    try:
        trained = load_trained(checkpoint)
    except ValueError as err:
        if config is None or "incompatible" not in str(err) and "shape" not in str(err):
            raise
        found = _guess_architecture(checkpoint, config)
        raise ValueError(
            f"{checkpoint}: the run description says {config.model_architecture}, but the "
            f"checkpoint holds the weights of {found or 'another architecture'} "
            f"({str(err).splitlines()[0]})") from None
    if model_architecture and trained.config.model_architecture != model_architecture:
        raise ValueError(f"{trained.checkpoint_path}: a {trained.config.model_architecture} "
                         f"checkpoint, not {model_architecture}")
    # load_trained tolerates checkpoint values the model does not use (the optimizer's); make
    # sure every weight of the model did come from the checkpoint.
    status = tf.train.Checkpoint(model=trained.model).read(trained.checkpoint_path)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as err:
        raise ValueError(f"{trained.checkpoint_path}: does not hold every weight of a "
                         f"{trained.config.model_architecture} model ({err})") from None
    status.expect_partial()
    return trained


def _guess_architecture(checkpoint: str | os.PathLike, config: Any) -> str | None:
    """The architecture whose weight shapes match the checkpoint's, if one does."""
    from kwlesson import models
    from kwlesson.runs import resolve_checkpoint

    try:
        prefix = resolve_checkpoint(os.fspath(checkpoint), None)
        shapes = sorted(tuple(s) for k, s in tf.train.list_variables(prefix)
                        if k.startswith("optimizer/_trainable_variables/"))
    except (ValueError, FileNotFoundError, tf.errors.OpError):
        return None
    settings = config.feature_settings()
    for arch in models.ARCHITECTURES:
        try:
            model = models.create_model(arch, settings.shape, len(config.words()) + 2)
        except ValueError:
            continue
        if sorted(tuple(v.shape) for v in model.trainable_variables) == shapes:
            return arch
    return None


def _replace_into(tmp: Path, out: Path) -> None:
    """Move every entry of ``tmp`` into ``out``, replacing entries of the same name; files of
    an earlier export that this one did not write (e.g. int8 files after ``quantize=False``)
    are removed, so the folder never mixes two models. Other files are left alone."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (FLOAT_TFLITE, INT8_TFLITE, MICRO_TFLITE, MICRO_SOURCE, MICRO_HEADER):
        if not (tmp / name).exists():
            (out / name).unlink(missing_ok=True)
    for folder in (APP_DIR, DROPIN_DIR):
        if not (tmp / folder).exists():
            shutil.rmtree(out / folder, ignore_errors=True)
    for entry in tmp.iterdir():
        target = out / entry.name
        if target.is_dir() and not target.is_symlink():
            old = out / f".{entry.name}.old{os.getpid()}"
            target.rename(old)
            entry.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(entry, target)


def _file_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def freeze(
    checkpoint: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    model_architecture: str | None = None,
    data_dir: str | os.PathLike | None = None,
    data: Any = None,
    calibration_clips: int = DEFAULT_CALIBRATION_CLIPS,
    quantize: bool = True,
    stream: TextIO | None = None,
    calibration: str | None = None,
    progress: bool | None = None,
) -> FreezeResult:
    """Export a trained checkpoint: SavedModel, float / int8 / micro ``.tflite``, C array,
    labels and model card (see the module docstring for what each file is).

    ``checkpoint``: a prefix (``<train_dir>/<arch>.ckpt-<step>``) or a train_dir (its latest);
    the labels and feature settings come from ``<arch>_config.json`` next to it.
    ``model_architecture``: optional, as the seed's freeze.py flag; a different architecture
    from the run's is an error naming both. An architecture listed in ``INT8_UNSUPPORTED``
    (none at present) cannot go int8: freeze it with ``quantize=False``. ``data_dir``: where
    the training clips for int8 calibration are (default: the run's ``data_dir``); ``data``:
    an already loaded :class:`kwlesson.data.SpeechCommands` instead. ``quantize=False`` writes
    only the float files (no data needed). ``calibration``: the int8 range rule
    (``"average"``, ``"minmax"`` or ``"per_tensor"``, see :func:`convert`); None (default) is
    ``"per_tensor"``, checked against the float model's top label on another draw of training
    clips (the model card records each file's choices and agreements). The int8 audio-in file
    rescales MFCC coefficient 0 inside its float front end (see :func:`int8_body`). Files are
    built in a temporary folder and moved into ``output_dir`` at the end, replacing an
    earlier export's files and leaving other files
    alone. ``stream``: where the summary lines go (default: stdout). ``progress``: a line per
    step on stderr with the time so far (a freeze takes 7-30 s); None (default): when stderr
    is a terminal.

    >>> r = freeze("/tmp/speech_commands_train/tiny_conv.ckpt-400", "/tmp/kws")  # doctest: +SKIP
    >>> sorted(r.files)[:3]  # doctest: +SKIP
    ['labels.txt', 'model_card.json', 'model_data.cc']
    """
    t0 = time.monotonic()
    out = Path(output_dir).expanduser()
    _check_output_dir(out)
    say = (lambda text: print(text, file=stream or sys.stdout))
    if progress is None:
        progress = sys.stderr.isatty()

    def step(text: str) -> None:
        if progress:
            print(f"freeze {time.monotonic() - t0:5.1f} s: {text}", file=sys.stderr, flush=True)

    if quantize:
        _refuse_unsupported_int8(checkpoint)
    trained = _load_checkpoint(checkpoint, model_architecture)
    model, labels, settings, config = (trained.model, trained.labels, trained.settings,
                                       trained.config)
    if int(model.output_shape[-1]) != len(labels):
        raise ValueError(f"{trained.checkpoint_path}: the model has {model.output_shape[-1]} "
                         f"outputs but its run lists {len(labels)} labels")
    calib = check = None
    if quantize:
        data = data if data is not None else run_data(config, data_dir)
        if list(data.labels) != list(labels):
            raise ValueError(f"{data.data_dir}: its labels {list(data.labels)} differ from the "
                             f"model's {labels}; calibrate on the data the model was trained on")
        step(f"reading {calibration_clips} training clips to calibrate int8 on")
        calib = calibration_audio(data, settings, calibration_clips, seed=config.seed)
        # The int8 files are checked on another draw, augmented as in training (see int8_files).
        step(f"reading {calibration_clips} other training clips, augmented, to check int8 on")
        check = calibration_audio(data, settings, calibration_clips, seed=config.seed + 1,
                                  augment=config)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp", dir=out.parent))
    try:
        step("SavedModel")
        files = {SAVED_MODEL_DIR: _write_saved_model(model, settings, labels, tmp)}
        # 'micro' features come from an op LiteRT does not have: no audio-in files then,
        # the micro model (features in) is the export.
        audio_in = settings.preprocess != "micro"
        blobs = {}
        if audio_in:
            step("float LiteRT model")
            blobs[FLOAT_TFLITE] = convert(audio_fn(frozen_logits(model), settings), "float")
        int8 = agreement = None
        if calib is not None:
            int8 = int8_files(model, settings, calib, check, calibration or "per_tensor", step)
            blobs[MICRO_TFLITE] = int8.micro
            if audio_in:
                blobs[INT8_TFLITE] = int8.int8
                agreement = _int8_agreement(blobs, calib[:100], trained.checkpoint_path)
            else:
                agreement = int8.reports["micro"]["check_top1_agreement"]
        for name, blob in blobs.items():
            files[name] = _write(tmp / name, blob)
        files[LABELS_FILE] = _write(tmp / LABELS_FILE, "\n".join(labels) + "\n")
        app_problem = app_contract_problem(settings) if audio_in else MICRO_NOT_FOR_THE_APP
        if app_problem is None:
            step("the TF Speech app's model")
            files[APP_DIR] = _write_app_files(tmp / APP_DIR, model, settings, labels)
        app_int8 = {"written": False, "why": app_problem or "frozen with quantize=False"}
        if app_problem is None and int8 is not None:
            step("the TF Speech app's int8 model")
            app_int8 = write_app_int8_files(tmp / APP_DIR / APP_INT8_DIR, labels, model,
                                            int8.body, settings, calib, check, int8.rule)
        dropin = _dropin(tmp, model, settings, labels, calib, trained, step)
        if dropin.get("written"):
            files[DROPIN_DIR] = tmp / DROPIN_DIR
        tensors = {name: tflite_tensors(blob) for name, blob in blobs.items()}
        if int8 is not None:
            note = f"From {trained.checkpoint_path} (step {trained.step})."
            cc, h = c_array_source(int8.micro, labels, settings, tensors[MICRO_TFLITE], note,
                                   int8.body.bin0_divisor)
            files[MICRO_SOURCE] = _write(tmp / MICRO_SOURCE, cc)
            files[MICRO_HEADER] = _write(tmp / MICRO_HEADER, h)
        card_files = _card_files(settings, labels, blobs, tensors, files, int8)
        card = _model_card(trained, card_files, int8, agreement, calib, data)
        card["android_app"] = {**_app_card(tmp, app_problem), "int8": app_int8}
        card["micro_speech"] = dropin
        files[MODEL_CARD] = _write(tmp / MODEL_CARD, json.dumps(card, indent=2) + "\n")
        sizes = {name: card_files[name]["bytes"] for name in card_files}
        sizes[MODEL_CARD] = _file_size(tmp / MODEL_CARD)
        _replace_into(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = FreezeResult(output_dir=out, files={n: out / n for n in files}, card=card,
                          seconds=time.monotonic() - t0, sizes=sizes)
    say(result.summary())
    return result


def _check_output_dir(out: Path) -> None:
    from kwlesson.faults import check_folder

    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a folder")
    # Built beside the output folder, then moved in: its parent must take the files.
    check_folder(out.parent, f"the folder of --output_dir {out.name}",
                 "choose an --output_dir in a folder you can write")


def _refuse_unsupported_int8(checkpoint: str | os.PathLike) -> None:
    from kwlesson.runs import read_run_files

    try:
        arch = read_run_files(checkpoint)[0].model_architecture
    except (FileNotFoundError, ValueError):
        return  # _load_checkpoint says what is wrong
    if arch in INT8_UNSUPPORTED:
        raise ValueError(
            f"{checkpoint}: {arch} cannot be quantised to int8: {INT8_UNSUPPORTED[arch]}. "
            "Freeze it with quantize=False (kwlesson freeze --no_quantize) for the float "
            "SavedModel and .tflite")


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def _write_saved_model(model: Any, settings: FeatureSettings, labels: Sequence[str],
                       tmp: Path) -> Path:
    module = serving_module(model, settings, labels)
    path = tmp / SAVED_MODEL_DIR
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve,
                                                       "labels": module.labels})
    return path


def _write_app_files(folder: Path, model: Any, settings: FeatureSettings,
                     labels: Sequence[str]) -> Path:
    """The TF Speech app's assets: its model (two inputs, see kwlesson.android) and labels."""
    folder.mkdir()
    _write(folder / APP_MODEL, app_model(model, settings))
    _write(folder / APP_LABELS, "\n".join(labels) + "\n")
    return folder


def _dropin(tmp: Path, model: Any, settings: FeatureSettings, labels: Sequence[str],
            calib: np.ndarray | None, trained: Any, step: Any) -> dict[str, Any]:
    """Write the micro_speech example's files where the model can replace its model; the
    model card's ``micro_speech`` entry either way."""
    if settings.preprocess != "micro":
        return {"written": False, "why": dropin_problem(settings, labels)}
    if calib is None:
        return {"written": False, "why": "no int8 files were made (quantize=False)"}
    problem = dropin_problem(settings, labels)
    if problem is None:
        step("the micro_speech example's model")
        try:
            made = dropin_files(model, settings, labels, compute_features(calib, settings).numpy(),
                                f"from {trained.checkpoint_path} (step {trained.step})")
        except ValueError as err:
            problem = str(err).split(": ", 1)[1]
    if problem is not None:
        return {"written": False, "why": problem}
    for name, content in made.files.items():
        (tmp / DROPIN_DIR / name).parent.mkdir(parents=True, exist_ok=True)
        _write(tmp / DROPIN_DIR / name, content)
    return {
        "written": True, "folder": DROPIN_DIR, "files": sorted(made.files),
        "how": f"{DROPIN_DIR}/README.txt says which file replaces which in tflite-micro's "
               "micro_speech example and in its Arduino twin",
        "model_bytes": len(made.model), "operators": made.ops,
        "labels": example_labels(labels),
        "input": "int8 [1, 1960]: 49 x 40 front-end values f, each (f * 256 + 333) / 666 - 128",
        "tensors": tflite_tensors(made.model),
    }


def _app_card(tmp: Path, problem: str | None) -> dict[str, Any]:
    """The model card's ``android_app``: where the app's files are and what they take."""
    if problem is not None:
        return {"written": False, "why": problem}
    return {
        "written": True, "folder": APP_DIR, "files": [APP_MODEL, APP_LABELS],
        "copy_to": "app/src/main/assets/ of TensorFlow's TF Speech example app",
        "tensors": tflite_tensors((tmp / APP_DIR / APP_MODEL).read_bytes()),
        "inputs": "0: audio float32 [16000, 1] (16-bit samples / 32767); 1: sample rate int32 "
                  "[1] (scores are 0 at another rate than the model's)",
        "output": "0: scores float32 [1, labels], in the order of the labels file",
        "recognize_commands": APP_RECOGNIZE,
    }


def _int8_agreement(blobs: dict[str, bytes], probe: np.ndarray, checkpoint: str) -> float:
    """How often the int8 file picks the float file's top label on ``probe`` clips: a cheap
    guard against an int8 file that lost the model (a warning below
    MIN_CALIBRATION_AGREEMENT)."""
    agreement = float(np.mean(TFLiteModel(blobs[FLOAT_TFLITE])(probe).argmax(-1)
                              == TFLiteModel(blobs[INT8_TFLITE])(probe).argmax(-1)))
    if agreement < MIN_CALIBRATION_AGREEMENT:
        warnings.warn(f"{checkpoint}: the int8 model picks the float model's top label on only "
                      f"{100 * agreement:.0f}% of {len(probe)} calibration clips; check it "
                      "with verify()", stacklevel=3)
    return agreement


def _card_files(settings: FeatureSettings, labels: Sequence[str], blobs: dict[str, bytes],
                tensors: dict[str, Any], files: dict[str, Path],
                int8: Int8Files | None) -> dict[str, Any]:
    """The model card's ``files``: what each file is, its tensors and size."""
    card_files: dict[str, Any] = {
        SAVED_MODEL_DIR: {
            "format": "TensorFlow SavedModel",
            "signatures": {
                "serving_default": {
                    "inputs": [{"name": "audio", "shape": None, "dtype": "float32",
                                "note": f"[{settings.desired_samples}] or [batch, "
                                        f"{settings.desired_samples}], samples in [-1, 1]"}],
                    "outputs": [{"name": "probabilities", "shape": None,
                                 "dtype": "float32",
                                 "note": f"[{len(labels)}] or [batch, {len(labels)}], "
                                         "softmax over labels"}]},
                "labels": {"inputs": [], "outputs": [
                    {"name": "output_0", "shape": [len(labels)], "dtype": "string"}]}},
        },
    }
    what = {FLOAT_TFLITE: "float32; raw audio in, probabilities out",
            INT8_TFLITE: "int8 weights and activations (FFT in float); raw float audio "
                         "in, float probabilities out",
            MICRO_TFLITE: "int8 only, for TensorFlow Lite Micro; int8 "
                          + ("normalised features (see feature_normalization)"
                             if settings.normalized else "features")
                          + (", bin 0 divided by micro_input's bin0_divisor,"
                             if int8 is not None and int8.body.rescaled_bin is not None else "")
                          + " in, int8 softmax scores out"}
    for name in blobs:
        card_files[name] = {"format": "TFLite flatbuffer (LiteRT)", "what": what[name],
                            **tensors[name]}
    if MICRO_SOURCE in files:
        card_files[MICRO_SOURCE] = {
            "format": "C++ source for TensorFlow Lite Micro", "array": MICRO_ARRAY,
            "length_variable": f"{MICRO_ARRAY}_len", "length": len(blobs[MICRO_TFLITE]),
            "alignment": 16, "header": MICRO_HEADER}
        card_files[MICRO_HEADER] = {"format": "C++ header", "declares": [
            MICRO_ARRAY, f"{MICRO_ARRAY}_len", "kLabels", "kInputScale", "kInputZeroPoint",
            "kOutputScale", "kOutputZeroPoint", "kFeatureFrames", "kFeatureBins",
            "kFeatureNormalized", "kFeatureBin0Divisor"] + (["kFeatureMean", "kFeatureScale"]
                                                           if settings.normalized else [])}
    card_files[LABELS_FILE] = {"format": "text, one label per line, in output order"}
    if APP_DIR in files:
        inside = sorted(p.relative_to(files[APP_DIR]).as_posix()
                        for p in files[APP_DIR].rglob("*") if p.is_file())
        card_files[APP_DIR] = {"format": f"the TF Speech app's assets: {APP_MODEL} (float32, "
                                          f"two inputs) and {APP_LABELS}; {APP_INT8_DIR}/: the "
                                          "same two files with an int8 network, where it keeps "
                                          "the app's contract; see android_app",
                               "files": inside}
    if DROPIN_DIR in files:
        card_files[DROPIN_DIR] = {"format": "files that replace the model of TensorFlow Lite "
                                            "Micro's micro_speech example; see micro_speech"}
    for name, path in files.items():
        card_files[name]["bytes"] = _file_size(path)
    return card_files


def _calibration_card(int8: Int8Files, agreement: float, calib: np.ndarray,
                      data: Any) -> dict[str, Any]:
    """The model card's ``calibration``: how the int8 files were made and what was kept."""
    body, folding, distances = int8.body, int8.folding, int8.distances
    return {
        "split": "training", "clips": len(calib),
        "data_dir": str(getattr(data, "data_dir", "")),
        "int8_float_top1_agreement": agreement,
        "ranges": int8.rule, "check_clips": int8.check_clips,
        "check": "the float model's probabilities on another draw of training clips, "
                 "augmented as in training",
        INT8_TFLITE: int8.reports["int8"], MICRO_TFLITE: int8.reports["micro"],
        "int8_folded_layers": (None if "folded" not in folding else {
            "layers": list(int8.folded_layers),
            "kept": bool(body.folded),
            "check_probability_distance": {k: v[0] for k, v in folding.items()},
            "tflm_agreement_on_check_clips": {k: v[1] for k, v in folding.items()},
            "why": "linear Dense layers in a row are one matrix product in float; the "
                   "int8 files can compute that one product (fewer 8-bit roundings, "
                   "fewer weights). Kept when the micro model is then closer to "
                   "float on the check clips and TensorFlow Lite Micro agrees with "
                   "LiteRT on them"}),
        "int8_input_rescaling": (None if len(distances) < 2 else {
            "bin": int8.first.rescaled_bin, "divided_by": int8.first.divisor,
            "kept": body.rescaled_bin is not None,
            "check_probability_distance": distances,
            "where": f"{INT8_TFLITE}: inside its float front end; "
                     f"{MICRO_TFLITE}: by the caller (see micro_input); the first "
                     "layer adds back what the division took away",
            "why": "MFCC coefficient 0 spans a much wider range than the others; "
                   "one int8 scale for all would make the others coarse. Kept when "
                   "the micro model is then closer to float on the check clips"})}


def _model_card(trained: Any, card_files: dict[str, Any], int8: Int8Files | None,
                agreement: float | None, calib: np.ndarray | None, data: Any) -> dict[str, Any]:
    """model_card.json: everything a caller of the files needs, in one place."""
    from kwlesson.models import count_macs
    from kwlesson.version import __version__

    settings, config, model = trained.settings, trained.config, trained.model
    return {
        "kwlesson_version": __version__,
        "model_architecture": config.model_architecture,
        "checkpoint": str(Path(trained.checkpoint_path).resolve()),
        "step": trained.step,
        "labels": list(trained.labels),
        "sample_rate": settings.sample_rate,
        "clip_samples": settings.desired_samples,
        "clip_duration_ms": settings.clip_duration_ms,
        "feature_settings": settings.to_dict(),
        "feature_shape": list(settings.shape),
        "feature_normalization": (None if not settings.normalized else {
            "formula": "(feature - mean[bin]) / scale[bin], after the "
                       f"{settings.preprocess} features, before the network",
            "mean": list(settings.feature_mean), "scale": list(settings.feature_scale),
            "inside": [FLOAT_TFLITE, INT8_TFLITE, SAVED_MODEL_DIR],
            "caller_applies": [MICRO_TFLITE]}),
        "parameters": int(model.count_params()),
        "macs": int(count_macs(model)),
        "calibration": (None if int8 is None
                        else _calibration_card(int8, agreement, calib, data)),
        "micro_input": None if int8 is None else {
            "features": "compute_features with feature_settings"
                        + (" (normalised, see feature_normalization)"
                           if settings.normalized else ""),
            "bin0_divisor": int8.body.bin0_divisor,
            "how": "divide feature bin 0 by bin0_divisor, then quantise with the input "
                   "tensor's scale and zero point: q = round(x / scale) + zero_point; "
                   "export.micro_input(features, card) does the first step"},
        "audio_input": "float32 samples in [-1, 1] (16-bit PCM / 32768), mono, "
                       f"{settings.sample_rate} Hz, exactly {settings.desired_samples} "
                       "samples: resample, pad or trim before calling",
        "train_config": config.to_dict(),
        "files": card_files,
    }


# --------------------------------------------------------------------------------------------
# Reading an export folder


def load_model_card(path: str | os.PathLike) -> dict[str, Any] | None:
    """The model card of an export folder (or of the folder a ``.tflite`` sits in), or None.

    >>> load_model_card("/tmp/kws")["labels"][:2]  # doctest: +SKIP
    ['_silence_', '_unknown_']
    """
    p = Path(path)
    card = (p if p.is_dir() else p.parent) / MODEL_CARD
    if not card.is_file():
        return None
    try:
        return json.loads(card.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{card}: not a valid model card ({err})") from err


def load_labels(path: str | os.PathLike, expected: int | None = None) -> list[str]:
    """Labels from a labels file, or from ``labels.txt`` in a folder / next to a ``.tflite``.

    ``expected``: the model's number of outputs; a different count is an error naming the file
    and both numbers (a labels file from another model is the usual cause).

    >>> load_labels("/tmp/kws")[:3]  # doctest: +SKIP
    ['_silence_', '_unknown_', 'yes']
    """
    p = Path(path)
    if p.is_dir():
        f = p / LABELS_FILE
    elif p.suffix == ".tflite":
        f = p.with_name(LABELS_FILE)
    else:
        f = p
    if not f.is_file():
        raise FileNotFoundError(f"{f}: labels file not found (one label per line, in the "
                                "model's output order; freeze writes it next to the model)")
    labels = [line.strip() for line in f.read_text(encoding="utf-8").splitlines()]
    labels = [x for x in labels if x]
    if not labels:
        raise ValueError(f"{f}: labels file is empty")
    if expected is not None and len(labels) != expected:
        raise ValueError(f"{f}: lists {len(labels)} labels but the model has {expected} "
                         "outputs; is it the labels file of another model?")
    return labels


def export_folder(path: Path) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: export folder not found")
    return path


def micro_input(features: np.ndarray, card: dict[str, Any]) -> np.ndarray:
    """The micro model's float input from ``compute_features`` output: bin 0 divided by the
    model card's ``micro_input.bin0_divisor`` (see :func:`int8_body`). Quantise it with the
    input tensor's scale and zero point (``TFLiteModel.quantize_input``) as firmware does.

    >>> card = load_model_card("/tmp/kws")  # doctest: +SKIP
    >>> x = micro_input(compute_features(clip, settings).numpy(), card)  # doctest: +SKIP
    """
    divisor = float(((card or {}).get("micro_input") or {}).get("bin0_divisor", 1.0))
    x = np.array(features, np.float32, copy=True)
    if divisor != 1.0:
        x[..., 0] /= divisor
    return x


