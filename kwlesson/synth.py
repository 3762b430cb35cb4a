"""An offline Speech Commands: every word spoken by many synthetic speakers, made on your machine.

The real dataset is 2.3 GB and needs a download. This module makes a small stand-in with the
same layout, so every lesson runs offline::

    offline_speech_commands/<version>/
        yes/1a2b3c4d_nohash_0.wav      one folder per word, 1 s, 16 kHz, 16-bit mono
        ...
        _background_noise_/white_noise.wav   ~60 s noises for silence and augmentation

The voice is espeak-ng, a small formant synthesiser that ships inside the ``espeakng-loader``
wheel (no system package needed); we drive its C library through ctypes. A **synthetic
speaker** is a set of choices: voice and variant (accent, male/female/klatt timbre), speaking
rate, pitch, pitch range (how sing-song), loudness, where in the second the word falls, a
speed perturbation (which moves pitch and formants together, like a shorter or longer vocal
tract), a room (a decaying echo), a cheap microphone (band limits and a resonance) and a little
noise. Each speaker gets a stable 8-hex-digit id derived from its settings and the seed, used as
``<id>_nohash_<n>.wav``, so the seed's hash split keeps a speaker's clips in one split.

Same seed, same bytes: espeak-ng keeps hidden state between utterances (its pitch flutter runs
on), so each batch of speakers is rendered in a fresh worker process in a fixed order. That also
keeps espeak's global C state out of your notebook's process.

Introduced in notebook 02 (hearing the words) and used by every lesson that trains offline.

>>> path = offline_dataset()  # doctest: +SKIP
Offline dataset: 35 words x 100 speakers (3500 clips) at /home/you/.cache/kwlesson/...
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import json
import math
import os
import queue
import shutil
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "KEYWORDS",
    "AUXILIARY_WORDS",
    "DEFAULT_WORDS",
    "DEFAULT_SPEAKERS",
    "INGREDIENTS",
    "ENGLISH_VOICES",
    "OTHER_VOICES",
    "VARIANTS",
    "NOISE_NAMES",
    "Speaker",
    "synthetic_speakers",
    "speak",
    "render",
    "synthesize_dataset",
    "offline_dataset",
]

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000
BACKGROUND_NOISE_DIR_NAME = "_background_noise_"

#: The ten words the course spots.
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
#: The other 25 words of Speech Commands v0.02: the "unknown" class.
AUXILIARY_WORDS = (
    "backward", "bed", "bird", "cat", "dog", "eight", "five", "follow", "forward", "four",
    "happy", "house", "learn", "marvin", "nine", "one", "seven", "sheila", "six", "three",
    "tree", "two", "visual", "wow", "zero",
)
DEFAULT_WORDS = KEYWORDS + AUXILIARY_WORDS
#: Speakers in the default offline dataset: 35 words x 500 speakers = 17,500 clips (~560 MB),
#: so its testing split has over 500 clips (a standard error near 1 point, not 5); made in
#: a couple of minutes on 2 idle cores (benchmarks/bench_synth.py).
DEFAULT_SPEAKERS = 500

#: What makes one synthetic speaker differ from another; each can be switched off
#: (``ingredients=`` below) to hear or measure what it adds.
INGREDIENTS = (
    "voices",     # accent (English voices, a few other languages) and timbre variant
    "rate",       # speaking rate
    "pitch",      # pitch, pitch range and sentence intonation (. ! ? ,)
    "loudness",   # recording level
    "placement",  # where in the second the word starts
    "speed",      # speed perturbation: pitch and formants shift together
    "room",       # echo of a room
    "mic",        # band limits and resonance of a cheap microphone
    "noise",      # a low noise floor under the word
)

#: English voices of espeak-ng (British, American, Caribbean, Scottish, RP, Lancashire, Welsh
#: Midlands, New York).
ENGLISH_VOICES = (
    "en", "en-us", "en-029", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd", "en-us-nyc",
)
#: Voices of other languages reading the English spelling: strong accents, a little variety.
OTHER_VOICES = ("de", "nl", "sv", "da", "nb", "fr", "es", "it", "pt", "pl", "hi", "af")
#: Timbre variants (``voice+variant``); the robotic and demonic ones are left out.
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "klatt4", "klatt6", "whisper", "whisperf",
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "AnxiousAndy", "Denis", "Diogo", "Gene",
    "Gene2", "Henrique", "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "Nguyen",
    "Reed", "Storm", "adam", "anika", "announcer", "antonio", "aunty", "belinda", "benjamin",
    "boris", "caleb", "david", "ed", "edward", "edward2", "grandma", "grandpa", "gustave", "ian",
    "iven", "iven2", "iven3", "iven4", "john", "kaukovalta", "linda", "marcelo", "max", "michel",
    "miguel", "mike2", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "sandro",
    "shelby", "steph", "steph2", "steph3", "travis", "victor", "zac",
)
NOISE_NAMES = ("white_noise", "pink_noise", "brown_noise", "hum", "babble", "running_water", "fan")
NOISE_SECONDS = 60

# Bump when anything changes what a seed produces: the cache folder name depends on it.
SYNTH_VERSION = 2  # 2: speaker ids the same on every machine (floats rounded in the id)
_MARKER = ".complete.json"
# Speakers rendered by one fresh worker process. Fixed (not derived from the core count) so the
# bytes do not depend on the machine.
_SPEAKERS_PER_JOB = 8
_ESPEAK_RATE = 22050
_FILLER_WORDS = (
    "the", "and", "people", "water", "morning", "really", "because", "little", "number",
    "coffee", "table", "window", "maybe", "tomorrow", "station", "yellow", "basket", "garden",
)


# --------------------------------------------------------------------------- espeak-ng engine

class _VoiceProps(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p),
                ("identifier", ctypes.c_char_p), ("gender", ctypes.c_ubyte),
                ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte), ("xx1", ctypes.c_ubyte),
                ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAMS = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}


class _Espeak:
    """The espeak-ng C library: a process-wide singleton, so one instance per process."""

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_VoiceProps)]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p,
                                     ctypes.c_void_p]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        data = os.fsencode(espeakng_loader.get_data_path())
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if rate <= 0:
            raise RuntimeError(f"espeak-ng could not start (data folder {data.decode()!r})")
        self.sample_rate = rate
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept on self: ctypes must not free it
        lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()

    def _collect(self, wav, numsamples, events) -> int:  # noqa: ANN001 (ctypes types)
        if wav and numsamples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0  # 0 = go on synthesising

    def set_voice(self, voice: str) -> None:
        if self.lib.espeak_SetVoiceByName(voice.encode()) == 0:
            return
        # Not a voice file name: maybe a language code ("en-au") espeak can match by properties.
        if "+" not in voice:
            props = _VoiceProps(None, voice.encode(), None, 0, 0, 0, 0, 0, None)
            if self.lib.espeak_SetVoiceByProperties(ctypes.byref(props)) == 0:
                return
        raise ValueError(f"espeak-ng has no voice {voice!r}; try one of {', '.join(ENGLISH_VOICES)}"
                         f" (add a variant as 'en-us+f3')")

    def synth(self, text: str, voice: str, rate: int = 175, pitch: int = 50, range: int = 50,
              volume: int = 100, wordgap: int = 0) -> np.ndarray:
        """int16 samples at ``self.sample_rate``."""
        with self.lock:
            self.set_voice(voice)
            for name, value in (("rate", rate), ("pitch", pitch), ("range", range),
                                ("volume", volume), ("wordgap", wordgap)):
                self.lib.espeak_SetParameter(_PARAMS[name], int(value), 0)
            self.lib.espeak_ng_SetRandSeed(zlib.crc32(f"{text}|{voice}".encode()))
            self._chunks = []
            raw = text.encode("utf-8")
            err = self.lib.espeak_Synth(raw, len(raw) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                        None, None)
            if err != 0:
                raise RuntimeError(f"espeak-ng failed (error {err}) speaking {text!r}")
            chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


_ENGINE: _Espeak | None = None
_ENGINE_LOCK = threading.Lock()


def _engine() -> _Espeak:
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _Espeak()
        return _ENGINE


def speak(word: str, voice: str = "en-us", *, rate: int = 175, pitch: int = 50, range: int = 50,
          volume: int = 100, wordgap: int = 0) -> np.ndarray:
    """espeak-ng saying ``word``: float32 samples at 16 kHz, as long as the synthesiser made it.

    ``voice`` is an espeak-ng voice, optionally with a variant ("en-gb-scotland", "en-us+f3",
    "en+klatt2"); ``rate`` is words per minute (80-450), ``pitch`` and ``range`` (how much the
    pitch moves) run 0-99, ``volume`` 0-200. The exact samples can differ a little from call to
    call (espeak-ng's pitch flutter runs on between utterances); the datasets are reproducible.

    >>> clip = speak("yes", voice="en-us+f3", pitch=70)
    >>> clip.dtype, clip.ndim
    (dtype('float32'), 1)
    """
    import soxr

    _check_words([word])
    eng = _engine()
    raw = eng.synth(word, voice, rate=rate, pitch=pitch, range=range, volume=volume,
                    wordgap=wordgap)
    x = raw.astype(np.float32) / 32768.0
    return soxr.resample(x, eng.sample_rate, SAMPLE_RATE).astype(np.float32)


# --------------------------------------------------------------------------- speakers

@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: the settings its clips share (each clip adds a little jitter).

    >>> synthetic_speakers(2)[0].id  # doctest: +SKIP
    '3f0c9a1e'
    """

    id: str
    voice: str            # espeak voice, with variant: "en-us+f3"
    rate: int             # words per minute
    pitch: int            # 0-99
    range: int            # 0-99, pitch movement
    level_db: float       # peak level of the word, dBFS
    placement: float      # 0 = word at the start of the second, 1 = at the end, None-like 0.5
    spread: float         # how much the placement wanders from clip to clip (0-1)
    speed: float          # speed perturbation factor (>1: faster and higher)
    rt60: float           # room reverberation time, s (0: no room)
    drr_db: float         # direct-to-reverberant ratio, dB
    highpass_hz: float    # microphone low cut (0: none)
    lowpass_hz: float     # microphone high cut (0: none)
    peak_hz: float        # microphone resonance (0: none)
    peak_db: float
    snr_db: float         # word peak over noise floor RMS, dB (inf: no noise)
    noise_color: float    # 0 white, 1 pink, 2 brown
    intonation: bool      # vary punctuation (. ! ? ,) from clip to clip
    rate_jitter: float    # clip-to-clip wobble (log scale) of rate, pitch, level, speed
    pitch_jitter: float
    level_jitter_db: float
    speed_jitter: float


def _speaker_settings(index: int, seed: int, ingredients: frozenset[str]) -> dict:
    """Draw every setting (always all, in a fixed order) then neutralise the switched-off ones,
    so switching one ingredient off leaves the others exactly as they were."""
    rng = np.random.default_rng([seed, index, 0x5EA4E2])
    u = rng.random
    if u() < 0.85:
        lang = ENGLISH_VOICES[int(rng.integers(len(ENGLISH_VOICES)))]
    else:
        lang = OTHER_VOICES[int(rng.integers(len(OTHER_VOICES)))]
    variant = VARIANTS[int(rng.integers(len(VARIANTS)))] if u() < 0.9 else ""
    s = dict(
        voice=f"{lang}+{variant}" if variant else lang,
        rate=int(round(math.exp(rng.uniform(math.log(110), math.log(260))))),
        pitch=int(rng.integers(10, 95)),
        range=int(rng.integers(5, 99)),
        level_db=float(rng.uniform(-32.0, -1.0)),
        placement=float(rng.beta(2.0, 2.0)),
        spread=float(rng.uniform(0.1, 0.8)),
        speed=float(math.exp(rng.uniform(math.log(0.86), math.log(1.18)))),
        rt60=float(rng.uniform(0.05, 0.7)) if u() < 0.8 else 0.0,
        drr_db=float(rng.uniform(-2.0, 18.0)),
        highpass_hz=float(math.exp(rng.uniform(math.log(40), math.log(450)))),
        lowpass_hz=math.exp(rng.uniform(math.log(3200), math.log(7800))) if u() < 0.7 else 0.0,
        peak_hz=float(math.exp(rng.uniform(math.log(600), math.log(5000)))),
        peak_db=float(rng.uniform(-8.0, 10.0)),
        snr_db=float(rng.uniform(28.0, 65.0)),
        noise_color=float(rng.uniform(0.0, 2.0)),
        intonation=True,
        rate_jitter=0.08,
        pitch_jitter=5.0,
        level_jitter_db=1.5,
        speed_jitter=0.02,
    )
    neutral = {
        "voices": dict(voice="en-us"),
        "rate": dict(rate=175, rate_jitter=0.0),
        "pitch": dict(pitch=50, range=50, intonation=False, pitch_jitter=0.0),
        "loudness": dict(level_db=-6.0, level_jitter_db=0.0),
        "placement": dict(placement=0.5, spread=0.0),
        "speed": dict(speed=1.0, speed_jitter=0.0),
        "room": dict(rt60=0.0, drr_db=0.0),
        "mic": dict(highpass_hz=0.0, lowpass_hz=0.0, peak_hz=0.0, peak_db=0.0),
        "noise": dict(snr_db=float("inf"), noise_color=0.0),
    }
    for name, values in neutral.items():
        if name not in ingredients:
            s.update(values)
    return s


def _speaker_id(index: int, seed: int, settings: dict) -> str:
    # Floats enter the id rounded to 9 significant digits: their last bits depend on the CPU's
    # exp and log (numpy picks a SIMD version per machine), and an id that moved with them
    # moved the speaker to another split on another machine.
    rounded = {k: float(f"{v:.9g}") if isinstance(v, float) else v for k, v in settings.items()}
    text = json.dumps({"seed": seed, "index": index, **rounded}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _check_ingredients(ingredients: Iterable[str] | None) -> frozenset[str]:
    if ingredients is None:
        return frozenset(INGREDIENTS)
    chosen = frozenset(ingredients)
    unknown = sorted(chosen - set(INGREDIENTS))
    if unknown:
        raise ValueError(f"unknown ingredient(s) {unknown}; choose from {list(INGREDIENTS)}")
    return chosen


def synthetic_speakers(n: int, seed: int = 0,
                       ingredients: Iterable[str] | None = None) -> list[Speaker]:
    """The first ``n`` synthetic speakers for ``seed``: stable, with distinct ids.

    Speaker ``k`` is the same whatever ``n`` is, so a bigger dataset adds speakers.

    >>> [s.voice for s in synthetic_speakers(3)]  # doctest: +SKIP
    ['en-gb-x-rp+m3', 'en-us+klatt2', 'en-029+f4']
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"speakers must be a whole number >= 1, not {n!r}")
    chosen = _check_ingredients(ingredients)
    speakers, seen = [], set()
    for index in range(int(n)):
        settings = _speaker_settings(index, seed, chosen)
        sid = _speaker_id(index, seed, settings)
        bump = 0
        while sid in seen:  # a 1-in-4-billion clash; keep ids distinct anyway
            bump += 1
            sid = _speaker_id(index, seed, {**settings, "bump": bump})
        seen.add(sid)
        speakers.append(Speaker(id=sid, **settings))
    return speakers


# --------------------------------------------------------------------------- one clip

def _trim_silence(x: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    loud = np.flatnonzero(np.abs(x) > threshold * (np.abs(x).max() + 1e-9))
    if loud.size == 0:
        return x[:0]
    return x[max(loud[0] - 80, 0): loud[-1] + 160]


def _colored_noise(rng: np.random.Generator, n: int, color: float) -> np.ndarray:
    """Noise with power falling as 1/f**color (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    f[0] = f[1]
    spec *= (f / 1000.0) ** (-color / 2.0)
    spec[0] = 0.0
    x = np.fft.irfft(spec, n)
    return (x / (np.sqrt(np.mean(x ** 2)) + 1e-12)).astype(np.float32)


def _room(x: np.ndarray, rng: np.random.Generator, rt60: float, drr_db: float) -> np.ndarray:
    """Convolve with a synthetic room: direct sound, a few early echoes, a decaying noise tail."""
    from scipy.signal import fftconvolve, lfilter

    n = max(int(rt60 * 1.1 * SAMPLE_RATE), 16)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB after rt60
    tail = lfilter([0.6], [1.0, -0.4], tail)  # air and walls absorb the highs
    tail[: int(0.002 * SAMPLE_RATE)] = 0.0
    for _ in range(4):
        k = int(rng.uniform(0.003, 0.03) * SAMPLE_RATE)
        if k < n:
            tail[k] += rng.uniform(-0.6, 0.6) * np.exp(-6.9 * k / SAMPLE_RATE / rt60)
    tail *= 10 ** (-drr_db / 20.0) / (np.sqrt(np.sum(tail ** 2)) + 1e-12)
    ir = tail
    ir[0] = 1.0
    return fftconvolve(x, ir)[: len(x) + n].astype(np.float32)


def _peaking(f0: float, gain_db: float, q: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A resonance of ``gain_db`` at ``f0`` (the audio-EQ-cookbook peaking filter)."""
    a = 10 ** (gain_db / 40.0)
    w = 2 * np.pi * f0 / SAMPLE_RATE
    alpha = np.sin(w) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w), 1 - alpha / a])
    return b / den[0], den / den[0]


def _mic(x: np.ndarray, s: Speaker) -> np.ndarray:
    from scipy.signal import butter, lfilter, sosfilt

    if s.highpass_hz > 0:
        x = sosfilt(butter(2, s.highpass_hz, "highpass", fs=SAMPLE_RATE, output="sos"), x)
    if s.lowpass_hz > 0:
        x = sosfilt(butter(4, s.lowpass_hz, "lowpass", fs=SAMPLE_RATE, output="sos"), x)
    if s.peak_hz > 0 and s.peak_db != 0:
        x = lfilter(*_peaking(s.peak_hz, s.peak_db), x)
    return np.asarray(x, np.float32)


def _text_for(word: str, s: Speaker, rng: np.random.Generator) -> str:
    # Punctuation sets espeak's intonation: statement, exclamation, question, continuation.
    mark = rng.choice(["", ".", "!", "?", ","], p=[0.3, 0.25, 0.2, 0.15, 0.1])
    return f"{word}{mark}" if s.intonation else word


def _render(word: str, s: Speaker, seed: int, eng: _Espeak) -> np.ndarray:
    """One 1 s clip of speaker ``s`` saying ``word`` (float32, 16 kHz)."""
    import soxr

    rng = np.random.default_rng([seed, int(s.id, 16), zlib.crc32(word.encode())])
    jitter = rng.standard_normal(6)
    rate = s.rate * np.exp(s.rate_jitter * jitter[0])
    pitch = np.clip(s.pitch + s.pitch_jitter * jitter[1], 0, 99)
    raw = eng.synth(_text_for(word, s, rng), s.voice, rate=int(round(np.clip(rate, 80, 450))),
                    pitch=int(round(pitch)), range=s.range)
    x = _trim_silence(raw.astype(np.float32) / 32768.0)
    if x.size == 0:
        raise ValueError(f"espeak-ng made no sound for the word {word!r} (voice {s.voice})")
    # Speed perturbation and the 22.05 -> 16 kHz resampling in one step: pretending the clip
    # was recorded at a higher rate plays it faster and higher.
    speed = s.speed * np.exp(s.speed_jitter * jitter[2])
    x = soxr.resample(x, eng.sample_rate * speed, SAMPLE_RATE).astype(np.float32)
    longest = int(0.92 * CLIP_SAMPLES)
    if x.size > longest:  # a very slow speaker: squeeze the word into the second
        x = soxr.resample(x, x.size, longest).astype(np.float32)[:longest]
    spoken = x.size
    if s.rt60 > 0:
        x = _room(x, rng, s.rt60, s.drr_db)
    x = _mic(x, s)
    level = s.level_db + s.level_jitter_db * jitter[3]
    x *= 10 ** (level / 20.0) / (np.abs(x).max() + 1e-9)
    # Where the word starts: around the speaker's habit, always wholly inside the second.
    room = CLIP_SAMPLES - spoken
    where = np.clip(s.placement + s.spread * 0.25 * jitter[4], 0.0, 1.0)
    start = int(round(where * room))
    clip = np.zeros(CLIP_SAMPLES, np.float32)
    end = min(start + x.size, CLIP_SAMPLES)
    clip[start:end] = x[: end - start]
    if np.isfinite(s.snr_db):
        noise_db = level - s.snr_db
        clip += 10 ** (noise_db / 20.0) * _colored_noise(rng, CLIP_SAMPLES, s.noise_color)
    return np.clip(clip, -1.0, 1.0)


def render(word: str, speaker: Speaker, seed: int = 0) -> np.ndarray:
    """A 1 s clip of ``speaker`` saying ``word``, with its room, microphone and noise.

    This is how each dataset clip is made (in this process rather than a worker, so the samples
    can differ slightly from the file's).

    >>> clip = render("yes", synthetic_speakers(1)[0])
    >>> clip.shape
    (16000,)
    """
    _check_words([word])
    return _render(word, speaker, seed, _engine())


# --------------------------------------------------------------------------- background noise

def _babble(rng: np.random.Generator, n: int, eng: _Espeak, words: Sequence[str]) -> np.ndarray:
    """Several synthetic talkers at once, each a string of words: like a distant crowd."""
    import soxr

    out = np.zeros(n, np.float32)
    for _ in range(6):
        pos = int(rng.integers(0, SAMPLE_RATE))
        voice_pool = ENGLISH_VOICES + OTHER_VOICES
        voice = f"{voice_pool[int(rng.integers(len(voice_pool)))]}+" \
                f"{VARIANTS[int(rng.integers(len(VARIANTS)))]}"
        gain = rng.uniform(0.3, 1.0)
        while pos < n:
            w = words[int(rng.integers(len(words)))]
            raw = eng.synth(w, voice, rate=int(rng.integers(140, 230)),
                            pitch=int(rng.integers(20, 80)), range=int(rng.integers(20, 90)))
            x = soxr.resample(_trim_silence(raw.astype(np.float32) / 32768.0), eng.sample_rate,
                              SAMPLE_RATE)
            end = min(pos + x.size, n)
            out[pos:end] += gain * x[: end - pos]
            pos = end + int(rng.integers(400, 3000))
    return out


def _noises(seed: int, eng: _Espeak, words: Sequence[str]) -> dict[str, np.ndarray]:
    from scipy.signal import butter, lfilter, sosfilt

    rng = np.random.default_rng([seed, 0xB6_0015E])
    n = NOISE_SECONDS * SAMPLE_RATE
    t = np.arange(n) / SAMPLE_RATE
    out = {
        "white_noise": _colored_noise(rng, n, 0.0),
        "pink_noise": _colored_noise(rng, n, 1.0),
        "brown_noise": _colored_noise(rng, n, 2.0),
    }
    mains = 50.0 if rng.random() < 0.5 else 60.0
    hum = sum(np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6.3)) / k ** 1.2
              for k in range(1, 9))
    out["hum"] = hum + 0.05 * _colored_noise(rng, n, 1.0)
    out["babble"] = _babble(rng, n, eng, list(_FILLER_WORDS) + list(words))
    # Running water: hissy band-passed noise whose loudness flickers quickly (bubbles).
    water = sosfilt(butter(2, [400, 5000], "bandpass", fs=SAMPLE_RATE, output="sos"),
                    rng.standard_normal(n))
    flicker = lfilter([0.02], [1, -0.98], rng.standard_normal(n))
    out["running_water"] = water * (1.0 + 3.0 * np.abs(flicker) / (np.abs(flicker).max() + 1e-9))
    # A fan: low rumble plus the blade rate and its harmonics, slowly wobbling.
    blade = rng.uniform(80, 160)
    wobble = 1 + 0.02 * np.sin(2 * np.pi * 0.3 * t)
    fan = sum(np.sin(2 * np.pi * blade * k * t * wobble) / k ** 2 for k in range(1, 5))
    out["fan"] = 0.3 * fan + _colored_noise(rng, n, 1.6)
    for name, x in out.items():  # peak at -6 dBFS: loud, like the real noise files
        x = np.asarray(x, np.float32)
        out[name] = (0.5 * x / (np.abs(x).max() + 1e-9)).astype(np.float32)
    return out


# --------------------------------------------------------------------------- workers

def _write(path: Path, x: np.ndarray) -> None:
    try:
        from kwlesson.audio import write_wav
    except ImportError:  # audio.py not there (yet): plain 16-bit PCM
        import soundfile as sf

        sf.write(path, np.clip(x, -1, 1), SAMPLE_RATE, subtype="PCM_16", format="WAV")
        return
    write_wav(path, x, SAMPLE_RATE)


def _run_job(job: dict, report) -> None:  # noqa: ANN001 (a callable taking a str)
    eng = _engine()
    out = Path(job["out"])
    if job["kind"] == "noise":
        for name, x in _noises(job["seed"], eng, job["words"]).items():
            _write(out / BACKGROUND_NOISE_DIR_NAME / f"{name}.wav", x)
            report(name)
        return
    for sd in job["speakers"]:
        s = Speaker(**sd)
        for word in job["words"]:
            _write(out / word / f"{s.id}_nohash_0.wav", _render(word, s, job["seed"], eng))
            report(word)


def _worker_main() -> None:
    """Entry point of a worker process: one job (JSON on stdin), one line per file on stdout."""
    job = json.loads(sys.stdin.read())
    try:
        _run_job(job, lambda what: print("ok", what, flush=True))
    except Exception as err:  # noqa: BLE001 - told to the parent, which raises it
        print("error", f"{type(err).__name__}: {err}".replace("\n", " "), flush=True)
        sys.exit(1)


def _run_workers(jobs: list[dict], workers: int, total: int, progress: bool) -> None:
    """Run each job in a fresh Python process (espeak-ng state starts clean), ``workers`` at once.

    Plain subprocesses rather than multiprocessing: no re-import of the user's script or
    notebook, and a crash in the C library cannot take the caller down with it.
    """
    events: queue.Queue = queue.Queue()
    code = "from kwlesson.synth import _worker_main; _worker_main()"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parent.parent)] +
        ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}

    procs: list[subprocess.Popen] = []

    def run(job: dict) -> None:
        try:
            proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=env)
            procs.append(proc)
            # stderr is drained by a helper thread so a chatty worker cannot block on a full pipe.
            err_lines: list[str] = []
            drain = threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True)
            drain.start()
            proc.stdin.write(json.dumps(job))
            proc.stdin.close()
            problem = None
            for line in proc.stdout:
                if line.startswith("ok"):
                    events.put(("ok", None))
                elif line.startswith("error"):
                    problem = line[6:].strip()
            proc.wait()
            drain.join(timeout=5)
            if proc.returncode != 0:
                detail = problem or "".join(err_lines[-5:]).strip() or f"exit {proc.returncode}"
                events.put(("error", detail))
        except Exception as err:  # noqa: BLE001 - reported to the main thread
            events.put(("error", f"{type(err).__name__}: {err}"))
        finally:
            events.put(("done", None))

    pending = list(jobs)
    errors: list[str] = []
    try:
        _drive(pending, workers, total, progress, run, events, errors)
    finally:
        # Interrupted (Ctrl-C) or failed: stop the workers we started rather than orphan them.
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    if errors:
        raise RuntimeError(f"speech synthesis failed: {errors[0]}")


def _drive(pending: list[dict], workers: int, total: int, progress: bool, run,  # noqa: ANN001
           events: queue.Queue, errors: list[str]) -> None:
    from tqdm.auto import tqdm

    running = 0
    with tqdm(total=total, desc="Synthesising", unit="clip", disable=not progress,
              smoothing=0.1) as bar:
        while pending or running:
            while pending and running < workers and not errors:
                threading.Thread(target=run, args=(pending.pop(0),), daemon=True).start()
                running += 1
            if errors and not running:
                break
            kind, detail = events.get()
            if kind == "ok":
                bar.update(1)
            elif kind == "error":
                errors.append(detail)
            else:
                running -= 1
                if errors:
                    pending.clear()


# --------------------------------------------------------------------------- datasets

def _check_words(words: Sequence[str]) -> list[str]:
    clean = []
    for i, w in enumerate(words):
        if not isinstance(w, str):
            raise TypeError(f"word {i} is {w!r}, not text; give words as strings, e.g. ['yes']")
        w = w.strip()
        if not w:
            raise ValueError(f"word {i} is empty; give each word as text, e.g. words=['yes']")
        if "/" in w or "\\" in w or w.startswith((".", "_")) or "\0" in w:
            raise ValueError(f"word {w!r} cannot be a folder name (no slashes, no leading "
                             f"'.' or '_': those are reserved)")
        if not any(ch.isalnum() for ch in w):
            raise ValueError(f"word {w!r} has no letters or digits: there is nothing to say")
        clean.append(w)
    dupes = sorted({w for w in clean if clean.count(w) > 1})
    if dupes:
        raise ValueError(f"words repeated: {dupes}; give each word once")
    return clean


def _settings(words: list[str], speakers: int, seed: int, ingredients: frozenset[str]) -> dict:
    import espeakng_loader  # its version is part of what a seed produces

    try:
        from importlib.metadata import version
        loader = version("espeakng-loader")
    except Exception:  # noqa: BLE001 - an odd install still works, just caches by path
        loader = str(Path(espeakng_loader.__file__).parent)
    return {"synth_version": SYNTH_VERSION, "espeakng_loader": loader, "words": words,
            "speakers": int(speakers), "seed": int(seed),
            "ingredients": sorted(ingredients)}


#: Folders announced in this process: a lesson that asks for the dataset six times says so once.
_ANNOUNCED: set[Path] = set()


def _announce(out: Path, settings: dict) -> None:
    if out in _ANNOUNCED:
        return
    _ANNOUNCED.add(out)
    n_words, n_speakers = len(settings["words"]), settings["speakers"]
    print(f"Offline dataset: {n_words} words x {n_speakers} speakers "
          f"({n_words * n_speakers} clips) at {out}")


def _is_complete(out: Path, settings: dict) -> bool:
    try:
        return json.loads((out / _MARKER).read_text()) == settings
    except (OSError, ValueError):
        return False


def synthesize_dataset(
    out_dir: str | os.PathLike,
    words: Sequence[str] | None = None,
    speakers: int = DEFAULT_SPEAKERS,
    seed: int = 0,
    progress: bool = True,
    *,
    ingredients: Iterable[str] | None = None,
    workers: int | None = None,
) -> Path:
    """Make a Speech Commands-style dataset in ``out_dir`` and return its path.

    Every speaker says every word once: ``out_dir/<word>/<speaker id>_nohash_0.wav``, plus
    ``out_dir/_background_noise_/`` with ~60 s of seven noises. The same ``seed`` gives the same
    bytes. If ``out_dir`` already holds a dataset made with the same settings it is reused; the
    one-line summary is printed either way. The folder appears only when complete (it is built
    next to it and renamed).

    ``words`` defaults to the 35 words of Speech Commands v0.02; any word works, e.g.
    ``words=["kwlesson"]``. ``ingredients`` (default: all of ``INGREDIENTS``) chooses what varies
    between speakers; ``workers`` is how many worker processes run at once (default: up to 2).

    >>> synthesize_dataset("/tmp/tiny", words=["yes", "no"], speakers=4)  # doctest: +SKIP
    Offline dataset: 2 words x 4 speakers (8 clips) at /tmp/tiny
    PosixPath('/tmp/tiny')
    """
    words = _check_words(DEFAULT_WORDS if words is None else list(words))
    if not words:
        raise ValueError("words is empty; give at least one word, e.g. words=['yes']")
    chosen = _check_ingredients(ingredients)
    people = synthetic_speakers(speakers, seed, chosen)
    out = Path(out_dir).expanduser().resolve()
    settings = _settings(words, speakers, seed, chosen)
    if _is_complete(out, settings):
        _announce(out, settings)
        return out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not a dataset made with these settings; "
                              f"choose another folder or delete it")
    workers = max(1, min(2, os.cpu_count() or 1)) if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, not {workers}")

    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(out)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for w in words:
            (tmp / w).mkdir(parents=True)
        (tmp / BACKGROUND_NOISE_DIR_NAME).mkdir()
        people_dicts = [dataclasses.asdict(p) for p in people]
        # The noise job goes first: babble takes the longest.
        jobs = [{"kind": "noise", "out": str(tmp), "seed": seed, "words": words}]
        for i in range(0, len(people_dicts), _SPEAKERS_PER_JOB):
            jobs.append({"kind": "speakers", "out": str(tmp), "seed": seed, "words": words,
                         "speakers": people_dicts[i: i + _SPEAKERS_PER_JOB]})
        _run_workers(jobs, workers, len(words) * len(people) + len(NOISE_NAMES), progress)
        (tmp / _MARKER).write_text(json.dumps(settings))
        if out.exists():
            out.rmdir()  # empty (checked above)
        try:
            os.rename(tmp, out)
        except OSError:
            if not _is_complete(out, settings):  # not someone else finishing the same job first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _announce(out, settings)
    return out


def _remove_stale_partials(out: Path) -> list[Path]:
    """Delete the ``.<name>.partial-<pid>-*`` folders that a killed synthesis of ``out`` left
    (their process is gone); a synthesis still running elsewhere keeps its folder."""
    removed = []
    for tmp in out.parent.glob(f".{out.name}.partial-*"):
        try:
            pid = int(tmp.name.rsplit(".partial-", 1)[1].split("-")[0])
        except (IndexError, ValueError):
            continue
        try:
            os.kill(pid, 0)
            continue  # still running (or another user's): not ours to delete
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp)
        print(f"Removed {tmp}: left by an interrupted synthesis (process {pid} is gone)",
              file=sys.stderr)
    return removed


def offline_dataset(
    speakers: int = DEFAULT_SPEAKERS,
    seed: int = 0,
    words: Sequence[str] | None = None,
    progress: bool = True,
) -> Path:
    """The offline dataset in ``kwlesson.config.data_home()``: made on first use, then reused.

    >>> path = offline_dataset()  # doctest: +SKIP
    Offline dataset: 35 words x 100 speakers (3500 clips) at /home/you/.cache/kwlesson/...
    """
    from kwlesson.config import data_home

    checked = _check_words(DEFAULT_WORDS if words is None else list(words))
    key = hashlib.sha1(json.dumps(_settings(checked, speakers, seed, frozenset(INGREDIENTS)),
                                  sort_keys=True).encode()).hexdigest()[:12]
    return synthesize_dataset(data_home() / "offline_speech_commands" / key, words=checked,
                              speakers=speakers, seed=seed, progress=progress)
