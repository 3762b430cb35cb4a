"""The micro_speech recipe's model, as it would run in TensorFlow Lite Micro's example.

Trains ``kwlesson train --recipe micro_speech`` (yes/no tiny_conv on the 'micro' front end) on
the offline dataset (or takes ``--checkpoint``), freezes it, and scores the drop-in model
``micro_speech/tflite-micro/models/micro_speech_quantized.tflite`` in TensorFlow Lite Micro's
Python interpreter, fed as the example feeds it (16-bit samples, the front end's integers, the
example's int8 formula: ``kwlesson.micro_speech.device_inputs``), next to the Keras model:
accuracy and top-1 agreement on the offline testing split and on the shared real clips (every
word that is not yes or no counts as unknown there, as in the example), the model's bytes and
operators. Prints the figures; paste them into RESULTS.md.

    python benchmarks/bench_micro_speech.py --work /tmp/kwmicro
    python benchmarks/bench_micro_speech.py --checkpoint /tmp/kwmicro/train --work /tmp/kwmicro
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")

DEV_SET = "speech_commands_test_set_v0.02_dev"


def _real_clips(labels: list[str]) -> tuple | None:
    """The shared real clips as (audio, label index), other words as _unknown_; None if absent."""
    import numpy as np

    from kwlesson.audio import read_wav
    from kwlesson.config import shared_datasets_dir

    root = shared_datasets_dir()
    folder = root / DEV_SET if root else None
    if folder is None or not folder.is_dir():
        return None
    audio, truth = [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        index = labels.index(sub.name) if sub.name in labels else labels.index("_unknown_")
        for wav in sorted(sub.glob("*.wav")):
            audio.append(read_wav(wav, clip_samples=16000))
            truth.append(index)
    return np.stack(audio).astype(np.float32), np.array(truth)


def _score(name: str, x, y, trained, tflite: bytes) -> dict:
    import numpy as np

    from kwlesson.features import compute_features
    from kwlesson.micro_speech import device_inputs
    from kwlesson.runtime import run_micro

    keras = np.concatenate([trained.model.predict(
        compute_features(x[i:i + 500], trained.settings).numpy(), verbose=0).argmax(-1)
        for i in range(0, len(x), 500)])
    device = run_micro(tflite, device_inputs(x)).argmax(-1)
    row = {"clips": len(y), "keras": float(np.mean(keras == y)),
           "tflm_device": float(np.mean(device == y)),
           "agreement": float(np.mean(device == keras))}
    print(f"{name:<22} N={row['clips']:>5}  Keras {100 * row['keras']:5.1f}%  "
          f"TFLM as the device feeds it {100 * row['tflm_device']:5.1f}%  "
          f"top-1 agreement {100 * row['agreement']:6.2f}%")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/kwmicro", help="folder for the run and export")
    parser.add_argument("--checkpoint", default="", help="a trained micro_speech run to use")
    parser.add_argument("--seed", type=int, default=59185)
    args = parser.parse_args(argv)
    work = Path(args.work)

    from kwlesson import export, synth
    from kwlesson.micro_speech import DROPIN_DIR, TFLM_MODEL
    from kwlesson.recipes import recipe
    from kwlesson.runs import TrainConfig, load_trained
    from kwlesson.training import load_data, train

    t0 = time.time()
    checkpoint = args.checkpoint
    if not checkpoint:
        config = TrainConfig(**recipe("micro_speech"), seed=args.seed, verbosity="warn",
                             data_dir=str(synth.offline_dataset(progress=False)),
                             train_dir=str(work / "train"), summaries_dir=str(work / "logs"))
        checkpoint = train(config, []).checkpoint_path
    trained = load_trained(checkpoint)
    out = work / "export"
    export.freeze(checkpoint, out, stream=io.StringIO())
    card = json.loads((out / export.MODEL_CARD).read_text())["micro_speech"]
    if not card["written"]:
        print(f"no drop-in model: {card['why']}", file=sys.stderr)
        return 1
    tflite = (out / DROPIN_DIR / "tflite-micro" / "models" / TFLM_MODEL).read_bytes()
    print(f"micro_speech drop-in: {card['model_bytes']:,} bytes, operators "
          f"{', '.join(card['operators'])}, labels {', '.join(card['labels'])}")
    results = {"model_bytes": card["model_bytes"], "operators": card["operators"]}
    x, y = load_data(trained.config).arrays("testing")
    results["offline_testing"] = _score("offline testing", x, y, trained, tflite)
    real = _real_clips(list(trained.labels))
    if real is None:
        print("real clips: absent (set KWLESSON_SHARED_DATASETS to the shared datasets folder)")
    else:
        results["real"] = _score("real (shared dev set)", *real, trained, tflite)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} "
          f"UTC; {time.time() - t0:.0f} s; load {os.getloadavg()[0]:.1f}")
    print(f"command: python benchmarks/bench_micro_speech.py {' '.join(argv or sys.argv[1:])}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
