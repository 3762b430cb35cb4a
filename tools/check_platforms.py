"""Can every platform install the course? Resolve kwlesson's dependencies from binary wheels only
for macOS arm64, Windows amd64 and Linux aarch64 (a Raspberry Pi 4 or 5 on a 64-bit OS), on each
Python that pyproject.toml supports, and fail naming the package that has no wheel.

    python tools/check_platforms.py              # all platforms x all supported Pythons
    python tools/check_platforms.py --python 3.12 --platform linux-aarch64
    python tools/check_platforms.py --colab      # and the lessons' Colab cell, in a fresh venv

It asks the package index (PyPI, or pip's configured index) with ``pip install --dry-run
--only-binary=:all: --platform ... --python-version ...``; nothing is installed. Two things pip
does not do for a foreign platform are done here: environment markers (``; platform_system ==
"Linux"``) are evaluated for the target with packaging.markers, for our requirements and, round
by round, for every dependency pip found; and a manylinux target is given every manylinux tag
up to the target's glibc, as pip does not widen ``manylinux_2_28`` to the older ones wheels carry.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent

# pip --platform tags and the marker values of each target.
PLATFORMS = {
    "macos-arm64": {
        "tags": ["macosx_14_0_arm64"],  # pip widens macOS tags down to 11.0 itself
        "markers": {"platform_system": "Darwin", "platform_machine": "arm64",
                    "sys_platform": "darwin", "os_name": "posix"},
    },
    "windows-amd64": {
        "tags": ["win_amd64"],
        "markers": {"platform_system": "Windows", "platform_machine": "AMD64",
                    "sys_platform": "win32", "os_name": "nt"},
    },
    "linux-aarch64": {
        # Raspberry Pi OS 12 has glibc 2.36: every manylinux tag up to it, and the legacy alias.
        "tags": [f"manylinux_2_{minor}_aarch64" for minor in range(36, 16, -1)]
                + ["manylinux2014_aarch64"],
        "markers": {"platform_system": "Linux", "platform_machine": "aarch64",
                    "sys_platform": "linux", "os_name": "posix"},
    },
}
TIMEOUT_S = 600  # one resolution; a cold cache on a slow link takes a few minutes
NETWORK = re.compile(r"(NewConnectionError|ConnectTimeout|ReadTimeout|Temporary failure in name "
                     r"resolution|Network is unreachable|Max retries exceeded|ProxyError)")
NO_WHEEL = re.compile(r"(?:No matching distribution found for|Could not find a version that "
                      r"satisfies the requirement) ([A-Za-z0-9_.\-]+)")


class NetworkError(Exception):
    """The package index could not be reached."""


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def supported_pythons() -> list[str]:
    spec = SpecifierSet(project()["requires-python"])
    return [f"3.{minor}" for minor in range(8, 20) if f"3.{minor}" in spec]


def marker_environment(platform: str, python: str) -> dict[str, str]:
    return {**PLATFORMS[platform]["markers"], "python_version": python,
            "python_full_version": f"{python}.0", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "platform_release": "",
            "platform_version": "", "implementation_version": f"{python}.0", "extra": ""}


def applies(requirement: Requirement, environment: dict[str, str]) -> bool:
    return requirement.marker is None or requirement.marker.evaluate(environment)


def _pip(requirements: list[str], platform: str, python: str) -> list[dict]:
    """pip's resolution (its --report 'install' list) for the target, or raises."""
    with tempfile.TemporaryDirectory(prefix="kwlesson-platforms-") as tmp:
        report = Path(tmp, "report.json")
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet",
                   "--disable-pip-version-check", "--ignore-installed",
                   "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
                   "--target", str(Path(tmp, "target")), "--report", str(report)]
        for tag in PLATFORMS[platform]["tags"]:
            command += ["--platform", tag]
        try:
            done = subprocess.run(command + requirements, capture_output=True, text=True,
                                  timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise NetworkError(f"pip took more than {TIMEOUT_S} s resolving for {platform}, "
                               f"Python {python}: is the package index reachable?") from None
        if done.returncode != 0:
            said = done.stderr + done.stdout
            if NETWORK.search(said):
                raise NetworkError("the package index cannot be reached (this check needs it): "
                                   + NETWORK.search(said).group(1))
            missing = NO_WHEEL.search(said)
            raise LookupError(f"no binary wheel for {missing.group(1)}" if missing else
                              " ".join(said.strip().splitlines()[-3:]))
        return json.loads(report.read_text())["install"]


def resolve(platform: str, python: str) -> list[dict]:
    """The packages a student's ``pip install kwlesson`` gets on that platform and Python."""
    environment = marker_environment(platform, python)
    wanted = [Requirement(r) for r in project()["dependencies"]]
    requirements = sorted(str(_without_marker(r)) for r in wanted if applies(r, environment))
    for _ in range(10):  # rounds: dependencies only the target's markers select
        installed = _pip(requirements, platform, python)
        names = {canonicalize_name(item["metadata"]["name"]) for item in installed}
        more = set()
        for item in installed:
            for line in item["metadata"].get("requires_dist", []):
                req = Requirement(line)
                if req.marker is not None and "extra" in str(req.marker):
                    continue  # an optional extra nobody asked for
                if applies(req, environment) and canonicalize_name(req.name) not in names:
                    more.add(str(_without_marker(req)))
        if not more - set(requirements):
            return installed
        requirements = sorted(set(requirements) | more)
    raise RuntimeError(f"{platform}, Python {python}: the markers did not settle in 10 rounds")


def _without_marker(req: Requirement) -> Requirement:
    bare = Requirement(str(req))
    bare.marker = None
    return bare


def _check(platform: str, python: str) -> tuple[str, bool]:
    """One line on one target, and whether it resolved; NetworkError passes through."""
    start = time.monotonic()
    try:
        installed = resolve(platform, python)
    except (LookupError, RuntimeError) as err:
        return f"{platform:14s} Python {python}: FAILED: {err}", False
    versions = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"]
                for i in installed}
    key = ", ".join(f"{n} {versions[n]}" for n in ("tensorflow", "ai-edge-litert",
                                                    "espeakng-loader") if n in versions)
    return (f"{platform:14s} Python {python}: ok, {len(installed)} wheels ({key}; tflite-micro "
            f"{'included' if 'tflite-micro' in versions else 'left out'}) "
            f"in {time.monotonic() - start:.0f} s"), True


# Run inside the fresh venv: Colab's kernel simulated (google.colab with its widget switch), the
# lessons' first cell executed as it is, with the repository swapped for this checkout.
_COLAB_CHILD = """
import sys, types
enabled = []
output = types.ModuleType("google.colab.output")
output.enable_custom_widget_manager = lambda: enabled.append(True)
colab = types.ModuleType("google.colab"); colab.output = output
google = types.ModuleType("google"); google.colab = colab
sys.modules.update({"google": google, "google.colab": colab, "google.colab.output": output})
exec(sys.argv[1], {})
import kwlesson, kwlesson.config
from pathlib import Path
where = Path(kwlesson.__file__).resolve()
assert where.is_relative_to(Path(sys.prefix).resolve()), f"kwlesson imported from {where}"
assert (where.parent / "microphone.js").is_file(), "microphone.js is not in the package"
assert enabled == [True], "the widget manager was not enabled"
print(f"kwlesson {kwlesson.__version__} installed in {sys.prefix}, widget manager enabled")
"""


def check_colab_install() -> bool:
    """Run the lessons' Colab cell in a fresh venv, installing this checkout instead of the
    repository. Colab comes with TensorFlow and friends installed: this machine's packages stand
    in for them (a .pth file), so only kwlesson itself is built and installed."""
    import site
    import venv

    sys.path.insert(0, str(ROOT))
    from kwlesson import config

    cell = config.colab_cell()
    local = f"kwlesson @ {ROOT.as_uri()}"
    assert config.COLAB_REQUIREMENT in cell
    with tempfile.TemporaryDirectory(prefix="kwlesson-colab-") as tmp:
        venv.create(tmp, with_pip=True)
        python = Path(tmp, "Scripts" if sys.platform == "win32" else "bin", "python")
        purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                                  "print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        Path(purelib, "preinstalled.pth").write_text("\n".join(site.getsitepackages()) + "\n")
        start = time.monotonic()
        try:
            done = subprocess.run([str(python), "-c", _COLAB_CHILD,
                                   cell.replace(config.COLAB_REQUIREMENT, local)],
                                  capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp,
                                  check=False)
        except subprocess.TimeoutExpired:
            print(f"colab cell: FAILED: no end after {TIMEOUT_S} s")
            return False
    if done.returncode != 0:
        print("colab cell: FAILED: " + " ".join((done.stderr or done.stdout).strip()
                                                .splitlines()[-3:]))
        return False
    print(f"colab cell: ok, {done.stdout.strip()} "
          f"({time.monotonic() - start:.0f} s)")
    return True


def main(argv: list[str] | None = None) -> int:
    from concurrent.futures import ThreadPoolExecutor

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", help="e.g. 3.12 (default: all supported)")
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORMS),
                        help="default: all")
    parser.add_argument("--jobs", type=int, default=9, help="resolutions at once (default 9)")
    parser.add_argument("--colab", action="store_true",
                        help="also run the lessons' Colab cell in a fresh venv (this checkout)")
    args = parser.parse_args(argv)
    colab_ok = check_colab_install() if args.colab else True
    targets = [(p, v) for p in args.platform or list(PLATFORMS)
               for v in args.python or supported_pythons()]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(_check, p, v) for p, v in targets]
        results = []
        try:
            for future in futures:  # in order, as each is ready
                line, ok = future.result()
                print(line, flush=True)
                results.append(ok)
        except NetworkError as err:
            print(f"cannot check the platforms: {err}", file=sys.stderr)
            for future in futures:
                future.cancel()
            return 2
    failures = results.count(False)
    if failures:
        print(f"{failures} of {len(targets)} cannot install kwlesson from binary wheels")
    else:
        print(f"all {len(targets)} platform and Python pairs install from binary wheels")
    return 1 if failures or not colab_ok else 0


if __name__ == "__main__":
    sys.exit(main())
