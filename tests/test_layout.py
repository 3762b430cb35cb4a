"""The library's layout: modules in lesson order, each importing only those below it, and no
private name used from another module (tests and benchmarks included, unless a line says why
it reaches in with a ``reaches in:`` comment on it or just above it)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "kwlesson"

# Lowest first: a module may import only modules listed before it (at the top of the file or
# inside a function). The README's map of the library lists them in this order.
LAYERS = [
    "version",
    "config",
    "audio",
    "features",
    "synth",
    "pipeline",
    "data",
    "download",
    "models",
    "recipes",
    "faults",
    "runs",
    "progress",
    "training",
    "evaluation",
    "runtime",
    "quantization",
    "android",
    "micro_speech",
    "export",
    "verify",
    "label_wav",
    "streaming",
    "streaming_test",
    "microphone",
    "plots",
    "widgets",
    "dashboard",
    "what_if",
    "checks",
    "student_copies",
    "cli",
    "__init__",
]


def _modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py"))


def _kwlesson_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) for every import of a kwlesson module, wherever it is in the file."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "kwlesson":
                found += [(node.lineno, alias.name) for alias in node.names
                          if (PACKAGE / f"{alias.name}.py").exists()]
                if any(not (PACKAGE / f"{a.name}.py").exists() for a in node.names):
                    found.append((node.lineno, "__init__"))
            elif node.module.startswith("kwlesson."):
                found.append((node.lineno, node.module.split(".")[1]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[1]) for alias in node.names
                      if alias.name.startswith("kwlesson.")]
    return found


def test_every_module_has_its_place_in_the_layers():
    assert sorted(set(_modules()) - set(LAYERS)) == [], "add new modules to LAYERS"


@pytest.mark.parametrize("module", _modules())
def test_a_module_imports_only_modules_below_it(module):
    path = PACKAGE / f"{module}.py"
    rank = LAYERS.index(module)
    above = [f"line {line}: {name}" for line, name in _kwlesson_imports(ast.parse(path.read_text()))
             if name != module and LAYERS.index(name) > rank]
    assert above == [], f"kwlesson/{module}.py imports modules above it: {above}"


def _private_uses(path: Path) -> list[str]:
    """Private names taken from kwlesson modules: ``from kwlesson.x import _y`` and ``x._y``
    where ``x`` is a kwlesson module bound in the file."""
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text)
    own = path.stem if path.parent == PACKAGE else None
    modules = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "kwlesson":
            for a in node.names:
                modules[a.asname or a.name] = a.name
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("kwlesson.") and a.asname:
                    modules[a.asname] = a.name.split(".")[1]
    uses = []

    def excused(lineno: int) -> bool:
        near = lines[max(0, lineno - 2):lineno]
        return any("reaches in:" in line for line in near)

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kwlesson."):
            source = node.module.split(".")[1]
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__") and source != own \
                        and not excused(node.lineno):
                    uses.append(f"line {node.lineno}: from kwlesson.{source} import {a.name}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            source = modules.get(node.value.id)
            if source and source != own and node.attr.startswith("_") \
                    and not node.attr.startswith("__") and not excused(node.lineno):
                uses.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return uses


FILES = sorted([*PACKAGE.glob("*.py"), *(ROOT / "tests").glob("*.py"),
                *(ROOT / "benchmarks").glob("*.py"), *(ROOT / "tools").glob("*.py")])


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_no_private_name_is_used_across_modules(path):
    assert _private_uses(path) == [], (
        f"{path.relative_to(ROOT)} uses private names of other modules; make them public in "
        "their module, or say why the line reaches in ('# reaches in: ...')")


def test_the_readme_maps_every_module_in_layer_order():
    readme = (ROOT / "README.md").read_text()
    missing = [m for m in _modules() if m != "__init__" and f"  {m}.py " not in readme]
    assert missing == [], f"README's map of the library lacks {missing}"
    order = sorted((readme.index(f"  {m}.py "), m) for m in _modules() if m != "__init__")
    assert [m for _, m in order] == [m for m in LAYERS if m in _modules() and m != "__init__"]


@pytest.mark.parametrize("module", _modules())
def test_no_module_is_much_over_800_lines(module):
    # A newcomer should find a lesson's code without wading through its engineering: past
    # about 800 lines a module holds two things, and they want two names.
    lines = len((PACKAGE / f"{module}.py").read_text().splitlines())
    assert lines <= 850, f"kwlesson/{module}.py has {lines} lines: split it by role"
