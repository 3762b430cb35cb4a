"""Reading and writing clips: any wav/flac in, mono float32 at 16 kHz out.

This is the ground floor of the package: no TensorFlow here, so scripts that only touch audio
(synthesis, download checks, ``kwlesson data info``) start fast.

Introduced in notebook 01.

>>> from kwlesson.audio import read_wav, write_wav
>>> write_wav("/tmp/beep.wav", np.zeros(16000, np.float32))  # doctest: +SKIP
>>> read_wav("/tmp/beep.wav", clip_samples=16000).shape  # doctest: +SKIP
(16000,)
"""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

__all__ = [
    "SAMPLE_RATE",
    "AudioError",
    "read_wav",
    "fit_length",
    "write_wav",
    "describe_wav",
]

#: The rate every clip is brought to: Speech Commands is recorded at 16 kHz.
SAMPLE_RATE = 16000

# The first bytes we look at to explain a file libsndfile refuses and to find the data chunk.
_SNIFF_BYTES = 4096


class AudioError(ValueError):
    """A clip that cannot be read or written; the message names the file and the problem.

    >>> raise AudioError("/data/yes/a.wav: empty file (0 bytes)")  # doctest: +SKIP
    """


def _fail(path: str | os.PathLike, problem: str) -> AudioError:
    return AudioError(f"{os.fspath(path)}: {problem}")


def _wav_data_chunk(head: bytes) -> tuple[int, int] | None:
    """(offset of the sample data, declared size in bytes) of a RIFF/WAVE file, if found.

    Walks the chunk list by hand because libsndfile quietly reads a short data chunk
    instead of saying the file was cut off (an interrupted copy or download).
    """
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        chunk_id = head[pos : pos + 4]
        (size,) = struct.unpack("<I", head[pos + 4 : pos + 8])
        if chunk_id == b"data":
            return pos + 8, size
        pos += 8 + size + (size & 1)  # chunks are padded to an even length
    return None


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character may be cut at the end of the sniffed block.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.95 * len(text)


def _explain_unreadable(head: bytes, size: int, reason: str) -> str:
    """Turn libsndfile's refusal into words a student can act on."""
    if head[:4] in (b"RIFF", b"RIFX", b"RF64"):
        # A canonical PCM header is 44 bytes; anything that stops before the 'fmt ' chunk
        # is complete is a header that was cut off.
        fmt_at = head.find(b"fmt ")
        if size < 44 or fmt_at < 0 or fmt_at + 8 > size:
            return f"truncated header (only {size} bytes)"
        (fmt_size,) = struct.unpack("<I", head[fmt_at + 4 : fmt_at + 8])
        if fmt_at + 8 + fmt_size > size:
            return f"truncated header (only {size} bytes)"
        return f"corrupt or unsupported WAV file ({reason})"
    if head[:4] == b"fLaC":
        return f"corrupt or truncated FLAC file ({reason})"
    stripped = head.lstrip().lower()
    if stripped.startswith((b"<!doctype html", b"<html")):
        return "not a WAV/FLAC file (looks like an HTML page, e.g. a failed download)"
    if _looks_like_text(head):
        return "not a WAV/FLAC file (looks like text)"
    return f"not a WAV/FLAC file (unrecognised format, starts with {head[:8]!r})"


def _open_checked(path: str | os.PathLike) -> tuple[Path, sf.SoundFile]:
    """Open a sound file or raise AudioError saying what is wrong with it."""
    p = Path(path)
    if not p.exists():
        raise _fail(p, "file not found")
    if p.is_dir():
        raise _fail(p, "is a folder, not an audio file")
    size = p.stat().st_size
    if size == 0:
        raise _fail(p, "empty file (0 bytes)")
    try:
        with open(p, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as err:
        raise _fail(p, f"cannot be read ({err.strerror or err})") from err
    try:
        snd = sf.SoundFile(p)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        reason = str(getattr(err, "error_string", "") or err)
        raise _fail(p, _explain_unreadable(head, size, reason)) from err
    # libsndfile reads a cut-off data chunk without complaint; say so instead of padding
    # the clip with silence and pretending nothing happened.
    data = _wav_data_chunk(head)
    if data is not None and snd.format == "WAV":
        offset, declared = data
        # 0 and 0xFFFFFFFF are what streaming writers put when the length is not known yet.
        if declared not in (0, 0xFFFFFFFF) and offset + declared > size:
            present = snd.frames
            snd.close()
            missing = offset + declared - size
            detail = (f"header promises {declared} bytes of samples, {missing} are missing;"
                      f" only {present} frames present")
            raise _fail(p, f"truncated data ({detail})")
    return p, snd


def read_wav(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    clip_samples: int | None = None,
) -> np.ndarray:
    """Read a wav or flac clip as mono float32 in [-1, 1] at ``sample_rate``.

    Any rate is resampled with soxr (high quality), any sample width (8-bit unsigned,
    16/24/32-bit integer, float) is scaled to [-1, 1], and several channels are averaged
    to one. Float files with samples beyond +-1 are clipped, as a 16-bit file would be.
    With ``clip_samples`` the result is padded with zeros at the end, or trimmed, to that length.

    Raises AudioError ("<path>: <problem>") for a missing, empty, truncated or non-audio file.

    >>> read_wav("yes/0a7c2a8d_nohash_0.wav", clip_samples=16000).shape  # doctest: +SKIP
    (16000,)
    """
    p, snd = _open_checked(path)
    try:
        with snd:
            rate = snd.samplerate
            frames = snd.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise _fail(p, f"cannot decode samples ({err})") from err
    if frames.shape[0] == 0:
        raise _fail(p, "no samples (the header is fine but the clip is empty)")
    if not np.isfinite(frames).all():
        raise _fail(p, "contains NaN or infinite samples")
    mono = frames.mean(axis=1) if frames.shape[1] > 1 else frames[:, 0]
    if rate != sample_rate:
        # Mix down before resampling: one channel is cheaper to resample than several.
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    mono = np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)
    if clip_samples is not None:
        mono = fit_length(mono, clip_samples)
    return mono


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Pad ``x`` with zeros at the end, or trim its end, so it has exactly ``n`` samples.

    >>> fit_length(np.ones(3, np.float32), 5)
    array([1., 1., 1., 0., 0.], dtype=float32)
    """
    if n < 0:
        raise ValueError(f"clip length must be >= 0, not {n}")
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"fit_length expects a 1-D clip, got shape {x.shape}")
    if len(x) >= n:
        return x[:n]
    return np.concatenate([x, np.zeros(n - len(x), dtype=x.dtype)])


def write_wav(path: str | os.PathLike, x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write a mono clip as 16-bit PCM wav, atomically (a reader never sees half a file).

    Samples beyond [-1, 1] are clipped (libsndfile would otherwise wrap them around).

    >>> write_wav("/tmp/silence.wav", np.zeros(16000, np.float32))  # doctest: +SKIP
    """
    p = Path(path)
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{p}: write_wav expects a 1-D mono clip, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{p}: refusing to write NaN or infinite samples")
    x = np.clip(x.astype(np.float32, copy=False), -1.0, 1.0)
    p.parent.mkdir(parents=True, exist_ok=True)
    # The temp file sits in the same folder so os.replace is a rename, not a copy.
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            sf.write(fh, x, sample_rate, subtype="PCM_16", format="WAV")
        os.replace(tmp, p)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, (OSError, sf.LibsndfileError)):
            raise AudioError(f"{p}: cannot write ({err})") from err
        raise


def describe_wav(path: str | os.PathLike) -> dict:
    """Facts about a clip without decoding it, for ``kwlesson data info``.

    Raises AudioError for the same problems as ``read_wav``.

    >>> describe_wav("yes/0a7c2a8d_nohash_0.wav")  # doctest: +SKIP
    {'path': 'yes/0a7c2a8d_nohash_0.wav', 'format': 'WAV', 'rate': 16000, 'channels': 1,
     'frames': 16000, 'subtype': 'PCM_16', 'duration_s': 1.0}
    """
    p, snd = _open_checked(path)
    with snd:
        return {
            "path": os.fspath(p),
            "format": snd.format,
            "rate": snd.samplerate,
            "channels": snd.channels,
            "frames": snd.frames,
            "subtype": snd.subtype,
            "duration_s": snd.frames / snd.samplerate if snd.samplerate else 0.0,
        }
