"""A Reticulum node in its own process, driven over stdin/stdout (one line per message, hex payloads).

Reticulum allows one instance per process, created in the main thread, and its licence is not
OSI-approved: so the gateway and the receiver never import it themselves; they start this helper
(``python -m havel.gateway.relay.rns_node``) only when the ``havel[reticulum]`` extra is installed.

Protocol (lines on stdout start with ``HVRNS``; Reticulum's own log goes to its log file):
- ``listen``: prints ``HVRNS READY <destination hash hex>``, then ``HVRNS RX <hex>`` per packet received.
- ``send``: prints ``HVRNS READY <destination hash hex>`` at once, then reads hex lines from stdin and
  answers ``HVRNS SENT <n>`` or ``HVRNS FAIL <n> <why>`` (encrypted mode: the path to the receiver is
  requested at start and looked for again, up to ``--path-timeout-s``, while it is unknown).
Modes: ``--plain`` (a PLAIN destination: clear text, one hop; what amateur-radio interfaces allow) or
encrypted SINGLE destinations (licence-free interfaces only).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

APP = "havel"
ASPECTS = ("relay", "v1")


def _out(line: str) -> None:
    sys.stdout.write(f"HVRNS {line}\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rns_node")
    ap.add_argument("mode", choices=["listen", "send"])
    ap.add_argument("--config-dir", required=True)
    ap.add_argument("--identity-file")
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--destination", help="hex hash of the receiver (encrypted send)")
    ap.add_argument("--announce-s", type=float, default=30.0)
    ap.add_argument("--path-timeout-s", type=float, default=15.0)
    args = ap.parse_args(argv)

    import RNS

    RNS.Reticulum(configdir=args.config_dir, logdest=RNS.LOG_FILE, loglevel=RNS.LOG_INFO)
    if args.mode == "listen":
        return _listen(RNS, args)
    return _send(RNS, args)


def _identity(rns: Any, path: str | None) -> Any:
    import os

    if path and os.path.exists(path):
        return rns.Identity.from_file(path)
    ident = rns.Identity()
    if path:
        ident.to_file(path)
        os.chmod(path, 0o600)
    return ident


def _listen(rns: Any, args: argparse.Namespace) -> int:
    if args.plain:
        dest = rns.Destination(None, rns.Destination.IN, rns.Destination.PLAIN, APP, *ASPECTS)
    else:
        ident = _identity(rns, args.identity_file)
        dest = rns.Destination(ident, rns.Destination.IN, rns.Destination.SINGLE, APP, *ASPECTS)
        dest.set_proof_strategy(rns.Destination.PROVE_ALL)

    def on_packet(data: bytes, packet: Any) -> None:
        _out(f"RX {bytes(data).hex()}")

    dest.set_packet_callback(on_packet)
    _out(f"READY {dest.hash.hex()}")
    stop = threading.Event()

    def stdin_watch() -> None:  # the parent closing our stdin means: stop
        sys.stdin.read()
        stop.set()

    threading.Thread(target=stdin_watch, daemon=True).start()
    while not stop.is_set():
        if not args.plain:
            dest.announce()
        stop.wait(args.announce_s)
    return 0


def _send(rns: Any, args: argparse.Namespace) -> int:
    if args.plain:
        dest: Any = rns.Destination(None, rns.Destination.OUT, rns.Destination.PLAIN, APP, *ASPECTS)
        _out(f"READY {dest.hash.hex()}")
    else:
        if not args.destination:
            print("rns_node: --destination is required for encrypted sending", file=sys.stderr)
            return 2
        dest_hash = bytes.fromhex(args.destination)
        dest = None
        # Ready at once: the mesh may be down when the gateway starts. The path is looked for now and
        # again before each packet while it is unknown.
        rns.Transport.request_path(dest_hash)
        _out(f"READY {dest_hash.hex()}")
    n = 0
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        n += 1
        if dest is None:
            dest = _single_destination(rns, dest_hash, args.path_timeout_s)
            if dest is None:
                _out(f"FAIL {n} no path to the destination yet")
                continue
        try:
            receipt = rns.Packet(dest, bytes.fromhex(line)).send()
        except Exception as exc:
            _out(f"FAIL {n} {type(exc).__name__}: {exc}")
            continue
        _out(f"SENT {n}" if receipt is not False else f"FAIL {n} not sent")
    return 0


def _single_destination(rns: Any, dest_hash: bytes, timeout_s: float) -> Any:
    """The encrypted OUT destination once Reticulum knows a path and the receiver's identity; else None."""
    deadline = time.monotonic() + timeout_s
    if not rns.Transport.has_path(dest_hash):
        rns.Transport.request_path(dest_hash)
    while not rns.Transport.has_path(dest_hash):
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)
    ident = rns.Identity.recall(dest_hash)
    if ident is None:
        return None
    return rns.Destination(ident, rns.Destination.OUT, rns.Destination.SINGLE, APP, *ASPECTS)


if __name__ == "__main__":
    sys.exit(main())
