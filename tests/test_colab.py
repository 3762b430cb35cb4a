"""Google Colab: every lesson has the badge and the set-up cell; the cell, with Colab simulated,
installs the course and turns on the widget manager, and anywhere else does nothing.
(tools/check_platforms.py --colab runs the cell's install in a fresh venv, in CI.)"""

import json
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest

from kwlesson import config

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _text(cell):
    return "".join(cell["source"])


def test_the_repository_is_the_one_in_pyproject():
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Repository"] == config.REPOSITORY
    assert f"kwlesson @ git+{config.REPOSITORY}" == config.COLAB_REQUIREMENT


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_lesson_has_its_badge_and_the_setup_cell_first(path):
    cells = _cells(path)
    assert config.colab_link(path.name) in _text(cells[0]), f"{path.name}: no Colab link"
    assert "colab-badge.svg" not in path.read_text(encoding="utf-8"), (
        f"{path.name}: an image from the internet (the lessons work offline)")
    assert config.colab_badge(path.name) in (ROOT / "README.md").read_text(encoding="utf-8")
    first = next(c for c in cells if c["cell_type"] == "code")
    assert _text(first) == config.colab_cell(), f"{path.name}: the first code cell is not it"
    assert first["outputs"] == [], f"{path.name}: the Colab cell printed something"


@pytest.fixture
def fake_colab(monkeypatch):
    """google.colab as Colab's kernel has it, recording enable_custom_widget_manager; and
    subprocess.run recording the command instead of running it."""
    calls = {"widgets": 0, "commands": []}
    output = types.ModuleType("google.colab.output")
    output.enable_custom_widget_manager = lambda: calls.__setitem__("widgets",
                                                                    calls["widgets"] + 1)
    colab = types.ModuleType("google.colab")
    colab.output = output
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setattr(subprocess, "run",
                        lambda command, **kw: calls["commands"].append((command, kw)))
    return calls, {"google": google, "google.colab": colab, "google.colab.output": output}


def test_on_colab_the_cell_installs_the_course_and_enables_widgets(fake_colab, monkeypatch):
    calls, modules = fake_colab
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    exec(config.colab_cell(), {})
    assert calls["commands"] == [([sys.executable, "-m", "pip", "install", "--quiet",
                                   config.COLAB_REQUIREMENT], {"check": True})]
    assert calls["widgets"] == 1


def test_colab_is_recognised_by_its_environment_variable_too(fake_colab, monkeypatch):
    calls, modules = fake_colab
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20261201-060000_RC00")
    monkeypatch.setitem(sys.modules, "google.colab", modules["google.colab"])
    monkeypatch.setitem(sys.modules, "google.colab.output", modules["google.colab.output"])
    monkeypatch.setitem(sys.modules, "google", modules["google"])
    assert config.on_colab()
    exec(config.colab_cell(), {})
    assert len(calls["commands"]) == 1 and calls["widgets"] == 1


def test_elsewhere_the_cell_does_nothing_and_prints_nothing(fake_colab, monkeypatch, capsys):
    calls, _ = fake_colab
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    exec(config.colab_cell(), {})
    assert config.colab_setup() is False
    assert calls == {"widgets": 0, "commands": []}
    assert capsys.readouterr() == ("", "")
