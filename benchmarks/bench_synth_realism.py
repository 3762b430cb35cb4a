"""How real is the offline speech? Train only on synthetic clips, test on real Speech Commands.

A small log-mel CNN learns the 12 labels (_silence_, _unknown_, 10 keywords) from the offline
dataset alone (kwlesson.synth), then is scored on the 3,441 real clips of the Speech Commands
v0.02 test set (``<shared datasets>/speech_commands_test_set_v0.02_dev``). No real speech is
used in training. With ``--official-noise`` the six official background-noise recordings
are mixed into training clips too (they contain no speech); otherwise only the generated noises.

The ablation switches off one ingredient of the synthetic speakers at a time (leave-one-out),
plus 'none' (one plain voice) and 'all', and reports what each ingredient is worth.

Run (a few minutes per configuration on 2 cores; results in benchmarks/RESULTS.md):
    python benchmarks/bench_synth_realism.py --speakers 100       # ~58% (RESULTS.md)
    python benchmarks/bench_synth_realism.py --speakers 100 --official-noise   # + real noises
    python benchmarks/bench_synth_realism.py --ablation --speakers 60 --epochs 16   # the table
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from _results import append_section, load  # noqa: E402

from kwlesson import synth  # noqa: E402
from kwlesson.audio import read_wav  # noqa: E402
from kwlesson.config import shared_datasets_dir  # noqa: E402

LABELS = ["_silence_", "_unknown_", *synth.KEYWORDS]
TEST_DIR_NAME = "speech_commands_test_set_v0.02_dev"
NOISE_DIR = Path("background_noise") / "_background_noise_"


def load_folder_clips(root: Path, words: list[str]) -> dict[str, np.ndarray]:
    return {w: np.stack([read_wav(p, clip_samples=16000) for p in sorted((root / w).glob("*.wav"))])
            for w in words}


def load_noises(folder: Path) -> list[np.ndarray]:
    return [read_wav(p) for p in sorted(folder.glob("*.wav"))]


def load_test(root: Path) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for i, label in enumerate(LABELS):
        for p in sorted((root / label).glob("*.wav")):
            xs.append(read_wav(p, clip_samples=16000))
            ys.append(i)
    return np.stack(xs), np.array(ys, np.int32)


def _crops(rng: np.random.Generator, noises: list[np.ndarray], n: int) -> np.ndarray:
    out = np.empty((n, 16000), np.float32)
    for i in range(n):
        x = noises[int(rng.integers(len(noises)))]
        s = int(rng.integers(0, len(x) - 16000))
        out[i] = x[s: s + 16000]
    return out


def make_epoch(rng: np.random.Generator, clips: dict[str, np.ndarray], noises: list[np.ndarray],
               per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """One balanced epoch: every keyword clip, as many unknown and silence clips, augmented."""
    xs, ys = [], []
    for i, w in enumerate(synth.KEYWORDS):
        xs.append(clips[w])
        ys += [i + 2] * len(clips[w])
    aux = np.concatenate([clips[w] for w in synth.AUXILIARY_WORDS])
    xs.append(aux[rng.choice(len(aux), per_class, replace=False)])
    ys += [1] * per_class
    x = np.concatenate(xs)
    # Time shift up to +-100 ms, zero filled (the reference's time_shift_ms).
    shifts = rng.integers(-1600, 1601, len(x))
    for i, s in enumerate(shifts):
        x[i] = np.roll(x[i], s)
        if s > 0:
            x[i, :s] = 0
        elif s < 0:
            x[i, s:] = 0
    # Background noise in 80% of clips at 0-30 dB SNR (relative to the clip's own level).
    rms = np.sqrt(np.mean(x ** 2, axis=1, keepdims=True)) + 1e-6
    bg = _crops(rng, noises, len(x))
    bg /= np.sqrt(np.mean(bg ** 2, axis=1, keepdims=True)) + 1e-6
    snr = rng.uniform(0, 30, (len(x), 1))
    use = rng.random((len(x), 1)) < 0.8
    x = x + use * bg * rms * 10 ** (-snr / 20)
    # Random overall gain: real recordings range from whispers to shouts.
    x *= 10 ** (rng.uniform(-20, 6, (len(x), 1)) / 20)
    # Silence: noise alone at a random level (some nearly digital silence).
    sil = _crops(rng, noises, per_class) * 10 ** (rng.uniform(-50, 0, (per_class, 1)) / 20)
    x = np.concatenate([x, sil]).clip(-1, 1).astype(np.float32)
    y = np.array(ys + [0] * per_class, np.int32)
    order = rng.permutation(len(x))
    return x[order], y[order]


def build_model(num_labels: int, size: str = "small"):
    import keras
    import tensorflow as tf

    from kwlesson.features import FeatureLayer, FeatureSettings

    class Normalise(keras.layers.Layer):
        """Per-clip mean removal per mel band (undoes level and microphone colour)."""

        def call(self, x):
            return x - tf.reduce_mean(x, axis=1, keepdims=True)

    class SpecAugment(keras.layers.Layer):
        """Mask a random band of mel channels and a random stretch of frames while training."""

        def call(self, x, training=None):
            if not training:
                return x
            shape = tf.shape(x)
            b, t, f = shape[0], shape[1], shape[2]

            def mask(length, width):
                w = tf.random.uniform([b, 1], 0, width, tf.int32)
                s = tf.random.uniform([b, 1], 0, length - width, tf.int32)
                r = tf.range(length)[None, :]
                return tf.cast((r < s) | (r >= s + w), x.dtype)

            return x * mask(f, 8)[:, None, :] * mask(t, 20)[:, :, None]

    settings = FeatureSettings(preprocess="log_mel", feature_bin_count=40)
    inputs = keras.Input(shape=(16000,))
    x = FeatureLayer(settings)(inputs)
    x = Normalise()(x)
    x = SpecAugment()(x)
    x = keras.layers.Reshape((*settings.shape, 1))(x)
    # small: five 3x3 conv layers, pooling early: ~33M multiply-adds per clip, so a training
    # run takes a minute or two on 2 cores. wide: six conv layers (32-96 filters, two per
    # resolution), ~125M multiply-adds, ~4x slower.
    if size == "wide":
        blocks = ((32, False), (32, True), (64, False), (64, True), (96, False), (96, True))
    else:
        blocks = ((32, True), (48, True), (64, False), (64, True), (96, False))
    for filters, pool in blocks:
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        if pool:
            x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(num_labels)(x)
    return keras.Model(inputs, outputs)


def train_and_score(data_dir: Path, test: tuple[np.ndarray, np.ndarray], epochs: int,
                    official_noise: Path | None, seed: int, size: str = "small") -> dict:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    clips = load_folder_clips(data_dir, list(synth.DEFAULT_WORDS))
    noises = load_noises(data_dir / "_background_noise_")
    if official_noise is not None:
        noises += load_noises(official_noise)
    per_class = len(clips[synth.KEYWORDS[0]])
    rng = np.random.default_rng(seed)
    model = build_model(len(LABELS), size)
    steps = epochs * int(np.ceil((12 * per_class) / 64))
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, steps, alpha=0.02)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    t0 = time.perf_counter()
    for _ in range(epochs):
        x, y = make_epoch(rng, clips, noises, per_class)
        hist = model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    train_secs = time.perf_counter() - t0
    x_test, y_test = test
    pred = np.argmax(model.predict(x_test, batch_size=256, verbose=0), axis=1)
    confusion = tf.math.confusion_matrix(y_test, pred, num_classes=len(LABELS)).numpy()
    per_label = {lab: float(confusion[i, i] / max(confusion[i].sum(), 1))
                 for i, lab in enumerate(LABELS)}
    return {"accuracy": float(np.mean(pred == y_test)),
            "train_accuracy": float(hist.history["accuracy"][-1]),
            "per_label": per_label, "confusion": confusion.tolist(), "train_secs": train_secs}


#: Leave-one-out groups of the ablation. Related ingredients are switched off together to keep
#: the table to nine training runs (each a few minutes on a shared 2-core machine).
ABLATION_GROUPS = (
    ("voices",),
    ("rate",),
    ("pitch",),
    ("loudness", "placement"),
    ("speed",),
    ("room", "mic"),
    ("noise",),
)


def configurations(ablation: bool) -> list[tuple[str, list[str]]]:
    every = list(synth.INGREDIENTS)
    if not ablation:
        return [("all", every)]
    return ([("all", every), ("none (one plain voice)", [])] +
            [(f"all but {' & '.join(group)}", [i for i in every if i not in group])
             for group in ABLATION_GROUPS])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=synth.DEFAULT_SPEAKERS)
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", choices=("small", "wide"), default="small",
                        help="wide: a larger CNN, ~4x slower")
    parser.add_argument("--ablation", action="store_true", help="leave-one-out table")
    parser.add_argument("--official-noise", action="store_true",
                        help="also mix the six official background noises into training")
    parser.add_argument("--only", nargs="*", help="run only configurations with these names")
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--log", type=Path, help="append one JSON line per configuration here")
    args = parser.parse_args(argv)

    shared = shared_datasets_dir()
    if shared is None or not (shared / TEST_DIR_NAME).is_dir():
        sys.exit(f"needs the real test clips in <shared datasets>/{TEST_DIR_NAME}; "
                 "set KWLESSON_SHARED_DATASETS")
    official = shared / NOISE_DIR if args.official_noise else None
    if official is not None and not official.is_dir():
        sys.exit(f"--official-noise: {official} not found")
    test = load_test(shared / TEST_DIR_NAME)
    print(f"Real test clips: {len(test[0])}", flush=True)

    rows = []
    for name, ingredients in configurations(args.ablation):
        if args.only and name not in args.only:
            continue
        load_before = load()
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            data = synth.synthesize_dataset(Path(tmp) / "ds", speakers=args.speakers,
                                            seed=args.seed, progress=False,
                                            ingredients=ingredients)
            gen_secs = time.perf_counter() - t0
            result = train_and_score(data, test, args.epochs, official, args.seed, args.model)
        result.update(name=name, gen_secs=gen_secs, load=load_before, speakers=args.speakers,
                      epochs=args.epochs, official_noise=bool(official))
        kw = np.mean([result["per_label"][w] for w in synth.KEYWORDS])
        print(f"{name:28s} accuracy {result['accuracy']:.1%}  keywords {kw:.1%}  "
              f"unknown {result['per_label']['_unknown_']:.1%}  "
              f"silence {result['per_label']['_silence_']:.1%}  "
              f"(synthetic train {result['train_accuracy']:.1%}; generate {gen_secs:.0f} s, "
              f"train {result['train_secs']:.0f} s, load {load_before})", flush=True)
        if args.log:
            with open(args.log, "a") as fh:
                fh.write(json.dumps(result) + "\n")
        rows.append(result)

    if not rows:
        return
    base = rows[0]["accuracy"]
    lines = [
        "## Offline dataset: how real is it? (train on synthetic only, test on real)",
        "",
        f"Machine: `{platform.machine()}`, {os.cpu_count()} cores; {dt.date.today().isoformat()}.",
        f"Command: `python benchmarks/bench_synth_realism.py {' '.join(sys.argv[1:])}`",
        f"Data: {rows[0]['speakers']} synthetic speakers x 35 words (seed {args.seed}); "
        f"test: {len(test[0])} real clips of the v0.02 test set (12 labels, chance 8.3%). "
        f"Model: {args.model} log-mel CNN "
        f"({'6 conv, ~0.2M weights' if args.model == 'wide' else '5 conv, ~0.1M weights'}), "
        f"per-clip mean normalisation, SpecAugment, "
        f"{args.epochs} epochs. Training background noise: generated"
        + (" + the six official recordings." if args.official_noise else " only (no real audio)."),
        "",
        "| configuration | real test accuracy | change vs first row | keywords | unknown | "
        "silence | train s | load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        kw = np.mean([r["per_label"][w] for w in synth.KEYWORDS])
        lines.append(f"| {r['name']} | {r['accuracy']:.1%} | {r['accuracy'] - base:+.1%} | "
                     f"{kw:.1%} | {r['per_label']['_unknown_']:.1%} | "
                     f"{r['per_label']['_silence_']:.1%} | {r['train_secs']:.0f} | {r['load']} |")
    best = max(rows, key=lambda r: r["accuracy"])
    lines += ["", "Confusion matrix of the best run (" + best["name"] + "); rows true, columns "
              "predicted, order " + ", ".join(LABELS) + ":", "```"]
    lines += ["[" + " ".join(f"{v:4d}" for v in row) + "]" for row in best["confusion"]]
    lines += ["```", ""]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        append_section(section)


if __name__ == "__main__":
    main()
