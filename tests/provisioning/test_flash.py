"""Bundle building, signing and flashing through the real mpremote transport to the virtual board."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from havel.errors import ConfigError, InputError, SecurityError, StorageError
from havel.provisioning import bundle, flash, signing
from havel.provisioning.transport import Board

SCENARIO: dict[str, Any] = {"unique_id": "a4cf12fe0c01"}


def build(fw: Path, out: Path, key: Any, app: str = "air") -> bundle.Manifest:
    return bundle.build_bundle(fw, app, out, signing_key=key)


def test_bundle_holds_mpy_modules_boot_main_as_source_and_no_host_files(
    firmware_tree: Path, tmp_path: Path, signing_key: Any
) -> None:
    m = build(firmware_tree, tmp_path / "b", signing_key)
    paths = {f.path for f in m.files}
    assert paths - {"radio/__init__.mpy", "radio/sx1262.mpy", "radio/sx1276.mpy"} == {
        "boot.py",
        "main.py",
        "config.mpy",
        "lw/__init__.mpy",
        "lw/mac.mpy",
        "lw/crypto.mpy",
        "apps/__init__.mpy",
        "apps/air.mpy",
    }
    assert (tmp_path / "b/files/lw/mac.mpy").read_bytes()[:1] == b"M"  # mpy header
    assert "mpy-cross" in m.mpy_cross
    assert bundle.verify_bundle(tmp_path / "b", [signing_key.public_key()]).files == m.files


def test_mpy_cross_rejects_what_micropython_cannot_parse(firmware_tree: Path, tmp_path: Path) -> None:
    (firmware_tree / "lw/mac.py").write_text(
        "def f(x, /):\n    match x:\n        case 1:\n            return 2\n"
    )
    with pytest.raises(InputError, match=r"mpy-cross rejected lw/mac\.py"):
        bundle.build_bundle(firmware_tree, "air", tmp_path / "b", signing_key=None)


def test_unknown_app_is_a_config_error(firmware_tree: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'cooling' is not in firmware/bundle\.json"):
        bundle.build_bundle(firmware_tree, "cooling", tmp_path / "b", signing_key=None)


@pytest.mark.timeout(60)
def test_flash_then_reflash_copies_only_the_changed_file(
    firmware_tree: Path, tmp_path: Path, signing_key: Any, start_board: Callable[..., Any]
) -> None:
    vb = start_board(SCENARIO)
    out = tmp_path / "bundle"
    m = build(firmware_tree, out, signing_key)
    with Board(vb.path, timeout=10) as link:
        rep = flash.flash_bundle(
            link,
            out,
            bundle.verify_bundle(out, [signing_key.public_key()]),
        )
        assert sorted(rep.copied) == sorted(f.path for f in m.files)
        assert rep.payload_bytes == m.total_bytes
        # The flashed .mpy modules import and run on the board's real MicroPython.
        assert link.exec("import apps.air\nprint(apps.air.run())").strip() == b"42"
        installed = flash.installed_manifest(link)
        assert installed is not None and installed.files == m.files

        rep2 = flash.flash_bundle(link, out, m)
        assert rep2.copied == [] and len(rep2.unchanged) == len(m.files)

        (firmware_tree / "lw/mac.py").write_text(
            "from micropython import const\n_X = const(5)\n\n\ndef triple(x):\n    return x * _X\n"
        )
        m3 = build(firmware_tree, out, signing_key)
        rep3 = flash.flash_bundle(link, out, bundle.verify_bundle(out, [signing_key.public_key()]))
        assert rep3.copied == ["lw/mac.mpy"]
        link.soft_reset()  # forget the imported modules; files survive a soft reset
        assert link.exec("import apps.air\nprint(apps.air.run())").strip() == b"70"
        have = flash.board_hashes(link, [f.path for f in m3.files])
        assert have == {f.path: f.sha256 for f in m3.files}


@pytest.mark.timeout(60)
def test_interrupted_flash_is_finished_by_the_next_run(
    firmware_tree: Path, tmp_path: Path, signing_key: Any, start_board: Callable[..., Any]
) -> None:
    vb = start_board(SCENARIO)
    out = tmp_path / "bundle"
    m = build(firmware_tree, out, signing_key)
    with Board(vb.path) as link:
        # Half a file written, as when the cable is pulled: only the .part exists, no manifest.
        link.call("fsutil", "hv_open", "lw/crypto.mpy")
        link.call("fsutil", "hv_write", "AAAA")
        assert flash.installed_manifest(link) is None
        rep = flash.flash_bundle(link, out, m)
        assert "lw/crypto.mpy" in rep.copied
        assert flash.installed_manifest(link) is not None


def test_tampered_file_is_refused(firmware_tree: Path, tmp_path: Path, signing_key: Any) -> None:
    out = tmp_path / "b"
    build(firmware_tree, out, signing_key)
    p = out / "files/lw/mac.mpy"
    data = bytearray(p.read_bytes())
    data[-1] ^= 1
    p.write_bytes(bytes(data))
    with pytest.raises(SecurityError, match=r"lw/mac\.mpy .* altered"):
        bundle.verify_bundle(out, [signing_key.public_key()])
    # --unsigned does not excuse a file that differs from its own manifest
    with pytest.raises(SecurityError):
        bundle.verify_bundle(out, [], allow_unsigned=True)


def test_altered_manifest_fails_the_signature(firmware_tree: Path, tmp_path: Path, signing_key: Any) -> None:
    out = tmp_path / "b"
    build(firmware_tree, out, signing_key)
    # Someone swaps a file AND fixes up its hash in the manifest: the signature catches it.
    (out / "files/apps/air.mpy").write_bytes(b"M\x06evil")
    doc = json.loads((out / "manifest.json").read_text())
    import hashlib

    for f in doc["files"]:
        if f["path"] == "apps/air.mpy":
            f["sha256"] = hashlib.sha256(b"M\x06evil").hexdigest()
            f["size"] = 6
    (out / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(SecurityError, match="signature"):
        bundle.verify_bundle(out, [signing_key.public_key()])


def test_unsigned_bundle_refused_unless_told(firmware_tree: Path, tmp_path: Path, signing_key: Any) -> None:
    out = tmp_path / "b"
    m = bundle.build_bundle(firmware_tree, "air", out, signing_key=None)
    with pytest.raises(SecurityError, match="not signed"):
        bundle.verify_bundle(out, [signing_key.public_key()])
    assert bundle.verify_bundle(out, [], allow_unsigned=True).files == m.files


def test_bundle_signed_by_another_key_is_refused(
    firmware_tree: Path, tmp_path: Path, signing_key: Any
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out = tmp_path / "b"
    build(firmware_tree, out, Ed25519PrivateKey.generate())
    with pytest.raises(SecurityError, match="does not verify"):
        bundle.verify_bundle(out, [signing_key.public_key()])


def test_signing_key_files(tmp_path: Path) -> None:
    priv = tmp_path / "keys/city.pem"
    pub = signing.generate_signing_key(priv)
    assert priv.stat().st_mode & 0o777 == 0o600
    k = signing.load_private_key(priv)
    assert signing.key_id(signing.load_public_key(pub)) == signing.key_id(k.public_key())
    before = priv.read_bytes()
    with pytest.raises(StorageError, match="exists already"):
        signing.generate_signing_key(priv)
    assert priv.read_bytes() == before


def test_bundle_for_one_radio_and_the_board_check(firmware_tree: Path, tmp_path: Path) -> None:
    from havel.provisioning.kits import load_board

    m = bundle.build_bundle(firmware_tree, "air", tmp_path / "b", signing_key=None, radios=["sx1262"])
    paths = {f.path for f in m.files}
    assert "radio/sx1262.mpy" in paths and "radio/sx1276.mpy" not in paths and m.radios == ["sx1262"]
    flash.check_radio(m, load_board("heltec_wifi_lora_32_v3"))  # SX1262: fine
    with pytest.raises(ConfigError, match="has an sx1276"):
        flash.check_radio(m, load_board("ttgo_lora32"))
    every = bundle.build_bundle(firmware_tree, "air", tmp_path / "all", signing_key=None)
    assert every.radios == ["sx1262", "sx1276"]
    flash.check_radio(every, load_board("ttgo_lora32"))
    with pytest.raises(ConfigError, match="no driver for radio 'llcc68'"):
        bundle.build_bundle(firmware_tree, "air", tmp_path / "x", signing_key=None, radios=["llcc68"])


@pytest.mark.timeout(60)
def test_file_swapped_after_verification_never_reaches_the_board(
    firmware_tree: Path, tmp_path: Path, signing_key: Any, start_board: Callable[..., Any]
) -> None:
    vb = start_board(SCENARIO)
    out = tmp_path / "bundle"
    build(firmware_tree, out, signing_key)
    m = bundle.verify_bundle(out, [signing_key.public_key()])
    # Between the check and the copy, someone (or a sync tool) swaps a file in the bundle folder.
    evil = b"M\x06 swapped after the check"
    (out / "files/lw/mac.mpy").write_bytes(evil)
    with Board(vb.path, timeout=10) as link:
        with pytest.raises(SecurityError, match="changed after the bundle was checked"):
            flash.flash_bundle(link, out, m)
        # Nothing of the bundle was written: not the swapped file, not the others.
        have = flash.board_hashes(link, [f.path for f in m.files])
        assert set(have.values()) == {None}
        assert link.call("fsutil", "hv_read_text", "lw/mac.mpy") is None


@pytest.mark.timeout(60)
def test_older_bundle_is_refused_unless_allowed(
    firmware_tree: Path, tmp_path: Path, signing_key: Any, start_board: Callable[..., Any]
) -> None:
    vb = start_board(SCENARIO)
    trusted = [signing_key.public_key()]
    new, old, unversioned = tmp_path / "new", tmp_path / "old", tmp_path / "unversioned"
    bundle.build_bundle(firmware_tree, "air", new, signing_key=signing_key, version="1.10.0")
    (firmware_tree / "apps/air.py").write_text("def run():\n    return 'old'\n")
    bundle.build_bundle(firmware_tree, "air", old, signing_key=signing_key, version="1.9.3")
    # A bundle signed before versions were recorded: no "version" in its manifest.
    bundle.build_bundle(firmware_tree, "air", unversioned, signing_key=None)
    doc = json.loads((unversioned / "manifest.json").read_text())
    del doc["version"]
    (unversioned / "manifest.json").write_text(json.dumps(doc))
    bundle.sign_manifest(unversioned, signing_key)
    with Board(vb.path, timeout=10) as link:
        flash.flash_bundle(link, new, bundle.verify_bundle(new, trusted))
        for older in (old, unversioned):
            m_old = bundle.verify_bundle(older, trusted)
            with pytest.raises(SecurityError, match=r"older than version 1\.10\.0"):
                flash.flash_bundle(link, older, m_old)
            installed = flash.installed_manifest(link)
            assert installed is not None and installed.version == "1.10.0"  # 1.10 > 1.9: numbers, not text
            assert link.exec("import apps.air\nprint(apps.air.run())").strip() == b"42"
        rep = flash.flash_bundle(link, old, bundle.verify_bundle(old, trusted), allow_downgrade=True)
        assert rep.copied == ["apps/air.mpy"]
        installed = flash.installed_manifest(link)
        assert installed is not None and installed.version == "1.9.3"
        # the same version again, and a newer one, need no permission
        assert flash.flash_bundle(link, old, bundle.verify_bundle(old, trusted)).copied == []
        assert flash.flash_bundle(link, new, bundle.verify_bundle(new, trusted)).copied == ["apps/air.mpy"]


def test_bundle_version_must_be_dotted_numbers(firmware_tree: Path, tmp_path: Path) -> None:
    for bad in ("", "1.x", "v1.2", "1.2.3.4.5", "1..2"):
        with pytest.raises(InputError):
            bundle.build_bundle(firmware_tree, "air", tmp_path / "b", signing_key=None, version=bad)
    assert bundle.parse_version("1.10.0") > bundle.parse_version("1.9.3")


@pytest.mark.parametrize(
    "path",
    [
        "../evil.py",
        "/boot.py",
        "lw/../../evil.py",
        "lw/..",
        "./main.py",
        "lw//mac.mpy",
        "lw\\mac.mpy",
        "..\\evil.py",
        "C:evil.py",
        "lw/mac.mpy\x00.txt",
        "",
        "havel_manifest.json",
    ],
)
def test_manifest_paths_outside_the_bundle_are_refused(
    firmware_tree: Path, tmp_path: Path, signing_key: Any, path: str
) -> None:
    """Even with a good signature (a mistake or a stolen key at the city) and a hash that matches the
    file the path points to, a path that could leave the bundle or the board's folder is refused."""
    import hashlib

    out = tmp_path / "b"
    build(firmware_tree, out, signing_key)
    target = out / "evil.py"  # what "../evil.py" reaches from out/files
    target.write_bytes(b"print('evil')\n")
    doc = json.loads((out / "manifest.json").read_text())
    data = target.read_bytes()
    doc["files"].append({"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    (out / "manifest.json").write_text(json.dumps(doc))
    sign_raw(out, doc, signing_key)
    with pytest.raises(SecurityError):
        bundle.verify_bundle(out, [signing_key.public_key()])


def sign_raw(out: Path, doc: dict[str, Any], key: Any) -> None:
    """Sign a manifest as the city's tool does (canonical JSON), without reading it through Manifest."""
    import base64

    sig = key.sign(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    (out / "manifest.sig").write_text(json.dumps({"alg": "Ed25519", "sig": base64.b64encode(sig).decode()}))


def test_manifest_listing_a_file_twice_is_refused(firmware_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    m = bundle.build_bundle(firmware_tree, "air", out, signing_key=None)
    doc = m.to_dict()
    doc["files"].append(doc["files"][0])
    with pytest.raises(SecurityError, match="twice"):
        bundle.Manifest.from_dict(doc)
