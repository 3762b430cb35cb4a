"""The microphone widget's kernel side (kwlesson.microphone): what happens to audio chunks from
the browser (binary buffers, any rate -> 16 kHz), the live view's recognition, saving clips into
a dataset folder, and the message when there is no microphone.

The browser is simulated at the level it talks to the kernel: widget comm messages
(``_handle_msg``) carrying the content and binary buffers anywidget sends.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import soundfile as sf
import soxr

import kwlesson as kw
from kwlesson.audio import read_wav, write_wav
from kwlesson.data import speaker_of, which_set
from kwlesson.microphone import (
    UPLOAD_HINT,
    Microphone,
    StreamResampler,
    live_view,
    loudest_second,
    microphone_problem,
    new_speaker_id,
    recorder,
)
from kwlesson.streaming import StreamModel, recognize_scores, stream_scores
from kwlesson.widgets import upload_and_label

RATE = 16000


def tones(rate: float, seconds: float) -> np.ndarray:
    """A sum of tones below 7 kHz, evaluated at ``rate`` (no resampler involved)."""
    t = np.arange(int(round(seconds * rate))) / rate
    x = sum(a * np.sin(2 * np.pi * f * t + p)
            for a, f, p in ((0.3, 220, 0.1), (0.2, 1250, 1.0), (0.1, 3100, 2.0), (0.05, 6400, 0)))
    return x.astype(np.float32)


def chunks(x: np.ndarray, sizes: list[int]):
    i, k = 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        yield x[i:i + n]
        i, k = i + n, k + 1


def comm_msg(content: dict, buffers: list | None = None) -> dict:
    """A comm message as ipywidgets receives it from anywidget's model.send(...)."""
    return {"content": {"data": {"method": "custom", "content": content}},
            "buffers": buffers or []}


class Sent:
    """Records what the kernel sends to the browser."""

    def __init__(self, mic: Microphone) -> None:
        self.messages: list[tuple[dict, list]] = []
        mic.widget.send = lambda content, buffers=None: self.messages.append(
            (content, buffers or []))

    def of(self, kind: str) -> list[tuple[dict, list]]:
        return [m for m in self.messages if m[0].get("type") == kind]


# -- resampling: browser rates in, 16 kHz out ---------------------------------------------------


@pytest.mark.parametrize("rate,sizes", [(48000, [4800]), (44100, [4410, 128, 1000, 7])])
def test_chunks_at_browser_rates_come_out_at_16_khz(rate, sizes):
    mic = recorder()
    x = tones(rate, 2.0)
    for piece in chunks(x, sizes):
        mic.feed(piece, rate)
    clip = mic.stop()
    assert mic.rate == rate
    assert abs(len(clip) - 2.0 * RATE) <= 1
    expected = tones(RATE, 2.0)
    n = min(len(clip), len(expected))
    core = slice(200, n - 200)  # the filter's edges
    assert np.corrcoef(clip[core], expected[core])[0, 1] > 0.999
    assert np.max(np.abs(clip[core] - expected[core])) < 0.01


def test_chunked_resampling_matches_one_piece():
    x = tones(44100, 1.0)
    r = StreamResampler(44100)
    chunked = np.concatenate([r.process(p) for p in chunks(x, [441, 2000, 17])] + [r.flush()])
    whole = soxr.resample(x, 44100, RATE, quality="HQ")
    assert len(chunked) == len(whole)
    assert np.max(np.abs(chunked - whole)) < 1e-4


def test_bad_rates_are_refused_with_the_rate_named():
    with pytest.raises(ValueError, match="0"):
        StreamResampler(0)


# -- binary buffers as anywidget delivers them ---------------------------------------------------


def test_browser_chunks_in_binary_buffers_are_recorded_like_fed_samples():
    x = tones(48000, 1.0)
    by_msg = recorder()
    sent = Sent(by_msg)
    by_msg.widget._handle_msg(comm_msg({"type": "start", "rate": 48000, "seconds": None,
                                        "how": "AudioWorklet", "t": 1000.0}))
    for k, piece in enumerate(chunks(x, [4800])):
        # ipywidgets hands buffers over as memoryviews of the raw bytes
        by_msg.widget._handle_msg(comm_msg(
            {"type": "chunk", "rate": 48000, "seq": k, "frame": 4800 * k,
             "t": 1100.0 + 100 * k, "n": len(piece)}, [memoryview(piece.tobytes())]))
    by_msg.widget._handle_msg(comm_msg({"type": "stop", "t": 2200.0}))
    assert by_msg.chunks == 10 and by_msg.how == "AudioWorklet" and by_msg.frame_gaps == 0

    by_feed = recorder()
    for piece in chunks(x, [4800]):
        by_feed.feed(piece, 48000)
    by_feed.stop()
    np.testing.assert_array_equal(by_msg.clip, by_feed.clip)
    assert "recorded 1.0 s at 48000 Hz" in str(by_msg)
    # The browser stopped by itself: the kernel does not tell it to stop again.
    assert not sent.of("command")
    # The capture clock: chunk k was complete at 1100 + 100 k ms.
    assert by_msg.capture_time(16000) == pytest.approx(2000.0)
    assert by_msg.capture_time(8000) == pytest.approx(1500.0)


def test_a_fixed_length_recording_stops_itself_and_the_browser():
    mic = recorder()
    sent = Sent(mic)
    mic.widget._handle_msg(comm_msg({"type": "start", "rate": 44100, "seconds": 1.5}))
    for piece in chunks(tones(44100, 3.0), [4410]):
        mic.widget._handle_msg(comm_msg({"type": "chunk", "rate": 44100, "t": 0},
                                        [memoryview(piece.tobytes())]))
    assert len(mic.clip) == 24000
    assert sent.of("command") == [({"type": "command", "action": "stop"}, [])]
    # Chunks already on their way after the stop are not a new recording.
    assert mic.dropped_chunks > 0 and len(mic.clip) == 24000


def test_start_from_code_asks_the_browser_to_open_the_microphone():
    mic = recorder()
    sent = Sent(mic)
    mic.start(seconds=1.0)
    assert sent.of("command") == [({"type": "command", "action": "start", "seconds": 1.0}, [])]


# -- the live view ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick():
    return kw.quick_model()


@pytest.fixture(scope="module")
def stream16(quick):
    """1 s silence, then per word a test-split clip of the offline dataset that the quick model
    labels right, and 2 s of silence: (audio, [(word, start sample)])."""
    from kwlesson import synth
    from kwlesson.streaming import keras_stream_model

    data = synth.offline_dataset(progress=False)
    sm = keras_stream_model(quick.model, quick.labels, quick.settings)
    parts, truth = [np.zeros(RATE, np.float32)], []
    for word in ("yes", "stop"):
        paths = sorted(p for p in (data / word).glob("*.wav")
                       if which_set(p.name, 10, 10) == "testing")[:12]
        clips = np.stack([read_wav(p, clip_samples=RATE) for p in paths])
        right = sm.predict(clips)[:, quick.labels.index(word)]
        truth.append((word, sum(map(len, parts))))
        parts += [clips[int(np.argmax(right))], np.zeros(2 * RATE, np.float32)]
    return np.concatenate(parts), truth


def test_live_view_hears_the_words_of_a_stream(quick, stream16):
    audio, truth = stream16
    view = live_view(quick)
    sent = Sent(view)
    x48 = soxr.resample(audio, RATE, 48000).astype(np.float32)
    for piece in chunks(x48, [4800]):
        view.feed(piece, 48000)
    heard = [(r.label, r.detection.time_ms) for r in view.detections]
    assert [w for w, _ in heard] == [w for w, _ in truth]
    for (_, t_ms), (_, start) in zip(heard, truth):
        # decided while the word's window passes: after its start, within 2 s of it
        assert start / 16 < t_ms < start / 16 + 2000
    assert str(view).startswith('heard "stop" (')
    assert view.widget.heard["label"] == "stop" and view.widget.heard["n"] == 2
    assert set(view.scores) == set(quick.labels)
    assert abs(sum(view.widget.scores) - 1) < 0.01
    # the rolling picture: the model's own features, 40 bins per frame, as binary buffers
    view.stop()  # the last samples out of the resampler
    frames = sent.of("frames")
    assert frames and all(m["bins"] == 40 for m, _ in frames)
    n_frames = sum(len(b[0]) // (4 * 40) for _, b in frames)
    s = quick.settings  # the quick model's own window and stride
    assert n_frames == 1 + (len(audio) - s.window_size_samples) // s.window_stride_samples


def test_live_view_decides_as_the_offline_streaming_code(quick, stream16):
    """Chunk by chunk at 16 kHz, the live windows and decisions are those of stream_scores +
    recognize_scores over the whole recording (times: the live view reports window ends)."""
    audio, _ = stream16
    view = live_view(quick, average_window_duration_ms=500, detection_threshold=0.5)
    for piece in chunks(audio, [1600, 333, 4000]):
        view.feed(piece, RATE)
    times, scores = stream_scores(audio, view.stream_model, clip_stride_ms=30)
    offline = recognize_scores(times + 1000, scores, quick.labels,
                               average_window_duration_ms=500, detection_threshold=0.5)
    assert view.windows == len(times)
    live = [r.detection for r in view.detections]
    assert [(d.label, d.time_ms) for d in live] == [(d.label, d.time_ms) for d in offline]
    assert [d.score for d in live] == pytest.approx([d.score for d in offline], abs=1e-4)


def test_a_new_session_starts_the_live_view_afresh(quick, stream16):
    audio, truth = stream16
    view = live_view(quick)
    view.feed(audio, RATE)
    view.stop()
    assert view.detections
    view.feed(np.zeros(RATE, np.float32), RATE)
    assert view.detections == [] and view.seconds == 1.0


def test_the_text_form_is_one_stable_line(quick):
    view = live_view(quick)
    assert repr(view) == (f"live view of {quick.config.model_architecture} (yes, no, up, down, "
                          "...): no audio yet, press Listen")
    assert view._repr_mimebundle_()[0]["text/plain"] == repr(view)
    assert repr(recorder()) == "recorder: no audio yet, press Record"


# -- saving clips into a dataset folder -----------------------------------------------------------


def word_sound(seconds: float, at: float, rate: int = RATE) -> np.ndarray:
    x = 0.001 * np.random.default_rng(1).standard_normal(int(seconds * rate)).astype(np.float32)
    burst = tones(rate, 0.4) * np.hanning(int(0.4 * rate)).astype(np.float32)
    k = int(at * rate)
    x[k:k + len(burst)] += burst
    return x


def test_saved_clips_are_named_by_word_and_a_new_speaker(tmp_path):
    for speaker in ("0a1b2c3d", "ffffffff"):
        write_wav(tmp_path / "yes" / f"{speaker}_nohash_0.wav", np.zeros(RATE, np.float32))
    rec = recorder(tmp_path, word="banana")
    rec.record(word_sound(2.5, 1.7, 48000), 48000)
    first = rec.save_clip()
    rec.record(word_sound(0.6, 0.1, 44100), 44100)
    second = rec.save_clip()
    third = rec.save_clip(word="yes")
    sid = rec.speaker_id
    assert re.fullmatch(r"[0-9a-f]{8}", sid) and sid not in ("0a1b2c3d", "ffffffff")
    assert first == tmp_path / "banana" / f"{sid}_nohash_0.wav"
    assert second == tmp_path / "banana" / f"{sid}_nohash_1.wav"
    assert third == tmp_path / "yes" / f"{sid}_nohash_0.wav"
    assert len({which_set(p.name, 10, 10) for p in (first, second, third)}) == 1
    assert {speaker_of(p) for p in (first, second, third)} == {sid}
    info = sf.info(first)
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 16000,
                                                                              "PCM_16")
    # the loudest part is kept, in the middle: the burst at 1.7-2.1 s of 2.5 s
    clip = read_wav(first)
    energy = np.cumsum(clip ** 2) / np.sum(clip ** 2)
    assert 0.3 < np.searchsorted(energy, 0.5) / RATE < 0.7
    # a short recording is centred in silence
    clip = read_wav(second)
    assert np.abs(clip[:4000]).max() < 0.01 and np.abs(clip[-4000:]).max() < 0.01
    assert "saved 3 clips, last yes/" in str(rec)
    # another recorder session is another speaker
    assert recorder(tmp_path).speaker_id not in (sid, "0a1b2c3d", "ffffffff")


def test_a_speaker_id_can_be_kept_in_the_training_split(tmp_path):
    rec = recorder(tmp_path, word="go", split="training")
    for _ in range(3):
        rec.record(word_sound(1.0, 0.3), RATE)
        path = rec.save_clip()
        assert which_set(path.name, 10, 10) == "training"
    assert new_speaker_id(split="testing", rng=np.random.default_rng(0)) != \
        new_speaker_id(split="testing", rng=np.random.default_rng(1))


@pytest.mark.parametrize("word,audio,folder,match", [
    ("yes", np.zeros(RATE, np.float32), True, "silent"),
    ("", None, True, "type the word"),
    ("../evil", None, True, "cannot be a word folder"),
    ("_background_noise_", None, True, "cannot be a word folder"),
    ("yes", None, False, "give a folder"),
])
def test_bad_saves_say_what_is_wrong(tmp_path, word, audio, folder, match):
    rec = recorder(tmp_path if folder else None, word=word)
    rec.record(word_sound(1.0, 0.3) if audio is None else audio, RATE)
    with pytest.raises(ValueError, match=match):
        rec.save_clip()
    assert not list(tmp_path.rglob("*.wav"))


def test_the_save_button_saves_or_shows_why_not(tmp_path):
    rec = recorder(tmp_path, word="")
    rec.record(word_sound(1.0, 0.3), RATE)
    rec.widget._handle_msg(comm_msg({"type": "save"}))
    assert "type the word" in rec.widget.error and not rec.saved
    rec.widget.word = "banana"  # what typing in the box does
    rec.widget._handle_msg(comm_msg({"type": "save"}))
    assert rec.saved and rec.saved[0].parent.name == "banana" and rec.widget.error == ""


def test_loudest_second_keeps_exactly_one_second():
    assert len(loudest_second(np.ones(100, np.float32))) == RATE
    x = np.zeros(40000, np.float32)
    x[30000:31000] = 1
    y = loudest_second(x)
    assert len(y) == RATE and y.sum() == 1000
    assert 6000 < int(np.flatnonzero(y)[0]) < 9000  # the loud part sits in the middle


# -- no microphone ----------------------------------------------------------------------------


@pytest.mark.parametrize("name,message,secure,says", [
    ("NotAllowedError", "Permission denied", True, "not allowed"),
    ("NotFoundError", "Requested device not found", True, "found none"),
    ("NotReadableError", "Could not start audio source", True, "could not start"),
    ("TypeError", "getUserMedia is undefined", False, "https:// pages and localhost"),
])
def test_no_microphone_gives_a_clear_message_and_the_way_round(name, message, secure, says):
    rec = recorder()
    rec.widget._handle_msg(comm_msg({"type": "error", "name": name, "message": message,
                                     "where": "getUserMedia", "secure": secure}))
    assert says in rec.error and name in rec.error
    assert rec.error.endswith(UPLOAD_HINT) and "upload_and_label" in rec.error
    assert rec.widget.error == rec.error
    assert str(rec).startswith("No microphone:")
    assert microphone_problem(name, message, secure) == rec.error


def test_without_a_microphone_uploads_and_files_still_work(tmp_path):
    rec = recorder(tmp_path, word="banana")
    rec.widget._handle_msg(comm_msg({"type": "error", "name": "NotAllowedError",
                                     "message": "Permission denied"}))
    # the upload route labels a recording ...
    model = StreamModel(predict=lambda w: np.tile([0.1, 0.1, 0.8], (len(w), 1)),
                        labels=["_silence_", "_unknown_", "banana"])
    up = upload_and_label(model)
    buffer = io.BytesIO()
    sf.write(buffer, word_sound(1.2, 0.4, 44100), 44100, format="WAV", subtype="PCM_16")
    up.simulate_upload("mine.wav", buffer.getvalue())
    assert up.label == "banana"
    # ... and a file goes into the dataset through the recorder
    wav = tmp_path / "phone.wav"
    sf.write(wav, word_sound(1.2, 0.4, 44100), 44100, subtype="PCM_16")
    clip = rec.feed_file(wav)
    assert abs(len(clip) - 1.2 * RATE) <= 1 and rec.error == ""
    assert rec.save_clip().parent == tmp_path / "banana"


def test_the_recording_keeps_the_latest_max_seconds():
    x = np.arange(5 * RATE, dtype=np.float32) / (5 * RATE)
    for pieces in ([x], list(chunks(x, [1600]))):  # one long piece, or many chunks
        rec = recorder(max_seconds=2)
        for p in pieces:
            rec.feed(p, RATE)
        clip = rec.stop()
        assert len(clip) == 2 * RATE
        np.testing.assert_array_equal(clip, x[-2 * RATE:])


def test_a_hole_in_the_browser_audio_clock_is_counted_and_filled_with_silence():
    mic = recorder()
    mic.widget._handle_msg(comm_msg({"type": "start", "rate": 16000}))
    for frame in (0, 1600, 4800):  # the audio from 3200 to 4800 never came
        mic.widget._handle_msg(comm_msg({"type": "chunk", "rate": 16000, "frame": frame, "t": 0},
                                        [memoryview(np.ones(1600, np.float32).tobytes())]))
    clip = mic.stop()
    assert (mic.frame_gaps, mic.missing_frames) == (1, 1600)
    np.testing.assert_array_equal(clip, np.repeat([1, 1, 0, 1], 1600).astype(np.float32))


def test_a_new_rate_mid_session_carries_on():
    mic = recorder()
    mic.feed(tones(48000, 0.5), 48000)
    mic.feed(tones(44100, 0.5), 44100)
    clip = mic.stop()
    assert mic.rate == 44100 and abs(len(clip) - RATE) <= 2
