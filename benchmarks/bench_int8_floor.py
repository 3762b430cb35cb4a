"""Where does the int8 file's last point go? Score ranges, per-class bias, and chance.

``bench_verification.py`` finds int8 within 1 point of float on average, with some 435-clip
splits crossing by a clip or two. This benchmark asks three questions of the same trained
real-speech models (it reuses ``--work`` from bench_verification, training what is missing):

1. **The scores' range.** The int8 scores before the softmax have one range for all clips
   (``quantization.averaged_ranges``: from 8 below the lowest best score of the calibration clips
   to 50% above their largest runner-up). Keras' own scores are rounded to other such ranges
   (starting ``k`` below the lowest best, ``headroom`` above the runner-up) and compared with
   Keras: top-1 disagreement and the mean L1 distance of the probabilities (as freeze judges
   ranges), on ``--clips`` training clips augmented as in training and on the validation
   split. Nothing else is quantised: this is the floor under any int8 network.
2. **A per-class bias.** The micro model's dequantised scores minus Keras' on 1,000
   augmented training clips (where neither saturates), per label; subtracting that mean from
   the last layer's int32 bias ("bias correction") and counting the validation flips again.
3. **Chance.** From each model's validation flips (``verify.verify``: clips right in float
   only / in int8 only), pooled per architecture: the probability that one more model of that
   recipe crosses the 1-point line on a split of that size, with the two flip counts taken as
   Poisson at the pooled rates.

4. **Quantisation-aware fine-tuning** (with ``--finetune_steps N``): each model trained N more
   steps at its recipe's last learning rate, once as usual and once with fake quantisation
   (weights per channel to int8 as the converter does, the features, every ReLU's output, the
   pooled features and the scores at the float model's averaged calibration ranges; straight
   through gradients), then frozen and verified: does the int8 file agree with float more
   often than after the same steps without it? A sketch of the technique for this question,
   kept here rather than in the library.

5. **Float scores** (with ``--float_scores``): the int8 audio-in file frozen again with its
   last layer and softmax left in float (the rest int8 as before), as if the issue's "weights
   and activations int8" allowed wider scores: its size and its validation flips. Done by
   adding those tensors to the float front end's list for the quantiser in this process only;
   the library does not offer it.

Prints its tables with the machine, date, command and load; paste them into RESULTS.md.

    python benchmarks/bench_int8_floor.py --work /tmp/kwverify --real_seeds 1,2,3
    python benchmarks/bench_int8_floor.py --work /tmp/kwverify --finetune_steps 400
    python benchmarks/bench_int8_floor.py --work /tmp/kwverify --float_scores
"""

from __future__ import annotations

import argparse
import io
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from kwlesson import export, quantization, runtime, verify
from kwlesson.config import shared_datasets_dir
from kwlesson.features import compute_features
from kwlesson.runs import (
    TrainConfig,
    checkpoint_prefix,
    load_trained,
    write_checkpoint,
    write_run_files,
)
from kwlesson.training import training_batches

sys.path.insert(0, str(Path(__file__).parent))
from _results import load
from bench_verification import REAL_MODELS, real_checkpoint

#: (k below the lowest best score, headroom above the largest runner-up); the first is freeze's.
RULES = [(8, 0.5), (8, 0.25), (8, 0.0), (6, 0.5), (6, 0.25), (6, 0.1), (4, 0.5), (4, 0.25),
         (4, 0.1), (3, 0.5), (2, 0.5)]


def features(audio: np.ndarray, settings) -> np.ndarray:
    return np.concatenate([compute_features(audio[i:i + 256], settings).numpy()
                           for i in range(0, len(audio), 256)])


def rounded(scores: np.ndarray, low: float, top: float) -> np.ndarray:
    """Scores as an int8 tensor spanning [low, top] holds them (verify's rounding), in float."""
    step = (top - low) / 255
    zero = round(-128 - low / step)
    return (verify.rounded_scores(scores, step, zero).astype(np.float64) - zero) * step


def compare(scores: np.ndarray, low: float, top: float) -> tuple[float, float]:
    """(top-1 disagreement with the float scores, mean L1 distance of the probabilities)."""
    q = rounded(scores, low, top)
    p_float = tf.nn.softmax(scores).numpy()
    p_int8 = np.round(tf.nn.softmax(q).numpy() * 256) / 256  # the int8 softmax's output step
    return (float(np.mean(q.argmax(-1) != scores.argmax(-1))),
            float(np.abs(p_int8 - p_float).sum(-1).mean()))


def micro_scores(blob: bytes, x: np.ndarray) -> tuple[np.ndarray, dict]:
    """The micro model's scores going into its softmax (dequantised), and that op's inputs."""
    interp = runtime.litert_interpreter(blob, delegate=False, preserve_all_tensors=True)
    tensors = interp.get_tensor_details()
    ops = interp._get_ops_details()
    scores = next(op for op in ops if op["op_name"] == "SOFTMAX")["inputs"][0]
    last = next(op for op in ops if scores in op["outputs"])
    scale, zero = tensors[scores]["quantization"]
    inp = interp.get_input_details()[0]
    q = runtime.TFLiteModel(blob, delegate=False).quantize_input(x)
    out = []
    for row in q:
        interp.set_tensor(inp["index"], row[None])
        interp.invoke()
        out.append((interp.get_tensor(scores)[0].astype(np.float64) - zero) * scale)
    return np.array(out), {"last": last, "scale": scale, "zero": zero}


def bias_corrected(blob: bytes, last: dict, shift: np.ndarray) -> bytes:
    """The model with ``shift`` (float, per output) taken off its last layer's int32 bias."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(blob))
    tensor = model.subgraphs[0].tensors[last["inputs"][2]]
    buffer = model.buffers[tensor.buffer]
    bias = np.frombuffer(bytes(bytearray(buffer.data)), np.int32).copy()
    bias -= np.round(shift / np.asarray(tensor.quantization.scale, np.float64)).astype(np.int32)
    buffer.data = np.frombuffer(bias.tobytes(), np.uint8)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def finetune(ckpt: str, out_dir: Path, steps: int, fake_quant: bool, bin0_divisor: float,
             data) -> str:
    """Train ``ckpt``'s model ``steps`` more steps (same data order as a longer run), with or
    without fake quantisation; write the result as a run in ``out_dir``; its checkpoint."""
    import keras

    trained = load_trained(ckpt)
    model, settings, config = trained.model, trained.settings, trained.config
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    calib = features(export.calibration_audio(data, settings, 300, seed=config.seed), settings)
    # The int8 files' input: coefficient 0 divided as the frozen model's card says.
    scale = np.ones(calib.shape[-1], np.float32)
    scale[0] = 1.0 / bin0_divisor
    points = {layer.name for layer in layers if isinstance(
        layer, (keras.layers.ReLU, keras.layers.GlobalAveragePooling2D))} | {layers[-1].name}

    def forward(x, training, ranges=None):
        h = x if ranges is None else fake(x * scale, ranges["input"]) / scale
        seen = {}
        for layer in layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                h = layer(h, training=False)  # the int8 model folds the running statistics
            elif isinstance(layer, keras.layers.Dropout):
                h = layer(h, training=training)
            else:
                h = layer(h)
            if layer.name in points:
                seen[layer.name] = h
                if ranges is not None:
                    h = fake(h, ranges[layer.name])
        return h, seen

    def fake(h, low_high):
        low, high = min(low_high[0], 0.0), max(low_high[1], 0.0)
        return tf.quantization.fake_quant_with_min_max_args(h, min=low, max=high)

    x_cal = calib * scale
    ranges = {"input": (float(x_cal.min()), float(x_cal.max()))}
    for name, value in forward(tf.constant(calib), False)[1].items():
        v = value.numpy().reshape(len(calib), -1)
        if name == layers[-1].name:  # the scores: freeze's rule (quantization.averaged_ranges)
            best = np.sort(v, -1)
            second = best[:, -2].max()
            ranges[name] = (max(v.min(-1).mean(), best[:, -1].min() - 8),
                            max(v.max(-1).mean(), second + 0.5 * abs(second)))
        else:
            ranges[name] = (float(v.min(-1).mean()), float(v.max(-1).mean()))
    kernels = []
    for layer in layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kernels.append((layer.kernel, (0, 1)))
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernels.append((layer.kernel, tuple(range(len(layer.kernel.shape) - 1))))
    optimizer = keras.optimizers.Adam(config.schedule()[-1][1])

    @tf.function
    def step(x, y):
        kept = [tf.identity(k.value) for k, _ in kernels]
        if fake_quant:  # the forward pass sees int8 weights; the update goes to float ones
            for k, axes in kernels:
                top = tf.maximum(tf.reduce_max(tf.abs(k.value), axis=axes, keepdims=True), 1e-12)
                k.assign(tf.round(k.value / top * 127.0) * top / 127.0)
        with tf.GradientTape() as tape:
            logits, _ = forward(x, True, ranges if fake_quant else None)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.cast(y, tf.int32), logits=logits))
            if model.losses:
                loss += tf.add_n(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        for (k, _), value in zip(kernels, kept):
            k.assign(value)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    batches = iter(training_batches(data, config, settings, trained.step))
    for _ in range(steps):
        step(*next(batches))
    run = TrainConfig.from_dict({**config.to_dict(), "train_dir": str(out_dir)})
    write_run_files(run, settings, trained.labels)
    done = tf.Variable(trained.step + steps, dtype=tf.int64, trainable=False)
    return write_checkpoint(tf.train.Checkpoint(model=model, step=done),
                             checkpoint_prefix(out_dir, config.model_architecture,
                                               trained.step + steps), 1)


def _front_end_and_scores(float_model: bytes) -> list[str]:
    """quantize.front_end_nodes plus the scores going into the softmax and the softmax's output:
    the tensors the quantiser is told to leave in float."""
    names = FRONT_END_NODES(float_model)
    interp = runtime.litert_interpreter(float_model, delegate=False)
    tensors = interp.get_tensor_details()
    softmax = next(op for op in interp._get_ops_details() if op["op_name"] == "SOFTMAX")
    return names + [tensors[softmax["inputs"][0]]["name"], tensors[softmax["outputs"][0]]["name"]]


FRONT_END_NODES = quantization.front_end_nodes


def drop_cell(report: dict) -> str:
    """verify's int8 drop in points, its flips and the int8 = float agreement, in one cell."""
    acc, f = report["accuracy"], report["int8_flips"]
    return (f"{100 * (acc['float'] - acc['int8']):.2f} ({f['right_in_float_only']} / "
            f"{f['right_in_int8_only']}), {100 * report['agreement']['int8_vs_float']:.2f}%")


def table(title: str, header: list[str], align: str, rows: list[list[str]]) -> None:
    """A Markdown table under a bold title; ``align``: one of "l" / "r" per column."""
    print()
    print(title)
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def crossing_chance(only_float: float, only_int8: float, clips: int) -> float:
    """P(right-in-float-only minus right-in-int8-only > clips / 100), both Poisson."""
    def pmf(lam: float, k: int) -> float:
        return math.exp(-lam) * lam ** k / math.factorial(k)

    limit = clips / 100
    return sum(pmf(only_float, a) * pmf(only_int8, b)
               for a in range(60) for b in range(60) if a - b > limit + 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None,
                        help="bench_verification's --work folder (trained runs and exports; "
                             "default: a new temporary folder, the models trained there)")
    parser.add_argument("--real_models", default=",".join(REAL_MODELS))
    parser.add_argument("--real_seeds", default="1,2,3")
    parser.add_argument("--clips", type=int, default=2000,
                        help="augmented training clips for the score-range comparison")
    parser.add_argument("--finetune_steps", type=int, default=0,
                        help="also fine-tune each model this many steps with and without fake "
                             "quantisation (part 4; 0: skip)")
    parser.add_argument("--float_scores", action="store_true",
                        help="also freeze each model with its last layer in float (part 5)")
    args = parser.parse_args()
    shared = shared_datasets_dir()
    data_dir = shared / "speech_commands_test_set_v0.02_dev" if shared else None
    if data_dir is None or not data_dir.is_dir():
        print(f"{data_dir or 'the shared datasets folder'}: the real Speech Commands test-set "
              "sample was not found (../shared/datasets, or KWLESSON_SHARED_DATASETS); "
              "nothing to measure")
        return
    noise = shared / "background_noise" / "_background_noise_"
    args.work = args.work or Path(tempfile.mkdtemp(prefix="bench_int8_floor_"))
    args.work.mkdir(parents=True, exist_ok=True)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"TensorFlow {tf.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"load before: {load()}")
    print(f"command: python benchmarks/bench_int8_floor.py {' '.join(sys.argv[1:])}")
    ranges: dict[tuple[int, float], list[list[float]]] = {rule: [] for rule in RULES}
    bias_rows, tuned_rows, score_rows, flips = [], [], [], {}
    for arch in [a.strip() for a in args.real_models.split(",") if a.strip()]:
        for seed in [int(s) for s in args.real_seeds.split(",") if s.strip()]:
            ckpt = real_checkpoint(arch, data_dir, noise if noise.is_dir() else None,
                                   args.work, seed=seed)
            name = f"{arch} seed {seed}"
            trained = load_trained(ckpt)
            model, settings, config = trained.model, trained.settings, trained.config
            data = export.run_data(config)
            calib = features(export.calibration_audio(data, settings, 300, seed=config.seed),
                             settings)
            augmented = features(export.calibration_audio(
                data, settings, args.clips, seed=config.seed + 2, augment=config), settings)
            val_audio, truth = data.arrays("validation")
            val = features(val_audio, settings)
            z_cal, z_aug, z_val = (quantization.keras_logits(model, x).astype(np.float64)
                                   for x in (calib, augmented, val))
            best = np.sort(z_cal, -1)
            low_avg, top_avg = z_cal.min(-1).mean(), z_cal.max(-1).mean()
            for k, headroom in RULES:
                second = best[:, -2].max()
                low = max(low_avg, best[:, -1].min() - k)
                top = max(top_avg, second + headroom * abs(second))
                ranges[(k, headroom)].append([*compare(z_aug, low, top),
                                              *compare(z_val, low, top)])

            out = args.work / f"export_real_{Path(ckpt).parent.name}_{Path(ckpt).name}"
            export.freeze(ckpt, out, stream=io.StringIO())
            card = export.load_model_card(out)
            blob = (out / export.MICRO_TFLITE).read_bytes()
            check = export.micro_input(augmented[:1000], card)
            got, info = micro_scores(blob, check)
            ok = ((z_aug[:1000] > (-128 - info["zero"] + 1) * info["scale"])
                  & (z_aug[:1000] < (127 - info["zero"] - 1) * info["scale"]))
            diff = got - z_aug[:1000]
            shift = np.array([diff[ok[:, c], c].mean() if ok[:, c].any() else 0.0
                              for c in range(diff.shape[1])])
            row = [name, f"{info['scale']:.3f}", f"{np.abs(shift).max():.3f}"]
            for b in (blob, bias_corrected(blob, info["last"], shift)):
                s, _ = micro_scores(b, export.micro_input(val, card))
                kp, qp = z_val.argmax(-1), s.argmax(-1)
                row.append(f"{100 * np.mean(kp != qp):.2f}% "
                           f"({int(np.sum((kp == truth) & (qp != truth)))} / "
                           f"{int(np.sum((qp == truth) & (kp != truth)))})")
            bias_rows.append(row)
            report = verify.verify(out, data=data, split="validation", micro=False)
            f = report["int8_flips"]
            flips.setdefault(arch, []).append(
                (f["right_in_float_only"], f["right_in_int8_only"], report["clips"]))
            if args.finetune_steps:
                row = [name, f"{100 * report['agreement']['int8_vs_float']:.2f}"]
                for fake_quant in (False, True):
                    run = args.work / (f"finetune_{Path(ckpt).parent.name}_{args.finetune_steps}"
                                       + ("_fake_quant" if fake_quant else ""))
                    tuned = finetune(ckpt, run, args.finetune_steps, fake_quant,
                                     card["micro_input"]["bin0_divisor"], data)
                    tuned_out = args.work / f"export_{run.name}"
                    export.freeze(tuned, tuned_out, stream=io.StringIO())
                    r = verify.verify(tuned_out, data=data, split="validation", micro=False)
                    f = r["int8_flips"]
                    row.append(f"{100 * r['accuracy']['float']:.2f} / "
                               f"{100 * r['agreement']['int8_vs_float']:.2f} "
                               f"({f['right_in_float_only']} / {f['right_in_int8_only']})")
                tuned_rows.append(row)
            if args.float_scores:
                wide = args.work / f"float_scores_{Path(ckpt).parent.name}"
                with mock.patch.object(export, "front_end_nodes", _front_end_and_scores):
                    export.freeze(ckpt, wide, stream=io.StringIO())
                r = verify.verify(wide, data=data, split="validation", micro=False)
                score_rows.append([
                    name, *(f"{(d / export.INT8_TFLITE).stat().st_size:,}" for d in (out, wide)),
                    drop_cell(report), drop_cell(r)])
            print(f"{name}: done", file=sys.stderr, flush=True)

    table("**1. The scores' range** (Keras' scores rounded to it, nothing else quantised; mean "
          "over the models; first row: freeze's rule)",
          ["starts below the lowest best score", "headroom above the largest runner-up",
           f"disagreement, {args.clips} augmented training clips %", "L1, augmented",
           "disagreement, validation %", "L1, validation"], "rrrrrr",
          [[str(k), f"{headroom:.0%}", f"{100 * m[0]:.2f}", f"{m[1]:.4f}", f"{100 * m[2]:.2f}",
            f"{m[3]:.4f}"]
           for (k, headroom), m in ((key, np.mean(v, axis=0)) for key, v in ranges.items())])
    table("**2. Per-class bias of the micro model's scores**, corrected in its last layer "
          "(validation top-1 disagreement with Keras; clips right in Keras only / micro only)",
          ["model", "score step", "largest mean bias", "before", "after bias correction"],
          "lrrll", bias_rows)
    chance_rows = []
    for arch, rows in flips.items():
        a, b = sum(r[0] for r in rows) / len(rows), sum(r[1] for r in rows) / len(rows)
        clips = rows[0][2]
        chance_rows.append([arch, str(len(rows)), f"{a * len(rows):.0f} / {b * len(rows):.0f}",
                            f"{a:.2f} / {b:.2f}", str(clips),
                            f"{crossing_chance(a, b, clips):.2f}"])
    table("**3. Chance** that one more model crosses the 1-point line on a validation split of "
          "this size (flips Poisson at the pooled rates)",
          ["architecture", "models", "right in float only / int8 only, pooled", "per model",
           "clips", "P(int8 drop > 1 point)"], "lrllrr", chance_rows)
    if tuned_rows:
        table(f"**4. Fine-tuned {args.finetune_steps} more steps**, without and with fake "
              "quantisation (validation: float accuracy % / int8 = float agreement %, clips "
              "right in float only / int8 only)",
              ["model", "int8 = float % as trained", "fine-tuned",
               "fine-tuned with fake quantisation"], "lrll", tuned_rows)
    if score_rows:
        table("**5. Float scores**: the int8 audio-in file with its last layer and softmax in "
              "float (validation: int8 drop in points, clips right in float only / int8 only, "
              "int8 = float agreement)",
              ["model", "int8 file bytes", "with float scores", "as frozen",
               "with float scores"], "lrrll", score_rows)
    print()
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
