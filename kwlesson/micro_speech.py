"""A model that drops into TensorFlow Lite Micro's micro_speech example, the keyword spotter the
TinyML course and the Arduino examples build (a microcontroller hearing "yes" and "no").

The example (tflite-micro, ``tensorflow/lite/micro/examples/micro_speech``; its Arduino twin
in tflite-micro-arduino-examples) expects, read from its source:

* features from TensorFlow Lite Micro's own audio front end: 30 ms windows every 20 ms at
  16 kHz, 40 channels, 49 frames for a second (``kFeatureSize``, ``kFeatureCount``), each
  front-end value f quantised to int8 as ``(f * 256 + 333) / 666 - 128`` (clamped): the
  model's input scale 666 * 10 / 256**2 with zero point -128 for the features kwlesson
  trains on (``--preprocess micro``, f * 10 / 256);
* a model with int8 input ``[1, 1960]`` (the 49 x 40 features flattened) and int8 output
  ``[1, kCategoryCount]`` in the order of ``kCategoryLabels`` ("silence", "unknown", then
  the words), built from only the four operators its op resolver registers (RESHAPE,
  DEPTHWISE_CONV_2D, FULLY_CONNECTED, SOFTMAX);
* the model as a C array: in tflite-micro, made at build time from
  ``models/micro_speech_quantized.tflite`` (``g_micro_speech_quantized_model_data``, length
  ``g_micro_speech_quantized_model_data_size``); on Arduino, ``micro_features_model.cpp``
  (``g_model``, ``g_model_len``).

:func:`dropin_files` writes those files for a trained 'micro' model; a first convolution on
one input channel (tiny_conv's) is computed as the depthwise convolution it equals, which is
the operator the example registers. :func:`dropin_problem` says why a model cannot drop in.

Introduced in notebook 07.

>>> files = dropin_files(trained.model, trained.settings, trained.labels, calib)  # doctest: +SKIP
>>> sorted(files)[:2]  # doctest: +SKIP
['arduino/micro_features_micro_model_settings.cpp', 'arduino/micro_features_micro_model_settings.h']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from kwlesson.features import FeatureSettings
from kwlesson.quantization import MICRO_FEATURES_RANGE, convert, frozen_logits

__all__ = ["DROPIN_DIR", "EXAMPLE_FEATURES", "EXAMPLE_OPS", "DropIn", "c_bytes",
           "device_features_int8", "device_inputs", "dropin_files", "dropin_problem",
           "example_labels"]

#: The export's folder for these files.
DROPIN_DIR = "micro_speech"
#: The example's feature settings (micro_model_settings.h), as kwlesson FeatureSettings.
EXAMPLE_FEATURES = FeatureSettings(sample_rate=16000, clip_duration_ms=1000, window_size_ms=30,
                                   window_stride_ms=20, feature_bin_count=40,
                                   preprocess="micro")
#: The operators the example's MicroMutableOpResolver<4> registers.
EXAMPLE_OPS = ("RESHAPE", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX")
#: The tflite-micro example's model file and the names its build gives the array.
TFLM_MODEL = "micro_speech_quantized.tflite"
TFLM_ARRAY = "g_micro_speech_quantized_model_data"
TFLM_EXAMPLE = "tensorflow/lite/micro/examples/micro_speech"


def example_labels(labels: Sequence[str]) -> list[str]:
    """kwlesson's labels as the example spells them: "_silence_" -> "silence",
    "_unknown_" -> "unknown".

    >>> example_labels(["_silence_", "_unknown_", "yes", "no"])
    ['silence', 'unknown', 'yes', 'no']
    """
    return [label.strip("_") if label in ("_silence_", "_unknown_") else label
            for label in labels]


def device_features_int8(front_end_values: np.ndarray) -> np.ndarray:
    """What the example feeds the model: the front end's integer values f (uint16, 0 to about
    670) as int8, ``(f * 256 + 333) // 666 - 128`` clamped to [-128, 127], in integers as the
    C code computes it.

    >>> device_features_int8(np.array([0, 333, 666, 1000])).tolist()
    [-128, 0, 127, 127]
    """
    f = np.asarray(front_end_values, np.int64)
    return np.clip((f * 256 + 333) // 666 - 128, -128, 127).astype(np.int8)


def device_inputs(clips: np.ndarray, settings: FeatureSettings = EXAMPLE_FEATURES
                  ) -> np.ndarray:
    """What the example's model gets for float clips [n, samples]: 16-bit samples through the
    front end (its integer output, as the C code has it), :func:`device_features_int8`,
    flattened: int8 [n, frames * bins].

    >>> device_inputs(np.zeros([2, 16000], np.float32)).shape  # doctest: +SKIP
    (2, 1960)
    """
    from kwlesson.features import MICRO_OUTPUT_SCALE, compute_features

    # The training features are the front end's integers times 10/256 (exact in float32, so
    # dividing gives the integers back): one front end, computed in one place.
    features = compute_features(np.asarray(clips, np.float32), settings).numpy()
    values = np.rint(features / np.float32(MICRO_OUTPUT_SCALE))
    return device_features_int8(values).reshape(len(features), -1)


def dropin_problem(settings: FeatureSettings, labels: Sequence[str]) -> str | None:
    """Why a model trained with ``settings`` and ``labels`` cannot replace the example's model
    as it is, naming the setting to change; None when it can (the operators are checked
    after conversion, by :func:`dropin_files`)."""
    if settings.preprocess != "micro":
        return (f"the example computes TensorFlow Lite Micro's front end, and this model was "
                f"trained on {settings.preprocess}: train with --preprocess micro")
    want = EXAMPLE_FEATURES
    for name, flag in (("sample_rate", "--sample_rate"), ("clip_duration_ms", "--clip_duration_ms"),
                       ("window_size_ms", "--window_size_ms"),
                       ("window_stride_ms", "--window_stride_ms"),
                       ("feature_bin_count", "--feature_bin_count")):
        have, need = getattr(settings, name), getattr(want, name)
        if have != need:
            return (f"the example's front end uses {name} {need:g} and this model {have:g}: "
                    f"train with {flag} {need:g}")
    if list(labels[:2]) != ["_silence_", "_unknown_"]:
        return f"the example's first two labels are silence and unknown, not {list(labels[:2])}"
    return None


def _as_example_network(model: Any) -> Any:
    """The Keras model with each Conv2D on one input channel replaced by the
    DepthwiseConv2D it equals (a kernel [h, w, 1, filters] either way): the converter
    writes CONV_2D for one and DEPTHWISE_CONV_2D for the other."""
    keras = __import__("keras")

    def clone(layer: Any) -> Any:
        if (type(layer) is keras.layers.Conv2D and layer.input.shape[-1] == 1
                and layer.groups == 1):
            c = layer.get_config()
            return keras.layers.DepthwiseConv2D(
                kernel_size=c["kernel_size"], strides=c["strides"], padding=c["padding"],
                depth_multiplier=c["filters"], dilation_rate=c["dilation_rate"],
                activation=c["activation"], use_bias=c["use_bias"], name=c["name"])
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    for old, new in zip(model.layers, copy.layers, strict=True):
        new.set_weights(old.get_weights())
    return copy


def _flat_features_fn(logits: Any, settings: FeatureSettings) -> Any:
    frames, bins = settings.shape
    spec = tf.TensorSpec([1, frames * bins], tf.float32, name="features")

    @tf.function(input_signature=[spec])
    def flat_features_to_scores(features: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"labels_softmax": tf.nn.softmax(logits(tf.reshape(features,
                                                                   [1, frames, bins])))}

    return flat_features_to_scores.get_concrete_function()


def c_bytes(model: bytes, per_line: int = 12) -> str:
    """A flatbuffer's bytes as the rows of a C array initialiser (``xxd -i`` style).

    >>> print(c_bytes(bytes(range(3))))
      0x00, 0x01, 0x02,
    """
    return "\n".join("  " + ", ".join(f"0x{b:02x}" for b in model[i:i + per_line]) + ","
                     for i in range(0, len(model), per_line))


@dataclasses.dataclass
class DropIn:
    """What :func:`dropin_files` made: the model (bytes), its operators, and the files by
    their path inside ``DROPIN_DIR`` (text or bytes)."""

    model: bytes
    ops: list[str]
    files: dict[str, str | bytes]


def dropin_files(model: Any, settings: FeatureSettings, labels: Sequence[str],
                 calib_features: np.ndarray, source_note: str = "") -> DropIn:
    """The micro_speech example's model for a trained Keras model on 'micro' features, and
    the files that carry it (see the module docstring). ``calib_features``: training
    features [n, 49, 40] to calibrate the int8 ranges on. Raises ValueError naming the
    problem when the model cannot drop in (:func:`dropin_problem`, or an operator the example
    does not register)."""
    problem = dropin_problem(settings, labels)
    if problem:
        raise ValueError(f"this model cannot replace micro_speech's: {problem}")
    flat = np.asarray(calib_features, np.float32).reshape(len(calib_features), -1)
    tflite = convert(_flat_features_fn(frozen_logits(_as_example_network(model)), settings),
                     "micro", lambda: ([f[None]] for f in flat), "average",
                     input_range=MICRO_FEATURES_RANGE)
    from kwlesson.runtime import litert_interpreter

    interp = litert_interpreter(tflite, delegate=False)
    ops = [op["op_name"] for op in interp._get_ops_details()]  # reaches in: LiteRT's op list
    extra = sorted(set(ops) - set(EXAMPLE_OPS))
    if extra:
        raise ValueError(
            f"this model cannot replace micro_speech's: it uses {', '.join(extra)}, which the "
            f"example's op resolver does not register (it has {', '.join(EXAMPLE_OPS)}): add "
            "them to its MicroMutableOpResolver, or train tiny_conv")
    return DropIn(tflite, ops, _sources(tflite, settings, labels, source_note))


def _sources(tflite: bytes, settings: FeatureSettings, labels: Sequence[str],
             note: str) -> dict[str, str | bytes]:
    frames, bins = settings.shape
    names = ", ".join(f'"{label}"' for label in example_labels(labels))
    count = len(labels)
    made = "// Written by kwlesson.micro_speech" + (f": {note}" if note else ".") + "\n"
    rows = c_bytes(tflite)
    tflm_h = f"""{made}// Replaces models/micro_speech_quantized_model_data.h of tflite-micro's
// micro_speech example (its build makes the same from models/{TFLM_MODEL}).
#ifndef TENSORFLOW_LITE_MICRO_EXAMPLES_MICRO_SPEECH_MODELS_MICRO_SPEECH_QUANTIZED_MODEL_DATA_H_
#define TENSORFLOW_LITE_MICRO_EXAMPLES_MICRO_SPEECH_MODELS_MICRO_SPEECH_QUANTIZED_MODEL_DATA_H_

extern const unsigned char {TFLM_ARRAY}[];
constexpr unsigned int {TFLM_ARRAY}_size = {len(tflite)};

#endif
"""
    include = f"{TFLM_EXAMPLE}/models/micro_speech_quantized_model_data.h"
    tflm_cc = f"""{made}#include "{include}"

alignas(16) const unsigned char {TFLM_ARRAY}[] = {{
{rows}
}};
"""
    settings_h = f"""{made}// Replaces micro_model_settings.h of tflite-micro's micro_speech
// example: the front end's settings this model was trained with, and its labels in output order.
#ifndef TENSORFLOW_LITE_MICRO_EXAMPLES_MICRO_SPEECH_MICRO_MODEL_SETTINGS_H_
#define TENSORFLOW_LITE_MICRO_EXAMPLES_MICRO_SPEECH_MICRO_MODEL_SETTINGS_H_

constexpr int kAudioSampleFrequency = {settings.sample_rate};
constexpr int kFeatureSize = {bins};
constexpr int kFeatureCount = {frames};
constexpr int kFeatureElementCount = (kFeatureSize * kFeatureCount);
constexpr int kFeatureStrideMs = {int(settings.window_stride_ms)};
constexpr int kFeatureDurationMs = {int(settings.window_size_ms)};

constexpr int kCategoryCount = {count};
constexpr const char* kCategoryLabels[kCategoryCount] = {{{names}}};

#endif
"""
    arduino_h = f"""{made}// Replaces micro_features_model.h of the Arduino micro_speech example.
#ifndef TENSORFLOW_LITE_MICRO_EXAMPLES_MICRO_SPEECH_MICRO_FEATURES_MODEL_H_
#define TENSORFLOW_LITE_MICRO_EXAMPLES_MICRO_SPEECH_MICRO_FEATURES_MODEL_H_

extern const unsigned char g_model[];
extern const int g_model_len;

#endif
"""
    arduino_cc = f"""{made}#include "micro_features_model.h"

alignas(16) const unsigned char g_model[] = {{
{rows}
}};
const int g_model_len = {len(tflite)};
"""
    arduino_settings_h = f"""{made}// Replaces micro_features_micro_model_settings.h of the Arduino
// micro_speech example.
#ifndef TENSORFLOW_LITE_MICRO_EXAMPLES_MICRO_SPEECH_MICRO_FEATURES_MICRO_MODEL_SETTINGS_H_
#define TENSORFLOW_LITE_MICRO_EXAMPLES_MICRO_SPEECH_MICRO_FEATURES_MICRO_MODEL_SETTINGS_H_

constexpr int kMaxAudioSampleSize = 512;
constexpr int kAudioSampleFrequency = {settings.sample_rate};
constexpr int kFeatureSliceSize = {bins};
constexpr int kFeatureSliceCount = {frames};
constexpr int kFeatureElementCount = (kFeatureSliceSize * kFeatureSliceCount);
constexpr int kFeatureSliceStrideMs = {int(settings.window_stride_ms)};
constexpr int kFeatureSliceDurationMs = {int(settings.window_size_ms)};

constexpr int kSilenceIndex = 0;
constexpr int kUnknownIndex = 1;
constexpr int kCategoryCount = {count};
extern const char* kCategoryLabels[kCategoryCount];

#endif
"""
    arduino_settings_cc = f"""{made}#include "micro_features_micro_model_settings.h"

const char* kCategoryLabels[kCategoryCount] = {{{names}}};
"""
    window, stride = int(settings.window_size_ms), int(settings.window_stride_ms)
    readme = f"""This model replaces the one in TensorFlow Lite Micro's micro_speech example.

Labels, in output order: {", ".join(example_labels(labels))}
Input: int8 [1, {frames * bins}] ({frames} frames x {bins} channels of TensorFlow Lite Micro's
audio front end, {window} ms windows every {stride} ms at {settings.sample_rate} Hz), each
value f as (f * 256 + 333) / 666 - 128, as the example computes it. Output: int8 [1, {count}].
Operators: the example's four ({", ".join(EXAMPLE_OPS)}).

tflite-micro (github.com/tensorflow/tflite-micro), in
tensorflow/lite/micro/examples/micro_speech/:
  models/{TFLM_MODEL}  <- tflite-micro/models/{TFLM_MODEL}
  micro_model_settings.h                 <- tflite-micro/micro_model_settings.h
  (the build makes the C array from the .tflite; for a build that does not,
  tflite-micro/models/ has it as micro_speech_quantized_model_data.cc/.h)

Arduino (github.com/tensorflow/tflite-micro-arduino-examples), in examples/micro_speech/:
  micro_features_model.cpp / .h                          <- arduino/
  micro_features_micro_model_settings.cpp / .h           <- arduino/
""" + (f"\nMade {note}\n" if note else "")
    return {
        "README.txt": readme,
        f"tflite-micro/models/{TFLM_MODEL}": tflite,
        "tflite-micro/models/micro_speech_quantized_model_data.cc": tflm_cc,
        "tflite-micro/models/micro_speech_quantized_model_data.h": tflm_h,
        "tflite-micro/micro_model_settings.h": settings_h,
        "arduino/micro_features_model.cpp": arduino_cc,
        "arduino/micro_features_model.h": arduino_h,
        "arduino/micro_features_micro_model_settings.cpp": arduino_settings_cc,
        "arduino/micro_features_micro_model_settings.h": arduino_settings_h,
    }
