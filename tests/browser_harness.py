"""JupyterLab in headless Chromium, for tests that click through the course as a student does.

Started and stopped by the test itself:

- :class:`JupyterLab` copies the lessons (or any folder) into a temporary folder, so that the
  server's autosave never touches ``notebooks/``, and serves it on 127.0.0.1 with a random token,
  its own config, settings, workspaces, runtime and IPython folders, ``KWLESSON_MODE=quick`` and
  TensorFlow quiet (as conftest.py). A port already in use is handled: the server moves on to
  the next free port and the harness reads the real URL from the server's runtime file.
  Stopping shuts the server down, kills what is left of its process group and its kernels, and
  raises if anything is still running.
- :class:`Chromium` launches Debian's chromium (never a downloaded browser) through Playwright,
  headless, with a fresh profile every run and flags that keep it off the network; extra flags
  (e.g. a fake microphone) are appended.
- :class:`LabPage` drives one notebook through the real UI (Run menu, keyboard), collects the
  errors a student would see (tracebacks, stderr, "Error displaying widget", ...) and the
  kernel's own error log, and saves screenshots to ``artifacts/browser/``.

Typical use::

    with JupyterLab() as lab, Chromium() as browser:
        nb = LabPage.open(browser.new_page(), lab, "01_sound_and_spectrograms.ipynb")
        nb.run_all()
        nb.assert_no_errors()
        nb.screenshot("01_after_run_all")

Skipping: :func:`require_browser` skips a test when chromium is missing (with how to install
it), except with ``KWLESSON_REQUIRE_BROWSER=1``, where it fails.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self

import psutil  # comes with ipykernel

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = PROJECT_ROOT / "notebooks"
ARTIFACTS = PROJECT_ROOT / "artifacts" / "browser"
INSTALL_HINT = "install Debian's chromium: apt-get install chromium"

#: Chromium flags: no sandbox (containers, root), no GPU, and nothing that talks to the network
#: on its own (background networking, component updates, sync, QUIC, first-run pings...).
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--disable-crash-reporter",
    ("--disable-features=MediaRouter,OptimizationHints,Translate,AutofillServerCommunication,"
     "CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions"),
    "--metrics-recording-only",
    "--no-pings",
    "--disable-dev-shm-usage",
    "--password-store=basic",
    "--use-mock-keychain",
)

#: Text a student would read as "something went wrong" in a cell's output area.
WIDGET_ERRORS = ("Error displaying widget", "Failed to load model class", "Error creating widget",
                 "Could not create a view", "Model not found")


# --------------------------------------------------------------------------------------------
# Finding chromium, skipping without it

def chromium_executable() -> str | None:
    """The chromium binary to drive: env KWLESSON_CHROMIUM, else Debian's ``chromium``.

    Debian's ``/usr/bin/chromium`` is a shell wrapper that adds remote extensions and API keys
    for Google's services; the binary it runs (``/usr/lib/chromium/chromium``) is the same
    browser without them, so it is preferred when it is there.
    """
    chosen = os.environ.get("KWLESSON_CHROMIUM")
    if chosen:
        return chosen if Path(chosen).exists() else None
    wrapper = shutil.which("chromium") or shutil.which("chromium-browser")
    real = Path("/usr/lib/chromium/chromium")
    if wrapper and real.exists():
        return str(real)
    return wrapper


def require_browser() -> str:
    """The chromium path, or skip the test (fail with KWLESSON_REQUIRE_BROWSER=1) if missing."""
    import pytest

    path = chromium_executable()
    problem = None
    if path is None:
        problem = f"no chromium found; {INSTALL_HINT}"
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            problem = "playwright (Python) is not installed: pip install -e . in the venv"
    if problem:
        if os.environ.get("KWLESSON_REQUIRE_BROWSER") == "1":
            pytest.fail(f"KWLESSON_REQUIRE_BROWSER=1 but {problem}", pytrace=False)
        pytest.skip(problem)
    return path


# --------------------------------------------------------------------------------------------
# JupyterLab

def free_port() -> int:
    """A port that was free a moment ago (the server still retries if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


class ServerError(RuntimeError):
    """JupyterLab did not start (or did not stop); the message ends with its log's tail."""


class JupyterLab:
    """A JupyterLab server on a temporary copy of ``folder`` (default: notebooks/).

    ``notebooks``: copy only these names (default: every file of the folder, not
    ``.ipynb_checkpoints``). ``extra_files``: {name: text or bytes} written into the copy (e.g. a
    patched notebook). ``port``: the first port to try (default: a free one); if it is taken the
    server moves on to the next ones and :attr:`url` says where it ended up. ``env``: extra
    environment for the server and its kernels.

    Attributes once started: ``url`` (base URL, ending in /), ``token``, ``port``, ``root``
    (the served folder), ``log_path``, ``process``.

    >>> with JupyterLab(notebooks=["01_sound_and_spectrograms.ipynb"]) as lab:  # doctest: +SKIP
    ...     print(lab.notebook_url("01_sound_and_spectrograms.ipynb"))
    """

    def __init__(self, folder: str | Path = NOTEBOOKS, *, notebooks: Iterable[str] | None = None,
                 extra_files: dict[str, str | bytes] | None = None, port: int | None = None,
                 env: dict[str, str] | None = None, startup_timeout: float = 90.0,
                 expose_app: bool = True) -> None:
        self.folder = Path(folder)
        self.notebooks = list(notebooks) if notebooks is not None else None
        self.extra_files = dict(extra_files or {})
        self.requested_port = port
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.expose_app = expose_app
        self.token = secrets.token_hex(24)
        self.tmp: Path | None = None
        self.root: Path | None = None
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.port = 0
        self.log_path: Path | None = None
        self._log_file: Any = None
        self._seen: dict[int, psutil.Process] = {}

    # --- set-up --------------------------------------------------------------------------------

    def _prepare(self) -> dict[str, str]:
        self.tmp = Path(tempfile.mkdtemp(prefix="kwlesson_lab_"))
        self.root = self.tmp / "course"
        names = self.notebooks if self.notebooks is not None else sorted(
            p.name for p in self.folder.iterdir() if p.name != ".ipynb_checkpoints")
        self.root.mkdir()
        for name in names:
            src = self.folder / name
            if not src.exists():
                raise FileNotFoundError(f"{src}: not there to copy into the served folder")
            if src.is_dir():
                shutil.copytree(src, self.root / name)
            else:
                shutil.copy2(src, self.root / name)
        for name, content in self.extra_files.items():
            target = self.root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        dirs = {key: self.tmp / sub for key, sub in (
            ("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
            ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
            ("IPYTHONDIR", "ipython"), ("MPLCONFIGDIR", "matplotlib"))}
        for d in dirs.values():
            d.mkdir()
        # No news, no update checks, no extension manager (it would ask PyPI): offline and calm.
        settings = dirs["JUPYTERLAB_SETTINGS_DIR"]
        _write_json(settings / "@jupyterlab" / "apputils-extension" /
                    "notification.jupyterlab-settings",
                    {"fetchNews": "false", "checkForUpdates": False})
        # Every cell in the page, not only those in view: errors are read from the page.
        _write_json(settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings",
                    {"windowingMode": "none"})
        _write_json(dirs["JUPYTER_CONFIG_DIR"] / "labconfig" / "page_config.json",
                    {"disabledExtensions": {"@jupyterlab/extensionmanager-extension": True,
                                            "@jupyterlab/apputils-extension:announcements":
                                                True}})
        env = dict(os.environ)
        env.update({k: str(v) for k, v in dirs.items()})
        env.update({"KWLESSON_MODE": "quick", "TF_CPP_MIN_LOG_LEVEL": "2",
                    "CUDA_VISIBLE_DEVICES": "", "TF_DETERMINISTIC_OPS": "1",
                    "PYTHONUNBUFFERED": "1"})
        # The kernels must import this checkout's kwlesson whatever the venv says (or, with
        # KWLESSON_LAB_PYTHONPATH, a patched copy: to break something on purpose and see a
        # browser test fail without touching the checkout).
        first = [p for p in os.environ.get("KWLESSON_LAB_PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(
            [*first, str(PROJECT_ROOT)]
            + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        env.pop("JUPYTER_PATH", None)
        env.update(self.extra_env)
        return env

    def _command(self, port: int) -> list[str]:
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
               "--ServerApp.port_retries=50", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root}", "--ServerApp.open_browser=False",
               "--LabApp.news_url=",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly"]
        if os.geteuid() == 0:  # CI containers run as root
            cmd.append("--ServerApp.allow_root=True")
        if self.expose_app:
            cmd.append("--LabApp.expose_app_in_browser=True")
        return cmd

    def start(self) -> JupyterLab:
        """Copy, start the server, wait until it answers; returns self."""
        env = self._prepare()
        assert self.tmp is not None
        self.log_path = self.tmp / "server.log"
        port = self.requested_port or free_port()
        for attempt in range(3):
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115  # closed in stop()
            self.process = subprocess.Popen(
                self._command(port), cwd=self.root, env=env, stdin=subprocess.DEVNULL,
                stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                self._wait_ready(Path(env["JUPYTER_RUNTIME_DIR"]))
                return self
            except ServerError:
                exited = self.process.poll() is not None
                self._kill_group()
                port_trouble = re.search(r"(?i)address already in use|no available port|"
                                         r"ports? .*in use", self.log_text())
                if not (exited and port_trouble) or attempt == 2:
                    if self.tmp is not None and not os.environ.get("KWLESSON_KEEP_LAB"):
                        shutil.rmtree(self.tmp, ignore_errors=True)  # the log is in the error
                    raise
                port = free_port()  # it gave up (e.g. every port tried was taken): once more
        raise AssertionError("unreachable")

    def _wait_ready(self, runtime_dir: Path) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        info: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"JupyterLab exited with code {self.process.returncode} "
                                  f"before it was ready\n{self.log_tail()}")
            if info is None:
                # The server writes its real port and URL here once it listens.
                path = runtime_dir / f"jpserver-{self.process.pid}.json"
                if path.exists():
                    try:
                        info = json.loads(path.read_text(encoding="utf-8"))
                    except json.JSONDecodeError:
                        info = None  # half written: read it again
                    if info:
                        self.port = int(info["port"])
                        self.url = f"http://127.0.0.1:{self.port}{info.get('base_url', '/')}"
            if info is not None and self._answers("api/status"):
                self._remember_processes()
                return
            time.sleep(0.2)
        raise ServerError(f"JupyterLab not ready after {self.startup_timeout:.0f} s"
                          f"\n{self.log_tail()}")

    def _answers(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(self.api_url(path), timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    # --- use ---------------------------------------------------------------------------------

    def api_url(self, path: str) -> str:
        return f"{self.url}{path}?token={self.token}"

    def notebook_url(self, name: str) -> str:
        """The URL that opens ``name`` (relative to the served folder) in JupyterLab."""
        return f"{self.url}lab/tree/{name}?token={self.token}&reset"

    def api(self, path: str, method: str = "GET") -> Any:
        """A REST call to the server, e.g. ``lab.api("api/kernels")``; returns parsed JSON."""
        request = urllib.request.Request(self.api_url(path), method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        """The server log's last lines (kernels' stderr lands there too)."""
        tail = self.log_text().splitlines()[-lines:]
        return "--- JupyterLab log (tail) ---\n" + "\n".join(tail)

    def kernel_errors(self, since: int = 0) -> list[str]:
        """Tracebacks the kernels wrote to their own log (not to a cell) after byte ``since`` of
        the server log: e.g. an exception in a widget callback, which the page may not show."""
        text = self.log_text()[since:]
        found = []
        for match in re.finditer(r"(?m)^.*(?:Exception in comm_msg|Error in observer|"
                                 r"Exception in message handler|Traceback \(most recent call "
                                 r"last\)).*$", text):
            block = text[match.start():match.start() + 4000]
            # The traceback runs until the first unindented line that names the exception.
            lines = block.splitlines()
            end = next((i for i, line in enumerate(lines[1:], 1)
                        if line and not line[0].isspace() and not line.startswith("Traceback")
                        and re.match(r"^[\w.]+(Error|Exception|Interrupt|Exit)\b", line)),
                       len(lines) - 1)
            found.append("\n".join(lines[:end + 1]))
        return found

    def log_size(self) -> int:
        return len(self.log_text())

    # --- stop --------------------------------------------------------------------------------

    def _remember_processes(self) -> None:
        """Note the server and everything it started (kernels are in their own sessions)."""
        if self.process is None:
            return
        try:
            server = psutil.Process(self.process.pid)
            for p in [server, *server.children(recursive=True)]:
                self._seen[p.pid] = p
        except psutil.NoSuchProcess:
            pass

    def _kill_group(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    def stop(self) -> None:
        """Shut the server and its kernels down; raise if any of their processes survive."""
        if self.process is None:
            return
        self._remember_processes()
        if self.process.poll() is None:
            try:
                self.api("api/shutdown", method="POST")  # shuts the kernels down too
            except (urllib.error.URLError, OSError, json.JSONDecodeError):
                pass
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.process.pid, signal.SIGTERM)
                    self.process.wait(timeout=10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
        self._kill_group()
        survivors = [p for p in self._seen.values() if _alive(p)]
        for p in survivors:  # kernels live in their own process groups
            try:
                os.killpg(p.pid, signal.SIGKILL) if os.getpgid(p.pid) == p.pid else p.kill()
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
        psutil.wait_procs(survivors, timeout=10)
        still = [p for p in survivors if _alive(p)]
        self.process = None
        if self.tmp is not None and not os.environ.get("KWLESSON_KEEP_LAB"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        if still:
            raise ServerError("still running after JupyterLab stopped: "
                              + ", ".join(f"{p.pid} {p.name()}" for p in still))
        if survivors:
            raise ServerError("had to kill processes the server left behind: "
                              + ", ".join(str(p.pid) for p in survivors))

    def processes(self) -> list[psutil.Process]:
        """The server and every process it started that is still alive."""
        self._remember_processes()
        return [p for p in self._seen.values() if _alive(p)]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# --------------------------------------------------------------------------------------------
# Chromium

class Chromium:
    """Headless Debian chromium through Playwright, fresh profile each time, off the network.

    ``extra_args`` are appended to :data:`CHROMIUM_FLAGS` (e.g.
    ``["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--use-file-for-fake-audio-capture=/tmp/yes.wav"]``). ``permissions``: granted to every
    origin (e.g. ``["microphone"]``). ``viewport``: the window size.
    """

    def __init__(self, extra_args: Sequence[str] = (), *, executable: str | None = None,
                 permissions: Sequence[str] = (), viewport: tuple[int, int] = (1280, 1000),
                 headless: bool = True) -> None:
        self.executable = executable or chromium_executable()
        if self.executable is None:
            raise FileNotFoundError(f"no chromium found; {INSTALL_HINT}")
        self.args = [*CHROMIUM_FLAGS, *extra_args]
        self.permissions = list(permissions)
        self.viewport = viewport
        self.headless = headless
        self.profile: Path | None = None
        self._pw: Any = None
        self.context: Any = None
        self.console: list[str] = []  # console errors and page errors, all pages
        self.outside: list[str] = []  # requests a page made beyond 127.0.0.1 (should be none)

    def start(self) -> Chromium:
        from playwright.sync_api import sync_playwright

        self.profile = Path(tempfile.mkdtemp(prefix="kwlesson_chromium_"))
        self._pw = sync_playwright().start()
        try:
            # Chromium's crash handler keeps its database under XDG_CONFIG_HOME and runs
            # detached from the browser: inside the profile, it is named by its command line
            # (so the leftover check sees it) and nothing is written to ~/.config.
            env = dict(os.environ, XDG_CONFIG_HOME=str(self.profile / "config"),
                       XDG_CACHE_HOME=str(self.profile / "cache"))
            self.context = self._pw.chromium.launch_persistent_context(
                str(self.profile / "profile"), executable_path=self.executable,
                headless=self.headless, env=env,
                args=self.args, viewport={"width": self.viewport[0], "height": self.viewport[1]},
                permissions=self.permissions or None, accept_downloads=False,
                service_workers="block")
        except Exception:
            self._pw.stop()
            raise
        return self

    def new_page(self) -> Any:
        """A new tab; its console errors and uncaught page errors go to :attr:`console`, and the
        URL of any request it makes beyond 127.0.0.1 to :attr:`outside`."""
        page = self.context.new_page()
        page.on("console", lambda m: self.console.append(f"console.{m.type}: {m.text}")
                if m.type in ("error",) else None)
        page.on("pageerror", lambda e: self.console.append(f"page error: {e}"))
        page.on("request", self._note_request)
        return page

    def _note_request(self, request: Any) -> None:
        url = request.url
        if not re.match(r"(https?|wss?)://(127\.0\.0\.1|localhost)[:/]|(blob|data|about):",
                        url):
            self.outside.append(url)

    def stop(self) -> None:
        """Close the browser; raise if any of its processes survive."""
        if self._pw is None:
            return
        try:
            if self.context is not None:
                self.context.close()
        finally:
            self._pw.stop()
            self._pw = None
        # Anything still using this profile is a leftover chromium.
        marker = str(self.profile)
        left = []
        for p in psutil.process_iter(["cmdline"]):
            try:
                if any(marker in part for part in (p.info["cmdline"] or [])):
                    left.append(p)
            except psutil.NoSuchProcess:
                pass
        for p in left:
            p.kill()
        psutil.wait_procs(left, timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)
        if left:
            raise RuntimeError("chromium processes survived close: "
                               + ", ".join(str(p.pid) for p in left))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# One notebook in the page

class NotebookErrors(AssertionError):
    """What went wrong in the page, cell by cell, with the kernel's own error log."""


_JS_CELL_REPORT = """
() => {
  const cells = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell')];
  return cells.map((cell, index) => {
    const prompt = cell.querySelector('.jp-InputArea-prompt');
    const errors = [];
    for (const out of cell.querySelectorAll('.jp-OutputArea-output')) {
      const mime = out.getAttribute('data-mime-type') || '';
      const text = out.innerText || '';
      if (mime === 'application/vnd.jupyter.stderr') errors.push('stderr: ' + text);
      else if (out.classList.contains('jp-mod-error') || mime.includes('error'))
        errors.push('error: ' + text);
    }
    const code = cell.classList.contains('jp-CodeCell');
    const source = code ? (cell.querySelector('.jp-InputArea-editor')?.innerText || '') : '';
    return {index, code, prompt: prompt ? prompt.innerText.trim() : '',
            errors, text: cell.querySelector('.jp-Cell-outputWrapper')?.innerText || '',
            source: source.slice(0, 200)};
  });
}
"""


class LabPage:
    """A Playwright page showing one notebook of a :class:`JupyterLab`.

    ``LabPage.open(page, lab, name)`` loads it and waits for an idle kernel. Then:
    :meth:`run_all`, :meth:`wait_idle`, :meth:`wait_until`, :meth:`errors`,
    :meth:`assert_no_errors`,
    :meth:`cell_text`, :meth:`screenshot`, :meth:`command` (any JupyterLab command by id).
    """

    def __init__(self, page: Any, lab: JupyterLab, name: str) -> None:
        self.page = page
        self.lab = lab
        self.name = name
        self._log_mark = lab.log_size()

    @classmethod
    def open(cls, page: Any, lab: JupyterLab, name: str, timeout: float = 120) -> LabPage:
        page.set_default_timeout(30_000)
        page.goto(lab.notebook_url(name), wait_until="domcontentloaded")
        page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=timeout * 1000)
        nb = cls(page, lab, name)
        nb.wait_idle(timeout)
        return nb

    # --- state ---------------------------------------------------------------------------------

    def kernel_status(self) -> str:
        """'idle', 'busy', 'starting', ... as the notebook's execution indicator shows it."""
        return self.page.evaluate("""() => {
          const app = window.jupyterapp;
          const panel = app && app.shell.currentWidget;
          const kernel = panel && panel.sessionContext && panel.sessionContext.session
                         && panel.sessionContext.session.kernel;
          if (kernel) return kernel.status;
          const el = document.querySelector('.jp-Notebook-ExecutionIndicator');
          return el ? (el.getAttribute('data-status') || 'unknown') : 'unknown';
        }""")

    def wait_idle(self, timeout: float = 120) -> None:
        """Wait until the kernel is up and idle."""
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            status = self.kernel_status()
            if status == "idle":
                return
            self.page.wait_for_timeout(250)
        raise TimeoutError(f"{self.name}: kernel not idle after {timeout:.0f} s "
                           f"(status {status!r})\n{self.lab.log_tail()}")

    def cells(self) -> list[dict[str, Any]]:
        """Per cell: index, code, prompt ('[3]:', '[*]:'), errors, text (outputs), source."""
        return self.page.evaluate(_JS_CELL_REPORT)

    # --- actions -----------------------------------------------------------------------------

    def command(self, command_id: str, args: dict[str, Any] | None = None) -> None:
        """Run a JupyterLab command by id (needs ``expose_app``)."""
        self.page.evaluate("([id, args]) => window.jupyterapp.commands.execute(id, args)",
                           [command_id, args or {}])

    def menu(self, *path: str) -> None:
        """Click through the menu bar, e.g. ``menu("Run", "Run All Cells")``."""
        top, *rest = path
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(
            rf"^{re.escape(top)}$")).first.click()
        for label in rest:
            item = self.page.locator(".lm-Menu:visible .lm-Menu-item", has=self.page.locator(
                ".lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(label)}$"))).first
            item.hover()
            item.click()

    def run_all(self, timeout: float = 300, wait: bool = True) -> None:
        """Edit > Clear Outputs of All Cells, then Run > Run All Cells, through the menus; then
        (``wait``) wait until every code cell ran, or one failed and the rest were skipped.
        Clearing first means a prompt's number can only come from this run."""
        self._log_mark = self.lab.log_size()
        self.page.locator(".jp-NotebookPanel .jp-Notebook").first.click(position={"x": 5, "y": 5})
        self.menu("Edit", "Clear Outputs of All Cells")
        self.wait_until("the cleared prompts", lambda: all(
            not re.search(r"\d", c["prompt"]) for c in self.cells() if c["code"]), 30)
        self.menu("Run", "Run All Cells")
        if not self._started(15):
            # The click was lost (seen under heavy load: no cell queued at all): once more.
            self.menu("Run", "Run All Cells")
            if not self._started(30):
                raise TimeoutError(f"{self.name}: Run > Run All Cells started no cell\n"
                                   f"{self._prompts()}\n{self.lab.log_tail()}")
        if wait:
            self.wait_run_finished(timeout)

    def _started(self, timeout: float) -> bool:
        """True once some code cell is queued, running or done (a '*' or a number)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(re.search(r"[*\d]", c["prompt"]) for c in self.cells() if c["code"]):
                return True
            self.page.wait_for_timeout(200)
        return False

    def _prompts(self) -> str:
        return "prompts: " + " ".join(c["prompt"] or "[ ]" for c in self.cells() if c["code"])

    def busy_cells(self) -> list[int]:
        return [c["index"] for c in self.cells() if c["code"] and "*" in c["prompt"]]

    def wait_run_finished(self, timeout: float = 300) -> None:
        """Wait until no cell is queued or running, the kernel is idle, and every code cell
        has run (a number in its prompt) or a cell shows an error (Run All stops there)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            cells = [c for c in self.cells() if c["code"]]
            busy = any("*" in c["prompt"] for c in cells)
            ran = all(re.search(r"\d", c["prompt"]) for c in cells)
            failed = any(c["errors"] for c in cells)
            done = not busy and (ran or failed) and self.kernel_status() == "idle"
            quiet = quiet + 1 if done else 0
            if quiet >= 2:
                return
            self.page.wait_for_timeout(300)
        raise TimeoutError(f"{self.name}: not finished after {timeout:.0f} s (kernel "
                           f"{self.kernel_status()}; {self._prompts()})\n{self.lab.log_tail()}")

    def wait_for_text(self, pattern: str, timeout: float = 120) -> str:
        """Wait until some cell's output matches the regex ``pattern``; returns the match."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for cell in self.cells():
                m = regex.search(cell["text"])
                if m:
                    return m.group(0)
            self.page.wait_for_timeout(250)
        raise TimeoutError(f"{self.name}: no output matched {pattern!r} in {timeout:.0f} s")

    def cell_text(self, contains: str) -> str:
        """The output text of the first code cell whose source contains ``contains``."""
        for cell in self.cells():
            if cell["code"] and contains in cell["source"]:
                return cell["text"]
        raise KeyError(f"{self.name}: no code cell contains {contains!r}")

    def cell_locator(self, contains: str) -> Any:
        """The page element of the first code cell whose source contains ``contains``."""
        for cell in self.cells():
            if cell["code"] and contains in cell["source"]:
                return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").nth(
                    cell["index"])
        raise KeyError(f"{self.name}: no code cell contains {contains!r}")

    def wait_until(self, what: str, predicate: Any, timeout: float = 60,
                   poll: float = 0.25) -> Any:
        """Wait until ``predicate()`` is truthy and return its value. Fails at once, with the
        traceback, if a cell shows an error meanwhile (e.g. the callback that should have
        made it true raised), and on timeout lists whatever went wrong in the page."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            shown = self._cell_errors()
            if shown:
                raise NotebookErrors(f"{self.name}: while waiting for {what}, an error "
                                     "appeared in the page\n\n" + "\n\n".join(shown))
            self.page.wait_for_timeout(poll * 1000)
        found = self.errors()
        raise NotebookErrors(f"{self.name}: timed out after {timeout:.0f} s waiting for {what}"
                             + ("; errors in the page:\n\n" + "\n\n".join(found) if found
                                else "; no error shown in the page or its log console"))

    # --- errors ------------------------------------------------------------------------------

    def errors(self) -> list[str]:
        """Everything that went wrong since the last run_all: cells with a traceback, stderr or
        a widget that failed to show, and tracebacks in the kernels' own log (e.g. a widget
        callback), each as one readable block."""
        found = self._cell_errors()
        for block in self.log_console_errors():
            found.append("JupyterLab's log console (e.g. a widget callback; not shown in any "
                         "cell):\n" + block)
        for block in self.lab.kernel_errors(self._log_mark):
            found.append("kernel log (not shown in any cell):\n" + block)
        return found

    def _cell_errors(self) -> list[str]:
        found = []
        for cell in self.cells():
            problems = list(cell["errors"])
            problems += [f"widget: {w}" for w in WIDGET_ERRORS if w in cell["text"]]
            if problems:
                head = cell["source"].strip().splitlines()[:1]
                found.append(f"cell {cell['index']} {cell['prompt']} "
                             f"({head[0] if head else ''}):\n" + "\n".join(problems))
        return found

    def log_console_errors(self) -> list[str]:
        """Errors in JupyterLab's log console (View > Show Log Console), where output that
        belongs to no cell ends up: an exception in a widget callback lands there, and nowhere
        else in the page. Opens the console through the menu, reads it, closes it again."""
        panel = self.page.locator(".jp-LogConsolePanel")
        opened = False
        if not panel.is_visible():
            self.menu("View", "Show Log Console")
            panel.wait_for(state="visible", timeout=10_000)
            opened = True
        self.page.wait_for_timeout(300)  # entries are rendered in the next frame
        blocks = self.page.evaluate("""() => {
          const panel = document.querySelector('.jp-LogConsolePanel');
          if (!panel) return [];
          const out = [];
          for (const o of panel.querySelectorAll('.jp-OutputArea-output')) {
            const mime = o.getAttribute('data-mime-type') || '';
            const text = o.innerText || '';
            if (mime.includes('stderr') || mime.includes('error') || /Traceback|Error/.test(text))
              out.push(text);
          }
          return out;
        }""")
        if opened:
            self.menu("View", "Show Log Console")  # a toggle: closes it
        return blocks

    def assert_no_errors(self) -> None:
        """Raise :class:`NotebookErrors` listing every error of :meth:`errors`."""
        found = self.errors()
        if found:
            raise NotebookErrors(f"{self.name}: {len(found)} error(s) in the page\n\n"
                                 + "\n\n".join(found))

    # --- pictures ------------------------------------------------------------------------------

    def screenshot(self, name: str, *, full_page: bool = False, locator: Any = None) -> Path:
        """Save a PNG under artifacts/browser/ (git-ignored); returns its path."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        if locator is not None:
            locator.screenshot(path=str(path))
        else:
            self.page.screenshot(path=str(path), full_page=full_page)
        return path
