"""Provisioning settings: where the registry, bundles, keys and MicroPython images are.

Read from the JSON file named by ``HAVEL_PROVISIONING_CONFIG`` or ``~/.config/havel/provisioning.json``;
every key is optional. The registry passphrase comes from ``HAVEL_REGISTRY_PASSPHRASE``, a
``passphrase_file`` (mode 0600), or a hidden prompt, never from the command line.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from havel.errors import ConfigError, SecurityError
from havel.provisioning.identity import parse_eui

HOME = Path.home()


@dataclass
class Settings:
    registry: Path = HOME / ".local/share/havel/registry.json"
    state_dir: Path = HOME / ".local/state/havel"
    label_dir: Path = HOME / "havel-labels"
    bundle_dir: Path | None = None
    trusted_keys: list[Path] = field(default_factory=list)
    join_eui: int = 0
    eui_block: str | None = None
    profile_id: str = "00000000"
    passphrase_file: Path | None = None
    micropython_images: dict[str, dict[str, str]] = field(default_factory=dict)

    def passphrase(self) -> str | None:
        env = os.environ.get("HAVEL_REGISTRY_PASSPHRASE")
        if env:
            return env
        if self.passphrase_file is not None:
            st = self.passphrase_file.stat()
            if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise SecurityError(
                    f"{self.passphrase_file} is readable by others", hint=f"chmod 600 {self.passphrase_file}"
                )
            return self.passphrase_file.read_text().strip()
        return None


def _path(v: Any, base: Path) -> Path:
    p = Path(os.path.expanduser(str(v)))
    return p if p.is_absolute() else base / p


def load(path: Path | None = None) -> Settings:
    path = path or Path(os.environ.get("HAVEL_PROVISIONING_CONFIG", HOME / ".config/havel/provisioning.json"))
    s = Settings()
    if not path.exists():
        return s
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    base = path.parent
    known = {f for f in Settings.__dataclass_fields__}
    unknown = set(d) - known
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting(s) {', '.join(sorted(unknown))}",
            hint=f"known: {', '.join(sorted(known))}",
        )
    for key in ("registry", "state_dir", "label_dir", "bundle_dir", "passphrase_file"):
        if key in d:
            setattr(s, key, _path(d[key], base))
    if "trusted_keys" in d:
        s.trusted_keys = [_path(p, base) for p in d["trusted_keys"]]
    if "join_eui" in d:
        s.join_eui = parse_eui(str(d["join_eui"]), "join_eui")
    for key in ("eui_block", "profile_id"):
        if key in d:
            setattr(s, key, str(d[key]))
    if "micropython_images" in d:
        s.micropython_images = {
            k: {"path": str(_path(v["path"], base)), "sha256": v.get("sha256", "")}
            for k, v in d["micropython_images"].items()
        }
    return s
