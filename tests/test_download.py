"""Tests for kwlesson.download against a tiny HTTP server on 127.0.0.1.

Every archive is built in tmp_path from a few short noise clips (the wave module and numpy), so
no audio is kept in the repository and nothing leaves the loopback interface.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import tarfile
import threading
import wave
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from kwlesson import download as dl
from kwlesson.cli import download_command
from kwlesson.download import (
    CHECKSUMS,
    DATASETS,
    MARKER_NAME,
    Checksum,
    DatasetSpec,
    DownloadError,
    download_dataset,
    verify_archive,
)

SPEC = DatasetSpec("tiny", "tiny_commands.tar.gz", "tiny_commands", "Tiny commands")
WORDS = ("yes", "no", "_background_noise_")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No retry pauses, no inherited mirror/server settings, caches in tmp_path."""
    monkeypatch.setattr(dl, "RETRY_DELAY_S", 0.0)
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    monkeypatch.delenv(dl.BASE_URL_ENV, raising=False)
    monkeypatch.setenv("KWLESSON_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(DATASETS, SPEC.name, SPEC)


def write_noise_wav(path: Path, seed: int, samples: int = 1600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.random.default_rng(seed).integers(-8000, 8000, samples, dtype=np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())


@pytest.fixture
def source(tmp_path) -> Path:
    """A folder laid out like Speech Commands: label folders of wavs, plus the split lists."""
    root = tmp_path / "source"
    for i, word in enumerate(WORDS):
        for j in range(2):
            write_noise_wav(root / word / f"{i:04x}{j:04x}_nohash_0.wav", seed=10 * i + j)
    (root / "validation_list.txt").write_text("yes/00000000_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("no/00010000_nohash_0.wav\n")
    return root


def make_tar_gz(root: Path) -> bytes:
    # Official archives name members "./yes/...", with a "." entry first; do the same.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(root, arcname=".")
    return buffer.getvalue()


@pytest.fixture
def archive(source) -> bytes:
    return make_tar_gz(source)


@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)
    drop_next_after: int | None = None  # the next GET sends this many body bytes, then hangs up
    honour_range: bool = True
    url: str = ""


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        state: ServerState = self.server.state
        asked = self.headers.get("Range")
        state.requests.append({"path": self.path, "range": asked})
        body = state.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        start = 0
        if asked and state.honour_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1))
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if state.drop_next_after is not None:
            payload, state.drop_next_after = payload[: state.drop_next_after], None
        self.wfile.write(payload)  # HTTP/1.0: the connection closes after this, short or not


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.state = ServerState(url=f"http://127.0.0.1:{httpd.server_address[1]}/")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port_url() -> str:
    """An address on loopback where nobody listens: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_same_tree(extracted: Path, source: Path) -> None:
    want = {p.relative_to(source): p.read_bytes() for p in source.rglob("*") if p.is_file()}
    got = {
        p.relative_to(extracted): p.read_bytes()
        for p in extracted.rglob("*")
        if p.is_file() and p.name != MARKER_NAME
    }
    assert got.keys() == want.keys()
    assert all(got[k] == want[k] for k in want)


def assert_nothing_installed(dest: Path) -> None:
    """No finished folder, and no hidden half-extracted staging folder either."""
    assert not (dest / SPEC.folder).exists()
    assert not [p for p in dest.glob(f".{SPEC.folder}*")], "staging folder left behind"


def archive_gets(state: ServerState) -> list[dict]:
    return [r for r in state.requests if r["path"] == "/" + SPEC.archive]


# --------------------------------------------------------------------------- downloads


def test_clean_download_extracts_verifies_and_marks(server, archive, source, tmp_path, capsys):
    server.files[SPEC.archive] = archive
    dest = tmp_path / "dest"

    target = download_dataset("tiny", dest, base_url=server.url, progress=True, timeout=5)

    assert target == dest / SPEC.folder
    assert_same_tree(target, source)
    marker = json.loads((target / MARKER_NAME).read_text())
    assert marker["sha256"] == sha256(archive) and marker["files"] == 8
    assert (dest / SPEC.archive).read_bytes() == archive
    assert (dest / (SPEC.archive + ".sha256")).read_text() == f"{sha256(archive)}  {SPEC.archive}\n"
    assert not (dest / (SPEC.archive + ".part")).exists()
    assert [r["range"] for r in archive_gets(server)] == [None]
    out, err = capsys.readouterr()
    assert out == f"Tiny commands ready in {target}\n"
    assert SPEC.archive in err  # the tqdm bar

    # A second call finds the marker: same one-liner, no network.
    assert download_dataset("tiny", dest, base_url=server.url) == target
    assert capsys.readouterr().out == out
    assert len(archive_gets(server)) == 1


def test_base_url_from_environment(server, archive, source, tmp_path, monkeypatch):
    server.files[SPEC.archive] = archive
    monkeypatch.setenv(dl.BASE_URL_ENV, server.url.rstrip("/"))  # trailing slash optional
    target = download_dataset("tiny", tmp_path / "dest", progress=False, timeout=5)
    assert_same_tree(target, source)


def test_interrupted_download_resumes_with_range(server, archive, source, tmp_path):
    half = len(archive) // 2
    server.files[SPEC.archive] = archive
    server.drop_next_after = half
    dest = tmp_path / "dest"

    target = download_dataset("tiny", dest, base_url=server.url, progress=False, timeout=5)

    assert [r["range"] for r in archive_gets(server)] == [None, f"bytes={half}-"]
    assert (dest / SPEC.archive).read_bytes() == archive
    assert_same_tree(target, source)


def test_partial_file_is_kept_and_resumed_by_the_next_run(server, archive, source, tmp_path):
    half = len(archive) // 3
    server.files[SPEC.archive] = archive
    server.drop_next_after = half
    dest = tmp_path / "dest"

    with pytest.raises(DownloadError, match=r"(?s)tiny_commands\.tar\.gz.*run the same command"):
        download_dataset("tiny", dest, base_url=server.url, progress=False, timeout=5, retries=0)
    part = dest / (SPEC.archive + ".part")
    assert part.read_bytes() == archive[:half]
    assert_nothing_installed(dest)

    download_dataset("tiny", dest, base_url=server.url, progress=False, timeout=5, retries=0)
    assert archive_gets(server)[-1]["range"] == f"bytes={half}-"
    assert (dest / SPEC.archive).read_bytes() == archive
    assert not part.exists()


def test_server_ignoring_range_restarts_cleanly(server, archive, source, tmp_path):
    server.files[SPEC.archive] = archive
    server.honour_range = False
    server.drop_next_after = len(archive) // 2
    dest = tmp_path / "dest"

    target = download_dataset("tiny", dest, base_url=server.url, progress=False, timeout=5)

    # The client asked to resume, the server sent the whole file: no duplicated first half.
    assert archive_gets(server)[1]["range"] is not None
    assert (dest / SPEC.archive).read_bytes() == archive
    assert_same_tree(target, source)


def test_stale_partial_longer_than_the_file_starts_over(server, archive, source, tmp_path):
    server.files[SPEC.archive] = archive
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / (SPEC.archive + ".part")).write_bytes(b"x" * (len(archive) + 10))  # -> 416

    download_dataset("tiny", dest, base_url=server.url, progress=False, timeout=5)

    assert [r["range"] is None for r in archive_gets(server)] == [False, True]
    assert (dest / SPEC.archive).read_bytes() == archive


def test_wrong_checksum_is_refused_and_nothing_is_installed(server, archive, tmp_path, monkeypatch):
    server.files[SPEC.archive] = archive
    monkeypatch.setitem(CHECKSUMS, SPEC.archive, Checksum(len(archive), "0" * 64, "test"))
    dest = tmp_path / "dest"

    with pytest.raises(DownloadError) as info:
        download_dataset("tiny", dest, base_url=server.url, progress=False, timeout=5)

    message = str(info.value)
    assert SPEC.archive in message and "checksum mismatch" in message and sha256(archive) in message
    assert_nothing_installed(dest)
    assert not (dest / SPEC.archive).exists()  # not reused as if it were good
    assert not (dest / (SPEC.archive + ".sha256")).exists()


def test_truncated_gzip_is_refused_and_nothing_is_installed(server, archive, tmp_path):
    # The server announces the truncated length, so only the gzip check can notice.
    server.files[SPEC.archive] = archive[: len(archive) * 2 // 3]
    dest = tmp_path / "dest"

    with pytest.raises(DownloadError, match=r"tiny_commands\.tar\.gz: the archive is damaged"):
        download_dataset("tiny", dest, base_url=server.url, progress=False, timeout=5)

    assert_nothing_installed(dest)
    assert not (dest / SPEC.archive).exists()


def test_corrupted_gzip_crc_is_refused(tmp_path, archive):
    # Flip one byte of the gzip trailer's CRC: every tar header still parses fine.
    bad = bytearray(archive)
    bad[-6] ^= 0xFF
    path = tmp_path / "bad.tar.gz"
    path.write_bytes(bytes(bad))
    with pytest.raises(DownloadError, match=r"bad\.tar\.gz: the archive is damaged.*CRC"):
        verify_archive(path)
    good = tmp_path / "good.tar.gz"
    good.write_bytes(archive)
    assert verify_archive(good, expected_sha256=sha256(archive)) == sha256(archive)


def test_known_size_of_the_official_archive_is_enforced(server, archive, tmp_path):
    # The registry's real figures are wired in: a server offering a different file is refused.
    server.files["speech_commands_v0.02.tar.gz"] = archive
    with pytest.raises(
        DownloadError, match=r"offers \d+ bytes but the official archive has 2428923189"
    ):
        download_dataset("v0.02", tmp_path / "dest", base_url=server.url, progress=False, timeout=5)
    assert not (tmp_path / "dest" / "speech_commands_v0.02").exists()


def test_official_name_maps_to_official_file_and_folder(
    server, archive, source, tmp_path, monkeypatch
):
    name = "speech_commands_test_set_v0.02.tar.gz"
    server.files[name] = archive
    monkeypatch.setitem(CHECKSUMS, name, Checksum(len(archive), sha256(archive), "test"))
    target = download_dataset("test_v0.02", tmp_path / "d", base_url=server.url, progress=False)
    assert target.name == "speech_commands_test_set_v0.02"
    assert_same_tree(target, source)


def test_bad_archive_already_in_dest_is_downloaded_again(server, archive, source, tmp_path):
    server.files[SPEC.archive] = archive
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / SPEC.archive).write_bytes(archive[:100])
    target = download_dataset("tiny", dest, base_url=server.url, progress=False, timeout=5)
    assert len(archive_gets(server)) == 1
    assert_same_tree(target, source)


def test_failure_during_extraction_leaves_nothing_as_complete(
    server, archive, tmp_path, monkeypatch
):
    server.files[SPEC.archive] = archive
    real_extract = tarfile.TarFile.extract
    calls = []

    def extract_then_fail(self, member, *args, **kwargs):
        calls.append(member.name)
        if len(calls) == 4:
            raise OSError(28, "No space left on device")
        return real_extract(self, member, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extract", extract_then_fail)
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match="No space left on device"):
        download_dataset("tiny", dest, base_url=server.url, progress=False, timeout=5)
    assert_nothing_installed(dest)
    # The verified archive stays, so the next run only extracts.
    monkeypatch.setattr(tarfile.TarFile, "extract", real_extract)
    download_dataset("tiny", dest, base_url=server.url, progress=False, timeout=5)
    assert len(archive_gets(server)) == 1


def test_folder_without_marker_is_not_taken_as_complete(tmp_path, closed_port_url):
    target = tmp_path / "dest" / SPEC.folder
    write_noise_wav(target / "yes" / "half.wav", seed=1)
    with pytest.raises(DownloadError, match=r"tiny_commands: the folder exists but has no"):
        download_dataset("tiny", tmp_path / "dest", base_url=closed_port_url, progress=False)
    assert (target / "yes" / "half.wav").exists()  # the user's files are never deleted


# --------------------------------------------------------------------------- path traversal


def tar_gz_with(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buffer.getvalue()


def file_member(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def link_member(name: str, to: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, to
    return info


@pytest.mark.parametrize(
    ("evil", "problem"),
    [
        (file_member("../evil.wav"), "points outside"),
        (file_member("yes/../../evil.wav"), "points outside"),
        (file_member("/tmp/kwlesson-test-evil.wav"), "absolute path"),
        (link_member("yes/link.wav", "/etc/passwd"), "is a link"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink"],
)
def test_path_traversal_member_is_refused(server, tmp_path, evil, problem):
    good = file_member("./yes/ok.wav")
    server.files[SPEC.archive] = tar_gz_with([(good, b"RIFF....WAVE"), (evil, b"pwned")])
    dest = tmp_path / "deep" / "dest"

    with pytest.raises(DownloadError) as info:
        download_dataset("tiny", dest, base_url=server.url, progress=False, timeout=5)

    message = str(info.value)
    assert SPEC.archive in message and repr(evil.name) in message and problem in message
    assert_nothing_installed(dest)
    assert not (tmp_path / "deep" / "evil.wav").exists()
    assert not (tmp_path / "evil.wav").exists()
    assert not Path("/tmp/kwlesson-test-evil.wav").exists()


def test_verify_archive_refuses_traversal_before_any_extraction(tmp_path):
    path = tmp_path / "evil.tar.gz"
    path.write_bytes(
        tar_gz_with([(file_member("./yes/ok.wav"), b"ok"), (file_member("../evil.wav"), b"pwned")])
    )
    with pytest.raises(DownloadError, match=r"evil\.tar\.gz: refused, member '\.\./evil\.wav'"):
        verify_archive(path)


# --------------------------------------------------------------------------- mirrors


def test_teacher_folder_serves_as_archive_mirror(
    server, archive, source, tmp_path, closed_port_url, monkeypatch
):
    teacher = tmp_path / "teacher"
    server.files[SPEC.archive] = archive
    download_dataset("tiny", teacher, base_url=server.url, progress=False, timeout=5)
    # Students: mirror from the environment, and a network that would refuse any connection.
    monkeypatch.setenv(dl.MIRROR_ENV, str(teacher))
    for student in ("ada", "bob"):
        target = download_dataset(
            "tiny", tmp_path / student, base_url=closed_port_url, progress=False
        )
        assert_same_tree(target, source)
        assert json.loads((target / MARKER_NAME).read_text())["sha256"] == sha256(archive)
        assert not (tmp_path / student / SPEC.archive).exists()  # extracted straight from mirror
    assert len(archive_gets(server)) == 1


def test_archive_mirror_checks_its_sha256_file(archive, tmp_path, closed_port_url):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / SPEC.archive).write_bytes(archive)
    (mirror / (SPEC.archive + ".sha256")).write_text(f"{'ab' * 32}  {SPEC.archive}\n")
    with pytest.raises(
        DownloadError, match=r"(?s)mirror/tiny_commands\.tar\.gz: checksum mismatch"
    ):
        download_dataset(
            "tiny", tmp_path / "dest", mirror=mirror, base_url=closed_port_url, progress=False
        )
    assert_nothing_installed(tmp_path / "dest")


def test_mirror_of_extracted_data_is_copied(source, tmp_path, closed_port_url, capsys):
    import shutil

    mirror = tmp_path / "mirror"
    shutil.copytree(source, mirror / SPEC.folder)
    target = download_dataset(
        "tiny", tmp_path / "dest", mirror=mirror, base_url=closed_port_url, progress=False
    )
    assert_same_tree(target, source)
    assert json.loads((target / MARKER_NAME).read_text())["source"] == str(mirror / SPEC.folder)
    assert "no .kwlesson-complete.json marker" in capsys.readouterr().err


def test_mirror_without_the_dataset_says_what_it_expected(tmp_path, closed_port_url):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with pytest.raises(DownloadError, match=r"neither tiny_commands\.tar\.gz nor an extracted"):
        download_dataset("tiny", tmp_path / "dest", mirror=mirror, base_url=closed_port_url)
    with pytest.raises(DownloadError, match="does not exist"):
        download_dataset("tiny", tmp_path / "dest", mirror=tmp_path / "nope")


# --------------------------------------------------------------------------- offline


def test_offline_connection_refused_says_what_to_do(tmp_path, closed_port_url):
    with pytest.raises(DownloadError) as info:
        download_dataset(
            "tiny", tmp_path / "dest", base_url=closed_port_url, progress=False, timeout=5
        )
    message = str(info.value)
    assert closed_port_url + SPEC.archive in message
    assert "offline" in message and dl.MIRROR_ENV in message and "kwlesson data synth" in message
    assert_nothing_installed(tmp_path / "dest")


def test_offline_dns_failure_says_what_to_do(tmp_path, monkeypatch):
    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(
        DownloadError, match=r"(?s)could not reach .*Name or service.*KWLESSON_MIRROR"
    ):
        download_dataset(
            "tiny", tmp_path / "dest", base_url="http://speech.invalid/", progress=False, timeout=5
        )


def test_download_command_exit_codes(server, archive, tmp_path, closed_port_url, capsys):
    server.files[SPEC.archive] = archive
    assert download_command("tiny", tmp_path / "ok", None, base_url=server.url, progress=False) == 0
    assert download_command("nope", tmp_path / "x", None, progress=False) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    assert (
        download_command("tiny", tmp_path / "off", None, base_url=closed_port_url,
                         progress=False) == 1
    )
    err = capsys.readouterr().err
    assert "kwlesson data synth" in err and "Traceback" not in err


def test_sha256_file_served_by_a_mirror_server_is_checked(server, archive, source, tmp_path):
    server.files[SPEC.archive] = archive
    server.files[SPEC.archive + ".sha256"] = f"{'cd' * 32}  {SPEC.archive}\n".encode()
    with pytest.raises(
        DownloadError, match=r"(?s)checksum mismatch.*tiny_commands\.tar\.gz\.sha256"
    ):
        download_dataset("tiny", tmp_path / "a", base_url=server.url, progress=False, timeout=5)
    assert_nothing_installed(tmp_path / "a")

    server.files[SPEC.archive + ".sha256"] = f"{sha256(archive)}  {SPEC.archive}\n".encode()
    target = download_dataset("tiny", tmp_path / "b", base_url=server.url, progress=False)
    assert_same_tree(target, source)


def test_mirror_archive_of_the_wrong_size_is_refused_before_reading(archive, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "speech_commands_v0.02.tar.gz").write_bytes(archive)  # real registry: 2428923189
    with pytest.raises(DownloadError, match=rf"has {len(archive)} bytes but the official archive"):
        download_dataset("v0.02", tmp_path / "dest", mirror=mirror, progress=False)
    assert not (tmp_path / "dest" / "speech_commands_v0.02").exists()


# --------------------------------------------------------------------------- machine faults


def test_killed_extraction_is_rebuilt_and_its_partial_folder_removed(
    archive, source, tmp_path, closed_port_url, capsys
):
    import subprocess
    import sys

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / SPEC.archive).write_bytes(archive)
    dest = tmp_path / "dest"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = dest / f".{SPEC.folder}.{dead.pid}-abcd1234.partial"  # what a kill -9 leaves
    (left / "content" / "yes").mkdir(parents=True)
    target = download_dataset(
        "tiny", dest, mirror=mirror, base_url=closed_port_url, progress=False
    )
    assert_same_tree(target, source)
    assert not left.exists()
    assert f"Removed {left}: left by an interrupted extraction (process {dead.pid} is gone)" in (
        capsys.readouterr().err
    )


def test_full_disk_during_extraction_is_named(tmp_path, closed_port_url):
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("needs root: a size-limited folder is a tmpfs mount")
    # Many tiny files: little data (the space check passes) but a 4 KB block each on tmpfs.
    root = tmp_path / "many"
    for i in range(600):
        (root / "yes").mkdir(parents=True, exist_ok=True)
        (root / "yes" / f"{i:08x}_nohash_0.wav").write_bytes(b"x" * 10)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / SPEC.archive).write_bytes(make_tar_gz(root))
    dest = tmp_path / "dest"
    dest.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(dest)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()})")
    try:
        with pytest.raises(DownloadError, match=rf"{dest}: the disk filled up while extracting "
                           r"tiny_commands\.tar\.gz \(No space left on device; it needs about .* "
                           r"plus space for 600 "
                           r"files\); nothing was kept\. Free some space or choose another "
                           "--dest"):
            download_dataset("tiny", dest, mirror=mirror, base_url=closed_port_url,
                             progress=False)
        assert_nothing_installed(dest)
    finally:
        subprocess.run(["umount", "-l", str(dest)], capture_output=True)
