"""The ``kwlesson`` command: the library's lessons from a terminal.

Each subcommand is a thin layer over one library function; heavy modules (TensorFlow) load only
when a subcommand needs them, so ``kwlesson --help`` is instant.

>>> main(["data", "info", "--help"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------------------------
# What each subcommand runs: argument values in, an exit status out (0 done, 1 failed, 2 bad
# input), one readable line on stderr for an error, never a traceback


def freeze_command(start_checkpoint: str, output_dir: str,
                   model_architecture: str | None = None,
                   data_dir: str | None = None, calibration_clips: int | None = None,
                   quantize: bool = True, verify_split: str | None = None,
                   calibration: str | None = None) -> int:
    """``kwlesson freeze --start_checkpoint CKPT --output_dir DIR``; 0 on success, 2 on bad
    input, 1 when a conversion failed or ``verify_split`` was given and a check failed.
    ``calibration``: the int8 range rule, as :func:`kwlesson.export.freeze` (None: its
    default); ``calibration_clips`` None: freeze's default.

    >>> freeze_command("/tmp/train/tiny_conv.ckpt-400", "/tmp/kws")  # doctest: +SKIP
    0
    """
    from kwlesson.audio import AudioError
    from kwlesson.export import DEFAULT_CALIBRATION_CLIPS, freeze
    from kwlesson.verify import format_verification, verify

    if calibration_clips is None:
        calibration_clips = DEFAULT_CALIBRATION_CLIPS

    try:
        result = freeze(start_checkpoint, output_dir, model_architecture=model_architecture,
                        data_dir=data_dir, calibration_clips=calibration_clips,
                        quantize=quantize, calibration=calibration)
        if verify_split:
            report = verify(result.output_dir, data_dir, split=verify_split)
            print(format_verification(report))
            return 0 if report["passed"] else 1
    except (FileNotFoundError, NotADirectoryError, ValueError, AudioError) as err:
        print(f"kwlesson freeze: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # a converter failure: not the user's input
        print(f"kwlesson freeze: {err}", file=sys.stderr)
        return 1
    return 0


def label_wav_command(graph: str, wav: str, labels: str | None = None,
                   how_many_labels: int = 3) -> int:
    """``kwlesson label-wav --graph MODEL --wav FILE_OR_FOLDER [--labels FILE]
    [--how_many_labels 3]`` (the seed's flag names); 0 on success, 2 on bad input.

    >>> label_wav_command("/tmp/kws", "yes.wav")  # doctest: +SKIP
    0
    """
    from kwlesson.audio import AudioError
    from kwlesson.label_wav import label_wav

    try:
        label_wav(graph, wav, top_k=how_many_labels, labels=labels)
    except (FileNotFoundError, ValueError, AudioError) as err:
        print(f"kwlesson label-wav: {err}", file=sys.stderr)
        return 2
    return 0


def wav_to_spectrogram_command(input_wav: str, output_image: str, window_size: int = 256,
                            stride: int = 128, brightness: float = 64.0) -> int:
    """``kwlesson wav-to-spectrogram --input_wav FILE --output_image PNG [--window_size 256]
    [--stride 128] [--brightness 64]``; 0 on success, 2 on bad input.

    >>> wav_to_spectrogram_command("yes.wav", "/tmp/spectrogram.png")  # doctest: +SKIP
    0
    """
    from kwlesson.audio import AudioError
    from kwlesson.features import wav_to_spectrogram

    try:
        image = wav_to_spectrogram(input_wav, output_image, window_size, stride, brightness)
    except (FileNotFoundError, ValueError, AudioError) as err:
        print(f"kwlesson wav-to-spectrogram: {err}", file=sys.stderr)
        return 2
    print(f"Wrote {output_image} ({image.shape[1]} x {image.shape[0]} pixels: frequency "
          "across, time down)")
    return 0


def download_command(
    dataset: str = "v0.02",
    dest: str | Path | None = None,
    mirror: str | Path | None = None,
    *,
    base_url: str | None = None,
    progress: bool = True,
) -> int:
    """What ``kwlesson data download`` runs: 0 on success, 1 on a failed download, 2 on bad input.

    Errors are printed to stderr as one readable message, never a traceback.

    >>> download_command("test_v0.02", "/srv/kw", mirror=None)  # doctest: +SKIP
    0
    """
    from kwlesson.download import DownloadError, download_dataset

    try:
        download_dataset(dataset, dest, mirror, progress, base_url=base_url)
    except ValueError as exc:
        print(f"kwlesson data download: {exc}", file=sys.stderr)
        return 2
    except DownloadError as exc:
        print(f"kwlesson data download: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "kwlesson data download: interrupted; run the same command to resume.", file=sys.stderr
        )
        return 130
    return 0


def evaluate_command(checkpoint: str, split: str = "testing", folder: str | None = None,
                     data_dir: str | None = None, batch_size: int = 100,
                     json_path: str | None = None) -> Any:
    """What ``kwlesson evaluate`` does: evaluate, print the report, optionally write JSON.

    >>> evaluate_command("/tmp/speech_commands_train", folder="test_set")  # doctest: +SKIP
    """
    from pathlib import Path

    from kwlesson.evaluation import evaluate

    ev = evaluate(checkpoint, split=split, folder=folder, data_dir=data_dir,
                  batch_size=batch_size)
    print(ev.format())
    if json_path:
        Path(json_path).write_text(json.dumps(ev.to_dict(), indent=2) + "\n")
        print(f"Wrote {json_path}")
    return ev


def synth_command(
    words: Sequence[str] | None = None,
    speakers: int | None = None,
    out: str | os.PathLike | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """What ``kwlesson data synth [--words W ...] [--speakers N] [--out DIR] [--seed S]`` runs.

    Without ``out`` the dataset goes to the cache (the one the lessons use).

    >>> synth_command(words=["yes", "kwlesson"], speakers=8, out="/tmp/mine")  # doctest: +SKIP
    """
    from kwlesson.synth import DEFAULT_SPEAKERS, offline_dataset, synthesize_dataset

    speakers = DEFAULT_SPEAKERS if speakers is None else speakers
    if out is None:
        return offline_dataset(speakers=speakers, seed=seed, words=words, progress=progress)
    return synthesize_dataset(out, words=words, speakers=speakers, seed=seed, progress=progress)


def generate_streaming_test_command(data_dir: str = "", output_audio_file: str = "",
                                    output_labels_file: str = "", **flags: Any) -> int:
    """What ``kwlesson generate-streaming-test`` runs. ``flags``: the seed script's (its names:
    ``test_duration_seconds``, ``background_dir``, ``background_volume``, ``word_gap_ms``,
    ``unknown_percentage``, ``wanted_words``, ...); those not given take
    :func:`kwlesson.streaming_test.generate_streaming_test`'s defaults.

    No ``data_dir``: the offline dataset. Default outputs: ``streaming_test.wav`` and
    ``streaming_test_labels.txt`` in ``data_home()/streaming``. Returns 0, or 2 on bad input
    (one message on stderr).

    >>> generate_streaming_test_command("sc_v0.02", "/tmp/s.wav", "/tmp/s.txt")  # doctest: +SKIP
    0
    """
    from kwlesson.audio import AudioError
    from kwlesson.config import data_home
    from kwlesson.streaming import UNKNOWN_LABEL
    from kwlesson.streaming_test import generate_streaming_test

    options = dict(flags)
    if "test_duration_seconds" in options:  # the seed's flag name for duration_s
        options["duration_s"] = options.pop("test_duration_seconds")
    if "background_dir" in options:
        options["background_dir"] = options["background_dir"] or None
    try:
        if not data_dir:
            from kwlesson import synth

            data_dir = str(synth.offline_dataset())
        home = data_home() / "streaming"
        wav = output_audio_file or str(home / "streaming_test.wav")
        txt = output_labels_file or str(home / "streaming_test_labels.txt")
        result = generate_streaming_test(data_dir, wav, txt, **options)
    except (FileNotFoundError, NotADirectoryError, ValueError, AudioError) as exc:
        print(f"kwlesson generate-streaming-test: {exc}", file=sys.stderr)
        return 2
    n_unknown = sum(label == UNKNOWN_LABEL for label, _ in result.ground_truth)
    print(f"Saved streaming test wav to {result.wav} ({result.duration_s:g} s, "
          f"{len(result.ground_truth)} words, {n_unknown} of them unknown)")
    print(f"Saved streaming test labels to {result.labels_file}")
    return 0


def test_streaming_accuracy_command(wav: str, ground_truth: str, model: str,
                                    **flags: Any) -> int:
    """What ``kwlesson test-streaming-accuracy`` runs. ``flags``: the seed tool's (its names:
    ``labels``, ``clip_duration_ms``, ``clip_stride_ms``, ``average_window_ms``,
    ``detection_threshold``, ``suppression_ms``, ``minimum_count``, ``time_tolerance_ms``, ...);
    those not given take :func:`kwlesson.streaming_test.test_streaming_accuracy`'s defaults.
    The model is a checkpoint / train_dir or a ``.tflite`` with ``labels``. Returns 0, or 2 on
    bad input (one message on stderr).

    >>> test_streaming_accuracy_command("s.wav", "s.txt", "/tmp/train")  # doctest: +SKIP
    0
    """
    from kwlesson.audio import AudioError
    from kwlesson.streaming_test import test_streaming_accuracy

    options = dict(flags)
    if "average_window_ms" in options:  # the seed's flag name
        options["average_window_duration_ms"] = options.pop("average_window_ms")
    for name in ("labels", "clip_duration_ms"):  # "" or 0 on the command line: not given
        if name in options:
            options[name] = options[name] or None
    try:
        result = test_streaming_accuracy(wav, ground_truth, model, **options)
    except (FileNotFoundError, NotADirectoryError, ValueError, AudioError) as exc:
        print(f"kwlesson test-streaming-accuracy: {exc}", file=sys.stderr)
        return 2
    s = result.stats
    print(f"{len(result.detections)} detections in {result.audio_seconds:.1f} s of audio "
          f"({result.windows} windows): {s.how_many_correct_words} correct, "
          f"{s.how_many_wrong_words} wrong, {s.how_many_false_positives} false positives; "
          f"{s.how_many_ground_truth_matched} of {s.how_many_ground_truth_words} ground-truth "
          f"words matched; {result.real_time_factor:.0f}x real time")
    return 0


# --------------------------------------------------------------------------------------------
# argv -> the functions above


def _data_synth(args: argparse.Namespace) -> int:
    from kwlesson import synth

    words = None
    if args.words is not None:
        words = [w.strip() for w in args.words.split(",") if w.strip()]
        if not words:
            print("kwlesson data synth: --words is empty; give words like --words yes,no",
                  file=sys.stderr)
            return 2
    speakers = args.speakers if args.speakers is not None else synth.DEFAULT_SPEAKERS
    try:
        synth_command(words=words, speakers=speakers, out=args.out, seed=args.seed)
    except ValueError as exc:
        print(f"kwlesson data synth: {exc}", file=sys.stderr)
        return 2
    return 0


def _data_download(args: argparse.Namespace) -> int:

    return download_command(args.dataset, args.dest, args.mirror, base_url=args.base_url)


def _data_info(args: argparse.Namespace) -> int:
    from kwlesson import data
    from kwlesson.faults import check_numbers

    try:
        check_numbers(validation_percentage=args.validation_percentage,
                      testing_percentage=args.testing_percentage)
        report = data.info(
            args.data_dir,
            validation_percentage=args.validation_percentage,
            testing_percentage=args.testing_percentage,
        )
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        print(f"kwlesson data info: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(data.format_info(report))
    return 0


#: Where the seed's train.py looks for data when --data_dir is not given.
SEED_DATA_DIR = "/tmp/speech_dataset/"


def _has_wavs(folder: str) -> bool:
    from pathlib import Path

    path = Path(folder)
    return path.is_dir() and any(path.glob("*/*.wav"))


def _train(args: argparse.Namespace) -> int:
    from kwlesson import config as kw_config
    from kwlesson.faults import RunError, check_folder
    from kwlesson.runs import TrainConfig
    from kwlesson.training import QUICK_RECIPE, train

    given = {k: v for k, v in vars(args).items() if k in TRAIN_FIELDS}
    named = getattr(args, "recipe", None)
    if named:  # the recipe's fields, then the flags given
        from kwlesson.recipes import recipe

        used = {k: v for k, v in recipe(named).items() if k not in given}
        given = {**used, **given}
        print(f"Recipe {named}: " + " ".join(f"--{k}={v}" for k, v in used.items()))
    if "data_dir" not in given and not _has_wavs(SEED_DATA_DIR):
        from kwlesson import synth

        try:  # the offline dataset and the quick run are written under KWLESSON_HOME
            check_folder(os.environ.get(kw_config.HOME_ENV) or kw_config.data_home(),
                         "KWLESSON_HOME", "set KWLESSON_HOME to a folder you can write")
        except RunError as exc:
            print(f"kwlesson train: {exc}", file=sys.stderr)
            return exc.exit_status

        print(f"No --data_dir and no clips in {SEED_DATA_DIR}: training on the offline dataset "
              "(speech synthesised on this machine).")
        print("  For the real Speech Commands: kwlesson data download --dest DIR, then "
              "kwlesson train --data_dir DIR/speech_commands_v0.02")
        given["data_dir"] = str(synth.offline_dataset())
        if kw_config.quick_mode() and not named:
            home = kw_config.data_home()
            recipe = {**QUICK_RECIPE, "train_dir": str(home / "train" / "offline"),
                      "summaries_dir": str(home / "train" / "offline_logs")}
            used = {k: v for k, v in recipe.items() if k not in given}
            given = {**used, **given}
            if used:
                print("  Quick recipe (KWLESSON_MODE=full for the seed's defaults): "
                      + " ".join(f"--{k}={v}" for k, v in used.items()))
    try:
        cfg = TrainConfig(**given)
        result = train(cfg)
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        if given.get("verbosity") == "debug":
            import traceback

            traceback.print_exc()
        print(f"kwlesson train: {exc}", file=sys.stderr)
        return getattr(exc, "exit_status", 2)
    print(f"Model: {result.checkpoint_path}")
    print(f"Labels and settings: {result.train_dir}")
    if result.test_accuracy is not None:
        print(f"Test accuracy: {100 * result.test_accuracy:.1f}% "
              f"(chance would be {100 / len(result.labels):.1f}%)")
    return 130 if result.stopped else 0


TRAIN_FIELDS: set[str] = set()
#: Subcommands that load TensorFlow: it is imported quietly before they start.
TENSORFLOW_COMMANDS = {"train", "evaluate", "freeze", "label-wav", "generate-streaming-test",
                       "test-streaming-accuracy"}


def _evaluate(args: argparse.Namespace) -> int:
    from kwlesson.faults import check_numbers

    try:
        check_numbers(batch_size=args.batch_size)
        evaluate_command(args.start_checkpoint, split=args.split, folder=args.folder,
                                    data_dir=args.data_dir, batch_size=args.batch_size,
                                    json_path=args.json)
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        print(f"kwlesson evaluate: {exc}", file=sys.stderr)
        return 2
    return 0


def _freeze(args: argparse.Namespace) -> int:
    from kwlesson import export

    return freeze_command(args.start_checkpoint, args.output_dir,
                              model_architecture=args.model_architecture,
                              data_dir=args.data_dir, quantize=not args.no_quantize,
                              verify_split=args.verify, calibration=args.calibration,
                              calibration_clips=(export.DEFAULT_CALIBRATION_CLIPS
                                                 if args.calibration_clips is None
                                                 else args.calibration_clips))


def _label_wav(args: argparse.Namespace) -> int:

    return label_wav_command(args.graph, args.wav, labels=args.labels,
                                 how_many_labels=args.how_many_labels)


def _wav_to_spectrogram(args: argparse.Namespace) -> int:

    return wav_to_spectrogram_command(args.input_wav, args.output_image,
                                          window_size=args.window_size, stride=args.stride,
                                          brightness=args.brightness)


def _generate_streaming_test(args: argparse.Namespace) -> int:
    options = {k: v for k, v in vars(args).items()
               if k not in ("func", "command", "data_dir", "output_audio_file",
                            "output_labels_file")}
    return generate_streaming_test_command(args.data_dir, args.output_audio_file,
                                           args.output_labels_file, **options)


def _test_streaming_accuracy(args: argparse.Namespace) -> int:
    options = {k: v for k, v in vars(args).items()
               if k not in ("func", "command", "wav", "ground_truth", "model")}
    return test_streaming_accuracy_command(args.wav, args.ground_truth, args.model, **options)


def _student_copies(args: argparse.Namespace) -> int:
    from kwlesson.student_copies import write_student_copies

    written = write_student_copies(args.source, args.out)
    print(f"{len(written)} student copies (solutions removed, outputs cleared) in {args.out}")
    return 0


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`kwlesson.runs.TrainConfig` field, with the seed's names.

    Flags left out stay absent from the parsed namespace, so the command knows what was given.
    """
    import dataclasses

    from kwlesson.runs import TrainConfig

    for f in dataclasses.fields(TrainConfig):
        TRAIN_FIELDS.add(f.name)
        kind = type(f.default)
        extra: dict = {}
        if kind is bool:
            extra["type"] = lambda text: text.strip().lower() in ("1", "true", "yes", "on")
            extra["metavar"] = "{true,false}"
        else:
            extra["type"] = kind
        if f.metadata.get("choices"):
            extra["choices"] = f.metadata["choices"]
        parser.add_argument(f"--{f.name}", default=argparse.SUPPRESS,
                            help=f"{f.metadata.get('help', '')} (default: {f.default!r})",
                            **extra)


def build_parser(with_train_flags: bool = True) -> argparse.ArgumentParser:
    """The whole command line, for ``kwlesson`` and for tests."""
    parser = argparse.ArgumentParser(
        prog="kwlesson",
        description="Keyword spotting, taught notebook by notebook: data, training, export.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    data_cmd = commands.add_parser("data", help="build, download or inspect datasets")
    data_sub = data_cmd.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    synth_cmd = data_sub.add_parser(
        "synth", help="build (or reuse) the offline dataset spoken by espeak-ng"
    )
    synth_cmd.add_argument("--words", default=None,
                           help="comma-separated words (default: the 35 words of v0.02)")
    synth_cmd.add_argument("--speakers", type=int, default=None,
                           help="synthetic speakers per word (default: the course's size)")
    synth_cmd.add_argument("--out", default=None,
                           help="folder to write (default: the cached offline dataset)")
    synth_cmd.add_argument("--seed", type=int, default=0, help="same seed, same files")
    synth_cmd.set_defaults(func=_data_synth)

    dl_cmd = data_sub.add_parser("download", help="download the real Speech Commands archives")
    dl_cmd.add_argument("--dataset", default="v0.02",
                        choices=["v0.02", "v0.01", "test_v0.02", "test_v0.01"])
    dl_cmd.add_argument("--dest", default=None, help="where to put it (default: KWLESSON_HOME)")
    dl_cmd.add_argument("--mirror", default=None,
                        help="classroom mirror: a folder of archives or extracted data "
                             "(or set KWLESSON_MIRROR)")
    dl_cmd.add_argument("--base_url", default=None, help=argparse.SUPPRESS)
    dl_cmd.set_defaults(func=_data_download)

    info_cmd = data_sub.add_parser("info", help="clips per word and split, speakers, problems")
    info_cmd.add_argument("data_dir", help="a folder in the Speech Commands layout")
    info_cmd.add_argument("--validation_percentage", type=float, default=10.0)
    info_cmd.add_argument("--testing_percentage", type=float, default=10.0)
    info_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    info_cmd.set_defaults(func=_data_info)

    train_cmd = commands.add_parser(
        "train", help="train like the seed's train.py (offline dataset when no --data_dir)",
        description="Train a keyword spotter with the seed's train.py flags. With no --data_dir "
        f"and no clips in {SEED_DATA_DIR} it trains on the offline dataset with a quick recipe.",
    )
    if with_train_flags:  # the flags come from TrainConfig, which loads TensorFlow
        add_train_arguments(train_cmd)
    from kwlesson.recipes import RECIPES

    train_cmd.add_argument(
        "--recipe", default=None, choices=sorted(RECIPES),
        help="a named, measured set of flags (flags you give as well win): quick = the "
        "course's quick model, real_speech = the best recipe measured on real recordings")
    train_cmd.set_defaults(func=_train)
    eval_cmd = commands.add_parser(
        "evaluate", help="accuracy, confusion matrix, precision/recall of a trained model")
    eval_cmd.add_argument("--start_checkpoint", required=True,
                          help="a checkpoint prefix (<train_dir>/<arch>.ckpt-N) or a train_dir")
    eval_cmd.add_argument("--split", default="testing",
                          choices=["training", "validation", "testing"])
    eval_cmd.add_argument("--folder", default=None,
                          help="a folder in the canonical test-set layout (_silence_, _unknown_, "
                               "one folder per word) instead of a split")
    eval_cmd.add_argument("--data_dir", default=None,
                          help="where the training data is now, if it moved")
    eval_cmd.add_argument("--batch_size", type=int, default=100)
    eval_cmd.add_argument("--json", default=None, help="also write the report as JSON here")
    eval_cmd.set_defaults(func=_evaluate)

    freeze_cmd = commands.add_parser(
        "freeze", help="export a checkpoint: SavedModel, TFLite float/int8, micro C array")
    freeze_cmd.add_argument("--start_checkpoint", required=True,
                            help="a checkpoint prefix or a train_dir (its latest checkpoint)")
    freeze_cmd.add_argument("--output_dir", required=True, help="the export folder to write")
    freeze_cmd.add_argument("--model_architecture", default=None,
                            help="check the checkpoint is of this architecture")
    freeze_cmd.add_argument("--data_dir", default=None,
                            help="training clips for int8 calibration (default: the run's)")
    freeze_cmd.add_argument("--no_quantize", action="store_true", help="float models only")
    freeze_cmd.add_argument("--calibration", default=None,
                            choices=["average", "minmax", "per_tensor"],
                            help="int8 activation ranges: each clip's min/max averaged, the "
                                 "min/max over all clips, or either per tensor, whichever keeps "
                                 "float's top label on other training clips (default: "
                                 "per_tensor)")
    freeze_cmd.add_argument("--calibration_clips", type=int, default=None,
                            help="training clips to calibrate int8 on (default: 300)")
    freeze_cmd.add_argument("--verify", default=None,
                            choices=["training", "validation", "testing", "validation+testing"],
                            help="check the exported models against Keras on this split")
    freeze_cmd.set_defaults(func=_freeze)

    label_cmd = commands.add_parser("label-wav", help="top-k labels for a wav or a folder")
    label_cmd.add_argument("--graph", required=True,
                           help="an export folder, a .tflite file or a SavedModel")
    label_cmd.add_argument("--wav", required=True, help="a wav file or a folder of them")
    label_cmd.add_argument("--labels", default=None, help="labels file (default: the model's)")
    label_cmd.add_argument("--how_many_labels", type=int, default=3)
    label_cmd.set_defaults(func=_label_wav)

    spec_cmd = commands.add_parser("wav-to-spectrogram",
                                   help="the seed's spectrogram PNG of a wav")
    spec_cmd.add_argument("--input_wav", required=True)
    spec_cmd.add_argument("--output_image", required=True)
    spec_cmd.add_argument("--window_size", type=int, default=256)
    spec_cmd.add_argument("--stride", type=int, default=128)
    spec_cmd.add_argument("--brightness", type=float, default=64.0)
    spec_cmd.set_defaults(func=_wav_to_spectrogram)

    gen_cmd = commands.add_parser(
        "generate-streaming-test",
        help="a long wav of test-split words over noise, with a ground-truth label file")
    gen_cmd.add_argument("--data_dir", default="", help="default: the offline dataset")
    gen_cmd.add_argument("--background_dir", default="")
    gen_cmd.add_argument("--background_volume", type=float, default=0.1)
    gen_cmd.add_argument("--test_duration_seconds", type=float, default=600)
    gen_cmd.add_argument("--word_gap_ms", type=int, default=2000)
    gen_cmd.add_argument("--unknown_percentage", type=float, default=30)
    gen_cmd.add_argument("--wanted_words", default="yes,no,up,down,left,right,on,off,stop,go")
    gen_cmd.add_argument("--validation_percentage", type=float, default=10)
    gen_cmd.add_argument("--testing_percentage", type=float, default=10)
    gen_cmd.add_argument("--sample_rate", type=int, default=16000)
    gen_cmd.add_argument("--clip_duration_ms", type=int, default=1000)
    gen_cmd.add_argument("--output_audio_file", default="", help="default: under KWLESSON_HOME")
    gen_cmd.add_argument("--output_labels_file", default="", help="default: under KWLESSON_HOME")
    gen_cmd.add_argument("--seed", type=int, default=0)
    gen_cmd.set_defaults(func=_generate_streaming_test)

    acc_cmd = commands.add_parser(
        "test-streaming-accuracy",
        help="matched / correct / wrong / false-positive %% of ground-truth words on a stream")
    acc_cmd.add_argument("--wav", required=True)
    acc_cmd.add_argument("--ground_truth", required=True)
    acc_cmd.add_argument("--model", "--graph", dest="model", required=True,
                         help="a checkpoint, a train_dir or a raw-audio .tflite")
    acc_cmd.add_argument("--labels", default="")
    acc_cmd.add_argument("--clip_duration_ms", type=float, default=0)
    acc_cmd.add_argument("--clip_stride_ms", "--sample_stride_ms", dest="clip_stride_ms",
                         type=float, default=30)
    acc_cmd.add_argument("--average_window_ms", type=float, default=500)
    acc_cmd.add_argument("--detection_threshold", type=float, default=0.7)
    acc_cmd.add_argument("--suppression_ms", type=float, default=1500)
    acc_cmd.add_argument("--minimum_count", type=int, default=3)
    acc_cmd.add_argument("--time_tolerance_ms", type=float, default=750)
    acc_cmd.add_argument("--batch_size", type=int, default=256)
    acc_cmd.add_argument("--verbose", action="store_true")
    acc_cmd.set_defaults(func=_test_streaming_accuracy)

    copies_cmd = commands.add_parser(
        "student-copies", help="write the notebooks without solutions, for students")
    copies_cmd.add_argument("--source", default="notebooks", help="the teacher's notebooks")
    copies_cmd.add_argument("--out", default="student", help="where the copies go")
    copies_cmd.set_defaults(func=_student_copies)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"kwlesson: warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kwlesson`` console script.

    Exit status: 0 done, 2 bad input or a folder that cannot be used, 1 a fault during the run
    (a full disk, a diverged loss, a failed conversion), 130 interrupted by Ctrl-C and 143
    stopped by SIGTERM (both after saving a checkpoint when training).
    """
    import warnings

    shown = warnings.formatwarning
    try:
        # Keep TensorFlow's start-up chatter out of the lesson's output (set before it loads).
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        warnings.formatwarning = _one_line_warning
        return _main(argv)
    except KeyboardInterrupt as interrupt:
        from kwlesson.faults import SIGTERM_EXIT_STATUS, Terminated

        stopped = isinstance(interrupt, Terminated)
        notes = getattr(interrupt, "__notes__", [])
        text = "; ".join(["stopped by SIGTERM" if stopped else "interrupted", *notes])
        print(f"kwlesson: {text}", file=sys.stderr)
        return SIGTERM_EXIT_STATUS if stopped else 130
    finally:
        warnings.formatwarning = shown  # main() called from Python leaves warnings as they were


def _main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    training = bool(argv) and argv[0] == "train"
    # The train flags come from TrainConfig, which loads TensorFlow.
    if argv and argv[0] in TENSORFLOW_COMMANDS:
        from kwlesson.config import quiet_tensorflow

        quiet_tensorflow()
    args = build_parser(with_train_flags=training).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
