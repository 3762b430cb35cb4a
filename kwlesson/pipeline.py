"""From files to batches: each clip decoded once (and cached on disk), then ``tf.data`` batches
in which the time shift, the background noise and the feature front end run as one compiled
program on whole batches.

:class:`kwlesson.data.SpeechCommands` decides what goes in a split (the seed's hash split,
silence and unknown quotas); this module is the machinery that feeds those clips to training
fast, and the same way every time: the random numbers come from (seed, batch number).

Introduced in notebook 02 (the data) and 03 (training reads these batches).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from kwlesson.audio import AudioError, fit_length, read_wav

if TYPE_CHECKING:  # TensorFlow loads only when a dataset is built
    import tensorflow as tf

    from kwlesson.features import FeatureSettings

__all__ = ["DECODED_CACHE_MB", "INT16_SCALE", "Background", "Clips", "batches", "decode_all",
           "prune_decoded_cache"]

_CACHE_VERSION = 1
#: Clips are kept as int16; this turns them back into samples in [-1, 1).
INT16_SCALE = 32768.0


# --------------------------------------------------------------------------------------------
# Decoding once, caching on disk


def _decode_one(path: str, samples: int, sample_rate: int) -> tuple[np.ndarray | None, int, str]:
    """(int16 clip or None, original length, problem or '')."""
    try:
        x = read_wav(path, sample_rate=sample_rate)
    except AudioError as err:
        return None, 0, str(err).removeprefix(f"{path}: ")
    except Exception as err:  # never stop halfway through a folder: report and carry on
        return None, 0, f"cannot be read ({type(err).__name__}: {err})"
    n = len(x)
    x = fit_length(x, samples)
    # int16 halves the memory of float32 and is exact for 16-bit sources.
    q = np.clip(np.round(x * INT16_SCALE), -32768, 32767).astype(np.int16)
    return q, n, ""



def _cache_key(paths: Sequence[str], samples: int, sample_rate: int) -> str:
    h = hashlib.sha1(f"v{_CACHE_VERSION}|{samples}|{sample_rate}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"|{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}".encode("utf-8", "replace"))
    return h.hexdigest()[:20]



def decode_all(
    paths: Sequence[str],
    samples: int,
    sample_rate: int,
    cache: bool,
    progress: bool | None,
) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """int16 [len(paths), samples], original lengths, {path: problem} for files that failed."""
    cache_file = None
    if cache and paths:
        from kwlesson.config import data_home

        key = _cache_key(paths, samples, sample_rate)
        cache_file = data_home() / "decoded" / f"clips-{key}.npz"
        if cache_file.exists():
            try:
                with np.load(cache_file, allow_pickle=False) as z:
                    failed = json.loads(str(z["failed"]))
                    result = z["audio"], z["lengths"], failed
                os.utime(cache_file)  # recently used: the last to be pruned
                return result
            except Exception:  # a damaged cache is rebuilt, never trusted
                pass
    audio = np.zeros((len(paths), samples), np.int16)
    lengths = np.zeros(len(paths), np.int64)
    failed: dict[str, str] = {}
    # A bar only where decoding takes long enough to wonder (about 2,000 clips/s on 2 cores):
    # the full Speech Commands, not the offline dataset's few thousand clips.
    show = progress if progress is not None else len(paths) >= 10000
    # libsndfile and soxr release the GIL, so a few threads decode faster than one.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        results = pool.map(lambda p: _decode_one(p, samples, sample_rate), paths, chunksize=64)
        if show:
            from tqdm.auto import tqdm

            results = tqdm(results, total=len(paths), desc="decoding clips", unit="clip")
        for i, (q, n, problem) in enumerate(results):
            if q is None:
                failed[paths[i]] = problem
            else:
                audio[i], lengths[i] = q, n
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_file.parent, suffix=".tmp.npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, audio=audio, lengths=lengths, failed=np.array(json.dumps(failed)))
            os.replace(tmp, cache_file)
        except OSError:  # a read-only home just means no cache
            Path(tmp).unlink(missing_ok=True)
        prune_decoded_cache(cache_file.parent, keep=cache_file)
    return audio, lengths, failed



#: Most disk the decoded-audio cache may use, in MB (env KWLESSON_DECODED_CACHE_MB).
DECODED_CACHE_MB = 1024



def prune_decoded_cache(folder: Path, keep: Path | None = None,
                        limit_mb: float | None = None) -> list[Path]:
    """Delete the least recently used decoded-audio caches until the folder fits the limit.

    Every distinct clip list (other words, other percentages) gets its own cache file, so
    without a limit a term of experiments would fill the disk. ``keep`` is never deleted.

    >>> prune_decoded_cache(data_home() / "decoded")  # doctest: +SKIP
    []
    """
    if limit_mb is None:
        limit_mb = float(os.environ.get("KWLESSON_DECODED_CACHE_MB", DECODED_CACHE_MB))
    files = []
    for f in Path(folder).glob("clips-*.npz"):
        try:
            st = f.stat()
        except OSError:  # removed by another process meanwhile
            continue
        files.append((st.st_mtime, st.st_size, f))
    files.sort()  # oldest first
    total = sum(size for _, size, _ in files)
    removed = []
    for _, size, f in files:
        if total <= limit_mb * 1e6:
            break
        if keep is not None and f == keep:
            continue
        f.unlink(missing_ok=True)
        total -= size
        removed.append(f)
    return removed



def _spec_augment(x: tf.Tensor, key: tf.Tensor, max_bins: int, max_frames: int,
                  masks: int = 2) -> tf.Tensor:
    """SpecAugment's masks on features [batch, frames, bins]: ``masks`` bands of up to
    ``max_bins`` bins and ``masks`` stretches of up to ``max_frames`` frames per clip take the
    clip's mean value. Random numbers from ``key`` (stateless): the same batch, the same masks."""
    import tensorflow as tf

    b, frames, bins = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    u = tf.random.stateless_uniform([b, 4 * masks], seed=key, dtype=tf.float32)
    keep = tf.ones_like(x, dtype=tf.bool)
    for axis, size, widest, k in ((2, bins, max_bins, 0), (1, frames, max_frames, 2 * masks)):
        if widest <= 0:
            continue
        idx = tf.range(size)
        for m in range(masks):
            width = tf.cast(u[:, k + 2 * m] * (widest + 1), tf.int32)
            width = tf.minimum(width, size)
            first = tf.cast(u[:, k + 2 * m + 1] * tf.cast(size - width + 1, tf.float32),
                            tf.int32)
            inside = (idx[None, :] >= first[:, None]) & (idx[None, :] < (first + width)[:, None])
            inside = inside[:, None, :] if axis == 2 else inside[:, :, None]
            keep = keep & ~inside
    mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    return tf.where(keep, x, mean)



@functools.lru_cache(maxsize=16)
def _front_end(settings: FeatureSettings | None, samples: int, shift_max: int,
               noise: bool) -> Callable:
    """int16 clips [b, samples] -> shifted, noise-mixed float audio -> features, one XLA program.

    Compiled with XLA because it turns the per-clip time shift and noise excerpt into two plain
    gathers and fuses them with the feature front end: about half the CPU time per batch of the
    graph ops (per-clip slices in a loop, a separate pass for every elementwise step). XLA on
    CPU is deterministic, so a seed still gives the same batches. Cached, so every dataset with
    the same settings shares one compiled program. ``settings=None`` returns the audio.
    """
    import tensorflow as tf

    from kwlesson.features import compute_features

    t = tf.range(samples, dtype=tf.int32)
    # XLA has no kernel for the 'micro' front end's op: compile the audio part only.
    features_outside = settings is not None and settings.preprocess == "micro"

    @tf.function(jit_compile=True, reduce_retracing=True)
    def mix(clips, start, pos, volume, bg_flat):
        audio = tf.cast(clips, tf.float32) * (1.0 / INT16_SCALE)
        if shift_max > 0:
            # Sample t of the shifted clip is sample start + t of the zero-padded one.
            padded = tf.pad(audio, [[0, 0], [shift_max, shift_max]])
            audio = tf.gather(padded, start[:, None] + t[None, :], batch_dims=1)
        if noise:
            excerpt = tf.gather(bg_flat, pos[:, None] + t[None, :])
            audio = tf.clip_by_value(audio + excerpt * volume[:, None], -1.0, 1.0)
        if settings is None or features_outside:
            return audio
        return compute_features(audio, settings)

    if not features_outside:
        return mix

    @tf.function(reduce_retracing=True)
    def front(clips, start, pos, volume, bg_flat):
        return compute_features(mix(clips, start, pos, volume, bg_flat), settings)

    return front


# --------------------------------------------------------------------------------------------
# The tf.data batches


class Clips(NamedTuple):
    """One split's entries: the int16 store (a tensor of every clip) and, per entry, its row
    in the store, label index, whether it is synthetic silence, and its fixed background
    excerpt (start, volume) for unaugmented batches."""

    store: Any
    rows: np.ndarray
    labels: np.ndarray
    synthetic: np.ndarray
    bg_pos: np.ndarray
    bg_vol: np.ndarray


class Background(NamedTuple):
    """The background noise clips, end to end in one array (``flat``) with where each starts
    and how long it is; ``count`` of them."""

    flat: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    count: int


def batches(clips: Clips, background: Background, settings: FeatureSettings | None,
            samples: int, *, batch_size: int, shuffle: bool, repeat: bool, seed: int,
            shift_max: int, use_background: bool, silence_volume: float,
            background_volume: float, background_frequency: float, drop_remainder: bool,
            start_batch: int, masking: bool, freq_mask_bins: int, time_mask_frames: int
            ) -> tf.data.Dataset:
    """Batches of (features, label indices) for :meth:`kwlesson.data.SpeechCommands.dataset`,
    which explains the options (``settings=None``: audio instead of features; ``masking``:
    SpecAugment is allowed, when augmenting features)."""
    import tensorflow as tf

    store = clips.store
    bg_flat = tf.constant(background.flat)
    bg_starts = tf.constant(background.starts)
    bg_room = tf.constant(np.maximum(background.lengths - samples, 1))
    n = len(clips.rows)
    bg_vol = clips.bg_vol
    table = tuple(tf.constant(t) for t in (clips.rows, clips.labels, clips.synthetic,
                                           clips.bg_pos, clips.bg_vol))
    if start_batch < 0:
        raise ValueError(f"start_batch must be >= 0, not {start_batch}")
    # Where batch start_batch begins in the endless stream of entries: (epoch, position).
    first_epoch, skip = divmod(start_batch * batch_size, n) if repeat else (0, 0)
    if shuffle:
        # A fresh permutation per epoch, drawn from (seed, epoch): repeatable, and each epoch
        # differs. Only indices flow through tf.data; the audio is looked up per batch.
        epochs = (tf.data.Dataset.counter(start=first_epoch) if repeat
                  else tf.data.Dataset.range(1))
        ds = epochs.flat_map(lambda epoch: tf.data.Dataset.from_tensor_slices(
            tf.argsort(tf.random.stateless_uniform(
                [n], seed=tf.stack([tf.cast(seed, tf.int64), epoch])))))
    else:
        ds = tf.data.Dataset.range(n)
        ds = ds.repeat() if repeat else ds
    ds = ds.skip(skip)
    if not repeat and start_batch:
        ds = ds.skip(start_batch * batch_size)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).enumerate(start=start_batch)

    n_bg = background.count
    need_noise = use_background or bool(bg_vol.any())
    front = _front_end(settings, samples, shift_max, need_noise)
    for name, value in (("freq_mask_bins", freq_mask_bins),
                        ("time_mask_frames", time_mask_frames)):
        if int(value) != value or value < 0:
            raise ValueError(f"{name} must be a whole number >= 0, not {value!r}")
    masking = masking and (freq_mask_bins > 0 or time_mask_frames > 0)

    def make(step, entry):
        row, label, synth, fixed_pos, fixed_vol = (tf.gather(t, entry) for t in table)
        b = tf.shape(row)[0]
        audio = tf.gather(store, row)  # int16; the big store stays outside the compiled part
        key = tf.stack([tf.cast(seed, tf.int64), step])
        if shift_max > 0:
            # Positive shift delays the clip (zeros in front), negative advances it.
            shift = tf.random.stateless_uniform(
                [b], seed=key + [0, 1 << 40], minval=-shift_max, maxval=shift_max + 1,
                dtype=tf.int64)
            start = shift_max - shift
        else:
            start = tf.zeros([b], tf.int64)
        if use_background:
            u = tf.random.stateless_uniform([b, 4], seed=key + [0, 2 << 40], dtype=tf.float32)
            which = tf.minimum(tf.cast(u[:, 0] * n_bg, tf.int64), n_bg - 1)
            room = tf.gather(bg_room, which)
            offset = tf.minimum(tf.cast(u[:, 1] * tf.cast(room, tf.float32), tf.int64),
                                room - 1)
            pos = tf.gather(bg_starts, which) + offset
            volume = tf.where(
                synth, u[:, 2] * silence_volume,
                tf.where(u[:, 3] < background_frequency, u[:, 2] * background_volume, 0.0))
        else:
            pos, volume = fixed_pos, fixed_vol
        x = front(audio, tf.cast(start, tf.int32), tf.cast(pos, tf.int32), volume, bg_flat)
        if masking:
            x = _spec_augment(x, key + [0, 3 << 40], freq_mask_bins, time_mask_frames)
        return x, label

    ds = ds.map(make, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    # tf.data's default lets each map call use one thread; the compiled front end splits
    # its FFTs over the cores, which on a 2-core laptop nearly doubles the batches/s.
    options.threading.max_intra_op_parallelism = os.cpu_count() or 1
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)
