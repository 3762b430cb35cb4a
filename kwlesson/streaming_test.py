"""How well a model listens to a stream, measured as the seed measures it: a long wav of
test-split words over background noise with a ground-truth file
(:func:`generate_streaming_test`, the seed's ``generate_streaming_test_wav.py``), and a run of a
model over it that counts matched, correct, wrong and false-positive detections
(:func:`test_streaming_accuracy`, the seed's ``test_streaming_accuracy.cc``).

Introduced in notebook 08.

>>> test = generate_streaming_test("speech_commands_v0.02", "/tmp/stream.wav",  # doctest: +SKIP
...                                "/tmp/stream_labels.txt")
>>> test_streaming_accuracy("/tmp/stream.wav", "/tmp/stream_labels.txt",  # doctest: +SKIP
...                         "/tmp/kws")
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from kwlesson.audio import SAMPLE_RATE, read_wav, write_wav
from kwlesson.streaming import (
    SILENCE_LABEL,
    UNKNOWN_LABEL,
    Detection,
    StreamModel,
    as_stream_model,
    load_stream_audio,
    load_stream_model,
    read_labels_file,
    recognize_scores,
    stream_scores,
)

if TYPE_CHECKING:  # TensorFlow loads only when a Keras model is used
    from kwlesson.data import SpeechCommands

__all__ = [
    "StreamingAccuracyResult",
    "StreamingAccuracyStats",
    "StreamingTest",
    "calculate_accuracy_stats",
    "detection_verdicts",
    "generate_streaming_test",
    "read_ground_truth",
    "test_streaming_accuracy",
]


@dataclass
class StreamingTest:
    """What :func:`generate_streaming_test` wrote."""

    wav: Path
    labels_file: Path
    ground_truth: list[tuple[str, float]]
    duration_s: float
    clips: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return (f"StreamingTest({os.fspath(self.wav)!r}, {len(self.ground_truth)} words, "
                f"{self.duration_s:g} s)")



def _envelope(length: int, clip: int, ramp_in: int, ramp_out: int) -> np.ndarray:
    """The seed's mix_in_audio_sample gain for the first ``length`` of ``clip`` samples."""
    i = np.arange(length, dtype=np.float64)
    env = np.ones(length)
    if ramp_in > 0:
        env = np.where(i < ramp_in, i / ramp_in, env)
    if ramp_out > 0:
        env = np.where((i >= ramp_in) & (i > clip - ramp_out), (clip - i) / ramp_out, env)
    return env.astype(np.float32)



def _mix_in(track: np.ndarray, offset: int, sample: np.ndarray, sample_offset: int, clip: int,
            volume: float, ramp_in: int, ramp_out: int) -> None:
    end = min(offset + clip, len(track), offset + len(sample) - sample_offset)
    n = end - offset
    if n <= 0:
        return
    env = _envelope(n, clip, ramp_in, ramp_out)
    track[offset:end] += sample[sample_offset:sample_offset + n] * env * volume



def generate_streaming_test(
    data_dir: str | os.PathLike | SpeechCommands,
    out_wav: str | os.PathLike,
    out_labels: str | os.PathLike,
    duration_s: float = 600,
    *,
    wanted_words: Sequence[str] | str = ("yes", "no", "up", "down", "left", "right", "on", "off",
                                         "stop", "go"),
    background_dir: str | os.PathLike | None = None,
    background_volume: float = 0.1,
    word_gap_ms: int = 2000,
    unknown_percentage: float = 30,
    validation_percentage: float = 10,
    testing_percentage: float = 10,
    split: str = "testing",
    sample_rate: int = SAMPLE_RATE,
    clip_duration_ms: int = 1000,
    seed: int = 0,
    with_words: bool = True,
) -> StreamingTest:
    """Write a long wav of ``split`` words over background noise, and its ground truth.

    As the seed's ``generate_streaming_test_wav.py``: background excerpts 1.5 s long,
    one every second, cross-faded over 250 ms, each at a volume uniform in
    [0, ``background_volume``); word ``i`` starts at ``i * (clip + word_gap_ms)`` plus a random
    jitter in [0, ``word_gap_ms``), so with the defaults a word comes every 3 s on average
    (1 s to 5 s apart); ``unknown_percentage`` of the words are ``_unknown_`` clips, the rest
    wanted words picked uniformly; each word is a random clip of that label from the split, mixed
    in at full volume with 500-sample ramps. The labels file has one ``label, time_ms`` line per
    word, where ``time_ms`` is where its 1 s clip starts. The same seed gives the same files.
    ``with_words=False`` writes the background alone (an empty labels file): every detection on
    it is a false accept, the figure wake-word makers quote per hour of speech-free sound.

    ``data_dir`` is a Speech Commands folder (or an already loaded
    :class:`kwlesson.data.SpeechCommands`, whose split is then used as it is). Labels without a
    clip in the split are left out with a note on stderr.

    >>> t = generate_streaming_test("sc_v0.02", "s.wav", "s.txt", 300)  # doctest: +SKIP
    >>> t  # doctest: +SKIP
    StreamingTest('stream.wav', 100, 300 s)
    """
    from kwlesson.data import SpeechCommands

    if duration_s <= 0:
        raise ValueError(f"duration_s must be positive, not {duration_s}")
    if word_gap_ms < 1:
        raise ValueError(f"word_gap_ms must be >= 1, not {word_gap_ms}")
    if not 0 <= unknown_percentage <= 100:
        raise ValueError(f"unknown_percentage must be in [0, 100], not {unknown_percentage}")
    if isinstance(data_dir, SpeechCommands):
        sc = data_dir
    else:
        # Every unknown clip of the split, no silence entries: the stream only needs words.
        sc = SpeechCommands(data_dir, wanted_words=wanted_words, silence_percentage=0,
                            unknown_percentage=None, validation_percentage=validation_percentage,
                            testing_percentage=testing_percentage, background_dir=background_dir,
                            sample_rate=sample_rate, clip_duration_ms=clip_duration_ms)
    sample_rate = sc.sample_rate
    clip = sc.desired_samples
    if split not in sc.index:
        raise ValueError(f"split must be one of {', '.join(sc.index)}, not {split!r}")
    clips = list(sc.index[split])
    by_label: dict[str, list[int]] = {}
    for k, c in enumerate(clips):
        if c.path is not None and c.label != SILENCE_LABEL:
            by_label.setdefault(c.label, []).append(k)
    wanted = [w for w in sc.labels[2:] if w in by_label]
    missing = [w for w in sc.labels[1:] if w not in by_label]
    if not wanted:
        raise ValueError(f"{sc.data_dir}: the {split} split has no clips of the wanted words "
                         f"({', '.join(sc.labels[2:])}); nothing to put in a stream")
    if missing:
        print(f"note: {sc.data_dir}: no {split} clips of {', '.join(missing)}; "
              "the stream leaves them out", file=sys.stderr)
    has_unknown = UNKNOWN_LABEL in by_label

    rng = np.random.default_rng(seed)
    total = int(round(duration_s * sample_rate))
    track = np.zeros(total, np.float32)

    # Background: segments of clip + 500 ms laid every clip, ramps of 250 ms cross-fade them.
    crossover = int(0.5 * sample_rate)
    seg = clip + crossover
    ramp = crossover // 2
    if sc.background and background_volume > 0:
        for i in range(int(math.ceil(total / clip))):
            b = sc.background[int(rng.integers(len(sc.background)))]
            # Unlike the seed (which may start a 1.5 s segment less than 1.5 s before the
            # end of a noise clip and so leave a hole), every segment here is whole.
            start = int(rng.integers(0, max(len(b) - seg, 1)))
            _mix_in(track, i * clip, b, start, seg, float(rng.uniform(0, background_volume)),
                    ramp, ramp)
    elif background_volume > 0:
        print(f"note: {sc.background_dir}: no background noise; the words are mixed into "
              "digital silence", file=sys.stderr)

    gap = int(word_gap_ms * sample_rate / 1000)
    stride = clip + gap
    ground_truth: list[tuple[str, float]] = []
    used: list[str] = []
    for i in range(total // stride if with_words else 0):
        offset = i * stride + int(rng.integers(gap))
        is_unknown = rng.integers(100) < unknown_percentage
        label = (UNKNOWN_LABEL if is_unknown and has_unknown
                 else wanted[int(rng.integers(len(wanted)))])
        k = by_label[label][int(rng.integers(len(by_label[label])))]
        # Only the clips used are read again (a few hundred), at the data set's rate and length.
        audio = read_wav(clips[k].path, sample_rate=sample_rate, clip_samples=clip)
        _mix_in(track, offset, audio, 0, clip, 1.0, 500, 500)
        ground_truth.append((label, offset * 1000 / sample_rate))
        used.append(clips[k].path)

    out_wav, out_labels = Path(out_wav), Path(out_labels)
    write_wav(out_wav, track, sample_rate)  # clips to [-1, 1] as the seed's encode_wav
    text = "".join(f"{label}, {t:f}\n" for label, t in ground_truth)
    out_labels.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_labels.with_name(f".{out_labels.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out_labels)
    return StreamingTest(out_wav, out_labels, ground_truth, total / sample_rate, used)



def read_ground_truth(path: str | os.PathLike, labels: Sequence[str] | None = None
                      ) -> list[tuple[str, int]]:
    """``label, time_ms`` lines -> [(label, time_ms)] sorted by time (times rounded to ms).

    Blank lines and lines starting with ``#`` are skipped. A line that is not two
    comma-separated fields, a time that is not a number, a negative time, or (given ``labels``)
    a label the model does not know is a ValueError naming ``file:line``.

    >>> read_ground_truth("streaming_test_labels.txt")[:2]  # doctest: +SKIP
    [('yes', 1250), ('_unknown_', 4031)]
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: ground truth file not found") from None
    except UnicodeDecodeError:
        raise ValueError(f"{p}: not a text file of 'label, time_ms' lines") from None
    known = set(labels) if labels is not None else None
    result = []
    for n, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        pieces = text.split(",")
        if len(pieces) != 2:
            raise ValueError(f"{p}:{n}: expected 'label, time_ms', got {line!r}")
        label = pieces[0].strip()
        try:
            t = float(pieces[1])
        except ValueError:
            raise ValueError(f"{p}:{n}: time {pieces[1].strip()!r} is not a number "
                             f"(expected 'label, time_ms')") from None
        if not math.isfinite(t) or t < 0:
            raise ValueError(f"{p}:{n}: time must be a non-negative number of ms, not {t}")
        if not label:
            raise ValueError(f"{p}:{n}: empty label in {line!r}")
        if known is not None and label not in known:
            raise ValueError(f"{p}:{n}: label {label!r} is not one the model knows "
                             f"({', '.join(labels)})")
        result.append((label, int(round(t))))
    result.sort(key=lambda item: item[1])
    return result



@dataclass
class StreamingAccuracyStats:
    """Counts as the seed's ``StreamingAccuracyStats``; percentages are of
    ``how_many_ground_truth_words`` (false positives can exceed 100%).

    >>> s = StreamingAccuracyStats(10, 8, 1, 7, 1)
    >>> s.correct_percentage
    70.0
    """

    how_many_ground_truth_words: int = 0
    how_many_ground_truth_matched: int = 0
    how_many_false_positives: int = 0
    how_many_correct_words: int = 0
    how_many_wrong_words: int = 0

    def _pct(self, n: int) -> float:
        gt = self.how_many_ground_truth_words
        return 100.0 * n / gt if gt else 0.0

    @property
    def matched_percentage(self) -> float:
        return self._pct(self.how_many_ground_truth_matched)

    @property
    def correct_percentage(self) -> float:
        return self._pct(self.how_many_correct_words)

    @property
    def wrong_percentage(self) -> float:
        return self._pct(self.how_many_wrong_words)

    @property
    def false_positive_percentage(self) -> float:
        return self._pct(self.how_many_false_positives)

    def summary(self) -> str:
        """The seed's summary line, with the unit said.

        >>> stats = StreamingAccuracyStats(10, 8, 1, 7, 1)
        >>> print(stats.summary())  # doctest: +NORMALIZE_WHITESPACE
        80.0% matched, 70.0% correctly, 10.0% wrongly, 10.0% false positives
        (% of 10 ground-truth words)
        """
        if self.how_many_ground_truth_words == 0:
            return f"No ground truth yet, {self.how_many_false_positives} false positives"
        return (f"{self.matched_percentage:.1f}% matched, {self.correct_percentage:.1f}% "
                f"correctly, {self.wrong_percentage:.1f}% wrongly, "
                f"{self.false_positive_percentage:.1f}% false positives "
                f"(% of {self.how_many_ground_truth_words} ground-truth words)")



def calculate_accuracy_stats(
    ground_truth: Sequence[tuple[str, float]],
    found_words: Sequence[tuple[str, float]] | Sequence[Detection],
    up_to_time_ms: float | None = None,
    time_tolerance_ms: float = 750,
) -> StreamingAccuracyStats:
    """Count as the seed's ``CalculateAccuracyStats``.

    ``ground_truth``: (label, time_ms), sorted by time. ``found_words``: (label, time_ms) or
    :class:`Detection`. Only ground truth up to ``up_to_time_ms + time_tolerance_ms`` counts
    (``None``: all). Each found word is compared with the *first* ground-truth word within
    ``time_tolerance_ms`` of it: same label and that word not matched before -> correct,
    otherwise -> wrong (a second detection of one word is wrong); no ground-truth word that
    close -> false positive. "Matched" counts ground-truth words that some detection landed on.

    >>> s = calculate_accuracy_stats([("yes", 1000), ("no", 4000)], [("yes", 1200), ("up", 8000)])
    >>> s.how_many_correct_words, s.how_many_false_positives, s.how_many_ground_truth_matched
    (1, 1, 1)
    """
    latest_possible = math.inf if up_to_time_ms is None or up_to_time_ms == -1 \
        else up_to_time_ms + time_tolerance_ms
    stats = StreamingAccuracyStats()
    for _, t in ground_truth:
        if t > latest_possible:
            break
        stats.how_many_ground_truth_words += 1
    matched: set[float] = set()  # ground-truth times, as the seed keys them
    for found in found_words:
        if isinstance(found, Detection):
            found_label, found_time = found.label, found.time_ms
        else:
            found_label, found_time = found[0], found[1]
        earliest, latest = found_time - time_tolerance_ms, found_time + time_tolerance_ms
        hit = False
        for gt_label, gt_time in ground_truth:
            if gt_time > latest or gt_time > latest_possible:
                break
            if gt_time < earliest:
                continue
            if gt_label == found_label and gt_time not in matched:
                stats.how_many_correct_words += 1
            else:
                stats.how_many_wrong_words += 1
            matched.add(gt_time)
            hit = True
            break
        if not hit:
            stats.how_many_false_positives += 1
    stats.how_many_ground_truth_matched = len(matched)
    return stats



@dataclass
class StreamingAccuracyResult:
    """What :func:`test_streaming_accuracy` returns."""

    stats: StreamingAccuracyStats
    detections: list[Detection]
    ground_truth: list[tuple[str, int]]
    audio_seconds: float
    compute_seconds: float
    windows: int

    @property
    def real_time_factor(self) -> float:
        """Seconds of audio processed per second of compute (100 = a hundred times real time)."""
        return self.audio_seconds / self.compute_seconds if self.compute_seconds > 0 else math.inf



def test_streaming_accuracy(
    wav: str | os.PathLike | np.ndarray,
    ground_truth: str | os.PathLike | Sequence[tuple[str, float]],
    model: StreamModel | Callable | str | os.PathLike,
    *,
    labels: Sequence[str] | str | os.PathLike | None = None,
    clip_duration_ms: float | None = None,
    clip_stride_ms: float = 30,
    average_window_duration_ms: float = 500,
    detection_threshold: float = 0.7,
    suppression_ms: float = 1500,
    minimum_count: int = 3,
    time_tolerance_ms: float = 750,
    batch_size: int = 256,
    verbose: bool = False,
    out: TextIO | None = sys.stdout,
) -> StreamingAccuracyResult:
    """Run ``model`` over a long wav and count its detections against the ground truth, as the
    reference's ``test_streaming_accuracy`` tool (whose flags give the defaults).

    Prints the summary line to ``out`` (``None``: silent); with ``verbose``, every detection
    with its verdict and the running figures, as the seed's ``--verbose``.

    >>> r = test_streaming_accuracy("s.wav", "s.txt", "/tmp/train")  # doctest: +SKIP
    53.0% matched, 24.0% correctly, 29.0% wrongly, 1.0% false positives
    (% of 100 ground-truth words)
    """
    if isinstance(model, (str, os.PathLike)):
        model = load_stream_model(model, labels)
    elif not isinstance(model, StreamModel):
        if labels is None:
            raise ValueError("a plain model function needs labels=[...] (one per output)")
        names = list(labels) if isinstance(labels, (list, tuple)) else read_labels_file(labels)
        model = as_stream_model(model, names, SAMPLE_RATE, None)
    if isinstance(ground_truth, (str, os.PathLike)):
        truth = read_ground_truth(ground_truth, model.labels)
    else:
        truth = sorted(((str(lab), int(round(t))) for lab, t in ground_truth),
                       key=lambda item: item[1])
        unknown = sorted({lab for lab, _ in truth} - set(model.labels))
        if unknown:
            raise ValueError(f"ground truth has label(s) {', '.join(unknown)} that the model "
                             f"does not know ({', '.join(model.labels)})")
    audio = load_stream_audio(wav, model.sample_rate, out)
    end_ms = len(audio) * 1000 / model.sample_rate
    late = sum(t > end_ms for _, t in truth)
    if late and out is not None:
        where = os.fspath(ground_truth) if isinstance(ground_truth, (str, os.PathLike)) else \
            "the ground truth"
        print(f"note: {where}: {late} word(s) start after the end of the audio "
              f"({end_ms / 1000:g} s); they count as missed", file=out)

    t0 = time.perf_counter()
    times, scores = stream_scores(audio, model, sample_rate=model.sample_rate,
                                  clip_duration_ms=clip_duration_ms,
                                  clip_stride_ms=clip_stride_ms, batch_size=batch_size)
    found = recognize_scores(times, scores, model.labels,
                             average_window_duration_ms=average_window_duration_ms,
                             detection_threshold=detection_threshold,
                             suppression_ms=suppression_ms, minimum_count=minimum_count)
    elapsed = time.perf_counter() - t0

    if verbose and out is not None:
        previous = StreamingAccuracyStats()
        for k, det in enumerate(found):
            s = calculate_accuracy_stats(truth, found[:k + 1], det.time_ms, time_tolerance_ms)
            if s.how_many_false_positives > previous.how_many_false_positives:
                verdict = "False Positive"
            elif s.how_many_correct_words > previous.how_many_correct_words:
                verdict = "Correct"
            else:
                verdict = "Wrong"
            print(f"{det.time_ms}ms: {det.label}: {det.score:.3f} ({verdict})", file=out)
            print(f"  {s.summary()}", file=out)
            previous = s
    stats = calculate_accuracy_stats(truth, found, None, time_tolerance_ms)
    if out is not None:
        print(stats.summary(), file=out)
    return StreamingAccuracyResult(stats, found, truth, len(audio) / model.sample_rate,
                                   elapsed, len(times))



def detection_verdicts(ground_truth: Any, detections: Any,
                       time_tolerance_ms: float = 750) -> list[str]:
    """'correct', 'wrong' or 'false positive' for each detection, in order, exactly as
    :func:`calculate_accuracy_stats` counts it.

    >>> found = [Detection(1200, "yes", 0.9), Detection(9000, "no", 0.8)]
    >>> detection_verdicts([("yes", 1000)], found)
    ['correct', 'false positive']
    """
    verdicts = []
    before = calculate_accuracy_stats(ground_truth, [], None, time_tolerance_ms)
    for k in range(len(detections)):
        now = calculate_accuracy_stats(ground_truth, detections[:k + 1], None, time_tolerance_ms)
        if now.how_many_false_positives > before.how_many_false_positives:
            verdicts.append("false positive")
        elif now.how_many_correct_words > before.how_many_correct_words:
            verdicts.append("correct")
        else:
            verdicts.append("wrong")
        before = now
    return verdicts


test_streaming_accuracy.__test__ = False  # a tool named like the seed's, not a pytest test
