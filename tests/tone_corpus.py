"""A tiny Speech Commands-layout corpus of tones, for tests that need to train a model in
seconds: each word is a tone whose pitch names it, placed at a random time in the second."""

from pathlib import Path

import numpy as np

from kwlesson.audio import write_wav

WORDS = ("yes", "no", "up")
OTHERS = ("cat", "dog")  # folders that become _unknown_


def make_tone_corpus(root: Path, per_word: int = 30, seed: int = 0, *, jitter: float = 0.03,
                     onset: tuple[int, int] = (3000, 5000),
                     length: tuple[int, int] = (5000, 7000),
                     noise_seconds: int = 4) -> Path:
    """Write ``per_word`` one-second tones per word (and a white-noise background) under root."""
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    for k, word in enumerate(WORDS + OTHERS):
        (root / word).mkdir(parents=True)
        for i in range(per_word):
            f = 300.0 * (k + 1) * (1 + jitter * rng.standard_normal())
            on = int(rng.integers(*onset))
            off = on + int(rng.integers(*length))
            env = np.zeros(16000)
            env[on:off] = np.hanning(off - on)
            x = 0.4 * env * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(16000)
            # Speaker-style names so the reference's hash split applies.
            write_wav(root / word / f"{i:04x}{k:02x}ab_nohash_{i % 2}.wav", x.astype(np.float32))
    (root / "_background_noise_").mkdir()
    noise = (0.3 * rng.standard_normal(noise_seconds * 16000)).clip(-1, 1).astype(np.float32)
    write_wav(root / "_background_noise_" / "white_noise.wav", noise)
    return root


def make_steady_tone_corpus(root: Path, folders: tuple[str, ...], *, per_word: int,
                            base_hz: float, tag: str, clip_noise: float = 0.0,
                            noise_level: float = 0.2, noise_samples: int = 32000,
                            seed: int = 0) -> Path:
    """Simpler tones for widget tests: each folder a steady tone (pitch base_hz * (k + 1),
    jittered 3%) under a Hann window filling the whole second, plus a white-noise background.
    ``tag`` ends the speaker-style names so corpora of different tests never share a name."""
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    for k, word in enumerate(folders):
        (root / word).mkdir(parents=True)
        for i in range(per_word):
            f = base_hz * (k + 1) * (1 + 0.03 * rng.standard_normal())
            x = 0.4 * np.sin(2 * np.pi * f * t) * np.hanning(16000)
            if clip_noise:
                x += clip_noise * rng.standard_normal(16000)
            write_wav(root / word / f"{i:04x}{k:02x}{tag}_nohash_0.wav", x.astype(np.float32))
    (root / "_background_noise_").mkdir()
    write_wav(root / "_background_noise_" / "white_noise.wav",
              (noise_level * rng.standard_normal(noise_samples)).clip(-1, 1).astype(np.float32))
    return root


def tone(freq: float, rng: np.random.Generator, samples: int = 16000, rate: int = 16000,
         level: float = 0.4) -> np.ndarray:
    """A tone with a smooth envelope at a random time, plus a little noise."""
    t = np.arange(samples) / rate
    on = int(rng.integers(samples // 16, samples // 3))
    off = min(samples, on + int(rng.integers(samples * 3 // 8, samples // 2)))
    env = np.zeros(samples)
    env[on:off] = np.hanning(off - on)
    x = level * env * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(samples)
    return x.astype(np.float32)


def word_freq(k: int) -> float:
    """The pitch of word ``k`` of WORDS + OTHERS in the corpus."""
    return 300.0 * (k + 1)


def clip_of(word: str, seed: int = 100, samples: int = 16000, rate: int = 16000) -> np.ndarray:
    """A new clip of ``word`` (a tone of its pitch), as the corpus's words sound."""
    k = (WORDS + OTHERS).index(word)
    return tone(word_freq(k), np.random.default_rng(seed), samples=samples, rate=rate)
