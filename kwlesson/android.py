"""A model for TensorFlow's TF Speech app (the Android speech-commands example the seed ends
with, and its iOS twin): the two files it loads from its assets, with exactly its contract.

The app (tensorflow/examples, ``lite/examples/speech_commands``) loads
``conv_actions_frozen.tflite`` and ``conv_actions_labels.txt``. It feeds the model **two
inputs**: input 0 the last second of audio, float32 ``[16000, 1]`` (16-bit samples divided by
32767), and input 1 the sample rate, int32 ``[1]``; it reads output 0, ``[1, labels]`` scores in
the order of the labels file, and shows the labels that do not start with ``_``. The seed's
``freeze.py`` made that graph (``decoded_sample_data`` and ``decoded_sample_data:1`` in,
``labels_softmax`` out); :func:`app_model` makes its LiteRT equivalent from a trained model,
with the very feature front end it was trained with inside.

The input order is part of the contract: the TFLite converter puts the int32 rate first, and the
app's ``resizeInput(0, [16000, 1])`` then fails. :func:`app_model` moves the audio to input 0.

:func:`app_int8_model` makes the same file with the network in int8 (the network and ranges
``model_int8.tflite`` uses, the feature front end and both inputs left float), for the app's
``int8/`` folder (``APP_INT8_DIR``): the app loads fixed names, so the two variants live in two
folders and you copy the two files of one of them.

Introduced in notebook 07.

>>> tflite = app_model(trained.model, trained.settings)  # doctest: +SKIP
>>> run_like_the_app(tflite, clips).shape  # doctest: +SKIP
(4, 12)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from kwlesson.features import FeatureSettings, compute_features
from kwlesson.quantization import (
    FRONT_END_SCOPE,
    Int8Body,
    convert,
    frozen_logits,
    keras_logits,
)
from kwlesson.runtime import litert_interpreter, tflite_tensors

__all__ = ["APP_CLIP_SAMPLES", "APP_DIR", "APP_INT8_DIR", "APP_LABELS", "APP_MODEL",
           "APP_RECOGNIZE", "APP_SAMPLE_RATE", "app_contract_problem", "app_file_problem",
           "app_function", "app_int8_model", "app_model", "audio_input_first",
           "run_like_the_app", "speech_activity_constants", "write_app_int8_files"]

#: The folder of an export that holds the app's two files (copy them to app/src/main/assets/).
APP_DIR = "android"
#: The folder inside APP_DIR with the same two files, the network in int8 (copy these instead).
APP_INT8_DIR = "int8"
APP_MODEL = "conv_actions_frozen.tflite"
APP_LABELS = "conv_actions_labels.txt"
#: SpeechActivity.java's SAMPLE_RATE, and its SAMPLE_DURATION_MS (1000) in samples.
APP_SAMPLE_RATE = 16000
APP_CLIP_SAMPLES = 16000
#: The app's RecognizeCommands settings (SpeechActivity.java; iOS uses a threshold of 0.3).
APP_RECOGNIZE = {"average_window_duration_ms": 1000, "detection_threshold": 0.50,
                 "suppression_ms": 1500, "minimum_count": 3,
                 "minimum_time_between_samples_ms": 30}


def app_contract_problem(settings: FeatureSettings) -> str | None:
    """Why a model trained with ``settings`` cannot take the app's input as it is, naming the
    constant of SpeechActivity.java to change; None when it can."""
    if settings.sample_rate != APP_SAMPLE_RATE:
        return (f"the model hears {settings.sample_rate} Hz audio and the app records at "
                f"{APP_SAMPLE_RATE} Hz: set SAMPLE_RATE = {settings.sample_rate} in "
                "SpeechActivity.java (or train with --sample_rate 16000)")
    if settings.desired_samples != APP_CLIP_SAMPLES:
        return (f"the model takes {settings.clip_duration_ms} ms clips and the app feeds "
                f"{APP_CLIP_SAMPLES * 1000 // APP_SAMPLE_RATE} ms: set SAMPLE_DURATION_MS = "
                f"{settings.clip_duration_ms} in SpeechActivity.java (or train with "
                "--clip_duration_ms 1000)")
    return None


def app_function(logits: Callable[[tf.Tensor], tf.Tensor], settings: FeatureSettings,
                 prepare: Callable[[tf.Tensor], tf.Tensor] | None = None) -> Any:
    """Concrete function (audio float32 [samples, 1], sample rate int32 [1]) ->
    ``labels_softmax`` [1, labels], the seed's frozen graph's shape. The rate is checked, not
    ignored: at another rate than the model's the scores are all 0 (nothing is recognised)."""
    samples = settings.desired_samples
    audio_spec = tf.TensorSpec([samples, 1], tf.float32, name="decoded_sample_data")
    rate_spec = tf.TensorSpec([1], tf.int32, name="decoded_sample_data_1")

    @tf.function(input_signature=[audio_spec, rate_spec])
    def app(audio: tf.Tensor, rate: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.name_scope(FRONT_END_SCOPE):
            features = compute_features(tf.reshape(audio, [1, samples]), settings, dft="matrix")
            if prepare is not None:
                features = prepare(features)
        right_rate = tf.cast(tf.equal(rate, settings.sample_rate), tf.float32)
        return {"labels_softmax": tf.nn.softmax(logits(features)) * right_rate}

    return app.get_concrete_function()


def audio_input_first(tflite: bytes) -> bytes:
    """The model with its float32 audio as input 0 and the int32 rate as input 1, the order
    the app feeds them in (the converter's own order puts the rate first)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    graph = model.subgraphs[0]
    float32 = 0  # schema.fbs TensorType
    order = sorted((int(i) for i in graph.inputs), key=lambda i: graph.tensors[i].type != float32)
    graph.inputs = np.array(order, dtype=np.int32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def app_model(model: Any, settings: FeatureSettings) -> bytes:
    """``conv_actions_frozen.tflite`` for a trained Keras model (float32). Raises ValueError
    when the model's rate or clip length is not the app's (see :func:`app_contract_problem`)."""
    problem = app_contract_problem(settings)
    if problem:
        raise ValueError(f"the TF Speech app cannot feed this model: {problem}")
    return audio_input_first(convert(app_function(frozen_logits(model), settings), "float"))


def app_int8_model(model: Any, body: Int8Body, settings: FeatureSettings, calib: np.ndarray,
                   check: np.ndarray, rule: str = "per_tensor",
                   report: dict[str, Any] | None = None) -> bytes:
    """``conv_actions_frozen.tflite`` with an int8 network: the app's contract (float audio and
    int32 rate in, in that order, float scores out) around ``body``, the network
    ``quantization.int8_files`` kept for ``model_int8.tflite`` (``Int8Files.body``), with the
    feature front end (and ``body.prepare``) in float as there. ``calib``: training clips
    (float audio [n, samples]) for the ranges; ``check``: other training clips on which the
    ranges ``rule`` picks (see ``quantization.convert``) should give the Keras ``model``'s
    probabilities, the file run as the app runs it; ``report`` gets the choices. Raises
    ValueError when the app cannot feed the model, RuntimeError when conversion fails or the
    file does not keep the contract (see :func:`app_file_problem`)."""
    problem = app_contract_problem(settings)
    if problem:
        raise ValueError(f"the TF Speech app cannot feed this model: {problem}")
    fn = app_function(body.logits, settings, prepare=body.prepare)
    # Calibration feeds the inputs in the converter's order (the rate first in TF 2.21).
    dtypes = [d["dtype"] for d in litert_interpreter(convert(fn, "float")).get_input_details()]
    rate = np.array([settings.sample_rate], np.int32)

    def representative() -> Any:
        for clip in calib:
            yield [clip[:, None] if dtype == np.float32 else rate for dtype in dtypes]

    float_probs = tf.nn.softmax(keras_logits(model, compute_features(check, settings).numpy()))
    # Each candidate is judged as the app runs it (TFLiteModel takes one input only).
    scored = (lambda candidate: run_like_the_app(audio_input_first(candidate), check),
              float_probs.numpy())
    tflite = audio_input_first(convert(fn, "int8", representative, rule, scored, report))
    problem = app_file_problem(tflite, settings, int(float_probs.shape[-1]))
    if problem:
        raise RuntimeError(f"the int8 app file does not keep the app's contract: {problem}")
    return tflite


def app_file_problem(tflite: bytes, settings: FeatureSettings, labels: int) -> str | None:
    """What of the app's contract a ``conv_actions_frozen.tflite`` breaks (None: nothing): its
    inputs' order, shapes and types, its output, and silence at another rate than the model's."""
    interp = litert_interpreter(tflite)
    got = [(list(d["shape"]), np.dtype(d["dtype"]).name) for d in interp.get_input_details()]
    want = [([settings.desired_samples, 1], "float32"), ([1], "int32")]
    if got != want:
        return f"inputs {got}, where the app feeds {want}"
    out = [(list(d["shape"]), np.dtype(d["dtype"]).name) for d in interp.get_output_details()]
    if out[:1] != [([1, labels], "float32")]:
        return f"output 0 is {out[:1]}, where the app reads ([1, {labels}], 'float32')"
    clip = np.full([1, settings.desired_samples], 0.1, np.float32)
    if run_like_the_app(tflite, clip, rate=settings.sample_rate // 2).any():
        return "its scores at another rate than the model's are not 0 (the rate is ignored)"
    return None


def write_app_int8_files(folder: Path, labels: Sequence[str], model: Any, body: Int8Body,
                         settings: FeatureSettings, calib: np.ndarray, check: np.ndarray,
                         rule: str = "per_tensor") -> dict[str, Any]:
    """Write :func:`app_int8_model` and the labels into ``folder``; returns the model card's
    ``android_app.int8`` entry. A model whose int8 file cannot keep the contract gets no
    folder and an entry saying why (freeze goes on: the float app files still serve)."""
    report: dict[str, Any] = {}
    try:
        tflite = app_int8_model(model, body, settings, calib, check, rule, report)
    except (RuntimeError, ValueError) as err:
        return {"written": False, "why": str(err).splitlines()[0]}
    folder.mkdir(parents=True)
    (folder / APP_MODEL).write_bytes(tflite)
    (folder / APP_LABELS).write_text("\n".join(labels) + "\n", encoding="utf-8")
    return {"written": True, "folder": f"{APP_DIR}/{APP_INT8_DIR}",
            "files": [APP_MODEL, APP_LABELS],
            # The app loads fixed names, so it takes one model at a time.
            "copy_to": f"app/src/main/assets/, instead of the two files of {APP_DIR}/",
            "what": "the same contract, the network in int8 (the network and range rule of "
                    "model_int8.tflite; the feature front end, inputs and scores float)",
            "ranges": report.get("ranges"),
            "check_clips": report.get("check_clips"),
            "check_top1_agreement_with_keras": report.get("check_top1_agreement"),
            "tensors": tflite_tensors(tflite)}


def run_like_the_app(tflite: bytes, clips: np.ndarray, rate: int = APP_SAMPLE_RATE
                     ) -> np.ndarray:
    """Scores [n, labels] for float clips [n, samples] in [-1, 1], fed as SpeechActivity.java
    feeds them: 16-bit samples divided by 32767 into input 0 resized to [samples, 1], the rate
    into input 1 resized to [1], output 0 read."""
    interp = litert_interpreter(tflite)
    audio_in, rate_in = interp.get_input_details()[:2]
    samples = clips.shape[1]
    interp.resize_tensor_input(audio_in["index"], [samples, 1])
    interp.resize_tensor_input(rate_in["index"], [1])
    interp.allocate_tensors()
    out = interp.get_output_details()[0]
    pcm = np.clip(np.round(np.asarray(clips) * 32768), -32768, 32767).astype(np.int16)
    rows = []
    for clip in pcm:
        interp.set_tensor(audio_in["index"], (clip / 32767.0).astype(np.float32)[:, None])
        interp.set_tensor(rate_in["index"], np.array([rate], np.int32))
        interp.invoke()
        rows.append(interp.get_tensor(out["index"]).reshape(-1).copy())
    return np.stack(rows)


def speech_activity_constants(settings: FeatureSettings | None = None, **recognize: float) -> str:
    """The constants of the app's ``SpeechActivity.java`` for a model trained with
    ``settings`` and RecognizeCommands tuned as ``recognize`` (``average_window_duration_ms``,
    ``detection_threshold``, ``suppression_ms``, ``minimum_count``,
    ``minimum_time_between_samples_ms``; those not given keep the app's own, APP_RECOGNIZE):
    paste them over the app's to run the model as lesson 08 tuned it.

    >>> print(speech_activity_constants(detection_threshold=0.7).splitlines()[4])
    private static final float DETECTION_THRESHOLD = 0.70f;
    """
    settings = settings or FeatureSettings()
    unknown = sorted(set(recognize) - set(APP_RECOGNIZE))
    if unknown:
        raise ValueError(f"unknown RecognizeCommands settings {unknown}; choose from "
                         f"{sorted(APP_RECOGNIZE)}")
    r = {**APP_RECOGNIZE, **recognize}
    return "\n".join([
        f"private static final int SAMPLE_RATE = {settings.sample_rate};",
        f"private static final int SAMPLE_DURATION_MS = {settings.clip_duration_ms};",
        "private static final int RECORDING_LENGTH = "
        "(int) (SAMPLE_RATE * SAMPLE_DURATION_MS / 1000);",
        "private static final long AVERAGE_WINDOW_DURATION_MS = "
        f"{int(r['average_window_duration_ms'])};",
        f"private static final float DETECTION_THRESHOLD = {float(r['detection_threshold']):.2f}f;",
        f"private static final int SUPPRESSION_MS = {int(r['suppression_ms'])};",
        f"private static final int MINIMUM_COUNT = {int(r['minimum_count'])};",
        "private static final long MINIMUM_TIME_BETWEEN_SAMPLES_MS = "
        f"{int(r['minimum_time_between_samples_ms'])};",
        f'private static final String LABEL_FILENAME = "file:///android_asset/{APP_LABELS}";',
        f'private static final String MODEL_FILENAME = "file:///android_asset/{APP_MODEL}";',
    ])
