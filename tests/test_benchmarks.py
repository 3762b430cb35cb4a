"""Every benchmark still starts: imports, options and help text (the figures are not tests).

The benchmarks take minutes and print figures for benchmarks/RESULTS.md, so the suite does not
run them; but a renamed library function or option should not wait for the next person who
re-measures to be found.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("bench_*.py"))


def test_every_benchmark_is_found():
    assert len(BENCHMARKS) >= 10


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_starts_and_explains_its_options(script):
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: "), done.stdout[:500]
    # The first line of the module's docstring is its description.
    first_line = script.read_text().split('"""', 2)[1].strip().splitlines()[0]
    assert first_line.split(":")[0].split(",")[0].strip() in " ".join(done.stdout.split())


def _library_references(script: Path) -> list[tuple[str, str]]:
    """(module, name) for every library name a benchmark uses, at the top or inside main:
    ``from kwlesson.x import y`` gives (kwlesson.x, y), and ``x.z`` on an imported kwlesson
    module ``x`` gives (kwlesson.x, z)."""
    import ast

    tree = ast.parse(script.read_text())
    refs, modules = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kwlesson"):
            for alias in node.names:
                refs.append((node.module, alias.name))
                if node.module == "kwlesson":
                    modules[alias.asname or alias.name] = f"kwlesson.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("kwlesson.") and alias.asname:
                    modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules):
            refs.append((modules[node.value.id], node.attr))
    return refs


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_uses_only_names_the_library_has(script):
    import importlib

    refs = _library_references(script)
    missing = []
    for module, name in refs:
        mod = importlib.import_module(module)
        if not hasattr(mod, name):
            try:  # a submodule: from kwlesson import export
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{module}.{name}")
    assert not missing, f"{script.name} uses names the library no longer has: {missing}"
    if script.stem in ("bench_export", "bench_verification", "bench_streaming"):
        assert len(refs) >= 5  # the walk does see their library calls
