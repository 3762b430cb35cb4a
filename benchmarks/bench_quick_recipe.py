"""Quick-recipe candidates: trained on the offline dataset alone, scored offline and on real speech.

The course's quick model trains on synthetic speech only (``kwlesson.synth.offline_dataset``),
so two figures decide a recipe: accuracy on the offline testing split (does it learn the
task?) and accuracy on the real clips of the shared Speech Commands v0.02 test-set sample (does
it hear people?). Each candidate trains with ``kwlesson.training.train`` exactly as ``kwlesson
train`` would, so whatever wins here is what the library ships. One candidate per child
process (its own peak memory), one at a time.

    python benchmarks/bench_quick_recipe.py --list
    python benchmarks/bench_quick_recipe.py --candidates current ds_cnn_800 --speakers 300
    python benchmarks/bench_quick_recipe.py --candidates ds_cnn_800 --seeds 1 2 3 --record
    python benchmarks/bench_quick_recipe.py --candidates current --seeds 59185 1 2 \
        --speakers 500 --stream
    python benchmarks/bench_quick_recipe.py --candidates current_micro tiny_conv_micro \
        tiny_conv_mfcc --seeds 59185 1 2 --speakers 500 --stream

``--stream`` also scores lesson 08's stream as the lesson makes it (180 s of offline test-split
words over the offline noise, its RecognizeCommands settings: 500 ms, 0.7, 1500 ms, 3) and
counts false accepts per hour on 10 minutes of that noise without words.

Without the real clips the real-speech column says so and the offline figures still print.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Deterministic kernels, as the lessons and the tests train: ``current`` with seed 59185 is then
# the course's quick model itself, not another draw of its recipe.
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")

DEV_SET = "speech_commands_test_set_v0.02_dev"
_ADAM_DS_CNN = {"model_architecture": "ds_cnn", "optimizer": "adam",
                "learning_rate": "0.005,0.001", "background_volume": 0.3}
_ADAM_TC_RESNET = {**_ADAM_DS_CNN, "model_architecture": "tc_resnet"}
_TC_RESNET_S20 = {**_ADAM_TC_RESNET, "window_stride_ms": 20.0}

#: name -> TrainConfig fields on top of the seed's defaults.
CANDIDATES: dict[str, dict[str, Any]] = {
    # training.QUICK_RECIPE as it stands.
    "current": {},
    # ds_cnn (bench_real_speech's best model) with louder noise, 800 steps.
    "ds_cnn_800": {**_ADAM_DS_CNN, "how_many_training_steps": "600,200"},
    # The same with SpecAugment and label smoothing.
    "ds_cnn_800_sa": {**_ADAM_DS_CNN, "how_many_training_steps": "600,200",
                      "freq_mask_bins": 8, "time_mask_frames": 20, "label_smoothing": 0.1},
    "ds_cnn_1600_sa": {**_ADAM_DS_CNN, "how_many_training_steps": "1200,400",
                       "freq_mask_bins": 8, "time_mask_frames": 20, "label_smoothing": 0.1},
    # ds_cnn on frames every 20 ms instead of 10 (49 x 40 MFCC, as the seed's micro model):
    # half the positions for every layer, so about twice the steps in the same time.
    "ds_cnn_s20_1200": {**_ADAM_DS_CNN, "how_many_training_steps": "900,300",
                        "window_stride_ms": 20.0},
    "ds_cnn_s20_1200_sa": {**_ADAM_DS_CNN, "how_many_training_steps": "900,300",
                           "window_stride_ms": 20.0, "freq_mask_bins": 8,
                           "time_mask_frames": 10, "label_smoothing": 0.1},
    # TC-ResNet8 x1.5 on the default 98 x 40 MFCC: a sixth of ds_cnn's MACs there; measured
    # at about half the CPU per step of ds_cnn on 20 ms frames.
    "tc_resnet_1500": {**_ADAM_TC_RESNET, "how_many_training_steps": "1100,400"},
    "tc_resnet_2000": {**_ADAM_TC_RESNET, "how_many_training_steps": "1500,500"},
    # TC-ResNet on 20 ms frames (49 x 40): half the time positions; measured at about 130 CPU
    # ms per step against 215 on 10 ms frames, for the same accuracy (RESULTS.md).
    "tc_resnet_s20_1500": {**_TC_RESNET_S20, "how_many_training_steps": "1100,400"},
    "tc_resnet_s20_1800": {**_TC_RESNET_S20, "how_many_training_steps": "1350,450"},
    # 800 steps: what lesson 03's live run can afford in about a minute and a half.
    "tc_resnet_s20_800": {**_TC_RESNET_S20, "how_many_training_steps": "600,200"},
    # The quick recipe with words further off centre in training (streaming: a word can sit
    # anywhere in the window).
    "current_shift200": {**_TC_RESNET_S20, "how_many_training_steps": "1100,400",
                         "time_shift_ms": 200.0},
    "current_shift300": {**_TC_RESNET_S20, "how_many_training_steps": "1100,400",
                         "time_shift_ms": 300.0},
    # More unknown words or more silence in every batch (the seed's defaults are 10% each).
    "current_unknown25": {**_TC_RESNET_S20, "how_many_training_steps": "1100,400",
                          "unknown_percentage": 25.0},
    "current_silence20": {**_TC_RESNET_S20, "how_many_training_steps": "1100,400",
                          "silence_percentage": 20.0},
    # The quick recipe on TensorFlow Lite Micro's front end (--preprocess micro: 30 ms windows
    # every 20 ms, 40 channels, 49 x 40 as its MFCC), next to "current" (issue 17).
    "current_micro": {**_TC_RESNET_S20, "how_many_training_steps": "1100,400",
                      "preprocess": "micro"},
    # The seed's microcontroller model (tiny_conv on 20 ms frames) with the quick recipe's
    # steps, optimizer, rates and background volume, on each front end.
    "tiny_conv_micro": {**_ADAM_DS_CNN, "model_architecture": "tiny_conv",
                        "window_stride_ms": 20.0, "how_many_training_steps": "1100,400",
                        "preprocess": "micro"},
    "tiny_conv_mfcc": {**_ADAM_DS_CNN, "model_architecture": "tiny_conv",
                       "window_stride_ms": 20.0, "how_many_training_steps": "1100,400",
                       "preprocess": "mfcc"},
}

# Lesson 08's settings (its parameters cell) and the recordings it makes.
STREAM_SECONDS, NOISE_SECONDS = 180, 600
STREAM_SETTINGS = {"average_window_duration_ms": 500, "detection_threshold": 0.7,
                   "suppression_ms": 1500, "minimum_count": 3}


def _stream_figures(model: Any, data_dir: Path, work: Path) -> dict:
    """Lesson 08's stream: correct / wrong / false-positive percentages, false accepts per hour."""
    from kwlesson import streaming, streaming_test
    from kwlesson.audio import read_wav
    from kwlesson.data import SpeechCommands

    clips = SpeechCommands(data_dir, silence_percentage=0, unknown_percentage=None,
                           progress=False)
    test = streaming_test.generate_streaming_test(clips, work / "s.wav", work / "s.txt",
                                             STREAM_SECONDS)
    quiet = streaming_test.generate_streaming_test(clips, work / "n.wav", work / "n.txt",
                                              NOISE_SECONDS, with_words=False)
    stream_model = streaming.keras_stream_model(model.model, model.labels, model.settings)
    truth = streaming_test.read_ground_truth(test.labels_file, model.labels)
    times, scores = streaming.stream_scores(read_wav(test.wav), stream_model)
    stats = streaming_test.calculate_accuracy_stats(
        truth, streaming.recognize_scores(times, scores, model.labels, **STREAM_SETTINGS))
    q_times, q_scores = streaming.stream_scores(read_wav(quiet.wav), stream_model)
    accepts = streaming.recognize_scores(q_times, q_scores, model.labels, **STREAM_SETTINGS)
    return {"stream_correct": stats.correct_percentage, "stream_wrong": stats.wrong_percentage,
            "stream_fp": stats.false_positive_percentage,
            "false_accepts_per_hour": len(accepts) * 3600 / quiet.duration_s,
            "false_accept_labels": sorted({d.label for d in accepts})}


def _one(name: str, fields: dict[str, Any], speakers: int, seed: int, work: Path,
         stream: bool = False) -> dict:
    """Train one candidate (in this process) and score it; returns a row."""
    from kwlesson import synth
    from kwlesson.config import shared_datasets_dir
    from kwlesson.evaluation import evaluate
    from kwlesson.runs import TrainConfig, load_trained
    from kwlesson.training import QUICK_RECIPE, train

    data_dir = synth.offline_dataset(speakers=speakers, progress=False)
    base = dict(QUICK_RECIPE) if name == "current" else {"eval_step_interval": 400,
                                                          "save_step_interval": 400}
    run = work / f"{name}-seed{seed}"
    cfg = TrainConfig(**{**base, **fields, "data_dir": str(data_dir), "seed": seed,
                         "train_dir": str(run / "train"), "summaries_dir": str(run / "logs"),
                         "verbosity": "warn"})
    cpu0, t0 = time.process_time(), time.monotonic()
    result = train(cfg)
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    row = {"candidate": name, "seed": seed, "speakers": speakers, "steps": result.step,
           "offline_test": result.test_accuracy,
           "offline_n": int(result.test_confusion.sum()) if result.test_confusion is not None
           else 0, "train_wall_s": round(wall, 1), "train_cpu_s": round(cpu, 1),
           "steps_per_s": round(result.step / wall, 2), "real": None, "real_n": 0,
           "real_recall": {}}
    shared = shared_datasets_dir()
    if shared is not None and (shared / DEV_SET).is_dir():
        ev = evaluate(load_trained(result.checkpoint_path), folder=shared / DEV_SET)
        row.update(real=ev.accuracy, real_n=ev.n,
                   real_recall={k: v for k, v in ev.recall.items()})
    if stream:
        row.update(_stream_figures(load_trained(result.checkpoint_path), data_dir, run))
    row["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return row


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


_STREAM_HEAD = (" lesson 08 stream: correct | wrong | false positives | false accepts / hour "
                "(labels) |")


def _markdown(rows: list[dict], command: str, stream: bool = False) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    lines = [f"Run {when}, `{platform.machine()}`, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}, load at the end {load}. Command: `{command}`", "",
             "| candidate | seed | speakers | steps | offline test | real speech | train s "
             "(CPU s) | steps/s | peak MB |" + (_STREAM_HEAD if stream else ""),
             "|---|---:|---:|---:|---|---|---:|---:|---:|" + ("---:|" * 4 if stream else "")]
    for r in rows:
        line = (f"| {r['candidate']} | {r['seed']} | {r['speakers']} | {r['steps']} | "
                f"{_pct(r['offline_test'])} (N={r['offline_n']}) | {_pct(r['real'])} "
                f"(N={r['real_n']}) | {r['train_wall_s']} ({r['train_cpu_s']}) | "
                f"{r['steps_per_s']} | {r['peak_mb']} |")
        if stream:
            line += (f" {r['stream_correct']:.1f}% | {r['stream_wrong']:.1f}% | "
                     f"{r['stream_fp']:.1f}% | {r['false_accepts_per_hour']:.0f} "
                     f"({', '.join(r['false_accept_labels']) or 'none'}) |")
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--candidates", nargs="+", default=["current", "ds_cnn_800"],
                   help="names from --list")
    p.add_argument("--speakers", type=int, default=300, help="offline dataset size (speakers)")
    p.add_argument("--seeds", type=int, nargs="+", default=[59185], help="training seeds")
    p.add_argument("--list", action="store_true", help="print the candidates and exit")
    p.add_argument("--record", action="store_true", help="append the table to RESULTS.md")
    p.add_argument("--stream", action="store_true",
                   help="also score lesson 08's stream and false accepts per hour of its noise")
    p.add_argument("--one", help=argparse.SUPPRESS)  # child process: name:seed:speakers:work
    args = p.parse_args(argv)
    if args.list:
        for name, fields in CANDIDATES.items():
            print(f"{name}: {json.dumps(fields)}")
        return 0
    if args.one:
        name, seed, speakers, stream, work = args.one.split(":", 4)
        print(json.dumps(_one(name, CANDIDATES[name], int(speakers), int(seed), Path(work),
                              stream == "1")))
        return 0
    unknown = [c for c in args.candidates if c not in CANDIDATES]
    if unknown:
        p.error(f"unknown candidate(s) {unknown}; see --list")
    rows = []
    with tempfile.TemporaryDirectory(prefix="kwlesson-quick-recipe-") as work:
        for name in args.candidates:
            for seed in args.seeds:
                print(f"training {name} (seed {seed}) ...", flush=True)
                done = subprocess.run(
                    [sys.executable, __file__, "--one",
                     f"{name}:{seed}:{args.speakers}:{int(args.stream)}:{work}"],
                    capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    print(done.stderr[-3000:], file=sys.stderr)
                    return done.returncode
                row = json.loads(done.stdout.strip().splitlines()[-1])
                print(f"  offline test {_pct(row['offline_test'])} (N={row['offline_n']}), "
                      f"real {_pct(row['real'])} (N={row['real_n']}), "
                      f"{row['train_wall_s']} s"
                      + (f", stream {row['stream_correct']:.1f}% correct, {row['stream_fp']:.1f}% "
                         f"false positives, {row['false_accepts_per_hour']:.0f} false accepts/h"
                         if args.stream else ""), flush=True)
                rows.append(row)
    command = "python benchmarks/bench_quick_recipe.py " + " ".join(sys.argv[1:])
    table = _markdown(rows, command, args.stream)
    print(table)
    if args.record:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _results import append_section

        append_section(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
