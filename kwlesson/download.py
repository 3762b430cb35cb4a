"""Fetch the Speech Commands archives safely: resume, verify, extract atomically, or use a mirror.

The command line calls :func:`download_command` (``kwlesson data download``); notebooks call
:func:`download_dataset`. Standard library and tqdm only, so it runs anywhere Python does.

What "safely" means here:

* **Resume.** Bytes arrive in ``<archive>.part``; a dropped connection is retried with an HTTP
  ``Range`` request and carries on where it stopped. A server that ignores ``Range`` gets a clean
  restart from byte 0 (never a file glued together from two different answers).
* **Verify.** Received bytes must equal ``Content-Length``; the gzip stream and every tar header
  are read to the end (gzip's own CRC and length check included) *before* anything is extracted;
  member paths are checked against path traversal (absolute paths, ``..``, links, devices).
  SHA-256 is compared with every expectation that exists: the :data:`CHECKSUMS` registry, a
  ``<archive>.sha256`` file beside a mirror's archive, and one served next to the archive by a
  non-default server. After the first verified download a ``.sha256`` file is written beside the
  archive, so a teacher's folder becomes a checked mirror for the whole class.
* **Atomic extraction.** Files go into a hidden ``.<folder>.*.partial`` folder beside the
  destination, which is renamed into place only when complete, with a marker file inside
  (:data:`MARKER_NAME`). A folder without the marker is never taken as a finished dataset.
* **Mirror.** ``mirror=`` or ``KWLESSON_MIRROR`` names a folder that holds the archives and/or
  the extracted folders; nothing then touches the network.

Known checksums: the sizes and SHA-256 in :data:`CHECKSUMS` are copied from public registries,
not measured here: tensorflow/datasets (``url_checksums/speech_commands.txt``: size and SHA-256
of ``speech_commands_v0.02.tar.gz`` and ``speech_commands_test_set_v0.02.tar.gz``) and torchaudio
(``datasets/speechcommands.py``: SHA-256 of ``speech_commands_v0.01.tar.gz`` and, agreeing with
tensorflow/datasets, of v0.02). No trustworthy figure was found for
``speech_commands_test_set_v0.01.tar.gz``, nor a size for v0.01: those are checked by length,
gzip CRC and tar structure only, and by the ``.sha256`` file once one exists.
"""

from __future__ import annotations

import datetime as _dt
import errno
import gzip
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from kwlesson.config import data_home

#: Where the official archives live. Override with ``base_url=`` or :data:`BASE_URL_ENV`.
DEFAULT_BASE_URL = "http://download.tensorflow.org/data/"
#: Environment variable with another server (e.g. a teacher's laptop running ``http.server``).
BASE_URL_ENV = "KWLESSON_DOWNLOAD_URL"
#: Environment variable naming a local folder of archives or extracted datasets.
MIRROR_ENV = "KWLESSON_MIRROR"
#: File written inside a finished dataset folder; its absence means "not complete".
MARKER_NAME = ".kwlesson-complete.json"

CHUNK_BYTES = 1 << 16
#: First pause before retrying a dropped download (doubles each time). Tests set it to 0.
RETRY_DELAY_S = 1.0
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")


class DownloadError(RuntimeError):
    """A download, check or extraction that failed; the message names the file and what to do."""


@dataclass(frozen=True)
class DatasetSpec:
    """One downloadable dataset: its archive file name and the folder it is extracted to."""

    name: str
    archive: str
    folder: str
    title: str


@dataclass(frozen=True)
class Checksum:
    """What is known about an archive; ``None`` means "not known, not checked"."""

    size: int | None
    sha256: str | None
    source: str


#: The datasets :func:`download_dataset` knows by name. Tests may add entries.
DATASETS: dict[str, DatasetSpec] = {
    "v0.02": DatasetSpec(
        "v0.02", "speech_commands_v0.02.tar.gz", "speech_commands_v0.02", "Speech Commands v0.02"
    ),
    "v0.01": DatasetSpec(
        "v0.01", "speech_commands_v0.01.tar.gz", "speech_commands_v0.01", "Speech Commands v0.01"
    ),
    "test_v0.02": DatasetSpec(
        "test_v0.02",
        "speech_commands_test_set_v0.02.tar.gz",
        "speech_commands_test_set_v0.02",
        "Speech Commands v0.02 test set",
    ),
    "test_v0.01": DatasetSpec(
        "test_v0.01",
        "speech_commands_test_set_v0.01.tar.gz",
        "speech_commands_test_set_v0.01",
        "Speech Commands v0.01 test set",
    ),
}

#: Known size / SHA-256 per archive file name (see the module docstring for where they come
#: from). Tests and teachers with their own archives may add or replace entries.
CHECKSUMS: dict[str, Checksum] = {
    "speech_commands_v0.02.tar.gz": Checksum(
        2428923189,
        "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
        "tensorflow/datasets url_checksums (same SHA-256 in torchaudio)",
    ),
    "speech_commands_test_set_v0.02.tar.gz": Checksum(
        112563277,
        "cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfa9acd51df",
        "tensorflow/datasets url_checksums",
    ),
    "speech_commands_v0.01.tar.gz": Checksum(
        None,
        "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
        "torchaudio SPEECHCOMMANDS",
    ),
}


# --------------------------------------------------------------------------- public functions


def download_dataset(
    name: str = "v0.02",
    dest_dir: str | Path | None = None,
    mirror: str | Path | None = None,
    progress: bool = True,
    *,
    base_url: str | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    keep_archive: bool = True,
) -> Path:
    """Make ``<dest_dir>/<folder>`` hold a complete, verified copy of a Speech Commands dataset.

    ``name`` is one of ``"v0.02"``, ``"v0.01"``, ``"test_v0.02"``, ``"test_v0.01"``.
    ``dest_dir`` defaults to :func:`kwlesson.config.data_home`. Sources, first match wins:
    an already complete folder (nothing to do); ``mirror`` (or ``KWLESSON_MIRROR``) holding the
    archive or the extracted folder (no network); an archive already in ``dest_dir``; the server
    ``base_url`` (or ``KWLESSON_DOWNLOAD_URL``, default :data:`DEFAULT_BASE_URL`).
    ``keep_archive`` leaves the verified archive and its ``.sha256`` in ``dest_dir`` so that
    folder can serve as a mirror. Prints one line naming the folder (when ``progress``),
    whether it was downloaded now or earlier. Raises :class:`DownloadError` with what to do.

    >>> path = download_dataset("test_v0.02", "/srv/kw")  # doctest: +SKIP
    Speech Commands v0.02 test set ready in /srv/kw/speech_commands_test_set_v0.02
    """
    spec = _spec(name)
    dest = Path(dest_dir).expanduser() if dest_dir is not None else data_home()
    target = dest / spec.folder
    if not _is_complete(target):
        _refuse_incomplete_folder(target)
        dest.mkdir(parents=True, exist_ok=True)
        mirror_dir = _mirror_dir(mirror)
        if mirror_dir is not None:
            _install_from_mirror(spec, mirror_dir, target, progress)
        else:
            _install_from_network(
                spec, dest, target, _base_url(base_url), progress, timeout, retries, keep_archive
            )
    if progress:
        print(f"{spec.title} ready in {target}")
    return target


def verify_archive(
    path: str | Path, expected_sha256: str | None = None, progress: bool = False
) -> str:
    """Read a ``.tar.gz`` to the end and return its SHA-256; :class:`DownloadError` if unsafe.

    Checks the gzip CRC, every tar header, member paths (no absolute paths, ``..`` or links),
    and, if given, the SHA-256.

    >>> verify_archive("speech_commands_v0.02.tar.gz")  # doctest: +SKIP
    'af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58'
    """
    path = Path(path)
    report = _check_archive(path, progress)
    if expected_sha256 is not None:
        _compare_sha256(path, report.sha256, [(expected_sha256.lower(), "the caller")])
    return report.sha256


# --------------------------------------------------------------------------- where data comes from


def _spec(name: str) -> DatasetSpec:
    key = name.strip()
    if key not in DATASETS:
        known = ", ".join(DATASETS)
        raise ValueError(f"unknown dataset {name!r}; choose one of: {known}")
    return DATASETS[key]


def _base_url(base_url: str | None) -> str:
    url = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return url if url.endswith("/") else url + "/"


def _mirror_dir(mirror: str | Path | None) -> Path | None:
    chosen = mirror if mirror not in (None, "") else os.environ.get(MIRROR_ENV) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        origin = "mirror" if mirror not in (None, "") else MIRROR_ENV
        raise DownloadError(f"{path}: the {origin} folder does not exist (or is not a folder).")
    return path


def _is_complete(folder: Path) -> bool:
    return (folder / MARKER_NAME).is_file()


def _refuse_incomplete_folder(target: Path) -> None:
    if not target.exists():
        return
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()  # an empty folder holds nothing to lose
        return
    raise DownloadError(
        f"{target}: the folder exists but has no {MARKER_NAME} marker, so it may be a "
        "half-finished or hand-made copy. Move it away or delete it, then run again."
    )


def _install_from_mirror(spec: DatasetSpec, mirror: Path, target: Path, progress: bool) -> None:
    archive = mirror / spec.archive
    folder = mirror / spec.folder
    if archive.is_file():
        report = _verify(archive, spec.archive, progress)
        _extract(spec, archive, report, target, str(archive), progress)
    elif folder.is_dir():
        _copy_folder(spec, folder, target, progress)
    else:
        raise DownloadError(
            f"{mirror}: this mirror folder holds neither {spec.archive} nor an extracted "
            f"{spec.folder}/ folder. Put one of them there, or unset {MIRROR_ENV} / drop "
            "--mirror to download from the internet."
        )


def _install_from_network(
    spec: DatasetSpec,
    dest: Path,
    target: Path,
    base_url: str,
    progress: bool,
    timeout: float,
    retries: int,
    keep_archive: bool,
) -> None:
    archive = dest / spec.archive
    url = base_url + spec.archive
    report = None
    if archive.is_file():
        # A previous run finished the download; re-check it rather than trust it.
        try:
            report = _verify(archive, spec.archive, progress)
        except DownloadError as exc:
            print(f"{exc}\nDownloading it again.", file=sys.stderr)
            _remove(archive, _sidecar(archive))
            report = None
    if report is None:
        part = archive.with_name(archive.name + ".part")
        _download(url, part, spec.archive, progress, timeout, retries)
        part.replace(archive)
        served = []
        if base_url != DEFAULT_BASE_URL:
            value = _fetch_served_sha256(url + ".sha256", timeout)
            served = [(value, f"{url}.sha256")] if value else []
        try:
            report = _verify(archive, spec.archive, progress, served)
        except DownloadError:
            # A bad archive must not be mistaken for a finished download next time.
            _remove(archive)
            raise
        _write_sidecar(archive, report.sha256)
    _extract(spec, archive, report, target, url, progress)
    if not keep_archive:
        _remove(archive, _sidecar(archive))


# --------------------------------------------------------------------------- HTTP with resume


class _Unreachable(Exception):
    """No answer from the server at all (offline, DNS failure, connection refused)."""


class _Interrupted(Exception):
    """The answer stopped early; the .part file holds what arrived."""


class _Restart(Exception):
    """The partial file cannot be continued; it was deleted and the download starts over."""


def _download(
    url: str, part: Path, label: str, progress: bool, timeout: float, retries: int
) -> None:
    attempt = 0
    last: Exception | None = None
    while attempt <= retries:
        try:
            _fetch_once(url, part, label, progress, timeout)
            return
        except _Restart:
            continue  # the .part is gone, so this cannot loop: the next try starts at byte 0
        except _Unreachable as exc:
            if attempt == 0:
                raise DownloadError(_offline_message(url, label, part, exc)) from None
            last = exc
        except _Interrupted as exc:
            last = exc
        attempt += 1
        if attempt <= retries:
            time.sleep(RETRY_DELAY_S * 2 ** (attempt - 1))
    have = part.stat().st_size if part.exists() else 0
    raise DownloadError(
        f"{label}: the download from {url} stopped after {_human(have)} ({last}), "
        f"{retries + 1} attempt(s). The partial file {part} is kept: run the same command "
        f"again to resume. If you are offline, set {MIRROR_ENV} to a folder holding "
        f"{label}, or use the built-in offline dataset: kwlesson data synth"
    )


def _fetch_once(url: str, part: Path, label: str, progress: bool, timeout: float) -> None:
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "kwlesson", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            part.unlink()  # the partial file is no prefix of what the server has now
            raise _Restart() from None
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Interrupted(f"server error {exc.code} {exc.reason}") from None
        raise DownloadError(
            f"{label}: {url} answered {exc.code} {exc.reason}. Check the address "
            f"({BASE_URL_ENV} / base_url) or use a mirror ({MIRROR_ENV})."
        ) from None
    except urllib.error.URLError as exc:
        raise _Unreachable(exc.reason) from None
    except http.client.HTTPException as exc:  # answered, then hung up (RemoteDisconnected...)
        raise _Interrupted(f"{type(exc).__name__}: {exc}") from None
    except (TimeoutError, ConnectionError, socket.gaierror) as exc:
        raise _Unreachable(exc) from None

    with response:
        if offset and response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink()
                raise _Restart()
            mode = "ab"
        else:
            # Status 200: the whole file, either because we asked for it or because the server
            # ignores Range. Start over rather than append a second copy of the beginning.
            offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        official_size = _official_size(label)
        if total is not None and official_size is not None and total != official_size:
            _remove(part)
            raise DownloadError(
                f"{label}: {url} offers {total} bytes but the official archive has "
                f"{official_size} bytes ({CHECKSUMS[label].source}); this is not the expected file."
            )
        if total is not None:
            _need_space(part.parent, total - offset, label)
        received = _stream(response, part, mode, offset, total, label, progress)
    if total is not None and received < total:
        raise _Interrupted(f"connection closed at {received} of {total} bytes")
    if total is not None and received > total:
        _remove(part)
        raise DownloadError(
            f"{label}: received {received} bytes but the server announced {total}; "
            "the partial file was removed, run again."
        )


def _stream(
    response, part: Path, mode: str, offset: int, total: int | None, label: str, progress: bool
) -> int:
    received = offset
    with (
        open(part, mode) as out,
        tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=label,
            disable=not progress,
            dynamic_ncols=True,
        ) as bar,
    ):
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except (OSError, ValueError, ConnectionError) as exc:  # reset, timeout, IncompleteRead
                out.flush()
                raise _Interrupted(f"{type(exc).__name__}: {exc}") from None
            if not chunk:
                return received
            try:
                out.write(chunk)
            except OSError as exc:  # disk full, drive unplugged: not worth a retry
                raise DownloadError(f"{part}: cannot write the download ({exc}).") from None
            received += len(chunk)
            bar.update(len(chunk))


def _content_range(value: str | None) -> tuple[int, int | None]:
    match = re.match(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", value or "")
    if not match:
        return -1, None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


def _fetch_served_sha256(url: str, timeout: float) -> str | None:
    """A mirror server may publish ``<archive>.sha256`` (we write one); absent is fine."""
    try:
        with urllib.request.urlopen(url, timeout=min(timeout, 10.0)) as response:
            return _parse_sha256(response.read(4096).decode("utf-8", "replace"))
    except (OSError, ValueError):
        return None


def _offline_message(url: str, label: str, part: Path, reason: object) -> str:
    kept = ""
    if part.exists() and part.stat().st_size:
        kept = f" The partial file {part} is kept and will be resumed."
    return (
        f"{label}: could not reach {url} ({reason}). You seem to be offline, or the server "
        f"is unreachable.{kept} What you can do:\n"
        "  * try again when you are online;\n"
        f"  * use a local copy: set {MIRROR_ENV}=/path/to/folder (or --mirror DIR) to a folder "
        f"holding {label} or its extracted folder, e.g. one your teacher prepared;\n"
        f"  * use another server: set {BASE_URL_ENV}=http://host:port/;\n"
        "  * carry on without it: `kwlesson data synth` builds the built-in offline dataset."
    )


# --------------------------------------------------------------------------- checking archives


@dataclass(frozen=True)
class _Report:
    sha256: str
    files: int
    unpacked_bytes: int


class _HashingReader:
    """File wrapper that hashes and counts every byte read, so one pass gives the SHA-256 too."""

    def __init__(self, raw: BinaryIO, bar: tqdm) -> None:
        self.raw, self.bar, self.digest = raw, bar, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        self.bar.update(len(data))
        return data


def _check_archive(path: Path, progress: bool) -> _Report:
    files = unpacked = 0
    try:
        with (
            open(path, "rb") as raw,
            tqdm(
                total=path.stat().st_size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"checking {path.name}",
                disable=not progress,
                dynamic_ncols=True,
            ) as bar,
        ):
            reader = _HashingReader(raw, bar)
            # gzip.GzipFile (unlike tarfile's own "r|gz") checks the CRC and length trailer.
            with gzip.GzipFile(fileobj=reader, mode="rb") as unzipped:
                with tarfile.open(fileobj=unzipped, mode="r|") as tar:
                    for member in tar:  # stream mode reads every byte of every member
                        _check_member(path, member)
                        if member.isfile():
                            files += 1
                            unpacked += member.size
                while unzipped.read(CHUNK_BYTES):  # tar padding, then the gzip trailer
                    pass
            while reader.read(CHUNK_BYTES):
                pass
    except DownloadError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DownloadError(
            f"{path}: the archive is damaged or truncated ({type(exc).__name__}: {exc}). "
            "Nothing was extracted; delete it and download it again."
        ) from None
    if files == 0:
        raise DownloadError(f"{path}: the archive holds no files; nothing was extracted.")
    return _Report(reader.digest.hexdigest(), files, unpacked)


def _check_member(archive: Path, member: tarfile.TarInfo) -> None:
    name = member.name
    parts = name.replace("\\", "/").split("/")
    problem = None
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        problem = "has an absolute path"
    elif ".." in parts:
        problem = "points outside the destination folder (..)"
    elif "\x00" in name:
        problem = "has a NUL byte in its name"
    elif member.issym() or member.islnk():
        problem = f"is a link (to {member.linkname!r}); Speech Commands archives hold none"
    elif not (member.isfile() or member.isdir()):
        problem = "is neither a file nor a folder (device, fifo...)"
    if problem:
        raise DownloadError(
            f"{archive}: refused, member {name!r} {problem}. Nothing was extracted."
        )


def _official_size(archive_name: str) -> int | None:
    known = CHECKSUMS.get(archive_name)
    return known.size if known is not None else None


def _verify(
    archive: Path, archive_name: str, progress: bool, extra: list[tuple[str, str]] = ()
) -> _Report:
    """Size (cheap, first), then the full read of :func:`_check_archive`, then every SHA-256."""
    official_size = _official_size(archive_name)
    size = archive.stat().st_size
    if official_size is not None and size != official_size:
        raise DownloadError(
            f"{archive}: the file has {size} bytes but the official archive has {official_size} "
            f"({CHECKSUMS[archive_name].source}); it is incomplete or another file. Delete it "
            "and download it again."
        )
    expected = _expected_sha256(archive, archive_name) + list(extra)
    report = _check_archive(archive, progress)
    _compare_sha256(archive, report.sha256, expected)
    return report


def _expected_sha256(archive: Path, archive_name: str) -> list[tuple[str, str]]:
    expected = []
    known = CHECKSUMS.get(archive_name)
    if known is not None and known.sha256:
        expected.append((known.sha256.lower(), f"known checksum, {known.source}"))
    sidecar = _sidecar(archive)
    if sidecar.is_file():
        value = _parse_sha256(sidecar.read_text(errors="replace"))
        if value is None:
            raise DownloadError(f"{sidecar}: not a SHA-256 file (expected '<64 hex>  <name>').")
        expected.append((value, str(sidecar)))
    return expected


def _compare_sha256(archive: Path, actual: str, expected: list[tuple[str, str]]) -> None:
    for value, source in expected:
        if value != actual:
            raise DownloadError(
                f"{archive}: checksum mismatch, SHA-256 is {actual} but {value} was expected "
                f"(from {source}). The file is corrupt or not the official archive; delete it "
                "and download it again."
            )


def _parse_sha256(text: str) -> str | None:
    fields = text.split()
    return fields[0].lower() if fields and _SHA256_RE.match(fields[0]) else None


def _sidecar(archive: Path) -> Path:
    return archive.with_name(archive.name + ".sha256")


def _write_sidecar(archive: Path, sha256: str) -> None:
    # Same format as `sha256sum`, so `sha256sum -c` works on it too.
    tmp = archive.with_name(archive.name + ".sha256.tmp")
    tmp.write_text(f"{sha256}  {archive.name}\n")
    tmp.replace(_sidecar(archive))


# --------------------------------------------------------------------------- atomic installation


def _staging(target: Path) -> Path:
    _remove_stale_staging(target)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".partial",
                                 dir=target.parent))


def _remove_stale_staging(target: Path) -> None:
    """Delete the ``.<folder>.<pid>-*.partial`` folders of extractions that were killed (their
    process is gone); one still running keeps its folder."""
    for old in target.parent.glob(f".{target.name}.*.partial"):
        try:
            pid = int(old.name[len(target.name) + 2:].split("-", 1)[0])
            os.kill(pid, 0)
            continue
        except ProcessLookupError:
            pass
        except (ValueError, PermissionError):
            continue  # no process id in the name, or another user's process
        shutil.rmtree(old, ignore_errors=True)
        print(f"Removed {old}: left by an interrupted extraction (process {pid} is gone)",
              file=sys.stderr)


def _finish(spec: DatasetSpec, content: Path, target: Path, info: dict) -> None:
    marker = {
        "dataset": spec.name,
        "archive": spec.archive,
        **info,
        "completed": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    (content / MARKER_NAME).write_text(json.dumps(marker, indent=1) + "\n")
    try:
        content.rename(
            target
        )  # atomic on one file system: the folder appears complete or not at all
    except OSError as exc:
        raise DownloadError(
            f"{target}: could not move the finished folder into place ({exc}); "
            "another process may have created it meanwhile."
        ) from None


def _extract(
    spec: DatasetSpec, archive: Path, report: _Report, target: Path, source: str, progress: bool
) -> None:
    _need_space(target.parent, report.unpacked_bytes, archive.name)
    staging = _staging(target)
    try:
        content = staging / "content"
        content.mkdir()
        # The archive was fully checked a moment ago; members are checked again because the
        # file could have changed in between (a mirror on a shared drive).
        data_filter = getattr(tarfile, "data_filter", None)
        extras = {"filter": data_filter} if data_filter else {}
        try:
            with (
                tarfile.open(archive, "r|gz") as tar,
                tqdm(
                    total=report.files,
                    unit="file",
                    desc=f"extracting {archive.name}",
                    disable=not progress,
                    dynamic_ncols=True,
                ) as bar,
            ):
                for member in tar:
                    _check_member(archive, member)
                    tar.extract(member, content, **extras)
                    if member.isfile():
                        bar.update(1)
        except DownloadError:
            raise
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise DownloadError(
                    f"{archive}: extraction failed ({type(exc).__name__}: {exc}); nothing was "
                    "kept.") from None
            raise DownloadError(
                f"{target.parent}: the disk filled up while extracting {archive.name} "
                f"({exc.strerror}; it needs about {_human(report.unpacked_bytes)} plus space for "
                f"{report.files} files); nothing was kept. Free some space or choose another "
                "--dest.") from None
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise DownloadError(
                f"{archive}: extraction failed ({type(exc).__name__}: {exc}); nothing was kept."
            ) from None
        # Archives re-packed with a top folder of the dataset's name still install the same way.
        entries = list(content.iterdir())
        if len(entries) == 1 and entries[0].is_dir() and entries[0].name == spec.folder:
            content = entries[0]
        _finish(
            spec,
            content,
            target,
            {"sha256": report.sha256, "files": report.files, "source": source},
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy_folder(spec: DatasetSpec, source: Path, target: Path, progress: bool) -> None:
    files = [p for p in source.rglob("*") if p.is_file() and p.name != MARKER_NAME]
    if not any(p.suffix.lower() == ".wav" for p in files):
        raise DownloadError(f"{source}: the mirror folder holds no .wav files; nothing was copied.")
    if not _is_complete(source):
        print(
            f"warning: {source} has no {MARKER_NAME} marker; copying it as it is.", file=sys.stderr
        )
    _need_space(target.parent, sum(p.stat().st_size for p in files), source.name)
    staging = _staging(target)
    try:
        content = staging / "content"
        with tqdm(
            total=len(files),
            unit="file",
            desc=f"copying {source.name}",
            disable=not progress,
            dynamic_ncols=True,
        ) as bar:
            for path in files:
                out = content / path.relative_to(source)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, out)
                bar.update(1)
        _finish(spec, content, target, {"files": len(files), "source": str(source)})
    except OSError as exc:
        raise DownloadError(f"{source}: copying from the mirror failed ({exc}).") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------- small helpers


def _need_space(folder: Path, nbytes: int, label: str) -> None:
    free = shutil.disk_usage(folder).free
    # 5 % headroom for file-system overhead of ~100 000 small files.
    if nbytes * 1.05 > free:
        raise DownloadError(
            f"{label}: needs about {_human(int(nbytes * 1.05))} in {folder} but only "
            f"{_human(free)} is free. Free some space or choose another --dest."
        )


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _human(nbytes: int) -> str:
    size = float(nbytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


__all__ = [
    "BASE_URL_ENV",
    "CHECKSUMS",
    "DATASETS",
    "DEFAULT_BASE_URL",
    "MARKER_NAME",
    "MIRROR_ENV",
    "Checksum",
    "DatasetSpec",
    "DownloadError",
    "download_dataset",
    "verify_archive",
]
