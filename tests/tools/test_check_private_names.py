"""tools/check_private_names.py: planted uses of other packages' private names are found, Havel's own and
documented names are not, and the host code itself (core/ codecs/ gateway/ provisioning/) passes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.private_names import CHECKER, REPO, load_checker

cpn = load_checker()


def findings(tmp_path: Path, source: str, name: str = "planted.py") -> list[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return [str(f) for f in cpn.check([tmp_path], root=tmp_path, allowed={})]


PLANTED = [
    ("from construct.core import _private", "import of a private name: from construct.core import _private"),
    ("from construct._impl import Thing", "import from a private module: from construct._impl"),
    ("import paho.mqtt._internal", "import of a private module: import paho.mqtt._internal"),
    ("import json\njson._default_encoder.encode(1)", "private name of another package: json._default_enc"),
    ("import construct as cs\ncs.core._sizeof", "private name of another package: construct.core._sizeof"),
    (
        "from paho.mqtt import client\nclient._socketpair_compat()",
        "private name of another package: paho.mqtt.client._socketpair_compat",
    ),
    ("from paho.mqtt.client import Client\nClient._packet_write", "paho.mqtt.client.Client._packet_write"),
    ("import json\ngetattr(json, '_default_decoder')", "private name of another package: json._default_dec"),
    ("import importlib\nimportlib.import_module('construct._speedups')", "import of a private module"),
    ("__import__('orjson._rs')", "import of a private module: orjson._rs"),
    # what codecs/payload/fastpath.py did to read a construct this-path
    ("def f(expr):\n    return vars(expr)['_Path__parent']", "name-mangled name in a string: '_Path__par"),
    ("def f(expr):\n    return expr._Path__field", "name-mangled attribute: ._Path__field"),
    # what gateway/jsontext.py did to skip building a JSONEncoder
    (
        "import json.encoder\nmake = getattr(json.encoder, 'c_make_encoder', None)",
        "library-internal name: json.encoder.c_make_encoder",
    ),
    ("from json.encoder import c_make_encoder", "library-internal name: json.encoder.c_make_encoder"),
    (
        "from json import encoder\nencoder.c_encode_basestring('x')",
        "library-internal name: json.encoder.c_encode_basestring",
    ),
    # what codecs/payload/base.py did in its compile() hooks: a method construct keeps for itself
    (
        "class Reading:\n    def emit(self, code):\n        return self.subcon._compileparse(code)",
        "private attribute that Havel never defines (another package's): ._compileparse",
    ),
    ("def f(client):\n    return client._out_messages", "._out_messages"),
    ("def f(client):\n    return getattr(client, '_sock', None)", "getattr(..., '_sock')"),
]


@pytest.mark.parametrize(("source", "expected"), PLANTED, ids=[p[1][:40] for p in PLANTED])
def test_planted_violations_are_found(tmp_path: Path, source: str, expected: str) -> None:
    found = findings(tmp_path, source)
    assert len(found) == 1, found
    assert expected in found[0]
    assert found[0].startswith("planted.py:")


CLEAN = [
    "from havel.codecs.payload.base import _plain\nfrom havel import _x",  # Havel's own
    "from . import _sibling\nfrom .base import _helper",
    "import construct as cs\nS = cs.Array(cs.this._header.count, cs.Int8ub)",  # fields, not construct's
    "from construct import this\nn = this._header.count",
    "class A:\n    def __init__(self):\n        self._n = 1\n\n    def n(self, o):\n        return o._n",
    "from havel import __version__\nimport json\nprint(json.__name__)",  # dunders
    "from collections import namedtuple\nP = namedtuple('P', 'a')\nP(1)._replace(a=2)._asdict()",
    "import os\nos._exit(0)",
    "from serial.tools import list_ports as _ports\n_ports.comports()",  # a private alias of a public name
    "import sys\ngetattr(sys.implementation, '_mpy', 0)",
    "from enum import Enum\n\nclass E(Enum):\n    A = 1\n\nE.A._value_",
    "x = '__init__'\ny = '_header'\nz = 'a__b'",
    "import json\nENC = json.JSONEncoder(separators=(',', ':'))\nENC.encode({})",
]


@pytest.mark.parametrize("source", CLEAN)
def test_own_and_documented_names_pass(tmp_path: Path, source: str) -> None:
    assert findings(tmp_path, source) == []


def test_a_private_name_havel_defines_elsewhere_passes(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("class Sink:\n    def __init__(self):\n        self._queue = []\n")
    (tmp_path / "b.py").write_text("def size(sink):\n    return len(sink._queue)\n")
    assert cpn.check([tmp_path], root=tmp_path, allowed={}) == []


def test_an_allowed_file_is_skipped_and_defines_nothing(tmp_path: Path) -> None:
    (tmp_path / "fast.py").write_text("def f(c):\n    c._sock = None\n    return c._sock\n")
    (tmp_path / "other.py").write_text("def g(c):\n    return c._sock\n")
    found = [str(f) for f in cpn.check([tmp_path], root=tmp_path, allowed={"fast.py": "why"})]
    assert found == ["other.py:2:11: private attribute that Havel never defines (another package's): ._sock"]


def test_the_allow_list_is_empty_and_the_host_code_is_clean() -> None:
    """No file is exempt any more, and the gateway, codecs, core and provisioning use no private name."""
    assert cpn.ALLOWED == {}
    found = [str(f) for f in cpn.check([REPO / p for p in cpn.DEFAULT_PATHS], root=REPO)]
    assert found == []


def test_unreadable_source_is_a_finding(tmp_path: Path) -> None:
    found = findings(tmp_path, "def broken(:\n")
    assert len(found) == 1 and "cannot be read" in found[0]


def test_command_line_exit_status(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import json\njson._default_encoder\n")
    (tmp_path / "good.py").write_text("import json\njson.dumps(1)\n")
    bad = subprocess.run(
        [sys.executable, str(CHECKER), str(tmp_path / "bad.py")], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1
    assert "bad.py:2:0: private name of another package: json._default_encoder" in bad.stdout
    good = subprocess.run(
        [sys.executable, str(CHECKER), str(tmp_path / "good.py")], capture_output=True, text=True, check=False
    )
    assert good.returncode == 0 and good.stdout == ""
    missing = subprocess.run(
        [sys.executable, str(CHECKER), str(tmp_path / "nope")], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_the_host_code_uses_no_private_names_of_other_packages() -> None:
    """What tools/lint.sh runs (tools/lint.d/private_names.sh): core/ codecs/ gateway/ provisioning/."""
    run = subprocess.run(
        ["bash", str(REPO / "tools" / "lint.d" / "private_names.sh")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
