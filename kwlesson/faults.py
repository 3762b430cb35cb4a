"""Faults of the machine a classroom meets, each turned into one line naming the folder or file
and what to do: a folder that cannot be written or is nearly full, a disk that fills mid-run, a
run killed by SIGTERM, two runs in one ``train_dir``, a damaged checkpoint, a loss gone NaN, and
numeric flags out of range.

The errors here are :class:`RunError` (a ``ValueError``), so every ``kwlesson`` command prints
them as ``kwlesson <command>: <message>`` and exits with :attr:`RunError.exit_status`; in a
notebook they show as one line, without a traceback.

Introduced in notebook 03.

>>> check_numbers(validation_percentage=10, testing_percentage=95)  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
kwlesson.faults.RunError: validation_percentage + testing_percentage must be below 100 ...
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "RunError",
    "FolderError",
    "DiskFull",
    "FolderInUse",
    "DamagedCheckpoint",
    "Diverged",
    "Terminated",
    "RunWarning",
    "MIN_FREE_BYTES",
    "check_folder",
    "check_numbers",
    "is_disk_full",
    "RunLock",
    "sigterm_as_interrupt",
    "deferred_signals",
    "raise_pending_signal",
    "write_checksums",
    "damaged_files",
    "LOCK_NAME",
]

#: Free space a folder must have before a run writes checkpoints into it.
MIN_FREE_BYTES = 1 << 20
#: The lock file of a training run in its train_dir.
LOCK_NAME = ".kwlesson-train.lock"
#: What a scheduler reads as "stopped by SIGTERM": 128 + 15.
SIGTERM_EXIT_STATUS = 128 + 15


class RunError(ValueError):
    """A fault the user can fix; the message is the one line to show.

    In IPython the error is shown as that line alone (no traceback); ``exit_status`` is what
    the ``kwlesson`` command exits with.
    """

    exit_status = 2

    def _render_traceback_(self) -> list[str]:  # IPython: one line instead of a traceback
        return [f"{type(self).__name__}: {self}"]


class FolderError(RunError):
    """A folder the run must write to is missing permissions, read-only or nearly full."""


class DiskFull(RunError):
    """The disk filled while the run was writing."""

    exit_status = 1


class FolderInUse(RunError):
    """Another training run holds the train_dir."""


class DamagedCheckpoint(RunError):
    """No intact checkpoint where one was expected."""


class Diverged(RunError):
    """The loss (or the weights) became NaN or infinite."""

    exit_status = 1


class RunWarning(UserWarning):
    """Something the user should know, e.g. a damaged checkpoint passed over, a resumed run."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so a run saves a checkpoint the same way."""


# --------------------------------------------------------------------------------------------
# Folders

def _human(nbytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if nbytes < 1024 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""  # unreachable


def check_folder(folder: str | os.PathLike, what: str, fix: str = "",
                 min_free: int = MIN_FREE_BYTES) -> Path:
    """Create ``folder`` if needed and make sure a file can be written there with at least
    ``min_free`` bytes free; :class:`FolderError` naming the folder (``what`` says which flag
    it is) and ``fix`` otherwise.

    >>> check_folder(tempfile.gettempdir(), "--train_dir").is_dir()
    True
    """
    path = Path(folder).expanduser()
    fix = fix or f"choose another {what}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FolderError(f"{path}: {what} is a file, not a folder; {fix}") from None
    except OSError as err:
        raise FolderError(f"{path}: cannot create {what} ({_reason(err)}); {fix}") from None
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".kwlesson-write-test.")
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
            Path(probe).unlink(missing_ok=True)
    except OSError as err:
        raise FolderError(f"{path}: cannot write in {what} ({_reason(err)}); {fix}") from None
    free = shutil.disk_usage(path).free
    if free < min_free:
        raise FolderError(f"{path}: only {_human(free)} free in {what}, a checkpoint needs "
                          f"about {_human(min_free)}; free some space or {fix}")
    return path


def _reason(err: OSError) -> str:
    if err.errno in (errno.EROFS,):
        return "read-only file system"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if is_disk_full(err):
        return "no space left on the device"
    return err.strerror or type(err).__name__


def is_disk_full(err: BaseException) -> bool:
    """True for 'no space left' (or quota) errors from Python or TensorFlow."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err)
    return type(err).__name__ == "ResourceExhaustedError" or "No space left" in text or (
        "Disk quota" in text)


# --------------------------------------------------------------------------------------------
# Numeric flags

def _num(name: str, value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise RunError(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(x):
        raise RunError(f"{name} must be a finite number, not {value!r}")
    return x


#: Bytes one clip of a training batch takes on its way to features (audio, noise, frames,
#: spectrum), per second of audio at 16 kHz; measured roughly as 37 GiB for 100000 clips.
BYTES_PER_CLIP_SECOND = 400_000


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def check_numbers(**values: Any) -> None:
    """Check the numeric settings given (by their flag names), the same way for ``data info``,
    ``train``, ``evaluate`` and the notebooks; :class:`RunError` naming the first bad one.

    Percentages of the split are within 0-100 and leave clips to train on; silence and
    unknown percentages are not negative; the window stride is at most the window and the
    window at most the clip (one frame at least); a batch must fit in memory.

    >>> check_numbers(window_size_ms=30, window_stride_ms=40)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    kwlesson.faults.RunError: window_stride_ms (40) must be at most window_size_ms (30)...
    """
    v = {k: _num(k, x) for k, x in values.items() if x is not None}
    for name in ("validation_percentage", "testing_percentage"):
        if name in v and not 0 <= v[name] <= 100:
            raise RunError(f"{name} must be within 0-100, not {v[name]:g}")
    if "validation_percentage" in v and "testing_percentage" in v:
        total = v["validation_percentage"] + v["testing_percentage"]
        if total >= 100:
            raise RunError("validation_percentage + testing_percentage must be below 100 "
                           f"(leaving clips to train on), not {total:g}")
    for name in ("silence_percentage", "unknown_percentage", "time_shift_ms"):
        if name in v and v[name] < 0:
            raise RunError(f"{name} must not be negative, not {v[name]:g}")
    for name in ("background_volume", "background_frequency"):
        if name in v and not 0 <= v[name] <= 1:
            raise RunError(f"{name} must be between 0 and 1, not {v[name]:g}")
    for name in ("window_size_ms", "window_stride_ms", "clip_duration_ms", "sample_rate"):
        if name in v and v[name] <= 0:
            raise RunError(f"{name} must be positive, not {v[name]:g}")
    if "window_size_ms" in v and "window_stride_ms" in v and (
            v["window_stride_ms"] > v["window_size_ms"]):
        raise RunError(f"window_stride_ms ({v['window_stride_ms']:g}) must be at most "
                       f"window_size_ms ({v['window_size_ms']:g}): longer strides skip audio")
    if "window_size_ms" in v and "clip_duration_ms" in v and (
            v["window_size_ms"] > v["clip_duration_ms"]):
        raise RunError(f"window_size_ms ({v['window_size_ms']:g}) must be at most "
                       f"clip_duration_ms ({v['clip_duration_ms']:g}): a clip must hold one "
                       "window (one frame of features) at least")
    if "batch_size" in v:
        batch = v["batch_size"]
        if batch < 1 or batch != int(batch):
            raise RunError(f"batch_size must be a whole number >= 1, not {batch:g}")
        seconds = v.get("clip_duration_ms", 1000) / 1000 * v.get("sample_rate", 16000) / 16000
        need = batch * seconds * BYTES_PER_CLIP_SECOND
        free = _available_memory()
        if free is not None and need > free:
            raise RunError(f"batch_size {int(batch)} needs about {_human(need)} of memory for "
                           f"one batch, but {_human(free)} is available; use a smaller "
                           "batch_size (the seed's default is 100)")


# --------------------------------------------------------------------------------------------
# One run per train_dir

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """A lock file in a train_dir saying which run writes there (pid, host, start time).

    With ``fcntl`` the operating system drops the lock when the process dies, however it
    dies; without it (Windows) a lock whose process is gone on this host counts as stale.
    Either way a stale lock is taken over, and ``took_over`` describes it.

    >>> with RunLock(tempfile.mkdtemp()) as lock:  # doctest: +ELLIPSIS
    ...     lock.info["pid"] == os.getpid()
    True
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.info = {"pid": os.getpid(), "host": socket.gethostname(),
                     "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.took_over: dict | None = None
        self._file: Any = None

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def _refuse(self, other: dict) -> FolderInUse:
        who = (f"process {other.get('pid', '?')} on {other.get('host', '?')}, started "
               f"{other.get('started', '?')}")
        return FolderInUse(f"{self.folder}: another training run is writing here ({who}); "
                           "wait for it to finish, stop it, or use another --train_dir")

    def acquire(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            fcntl = None
        f = open(self.path, "a+")  # noqa: SIM115 (held open, locked, for the whole run)
        if fcntl is not None:
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    f.close()
                    raise self._refuse(self._read()) from None
                try:  # the file may have been removed by a run ending meanwhile: lock anew
                    if os.fstat(f.fileno()).st_ino == os.stat(self.path).st_ino:
                        break
                except FileNotFoundError:
                    pass
                f.close()
                f = open(self.path, "a+")  # noqa: SIM115 (held open, locked, for the whole run)
            previous = self._read()
            if previous.get("pid") and previous.get("pid") != os.getpid():
                self.took_over = previous  # its process died without removing the file
        else:  # pragma: no cover - Windows
            previous = self._read()
            if previous.get("pid") and previous.get("pid") != os.getpid():
                if previous.get("host") == self.info["host"] and not _pid_alive(previous["pid"]):
                    self.took_over = previous
                else:
                    f.close()
                    raise self._refuse(previous)
        f.seek(0)
        f.truncate()
        f.write(json.dumps(self.info))
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is None:
            return
        try:
            self.path.unlink()  # while still locked, so no other run locks a removed file
        except OSError:
            pass
        self._file.close()  # closing drops the flock
        self._file = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


# --------------------------------------------------------------------------------------------
# SIGTERM

# A signal that lands while TensorFlow runs a step and is raised there (as Python raises Ctrl-C
# wherever the main thread happens to be) can leave TensorFlow's state half-changed: seen as a
# hung or crashed process now and then. So while the step loop runs, a signal is only noted,
# and the loop raises it between two steps. A second one is raised at once (the user insists).
_deferring = False
_pending: list[int] = []


def _interrupt_for(signum: int) -> KeyboardInterrupt:
    if signum == getattr(signal, "SIGTERM", None):
        return Terminated("stopped by SIGTERM")
    return KeyboardInterrupt()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) in the main
    thread, so a run killed by JupyterHub's culler, ``docker stop`` or a batch scheduler saves
    a checkpoint as Ctrl-C does; inside :func:`deferred_signals`, SIGTERM and Ctrl-C wait for
    the end of the current step. Does nothing off the main thread or without SIGTERM.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(
            signal, "SIGTERM"):
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if _deferring and not _pending:
            _pending.append(signum)
            return
        raise _interrupt_for(signum)

    previous = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, handler)
    except (ValueError, OSError):  # not allowed here
        for signum, old in previous.items():
            signal.signal(signum, old)
        yield
        return
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        _pending.clear()


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Within the block (the training step loop), SIGTERM and Ctrl-C are noted, not raised;
    call :func:`raise_pending_signal` where stopping is safe."""
    global _deferring
    outer = _deferring
    _deferring = True
    try:
        yield
    finally:
        _deferring = outer


def raise_pending_signal() -> None:
    """Raise the interrupt for a signal noted inside :func:`deferred_signals`, if any."""
    if _pending:
        raise _interrupt_for(_pending.pop())


# --------------------------------------------------------------------------------------------
# Checkpoint checksums

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checksum_path(prefix: str) -> Path:
    """``<prefix>.sha256``: the checkpoint's files, their sizes and SHA-256."""
    return Path(prefix + ".sha256")


def write_checksums(files: dict[str, Path], prefix: str) -> Path:
    """Write the sidecar of checkpoint ``prefix``: ``files`` maps the final file names to the
    (temporary) files holding them now. Written atomically; returns its temporary path, to be
    renamed to :func:`checksum_path` by the caller along with the checkpoint."""
    # Keyed by the part after the prefix (".index", ".data-00000-of-00001"), so a checkpoint
    # renamed as a whole (a copy under another name) still checks.
    base = Path(prefix).name
    doc = {name[len(base):] if name.startswith(base) else name:
           {"bytes": p.stat().st_size, "sha256": _sha256(p)} for name, p in files.items()}
    final = checksum_path(prefix)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return Path(tmp)


def damaged_files(prefix: str) -> list[str]:
    """The files of checkpoint ``prefix`` that are missing, cut short or changed (empty when it
    is intact). With a ``.sha256`` sidecar they are compared with it; without one (an older
    checkpoint) every variable is read back with TensorFlow's checkpoint reader.
    """
    side = checksum_path(prefix)
    folder = Path(prefix).parent
    if side.exists():
        try:
            doc = json.loads(side.read_text())
        except (OSError, ValueError):
            return [str(side)]
        bad = []
        for suffix, want in doc.items():
            p = folder / (Path(prefix).name + suffix)
            try:
                if p.stat().st_size != want["bytes"] or _sha256(p) != want["sha256"]:
                    bad.append(str(p))
            except OSError:
                bad.append(str(p))
        return bad
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception:  # noqa: BLE001  # any failure to read back is damage
        return sorted(str(p) for p in folder.glob(Path(prefix).name + ".*"))
    return []
