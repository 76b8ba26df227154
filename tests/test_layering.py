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

Two more rules of the package's layout, from the same scan: no private name (a module or a name
whose own name starts with ``_``) is imported across modules, and the module-level imports of
``entrodiag/`` form no circle.
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

#: Names that start with ``_`` and are not private: ``__init__``, the version and ``__future__``.
PUBLIC_DUNDERS = frozenset({"__init__", "__version__", "__future__"})

#: Other packages' private names the package imports, each (importing file, imported name) with
#: the reason. The project's own private names are never imported across modules (no exceptions):
#: make the name public in the module that owns it, or move the code to where its users meet.
THIRD_PARTY_PRIVATE: dict[tuple[str, str], str] = {
    ("entrodiag/report/build.py", "matplotlib.backends._backend_pdf_ps"):
        "the PDF backend's own reference to fontTools.subset, swapped within one block for a subset "
        "without layout tables (a quarter of the report's time); where matplotlib moves it, nothing changes",
}


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


# ----------------------------------------------------------------------------- private names
def _resolved(node: ast.ImportFrom, package: str) -> str:
    """The absolute module of a ``from ... import``."""
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _private(dotted: str) -> bool:
    return any(part.startswith("_") and part not in PUBLIC_DUNDERS for part in dotted.split("."))


def private_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, name)`` for every import in ``path`` (module level or inside a function) of a
    private name: ``from X import _name``, or a module any part of whose dotted name starts with
    ``_`` (``from ._common import x``, ``import a._b``, ``importlib.import_module("a._b")``)."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if _private(a.name)]
        elif isinstance(node, ast.ImportFrom):
            source = _resolved(node, package)
            found += [(node.lineno, f"{source}.{a.name}") for a in node.names
                      if _private(source) or _private(a.name)]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str) and _private(node.args[0].value)):
            found.append((node.lineno, node.args[0].value))
    return found


def _private_name_findings() -> list[tuple[str, int, str]]:
    """``(file, line, name)`` of every private import in ``entrodiag/``."""
    return [(path.relative_to(REPO).as_posix(), line, name)
            for path in sorted((REPO / ROOT_PACKAGE).rglob("*.py")) for line, name in private_imports(path)]


def test_no_private_name_is_imported_across_modules() -> None:
    """No module of the package imports another module's private name, nor a private module;
    other packages' private names only where ``THIRD_PARTY_PRIVATE`` says why."""
    found = _private_name_findings()
    allowed = {(f, name) for f, name in THIRD_PARTY_PRIVATE if name.split(".")[0] != ROOT_PACKAGE}
    bad = [f"{f}:{line} imports {name}" for f, line, name in found if (f, name) not in allowed]
    assert bad == [], "private names imported across modules (make them public where they live):\n" + "\n".join(bad)
    stale = set(THIRD_PARTY_PRIVATE) - {(f, name) for f, _, name in found}
    assert not stale, f"THIRD_PARTY_PRIVATE lists imports that are gone (remove them): {sorted(stale)}"


# ----------------------------------------------------------------------------- import circles
def _type_checking_lines(tree: ast.Module) -> set[int]:
    """Lines inside a module-level ``if TYPE_CHECKING:`` block (never run)."""
    lines: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                lines.update(range(sub.lineno, (sub.end_lineno or sub.lineno) + 1))
    return lines


def _existing_module(dotted: str, modules: set[str]) -> str | None:
    """The project module that ``dotted`` names, or holds the name it names (``a.b.func`` -> ``a.b``)."""
    while dotted:
        if dotted in modules:
            return dotted
        dotted = dotted.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports at module level (what runs when it is imported):
    the imported module and the packages above it that the importer is not itself inside, so that
    their ``__init__`` runs too. Imports inside functions and under ``TYPE_CHECKING`` are left out."""
    paths = sorted((REPO / ROOT_PACKAGE).rglob("*.py"))
    modules = {module_name(p) for p in paths}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for path in paths:
        mod = module_name(path)
        inside = {".".join(mod.split(".")[:i]) for i in range(1, mod.count(".") + 2)}
        skip = _type_checking_lines(ast.parse(path.read_text(encoding="utf-8")))
        for imp in imports_of(path):
            target = _existing_module(imp.module, modules)
            if not imp.module_level or imp.line in skip or target is None:
                continue
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                dotted = ".".join(parts[:i])
                if dotted not in inside and dotted != mod:
                    graph[mod].add(dotted)
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str]:
    """One circle of ``graph`` as ``[a, b, ..., a]``, or ``[]`` when it has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (circle := visit(nxt)):
                return circle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (circle := visit(node)):
            return circle
    return []


def test_no_import_circle() -> None:
    """The module-level imports of ``entrodiag/`` form no circle (imports inside functions run
    later and are not counted)."""
    graph = import_graph()
    assert sum(map(len, graph.values())) > 100, "the import graph is implausibly small"
    assert find_circle(graph) == [], " -> ".join(find_circle(graph))


def test_private_and_circle_scans_catch_their_cases(tmp_path: Path, monkeypatch) -> None:
    """The two scans themselves, on a made-up package: a private module, a private name and a
    private module in ``import_module`` are found, a third-party private name too (it needs a
    reason); two modules importing each other at module level form a circle, an import inside
    a function or under ``TYPE_CHECKING`` does not."""
    pkg = tmp_path / "repo" / "entrodiag"
    (pkg / "analysis").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from __future__ import annotations\n")
    (pkg / "analysis" / "__init__.py").write_text("")
    (pkg / "analysis" / "_hidden.py").write_text("x = 1\n")
    (pkg / "analysis" / "a.py").write_text(
        "from __future__ import annotations\nfrom typing import TYPE_CHECKING\nfrom . import b\n"
        "from ._hidden import x\nfrom .b import _helper\nimport importlib\n"
        "from matplotlib.backends import _backend_pdf_ps\nif TYPE_CHECKING:\n    from . import c\n"
        "def f():\n    return importlib.import_module('entrodiag.analysis._hidden')\n")
    (pkg / "analysis" / "b.py").write_text("from entrodiag import __version__\nfrom .a import f\n"
                                           "def _helper():\n    from . import c\n")
    (pkg / "analysis" / "c.py").write_text("from .a import f\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path / "repo")
    assert [(f, name) for f, _, name in _private_name_findings()] == [
        ("entrodiag/analysis/a.py", "entrodiag.analysis._hidden.x"),
        ("entrodiag/analysis/a.py", "entrodiag.analysis.b._helper"),
        ("entrodiag/analysis/a.py", "matplotlib.backends._backend_pdf_ps"),
        ("entrodiag/analysis/a.py", "entrodiag.analysis._hidden"),
    ]
    graph = import_graph()
    assert graph["entrodiag.analysis.c"] == {"entrodiag.analysis.a"}
    assert find_circle(graph) == ["entrodiag.analysis.a", "entrodiag.analysis.b", "entrodiag.analysis.a"]
    (pkg / "analysis" / "b.py").write_text("def f():\n    from .a import f\n")
    assert find_circle(import_graph()) == []


#: a module grows past this many lines only with a reason written here (none today)
MAX_MODULE_LINES = 500


def test_no_module_over_the_line_limit() -> None:
    """One file, one job: a module over ``MAX_MODULE_LINES`` lines is split by job (see
    docs/architecture.md) before it grows further."""
    long = {
        str(p.relative_to(REPO)): n
        for p in sorted((REPO / ROOT_PACKAGE).rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
