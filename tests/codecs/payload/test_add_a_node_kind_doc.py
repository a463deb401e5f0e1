"""docs/add-a-node-kind.md stays true: the per-kind files it names exist for every kind of the registry, and
the files it lists for the soil kind are exactly the files of the repository that name that kind."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from havel.codecs.payload import KIND_NAMES

REPO = Path(__file__).resolve().parents[3]
GUIDE = (REPO / "docs" / "add-a-node-kind.md").read_text(encoding="utf-8")
_PATH = re.compile(r"`((?:codecs|firmware|hw|tests|bench|docs|gateway)/[\w<>./-]+\.(?:py|json|md))`")
# besides the listed files, the kind may be named in prose (documents), in tests that use the word for
# a codec of their own, and in black-box tests written from the documents (they name every kind by hand)
_PROSE = (
    "tests/gateway/upstream/acceptance/test_bb_formatters.py",
    "docs/",
    "README.md",
    "tests/codecs/payload/test_jsexport.py",
    "tests/codecs/payload/test_payload_layout_doc.py",
    "tests/codecs/payload/test_add_a_node_kind_doc.py",
)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_every_per_kind_file_the_guide_names_exists(kind: str) -> None:
    paths = {m for m in _PATH.findall(GUIDE) if "<kind>" in m}
    assert len(paths) >= 6, paths
    for p in paths:
        assert (REPO / p.replace("<kind>", kind)).is_file(), (kind, p)


def test_every_shared_file_the_guide_names_exists() -> None:
    for p in _PATH.findall(GUIDE):
        if "<" not in p:
            assert (REPO / p).is_file(), p


def test_the_soil_kind_touched_only_the_files_the_guide_lists() -> None:
    proof = GUIDE[GUIDE.index("## The soil kind, as the proof") :]
    listed = {p for p in _PATH.findall(proof) if not p.startswith(_PROSE)}
    named = subprocess.run(
        ["git", "grep", "--untracked", "-l", "-i", "-w", "soil", "--", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    named_here = {p for p in named if not p.startswith(_PROSE) and not p.endswith(_PROSE)}
    assert named_here == listed
