"""The layers hold: every import of every module obeys the table in ``docs/architecture.md``.

The table (between ``<!-- layering-table: start -->`` and ``<!-- layering-table: end -->``) names,
per layer, the project layers it may import, the third-party packages it never imports, and those
it imports only inside functions. This test scans the source with ``ast`` (no import, no new
dependency): every ``import``/``from ... import`` anywhere in a module, at module level or inside a
function, relative imports resolved, plus literal ``importlib.import_module("...")`` calls. It also
imports the torch-free layers in a fresh interpreter and checks that torch was not loaded
indirectly.

Violations that exist today are listed, by name, in ``KNOWN_EXCEPTIONS``: the test passes with
them and fails when one disappears without leaving the list (so the list only shrinks).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARCHITECTURE = REPO / "docs" / "architecture.md"
ROOT_PACKAGE = "entrodiag"

#: Today's violations of the table, each (importing file, imported module) with the reason it is
#: still there. Remove an entry when its import is gone; the test fails on a stale entry.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Layer:
    name: str
    path: str
    may_import: frozenset[str]
    never: frozenset[str]
    not_at_module_level: frozenset[str]


@dataclass(frozen=True)
class Import:
    file: str  # path relative to the repository, with "/"
    line: int
    module: str  # absolute dotted name
    module_level: bool


def _cell_names(cell: str) -> frozenset[str]:
    cell = cell.strip().strip("`")
    if cell in ("", "—", "-"):
        return frozenset()
    return frozenset(x.strip().strip("`") for x in cell.split(","))


def read_table(text: str) -> dict[str, Layer]:
    """The layers of the architecture page's table, by name."""
    m = re.search(r"<!-- layering-table: start -->(.*?)<!-- layering-table: end -->", text, re.S)
    assert m, f"{ARCHITECTURE} has no layering table between the markers"
    rows = [line for line in m.group(1).strip().splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    assert header[:5] == ["layer", "path", "may import", "never imports", "not at module level"], header
    layers = {}
    for line in rows[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = cells[0].strip("`")
        layers[name] = Layer(name, cells[1].strip("`"), _cell_names(cells[2]), _cell_names(cells[3]),
                             _cell_names(cells[4]))
    return layers


def module_name(path: Path) -> str:
    """The dotted name a source file is imported under (``app/`` is installed as ``entrodiag.app``)."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[0] == "app":
        parts = [ROOT_PACKAGE, "app", *parts[1:]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _root_exports() -> dict[str, str]:
    """``entrodiag.__init__._EXPORTS``: the root's lazily re-exported names and their modules."""
    tree = ast.parse((REPO / ROOT_PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def _is_submodule(dotted: str) -> bool:
    base = REPO.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path, local_names: frozenset[str] = frozenset()) -> list[Import]:
    """Every import in ``path`` as absolute module names. ``from PKG import name`` becomes
    ``PKG.name`` when that is a module of the project, and a name the root re-exports becomes its
    module. ``local_names``: top-level names that resolve inside the file's own folder (app/'s
    ``import app_data``, made possible by its ``sys.path`` insert)."""
    rel = path.relative_to(REPO).as_posix()
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
    top = {id(n) for n in tree.body}
    for node in tree.body:  # module level includes if/try blocks at module level (TYPE_CHECKING, guards)
        if isinstance(node, (ast.If, ast.Try)):
            top |= {id(n) for n in ast.walk(node)}
    exports = _root_exports()
    out: list[Import] = []

    def add(name: str, node: ast.AST) -> None:
        out.append(Import(rel, node.lineno, name, id(node) in top))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                first = alias.name.split(".")[0]
                add(f"{package}.{alias.name}" if first in local_names else alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
                if source.split(".")[0] in local_names:
                    source = f"{package}.{source}"
            for alias in node.names:
                full = f"{source}.{alias.name}"
                if source == ROOT_PACKAGE and alias.name in exports:
                    add(exports[alias.name], node)
                elif source.startswith(ROOT_PACKAGE) and _is_submodule(full):
                    add(full, node)
                else:
                    add(source, node)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str) and not node.args[0].value.startswith(".")):
            add(node.args[0].value, node)
    return out


def files_of(layer: Layer) -> list[Path]:
    target = REPO / layer.path.rstrip("/")
    assert target.exists(), f"docs/architecture.md's table names {layer.path} ({layer.name}), which does not exist"
    return sorted(target.rglob("*.py")) if target.is_dir() else [target]


def layer_of(module: str, layers: dict[str, Layer]) -> str | None:
    """The layer a project module belongs to (``None`` for a third-party module); the root
    package itself is the layer ``entrodiag``."""
    parts = module.split(".")
    if parts[0] != ROOT_PACKAGE:
        return None
    if len(parts) == 1 or parts[1] == "__version__":
        return ROOT_PACKAGE
    for layer in layers.values():
        dotted = module_name(REPO / layer.path.rstrip("/")) if layer.name != ROOT_PACKAGE else ROOT_PACKAGE
        if layer.name != ROOT_PACKAGE and (module == dotted or module.startswith(dotted + ".")):
            return layer.name
    return ROOT_PACKAGE


def violations(layers: dict[str, Layer]) -> list[tuple[Import, str]]:
    """Every import that breaks the table, with the rule it breaks."""
    found = []
    for layer in layers.values():
        local = frozenset(p.stem for p in (REPO / layer.path).glob("*.py")) if layer.name == "app" else frozenset()
        for path in files_of(layer):
            for imp in imports_of(path, local):
                target = layer_of(imp.module, layers)
                top = imp.module.split(".")[0]
                if target is None:
                    if top in layer.never:
                        found.append((imp, f"{layer.name} never imports {top}"))
                    elif top in layer.not_at_module_level and imp.module_level:
                        found.append((imp, f"{layer.name} imports {top} only inside functions"))
                elif imp.module.split(".")[1:2] == ["__version__"] or imp.module == ROOT_PACKAGE:
                    continue  # the root for __version__: every layer
                elif target != layer.name and target not in layer.may_import:
                    found.append((imp, f"{layer.name} may not import {target}"))
    return found


@pytest.fixture(scope="module")
def layers() -> dict[str, Layer]:
    return read_table(ARCHITECTURE.read_text(encoding="utf-8"))


def test_table_covers_every_module(layers: dict[str, Layer]) -> None:
    """Every source file of the package and the app belongs to exactly one layer of the table."""
    covered = {path for layer in layers.values() for path in files_of(layer)}
    every = sorted((REPO / ROOT_PACKAGE).rglob("*.py")) + sorted((REPO / "app").glob("*.py"))
    assert [p.relative_to(REPO).as_posix() for p in every if p not in covered] == []
    for name, layer in layers.items():
        assert layer.may_import <= set(layers), f"{name} may import unknown layers {layer.may_import - set(layers)}"


def test_imports_follow_the_table(layers: dict[str, Layer]) -> None:
    found = violations(layers)
    new = [f"{imp.file}:{imp.line} imports {imp.module}: {rule}" for imp, rule in found
           if (imp.file, imp.module) not in KNOWN_EXCEPTIONS]
    assert new == [], "imports that break docs/architecture.md's table:\n" + "\n".join(new)
    stale = set(KNOWN_EXCEPTIONS) - {(imp.file, imp.module) for imp, _ in found}
    assert not stale, f"KNOWN_EXCEPTIONS lists imports that are gone (remove them): {sorted(stale)}"


def test_scan_catches_a_forbidden_import(layers: dict[str, Layer], tmp_path: Path, monkeypatch) -> None:
    """The scan itself: torch imported inside a function of analysis, and analysis imported by
    the store (relatively), are both found."""
    fake = tmp_path / "repo"
    for sub in ("entrodiag/analysis", "entrodiag/store", "app"):
        (fake / sub).mkdir(parents=True)
    (fake / "entrodiag" / "__init__.py").write_text("_EXPORTS = {}\n")
    (fake / "entrodiag" / "analysis" / "__init__.py").write_text("")
    (fake / "entrodiag" / "analysis" / "law.py").write_text("def f():\n    import torch.nn\n")
    (fake / "entrodiag" / "store" / "__init__.py").write_text("")
    (fake / "entrodiag" / "store" / "reader.py").write_text("from ..analysis import law\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", fake)
    sub = {k: layers[k] for k in ("analysis", "store")}
    rules = sorted(rule for _, rule in violations(sub))
    assert rules == ["analysis never imports torch", "store may not import analysis"]


def test_torch_free_layers_do_not_load_torch() -> None:
    """Importing every module of store, analysis, importers, watch and report (a fresh
    interpreter, this checkout first on the path) leaves torch and transformers unloaded."""
    code = (
        "import importlib, pkgutil, sys\n"
        "for name in ('store', 'analysis', 'importers', 'watch', 'report'):\n"
        "    pkg = importlib.import_module('entrodiag.' + name)\n"
        "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        "        importlib.import_module(pkg.__name__ + '.' + m.name)\n"
        "assert pkg.__file__.startswith(sys.argv[1]), pkg.__file__\n"
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'triton', 'streamlit') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
