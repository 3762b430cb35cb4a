"""pyproject.toml (pip) and environment.yml (conda) must install the same packages."""

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# conda-forge names that differ from the PyPI ones.
CONDA_TO_PYPI = {"soxr-python": "soxr"}
NOT_PACKAGES = {"python", "pip"}


def _split(requirement: str) -> tuple[str, str]:
    """'tensorflow>=2.18,<3  # comment' -> ('tensorflow', '<3,>=2.18'), with '; marker' kept."""
    from packaging.requirements import Requirement

    requirement = requirement.split("  #", 1)[0].strip()
    if requirement[:1] == requirement[-1:] == "'":  # YAML's quotes around a marker
        requirement = requirement[1:-1]
    try:
        req = Requirement(requirement)
    except ValueError as err:
        raise AssertionError(f"cannot read requirement {requirement!r}: {err}") from None
    name = re.sub(r"[-_.]+", "-", req.name).lower()
    spec = ",".join(sorted(str(s) for s in req.specifier))
    return name, spec + (f"; {req.marker}" if req.marker else "")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(_split(r) for r in project["dependencies"])


def environment_requirements() -> dict[str, str]:
    """Read environment.yml's conda and pip lists (a plain parser: the file is ours and simple)."""
    found: dict[str, str] = {}
    in_deps = False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if line.startswith("dependencies:"):
            in_deps = True
            continue
        if not in_deps or not line.strip() or line.lstrip().startswith("#"):
            continue
        item = line.strip()
        if not item.startswith("- "):
            continue
        item = item[2:].strip()
        if item.endswith(":") or item.startswith("-e "):  # "- pip:" header, the package itself
            continue
        if re.match(r"^python=\d", item):
            continue  # the interpreter: test_python_version_agrees
        name, spec = _split(item)
        name = CONDA_TO_PYPI.get(name, name)
        if name not in NOT_PACKAGES:
            found[name] = spec
    return found


def test_environment_yml_matches_pyproject():
    pip_side, conda_side = pyproject_requirements(), environment_requirements()
    assert sorted(conda_side) == sorted(pip_side), (
        f"only in environment.yml: {sorted(set(conda_side) - set(pip_side))}; "
        f"only in pyproject.toml: {sorted(set(pip_side) - set(conda_side))}"
    )
    differing = {n: (pip_side[n], conda_side[n]) for n in pip_side if pip_side[n] != conda_side[n]}
    assert not differing, f"version ranges differ (pyproject, environment.yml): {differing}"


def test_test_tools_are_an_extra():
    """A student's plain pip install gets the course, not pytest and friends."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    tools = {"pytest", "nbval", "playwright", "ruff"}
    assert not tools & set(pyproject_requirements())
    assert tools <= {_split(r)[0] for r in project["optional-dependencies"]["test"]}
    assert '-e ".[test]"' in (ROOT / "Makefile").read_text()


def test_tflite_micro_only_where_it_has_wheels():
    from packaging.markers import Marker

    spec = pyproject_requirements()["tflite-micro"]
    marker = Marker(spec.split(";", 1)[1])
    linux = {"platform_system": "Linux", "platform_machine": "x86_64"}
    assert marker.evaluate(linux)
    for system, machine in (("Darwin", "arm64"), ("Windows", "AMD64"), ("Linux", "aarch64")):
        assert not marker.evaluate({"platform_system": system, "platform_machine": machine})


def test_no_pytorch_anywhere():
    assert "torch" not in pyproject_requirements()
    assert "torch" not in environment_requirements()


def _requires_python() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["requires-python"].replace(" ", "")


def test_python_version_agrees():
    environment = (ROOT / "environment.yml").read_text()
    # An exact minor version (repo2docker reads only "python=X.Y"), one that pyproject allows.
    match = re.search(r"^\s*- python=(3\.\d+)\s*(#.*)?$", environment, re.MULTILINE)
    assert match, "environment.yml pins no python=3.X version"
    from packaging.specifiers import SpecifierSet

    assert match.group(1) in SpecifierSet(_requires_python()), (match.group(1), _requires_python())


def test_supported_pythons_agree():
    """pyproject, the Makefile's list and check_environment name the same Pythons."""
    from packaging.specifiers import SpecifierSet

    from kwlesson import checks

    spec = SpecifierSet(_requires_python())
    supported = [f"3.{minor}" for minor in range(8, 20) if f"3.{minor}" in spec]
    (lo_major, lo), (hi_major, hi) = checks.SUPPORTED_PYTHON
    assert supported[0] == f"{lo_major}.{lo}" and supported[-1] == f"{hi_major}.{hi}", supported
    makefile = (ROOT / "Makefile").read_text()
    listed = re.search(r"^PYTHONS\s*:=\s*(.*)$", makefile, re.MULTILINE).group(1).split()
    assert sorted(listed) == sorted(f"python{v}" for v in supported), listed
    import sys

    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in supported


@pytest.mark.parametrize("module", ["tensorflow", "keras", "librosa", "soundfile", "soxr",
                                    "espeakng_loader", "ai_edge_litert", "tqdm", "ipywidgets"])
def test_dependency_imports(module):
    __import__(module)


def test_keras_is_version_3():
    import keras

    assert int(keras.__version__.split(".")[0]) == 3


def test_environment_yml_suits_repo2docker():
    """Binder/repo2docker: an exact python=X.Y (it reads no range) and the package itself
    installed from the pip section (then it copies the repository first: no postBuild)."""
    environment = (ROOT / "environment.yml").read_text()
    assert re.search(r"^  - python\s*=+\s*3\.\d+", environment, re.MULTILINE)
    assert re.search(r"^      - -e \.\s", environment, re.MULTILINE)
    assert not (ROOT / "postBuild").exists() and not (ROOT / "binder").exists()


def test_the_version_is_written_once():
    # kwlesson/version.py is the one place; pyproject reads it, the package and files show it.
    import importlib.metadata

    import kwlesson
    from kwlesson.version import __version__

    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and "\nversion =" not in pyproject.split(
        "[tool.setuptools.dynamic]")[0]
    assert kwlesson.__version__ == __version__
    assert importlib.metadata.version("kwlesson") == __version__
