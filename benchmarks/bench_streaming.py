"""Streaming recognition on real speech: accuracy on a 5-minute stream, and speed on one core.

1. Train a quick model on the training split of the shared Speech Commands test-set sample
   (validation 11 / testing 1, because those clips all sit in the default testing band of the
   name hash), with the official background noise; the training runs in a child process
   (``kwlesson train``) so this process can pin TensorFlow to one thread. Or pass --checkpoint.
2. Build a stream from clips of the *testing* split over the official noise
   (``generate_streaming_test``: background volume 0.1, a word every 3 s on average, 30% unknown).
3. Count matched / correct / wrong / false positives as the reference's
   ``test_streaming_accuracy`` (time tolerance 750 ms), with the reference tool's settings
   (500 ms average, threshold 0.7) and with the RecognizeCommands class's (1000 ms, 0.2).
4. False accepts per hour: the same settings on ``--noise_minutes`` of the official noise alone
   (``generate_streaming_test(..., with_words=False)``, same volumes), every detection counted.
5. Real-time factor on one core (intra- and inter-op threads 1): seconds of audio per second
   of compute for the whole stream, windows every 30 ms, for each architecture in --rtf_archs,
   with the stream's features computed once and shared by the windows, and for comparison with
   features recomputed per window on a 30 s piece.

Prints the figures with the machine, date and load (``uptime``); paste them into RESULTS.md.

    python benchmarks/bench_streaming.py
    python benchmarks/bench_streaming.py --checkpoint /tmp/kw/train/ds_cnn.ckpt-1200
    python benchmarks/bench_streaming.py --recipe real_speech --rtf_archs ""
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU figures; no GPU probing noise


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "uptime unavailable"


def real_data_dir(tmp: Path) -> Path:
    """A folder of symlinks: the shared test-set sample's label folders plus the official noise."""
    from kwlesson.config import shared_datasets_dir

    shared = shared_datasets_dir()
    clips = shared / "speech_commands_test_set_v0.02_dev" if shared else None
    noise = shared / "background_noise" / "_background_noise_" if shared else None
    if clips is None or not clips.is_dir() or not noise.is_dir():
        sys.exit("bench_streaming: the real clips are absent; set KWLESSON_SHARED_DATASETS to the "
                 "folder holding speech_commands_test_set_v0.02_dev and background_noise")
    root = tmp / "data"
    root.mkdir()
    for folder in clips.iterdir():
        if folder.is_dir():
            (root / folder.name).symlink_to(folder, target_is_directory=True)
    (root / "_background_noise_").symlink_to(noise, target_is_directory=True)
    return root


def train_quick(data: Path, work: Path, arch: str, steps: str, rates: str,
                recipe: str = "") -> str:
    # A named recipe brings its own architecture, steps and rates (kwlesson.recipes).
    how = ([f"--recipe={recipe}"] if recipe else
           [f"--model_architecture={arch}", f"--how_many_training_steps={steps}",
            f"--learning_rate={rates}", "--optimizer=adam", "--eval_step_interval=400"])
    cmd = [sys.executable, "-m", "kwlesson.cli", "train", f"--data_dir={data}", *how,
           "--validation_percentage=11", "--testing_percentage=1",
           f"--train_dir={work / 'train'}", f"--summaries_dir={work / 'logs'}",
           "--save_step_interval=400", "--verbosity=warn"]
    print("training:", " ".join(cmd[3:]), flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench_streaming: training failed:\n{done.stdout}\n{done.stderr}")
    print(done.stdout.strip())
    print(f"training took {time.perf_counter() - t0:.0f} s", flush=True)
    return str(work / "train")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="", help="a trained checkpoint or train_dir "
                        "(default: train one here)")
    parser.add_argument("--recipe", default="", help="a named recipe to train (kwlesson.recipes, "
                        "e.g. real_speech); overrides --arch, --steps and --learning_rate")
    parser.add_argument("--arch", default="ds_cnn", help="architecture to train")
    parser.add_argument("--steps", default="900,300", help="how_many_training_steps")
    parser.add_argument("--learning_rate", default="0.003,0.0005")
    parser.add_argument("--duration", type=float, default=300, help="stream length in seconds")
    parser.add_argument("--noise_minutes", type=float, default=60,
                        help="minutes of speech-free noise for false accepts per hour (0: skip)")
    parser.add_argument("--rtf_archs", default="tiny_conv,low_latency_conv,ds_cnn,conv",
                        help="architectures whose real-time factor is measured")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads for timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="", help="working folder (default: a temporary one)")
    args = parser.parse_args(argv)

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print(f"date: {datetime.now().isoformat(timespec='seconds')}")
    print(f"load at start: {uptime()}")
    print("command: python benchmarks/bench_streaming.py " + " ".join(argv or sys.argv[1:]))

    tmp = tempfile.TemporaryDirectory(prefix="bench_streaming_")
    work = Path(args.work) if args.work else Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    data = real_data_dir(Path(tempfile.mkdtemp(dir=work)))
    checkpoint = args.checkpoint or train_quick(data, work, args.arch, args.steps,
                                                args.learning_rate, args.recipe)

    import tensorflow as tf

    # Before any op runs: one thread, so the figure is "one core".
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    import warnings

    from kwlesson import streaming as S
    from kwlesson import streaming_test as ST
    from kwlesson.audio import read_wav
    from kwlesson.data import DataWarning
    from kwlesson.models import count_macs, create_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        test = ST.generate_streaming_test(
            data, work / "stream.wav", work / "stream_labels.txt", args.duration,
            validation_percentage=11, testing_percentage=1, seed=args.seed)
    n_unknown = sum(label == S.UNKNOWN_LABEL for label, _ in test.ground_truth)
    print(f"\nstream: {test.duration_s:g} s, {len(test.ground_truth)} words "
          f"({n_unknown} unknown) from {len(set(test.clips))} testing-split clips, "
          "official noise at volume <= 0.1")

    model = S.load_stream_model(checkpoint)
    audio = read_wav(test.wav)
    truth = ST.read_ground_truth(test.labels_file, model.labels)
    S.stream_scores(audio[:160000], model)  # warm-up: tracing
    t0 = time.perf_counter()
    times, scores = S.stream_scores(audio, model)
    score_s = time.perf_counter() - t0
    print(f"model: {model.name}; {len(times)} windows scored in {score_s:.1f} s "
          f"({test.duration_s / score_s:.0f}x real time, {args.threads} thread(s))")
    print("\nstreaming accuracy (time tolerance 750 ms; percentages of the ground-truth words):")
    for name, avg, thr in (("tool defaults: average 500 ms, threshold 0.7", 500, 0.7),
                           ("class defaults: average 1000 ms, threshold 0.2", 1000, 0.2)):
        found = S.recognize_scores(times, scores, model.labels, average_window_duration_ms=avg,
                                   detection_threshold=thr, suppression_ms=1500, minimum_count=3)
        st = ST.calculate_accuracy_stats(truth, found, None, 750)
        print(f"  {name}: {st.summary()}")
        print(f"    counts: {st.how_many_ground_truth_matched} matched, "
              f"{st.how_many_correct_words} correct, {st.how_many_wrong_words} wrong, "
              f"{st.how_many_false_positives} false positives, {len(found)} detections")

    settings_list = (("tool defaults: average 500 ms, threshold 0.7", 500, 0.7),
                     ("class defaults: average 1000 ms, threshold 0.2", 1000, 0.2))
    if args.noise_minutes > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            quiet = ST.generate_streaming_test(
                data, work / "noise.wav", work / "noise_labels.txt", 60 * args.noise_minutes,
                validation_percentage=11, testing_percentage=1, seed=args.seed + 1,
                with_words=False)
        q_times, q_scores = S.stream_scores(read_wav(quiet.wav), model)
        hours = quiet.duration_s / 3600
        print(f"\nfalse accepts on {quiet.duration_s / 60:g} min of the official noise alone "
              "(volume <= 0.1, no words):")
        for name, avg, thr in settings_list:
            found = S.recognize_scores(q_times, q_scores, model.labels,
                                       average_window_duration_ms=avg, detection_threshold=thr,
                                       suppression_ms=1500, minimum_count=3)
            labels = sorted({d.label for d in found})
            print(f"  {name}: {len(found)} false accepts, {len(found) / hours:.1f} per hour"
                  f" ({', '.join(labels) or 'none'})")

    print(f"\nreal-time factor on {args.threads} thread(s), {test.duration_s:g} s stream, "
          "stride 30 ms, batch 256 (untrained weights: speed does not depend on them):")
    from kwlesson.runs import load_trained

    settings = load_trained(checkpoint).settings
    labels = model.labels
    piece = audio[: 30 * 16000]
    for arch in [a.strip() for a in args.rtf_archs.split(",") if a.strip()]:
        keras_model = create_model(arch, settings.shape, len(labels))
        sm = S.keras_stream_model(keras_model, labels, settings, name=arch)
        S.stream_scores(audio[:160000], sm)
        S.stream_scores(piece[:32000], sm, share_features=False)
        t0, c0 = time.perf_counter(), time.process_time()
        t, sc = S.stream_scores(audio, sm)
        S.recognize_scores(t, sc, labels)
        shared = time.perf_counter() - t0
        cores = (time.process_time() - c0) / shared  # ~1.0 when TensorFlow kept to one thread
        t0 = time.perf_counter()
        S.stream_scores(piece, sm, share_features=False)
        per_window = time.perf_counter() - t0
        print(f"  {arch:<18} {count_macs(keras_model) / 1e6:7.2f} M MACs/window: "
              f"{test.duration_s / shared:7.0f}x real time (shared features, incl. "
              f"RecognizeCommands); {len(piece) / 16000 / per_window:5.0f}x with features "
              f"per window; CPU/wall {cores:.2f}", flush=True)
    print(f"\nload at end: {uptime()}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
