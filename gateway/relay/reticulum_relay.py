"""The Reticulum relay (optional extra ``havel[reticulum]``): signed envelopes to an RNS destination.

Legal situation per interface, from the config: ``amateur = true`` (the RNS interface goes over amateur
radio) forbids encryption (AFuV 16): the relay then uses a PLAIN destination, and ``encrypt = true`` with
``amateur = true`` is refused with :class:`LegalError`. On licence-free interfaces (Freifunk, SRD 868)
encryption is allowed and on by default. Either way the envelope is signed (:mod:`envelope`).

Reticulum runs in a helper process (:mod:`rns_node`): one instance per process, main thread only, and its
licence keeps it out of the core.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from havel.errors import ConfigError, LegalError, TransportError
from havel.gateway.relay.budget import Budget
from havel.gateway.relay.envelope import sign_body, sign_json
from havel.gateway.relay.record import RelayRecord
from havel.gateway.relay.signing import Signer
from havel.gateway.settings import read

log = logging.getLogger("havel.relay.reticulum")
CHANNEL = "rns"
PLAIN_MDU = 464
ENCRYPTED_MDU = 383


def available() -> bool:
    """True when the optional ``rns`` package is importable."""
    return importlib.util.find_spec("RNS") is not None


@dataclass
class ReticulumConfig:
    """``[[relay.path]] type = "reticulum"``."""

    config_dir: str
    amateur: bool
    encrypt: bool | None = None
    destination: str | None = None  # hex hash of the crisis centre's destination (encrypted mode)
    budget_messages: int = 600
    budget_window_s: float = 3600.0

    @classmethod
    def from_config(cls, d: dict[str, Any], where: str = "relay.path (reticulum)") -> ReticulumConfig:
        """Read a ``[[relay.path]]`` table; errors name the key under ``where`` (``relay.path[0]``)."""
        if "amateur" not in d:
            raise ConfigError(
                f"{where}.amateur is missing: say whether the interface is on amateur radio",
                hint="amateur = true forbids encryption; false allows it (Freifunk, SRD)",
            )
        if "config_dir" not in d:
            raise ConfigError(f"{where}.config_dir is missing (a Reticulum config without AutoInterface)")
        # types, unknown keys and defaults from the dataclass's fields
        cfg = read(cls, {k: v for k, v in d.items() if k not in ("type", "name")}, where)
        if cfg.amateur and cfg.encrypt:
            raise LegalError(
                f"{where}: encryption is not allowed on an amateur-radio interface (AFuV 16)",
                hint="set encrypt = false, or use a licence-free interface",
            )
        if cfg.amateur:
            check_no_access_codes(Path(cfg.config_dir))
        if cfg.encrypt is None:
            cfg.encrypt = not cfg.amateur
        if cfg.encrypt and not cfg.destination:
            raise ConfigError(
                f"{where}.destination (hex hash of the receiver) is needed for encrypted sending"
            )
        return cfg

    @property
    def mdu(self) -> int:
        return ENCRYPTED_MDU if self.encrypt else PLAIN_MDU


_IFAC_KEYS = re.compile(
    r"^\s*(network_name|passphrase|pass_phrase|ifac_netname|ifac_netkey)\s*=", re.M | re.I
)


def check_no_access_codes(config_dir: Path) -> None:
    """Refuse a Reticulum config that sets interface access codes: they scramble packets (AFuV 16)."""
    conf = config_dir / "config"
    try:
        text = conf.read_text()
    except OSError as exc:
        raise ConfigError(f"Reticulum config {conf} cannot be read: {exc.strerror}") from exc
    m = _IFAC_KEYS.search(text)
    if m:
        raise LegalError(
            f"{conf}: '{m.group(1)}' sets an interface access code, which scrambles packets: "
            "not allowed on an interface marked amateur",
            hint="remove it from the RNS config",
        )


def _node_cmd(mode: str, config_dir: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "havel.gateway.relay.rns_node", mode, "--config-dir", config_dir, *extra]


class _Node:
    """The helper process and a reader thread for its lines."""

    def __init__(self, cmd: list[str], on_line: Any) -> None:
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.ready: queue.Queue[str] = queue.Queue()
        self._on_line = on_line
        self._thread = threading.Thread(target=self._read, daemon=True, name="rns-node")
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if not line.startswith("HVRNS "):
                continue
            word, _, rest = line[6:].strip().partition(" ")
            if word == "READY":
                self.ready.put(rest)
                continue
            try:
                self._on_line(word, rest)
            except Exception:  # a bug in a handler must not end the reader (and with it the path)
                log.exception("Reticulum node line %r could not be handled", line[:80])

    def wait_ready(self, timeout: float) -> str:
        try:
            return self.ready.get(timeout=timeout)
        except queue.Empty:
            raise TransportError(
                "Reticulum node did not become ready", hint="check the RNS config directory and its log file"
            ) from None

    def write(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(3)


class _SupervisedNode:
    """A helper node kept running: one that ends (crash, killed) is started again, so that a path never stays
    silent or deaf for the rest of an outage."""

    def __init__(self, spawn: Callable[[], _Node], what: str, on_restart: Callable[[], None]) -> None:
        self._spawn = spawn
        self._what = what  # for the log and the watch thread's name
        self._on_restart = on_restart
        self.node: _Node | None = None
        self.lock = threading.Lock()  # held while the node is swapped or written to
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._timeout = 30.0

    def start(self, timeout: float) -> str:
        """Start the node and its watch; returns what the node said when ready."""
        self._timeout = timeout
        self.node = self._spawn()
        ready = self.node.wait_ready(timeout)
        self._thread = threading.Thread(target=self._watch, name=f"rns-{self._what}-watch", daemon=True)
        self._thread.start()
        return ready

    def _watch(self) -> None:
        while not self._halt.wait(1.0):
            node = self.node
            if node is None or node.proc.poll() is None:
                continue
            log.error("Reticulum %s node exited (%s); restarting", self._what, node.proc.returncode)
            try:
                fresh = self._spawn()
            except OSError as exc:
                log.error("Reticulum %s node could not be restarted: %s", self._what, exc)
                continue
            try:
                fresh.wait_ready(self._timeout)
            except TransportError as exc:
                log.error("Reticulum %s node could not be restarted: %s", self._what, exc)
                fresh.stop()
                continue
            with self.lock:
                self.node = fresh
            self._on_restart()

    @property
    def pid(self) -> int | None:
        return self.node.proc.pid if self.node is not None else None

    @property
    def running(self) -> bool:
        return self.node is not None and self.node.proc.poll() is None

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.node is not None:
            self.node.stop()


class ReticulumRelay:
    """Sends signed envelopes through the helper node."""

    name = "reticulum"

    def __init__(self, cfg: ReticulumConfig, signer: Signer) -> None:
        if not available():
            raise ConfigError("the reticulum relay needs the optional extra: pip install 'havel[reticulum]'")
        self.cfg = cfg
        self.signer = signer
        self.budget = Budget(cfg.budget_messages, cfg.budget_window_s)
        self.stats = {
            "offered": 0,
            "sent": 0,
            "failed": 0,
            "oversize": 0,
            "budget_refused": 0,
            "node_down": 0,
            "restarts": 0,
        }
        self._helper = _SupervisedNode(self._spawn, "relay", self._restarted)

    def start(self, timeout: float = 40.0) -> None:
        self._helper.start(timeout)

    def _restarted(self) -> None:
        self.stats["restarts"] += 1

    def _spawn(self) -> _Node:
        extra = ["--plain"] if not self.cfg.encrypt else ["--destination", str(self.cfg.destination)]
        return _Node(_node_cmd("send", self.cfg.config_dir, *extra), self._on_line)

    def _write(self, line: str) -> bool:
        """One packet to the helper; False (counted) while it is down (the watch restarts it)."""
        with self._helper.lock:
            node = self._helper.node
            if node is None:
                return False
            try:
                node.write(line)
            except (OSError, ValueError):  # a dead helper's pipe (ValueError: closed file)
                self.stats["node_down"] += 1
                return False
        return True

    def _on_line(self, word: str, rest: str) -> None:
        if word == "SENT":
            self.stats["sent"] += 1
        elif word == "FAIL":
            self.stats["failed"] += 1
            log.warning("Reticulum relay: send failed: %s", rest)

    def offer(self, rec: RelayRecord) -> bool:
        if rec.cls not in ("alarm", "state") or self._helper.node is None:
            return False
        self.stats["offered"] += 1
        payload = sign_json(self.signer, CHANNEL, rec)
        if len(payload) > self.cfg.mdu:
            self.stats["oversize"] += 1
            log.warning(
                "Reticulum relay: %s is %d bytes, more than one packet (%d)",
                rec.id,
                len(payload),
                self.cfg.mdu,
            )
            return False
        if not self.budget.try_spend(1, rec.cls):
            self.stats["budget_refused"] += 1
            return False
        return self._write(payload.hex())

    def publish_event(self, body: dict[str, Any]) -> bool:
        """An alarm-class gateway event, as a signed envelope in one packet."""
        if self._helper.node is None:
            return False
        self.stats["offered"] += 1
        payload = sign_body(self.signer, CHANNEL, body)
        if len(payload) > self.cfg.mdu:
            self.stats["oversize"] += 1
            log.warning("Reticulum relay: event %s is %d bytes, over one packet", body["id"], len(payload))
            return False
        if not self.budget.try_spend(1, "alarm"):
            self.stats["budget_refused"] += 1
            return False
        return self._write(payload.hex())

    def publish_status(self, status: dict[str, Any]) -> None:
        """The primary path's state, as a signed envelope."""
        if self._helper.node is None:
            return
        body = {
            "kind": "status",
            "primary": status["primary"],
            "at": int(status.get("at") or 0),
            "reason": str(status.get("reason", ""))[:80],
        }
        self._write(sign_body(self.signer, CHANNEL, body).hex())

    @property
    def node_pid(self) -> int | None:
        """The helper process's id (for an operator's look, and for tests that end it)."""
        return self._helper.pid

    def stop(self) -> None:
        self._helper.stop()


class ReticulumListener:
    """The receiver's side: a listening node whose packets go to the receiver core."""

    def __init__(self, core: Any, cfg: dict[str, Any], data_dir: Path) -> None:
        if not available():
            raise ConfigError("[reticulum] needs the optional extra: pip install 'havel[reticulum]'")
        if "config_dir" not in cfg:
            raise ConfigError("receiver config: reticulum.config_dir is missing")
        amateur = cfg.get("amateur")
        if amateur is None:
            raise ConfigError(
                "receiver config: reticulum.amateur is missing (is the interface on amateur radio?)"
            )
        if amateur and cfg.get("encrypt"):
            raise LegalError("receiver config: encryption is not allowed on an amateur-radio interface")
        if amateur:
            check_no_access_codes(Path(str(cfg["config_dir"])))
        self.plain = bool(amateur) or cfg.get("encrypt") is False
        self.core = core
        self.config_dir = str(cfg["config_dir"])
        self.identity_file = str(cfg.get("identity_file") or data_dir / "rns.identity")
        self.destination_hash: str | None = None
        self.restarts = 0
        self._helper = _SupervisedNode(self._spawn, "listener", self._restarted)

    def start(self, timeout: float = 30.0) -> None:
        self.destination_hash = self._helper.start(timeout)

    def _restarted(self) -> None:
        self.restarts += 1

    def _spawn(self) -> _Node:
        extra = ["--plain"] if self.plain else ["--identity-file", self.identity_file, "--announce-s", "5"]
        return _Node(_node_cmd("listen", self.config_dir, *extra), self._on_line)

    def _on_line(self, word: str, rest: str) -> None:
        if word == "RX":
            try:
                data = bytes.fromhex(rest)
            except ValueError:
                self.core.count("reticulum", "malformed")
                return
            self.core.handle_envelope(data, "reticulum", CHANNEL)

    def stop(self) -> None:
        self._helper.stop()

    @property
    def node_pid(self) -> int | None:
        """The helper process's id (for an operator's look, and for tests that end it)."""
        return self._helper.pid

    def health(self) -> dict[str, Any]:
        return {
            "running": self._helper.running,
            "restarts": self.restarts,
            "destination": self.destination_hash,
        }
