"""tools/check_platforms.py without the network: targets, markers, and how it names a failure."""

import importlib.util
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("check_platforms", ROOT / "tools/check_platforms.py")
check_platforms = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_platforms)


def test_targets_are_the_supported_pythons_on_three_platforms():
    assert check_platforms.supported_pythons() == ["3.11", "3.12", "3.13"]
    assert set(check_platforms.PLATFORMS) == {"macos-arm64", "windows-amd64", "linux-aarch64"}
    assert "manylinux2014_aarch64" in check_platforms.PLATFORMS["linux-aarch64"]["tags"]


def test_markers_are_evaluated_for_the_target_not_this_machine():
    micro = Requirement('tflite-micro; platform_system == "Linux" and platform_machine == "x86_64"')
    colorama = Requirement('colorama; platform_system == "Windows"')
    for platform in check_platforms.PLATFORMS:
        env = check_platforms.marker_environment(platform, "3.12")
        assert not check_platforms.applies(micro, env)
        assert check_platforms.applies(colorama, env) == (platform == "windows-amd64")


def test_a_package_without_a_wheel_is_named(monkeypatch):
    import subprocess

    said = "ERROR: No matching distribution found for tflite-micro\n"
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 1, stdout="", stderr=said))
    line, ok = check_platforms._check("macos-arm64", "3.12")
    assert not ok and line.endswith("FAILED: no binary wheel for tflite-micro"), line


def test_an_unreachable_index_is_said_so(monkeypatch):
    import subprocess

    import pytest

    said = "WARNING: Retrying ... NewConnectionError('Failed to establish a new connection')\n"
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 1, stdout="", stderr=said))
    with pytest.raises(check_platforms.NetworkError, match="cannot be reached"):
        check_platforms.resolve("windows-amd64", "3.13")
    assert check_platforms.main(["--python", "3.12", "--platform", "windows-amd64"]) == 2
