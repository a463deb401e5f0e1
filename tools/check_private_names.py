"""Find uses of other packages' private names in Havel's host code (run by tools/lint.d/private_names.sh).

A library's private names (one leading underscore, or name-mangled ``_Class__x``) may change in any
release; code that uses them pins the library and breaks silently when the pin moves. This checker
reads the source with :mod:`ast` (it imports nothing) and reports, as ``path:line:col: message``:

- ``from pkg import _x``, ``from pkg._x import y``, ``import pkg._x`` (and ``importlib.import_module``
  or ``__import__`` with such a literal name);
- ``pkg._x``, ``pkg.sub._x`` and ``getattr(pkg, "_x")`` where ``pkg`` is a name imported from another
  package (a module, class or function);
- ``obj._x`` on any other object when Havel's own code never defines ``_x`` (no function, class,
  variable, argument or attribute of that name): then the name can only be another package's;
- name-mangled names (``_Path__parent``) as attributes or as whole string literals, anywhere;
- a few names without an underscore that a library keeps internal (:data:`INTERNAL`).

Havel's own names (``havel...`` imports, relative imports) are Havel's business. Dunder names
(``__version__``) and names documented as public despite the underscore (:data:`DOCUMENTED`) pass.
A file may be exempted only by :data:`ALLOWED`, with the reason next to it.

Usage: ``python tools/check_private_names.py [PATH ...]`` (default: core codecs gateway provisioning);
exit status 1 when something is found.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PATHS = ("core", "codecs", "gateway", "provisioning")
OWN_PACKAGE = "havel"

#: Files exempted (repository-relative, with the reason). Keep this list short and temporary.
ALLOWED: dict[str, str] = {}

#: Names that are internal to their library although they carry no underscore (not in its documented
#: API): the standard library json package's C accelerators and their pure-Python twins.
INTERNAL = frozenset(
    {
        "json.encoder.c_make_encoder",
        "json.encoder.c_encode_basestring",
        "json.encoder.c_encode_basestring_ascii",
        "json.encoder.py_encode_basestring",
        "json.encoder.py_encode_basestring_ascii",
        "json.scanner.c_make_scanner",
        "json.scanner.py_make_scanner",
        "json.decoder.c_scanstring",
        "json.decoder.py_scanstring",
    }
)

#: Underscore names that their library documents as public API: collections.namedtuple's methods and
#: fields; os._exit; sys.implementation's implementation-specific attributes, which must start with an
#: underscore (sys docs) and which MicroPython documents (read on the board by provisioning/device/fsutil.py).
DOCUMENTED = frozenset(
    ("_asdict", "_replace", "_fields", "_field_defaults", "_make", "_exit", "_machine", "_mpy")
)

#: Imported objects whose attributes are not the library's own: a construct ``this`` path names the
#: fields of the caller's Struct (``this._header.count``), whatever they are called.
FIELD_PATHS = ("construct.this", "construct.expr.this")

_MANGLED = re.compile(r"_[A-Za-z0-9][A-Za-z0-9_]*__[A-Za-z0-9_]*[A-Za-z0-9]")


def is_private(name: str) -> bool:
    """One leading underscore, not a dunder (``__x__``) or an enum sunder (``_x_``), not documented."""
    if not name.startswith("_") or name == "_":
        return False
    if name.startswith("__") and name.endswith("__"):
        return False
    if len(name) > 2 and name.endswith("_") and not name.endswith("__") and name[1] != "_":
        return False  # _value_, _missing_: enum's documented hooks
    return name not in DOCUMENTED


def is_mangled(name: str) -> bool:
    """``_Class__attr``: what Python makes of ``__attr`` inside ``class Class``."""
    return _MANGLED.fullmatch(name) is not None and not name.endswith("__")


def _private_part(dotted: str) -> str | None:
    for part in dotted.split("."):
        if is_private(part):
            return part
    return None


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


def _is_own(module: str | None, level: int) -> bool:
    return level > 0 or module is None or module == OWN_PACKAGE or module.startswith(OWN_PACKAGE + ".")


def own_definitions(trees: Iterable[ast.AST]) -> set[str]:
    """Every name Havel's code defines: functions, classes, variables, arguments, attributes it assigns,
    keyword arguments, ``__slots__`` entries and import aliases."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.arg | ast.keyword) and node.arg is not None:
                names.add(node.arg)
            elif isinstance(node, ast.alias) and node.asname is not None:
                names.add(node.asname)
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
            ):
                names.update(
                    c.value
                    for c in ast.walk(node.value)
                    if isinstance(c, ast.Constant) and isinstance(c.value, str)
                )
    return names


class _Checker(ast.NodeVisitor):
    def __init__(self, path: str, own: set[str]) -> None:
        self.path = path
        self.own = own
        self.findings: list[Finding] = []
        self.imported: dict[str, str] = {}  # a local name bound by an import of another package -> dotted

    def report(self, node: ast.AST, message: str) -> None:
        self.findings.append(
            Finding(self.path, getattr(node, "lineno", 0), getattr(node, "col_offset", 0), message)
        )

    # --- imports ------------------------------------------------------------------------------------

    def collect_imports(self, tree: ast.AST) -> None:
        """The names imports bind, wherever they are (a function's late import counts too)."""
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if _is_own(a.name, 0):
                        continue
                    if a.asname is not None:
                        self.imported[a.asname] = a.name
                    else:
                        root = a.name.split(".")[0]
                        self.imported[root] = root
            elif isinstance(node, ast.ImportFrom) and not _is_own(node.module, node.level):
                for a in node.names:
                    if a.name != "*":
                        self.imported[a.asname or a.name] = f"{node.module}.{a.name}"

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            part = _private_part(a.name)
            if part is not None and not _is_own(a.name, 0):
                self.report(node, f"import of a private module: import {a.name}")
            if a.name in INTERNAL:
                self.report(node, f"import of a library-internal name: {a.name}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if _is_own(node.module, node.level):
            return
        module = node.module or ""
        if _private_part(module) is not None:
            self.report(node, f"import from a private module: from {module} import ...")
        for a in node.names:
            if is_private(a.name) or is_mangled(a.name):
                self.report(node, f"import of a private name: from {module} import {a.name}")
            elif f"{module}.{a.name}" in INTERNAL:
                self.report(node, f"import of a library-internal name: {module}.{a.name}")

    # --- attributes ---------------------------------------------------------------------------------

    def dotted(self, node: ast.expr) -> str | None:
        """``a.b.c`` as the imported dotted name it refers to, when ``a`` was imported from elsewhere."""
        attrs: list[str] = []
        while isinstance(node, ast.Attribute):
            attrs.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in self.imported:
            return None
        return ".".join([self.imported[node.id], *reversed(attrs)])

    def check_dotted(self, node: ast.AST, base: str, attr: str) -> bool:
        """Report ``base.attr`` (``base`` an imported dotted name) if it is private; True if reported."""
        if any(base == p or base.startswith(p + ".") for p in FIELD_PATHS):
            return False
        full = f"{base}.{attr}"
        if is_private(attr):
            self.report(node, f"private name of another package: {full}")
            return True
        if full in INTERNAL:
            self.report(node, f"library-internal name: {full}")
            return True
        return False

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if is_mangled(node.attr):
            self.report(node, f"name-mangled attribute: .{node.attr}")
        else:
            base = self.dotted(node.value)
            reported = base is not None and self.check_dotted(node, base, node.attr)
            if base is None and not reported and is_private(node.attr) and node.attr not in self.own:
                self.report(
                    node, f"private attribute that Havel never defines (another package's): .{node.attr}"
                )
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else None
        first = node.args[0] if node.args else None
        second = node.args[1] if len(node.args) > 1 else None
        if (
            name in ("getattr", "hasattr", "setattr", "delattr")
            and isinstance(second, ast.Constant)
            and isinstance(second.value, str)
            and first is not None
        ):
            base = self.dotted(first)
            attr = second.value
            if is_mangled(attr):
                pass  # reported as a string literal below
            elif base is not None:
                self.check_dotted(node, base, attr)
            elif is_private(attr) and attr not in self.own:
                self.report(
                    node,
                    f"private attribute that Havel never defines (another package's): {name}(..., {attr!r})",
                )
        target = self.dotted(func) if isinstance(func, ast.Attribute) else None
        if (
            (name == "__import__" or target == "importlib.import_module")
            and isinstance(first, ast.Constant)
            and isinstance(first.value, str)
            and not _is_own(first.value, 0)
            and _private_part(first.value) is not None
        ):
            self.report(node, f"import of a private module: {first.value}")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and is_mangled(node.value):
            self.report(node, f"name-mangled name in a string: {node.value!r}")


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    for p in paths:
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*.py") if "__pycache__" not in f.parts)
        elif p.suffix == ".py":
            yield p


def _label(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def check(paths: Iterable[Path], root: Path = REPO, allowed: dict[str, str] | None = None) -> list[Finding]:
    """The findings in the Python files under ``paths`` (files in ``allowed``, relative to ``root``, are
    skipped, and what they define does not count as Havel's: they may be copies of another package's
    private code)."""
    allowed = ALLOWED if allowed is None else allowed
    parsed: list[tuple[str, ast.AST]] = []
    findings: list[Finding] = []
    for f in iter_files(paths):
        label = _label(f, root)
        try:
            parsed.append((label, ast.parse(f.read_text(encoding="utf-8"), filename=str(f))))
        except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
            findings.append(Finding(label, getattr(exc, "lineno", 0) or 0, 0, f"cannot be read: {exc}"))
    parsed = [(label, tree) for label, tree in parsed if label not in allowed]
    own = own_definitions(tree for _, tree in parsed)
    for label, tree in parsed:
        checker = _Checker(label, own)
        checker.collect_imports(tree)
        checker.visit(tree)
        findings += sorted(checker.findings, key=lambda x: (x.line, x.col))
    return findings


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or [REPO / d for d in DEFAULT_PATHS]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"check_private_names: no such file or folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    findings = check(paths)
    for f in findings:
        print(f)
    if findings:
        print(
            f"check_private_names: {len(findings)} use(s) of another package's private names "
            "(use its public API instead)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
