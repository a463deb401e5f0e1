"""tools/check_private_names.py loaded for tests (a script under tools/, not a module of the package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
CHECKER = REPO / "tools" / "check_private_names.py"


def load_checker() -> ModuleType:
    """The checker module (loaded once per process)."""
    name = "check_private_names"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, CHECKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look the module up while the class is made
    spec.loader.exec_module(module)
    return module


def private_names_in(*relative: str) -> list[str]:
    """The checker's findings in these repository paths, as ``path:line:col: message`` lines."""
    checker = load_checker()
    return [str(f) for f in checker.check([REPO / r for r in relative], root=REPO)]
