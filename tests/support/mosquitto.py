"""A real Mosquitto broker for tests, on free loopback ports, always cleaned up.

Usage (the fixtures in ``tests/gateway/conftest.py`` wrap this)::

    with Mosquitto(tls=True, users={"gw1": "pw1"}, acl="pattern readwrite havel/%u/#\\n") as broker:
        broker.port          # plain listener, anonymous, no ACL (for test subscribers)
        broker.tls_port      # TLS listener, server cert for localhost/127.0.0.1, anonymous
        broker.acl_port      # plain listener with password authentication and the ACL
        broker.acl_tls_port  # TLS listener: client certificate required, its CN is the ACL user name
        broker.pki.ca_cert, broker.pki.client("gw1"), broker.pki.wrong_ca_cert
        broker.stop(); broker.start()   # same ports, for restart tests
        broker.kill()                   # SIGKILL (no persistence flush)

Facts this relies on (seen with Mosquitto 2.0.11, see ``shared/notes/platform.md``):

- ``listener 0`` is not a random port, so free ports are picked in Python first (and the start is retried
  with new ports if one was taken in between).
- Run as root, mosquitto drops to the ``mosquitto`` user before it reads password, ACL and TLS key files, so
  the broker's folder is created outside pytest's 0700 temp tree and handed to that user.
- Per-listener authentication needs ``per_listener_settings true``; ``use_identity_as_username`` makes the
  client certificate's CN the user name for the ACL.
- With ``persistence`` on (the default), ``stop()`` (SIGTERM) writes the broker's database, so persistent
  sessions and their queued QoS 1 messages survive a restart, as on a production broker.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["PKI", "Mosquitto", "free_port", "mosquitto_available"]

HOST = "127.0.0.1"
MOSQUITTO_USER = "mosquitto"


def mosquitto_available() -> bool:
    """True when a mosquitto binary is on PATH (or in /usr/sbin, where Debian puts it)."""
    return _mosquitto_binary() is not None


def _mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _broker_uid_gid() -> tuple[int, int] | None:
    """The uid/gid mosquitto will run as after dropping privileges, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(MOSQUITTO_USER)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _hand_over(path: Path, mode: int) -> None:
    """Give a file or folder to the broker's user (when root) with ``mode``; keys stay 0600 to their owner."""
    ids = _broker_uid_gid()
    if ids is not None:
        os.chown(path, *ids)
    os.chmod(path, mode)


# --------------------------------------------------------------------------------------------------- PKI


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Havel tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(path, 0o644)


@dataclass
class _CA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _make_ca(cn: str) -> _CA:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _CA(key, cert)


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _issue(
    ca: _CA, cn: str, *, server: bool, names: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_san(n) for n in names]),
            critical=False,
        )
    return key, builder.sign(ca.key, hashes.SHA256())


@dataclass
class PKI:
    """Test certificates in ``folder``: a CA, a server certificate, client certificates, and a wrong CA.

    The server certificate names ``server_names`` (``localhost`` and ``127.0.0.1``). ``client(cn)`` gives
    (cert, key) paths of a client certificate whose CN is ``cn`` (the ACL user name on the identity
    listener). ``wrong_ca_cert`` is a CA that signed nothing here: a client trusting only it must refuse the
    broker. ``stranger(cn)`` is a client certificate from that wrong CA, which the broker must refuse.
    """

    folder: Path
    server_names: tuple[str, ...] = ("localhost", "127.0.0.1")
    ca_cert: Path = field(init=False)
    server_cert: Path = field(init=False)
    server_key: Path = field(init=False)
    wrong_ca_cert: Path = field(init=False)
    _ca: _CA = field(init=False, repr=False)
    _wrong: _CA = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._ca = _make_ca("Havel test CA")
        self._wrong = _make_ca("Havel wrong CA")
        self.ca_cert = self.folder / "ca.crt"
        self.wrong_ca_cert = self.folder / "wrong-ca.crt"
        _write_cert(self.ca_cert, self._ca.cert)
        _write_cert(self.wrong_ca_cert, self._wrong.cert)
        key, cert = _issue(self._ca, self.server_names[0], server=True, names=self.server_names)
        self.server_cert = self.folder / "server.crt"
        self.server_key = self.folder / "server.key"
        _write_cert(self.server_cert, cert)
        _write_key(self.server_key, key)
        _hand_over(self.server_key, 0o600)  # the broker reads it after dropping to its own user

    def client(self, cn: str) -> tuple[Path, Path]:
        """(cert, key) of a client certificate with CN ``cn`` from the test CA (made once, then reused)."""
        return self._client(self._ca, cn, "client")

    def stranger(self, cn: str) -> tuple[Path, Path]:
        """(cert, key) of a client certificate with CN ``cn`` signed by the wrong CA."""
        return self._client(self._wrong, cn, "stranger")

    def _client(self, ca: _CA, cn: str, prefix: str) -> tuple[Path, Path]:
        cert_path = self.folder / f"{prefix}-{cn}.crt"
        key_path = self.folder / f"{prefix}-{cn}.key"
        if not cert_path.exists():
            key, cert = _issue(ca, cn, server=False)
            _write_cert(cert_path, cert)
            _write_key(key_path, key)
        return cert_path, key_path


# --------------------------------------------------------------------------------------------- broker


class Mosquitto:
    """A mosquitto child process on 127.0.0.1 with the listeners asked for (see the module docstring).

    - ``tls``: add a TLS listener (``tls_port``) and make ``pki``; ``server_names`` are the names in the
      server certificate (change them to test host-name verification).
    - ``require_client_cert``: the TLS listener also demands a client certificate from the test CA.
    - ``users``: user name -> password; adds ``acl_port``, a plain listener with password authentication.
    - ``acl``: text of the ACL file (mosquitto syntax, ``%u``/``%c`` patterns allowed) for the
      authenticated listeners; without it, authenticated users may use every topic.
    - ``cert_identity``: with ``tls``, add ``acl_tls_port``: client certificate required, CN = user name.
    - ``persistence``: keep sessions and queued messages across ``stop()``/``start()``.
    - ``max_queued``: messages queued per client beyond its in-flight window. Mosquitto's own default, 1000,
      drops the rest silently, so a slow or reconnecting test subscriber would miss what the broker
      acknowledged; the default here is a million. (Not 0, "no limit": Mosquitto 2.0.11 then drops the
      connection of a client right after refusing it a publish with reason code 135.)
    - ``max_inflight``: Mosquitto's ``max_inflight_messages`` (its default 20 is also the Receive Maximum
      it announces to publishers; 0 = no limit).
    """

    def __init__(
        self,
        *,
        tls: bool = False,
        require_client_cert: bool = False,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        cert_identity: bool = False,
        persistence: bool = True,
        max_inflight: int | None = None,
        max_queued: int | None = 1_000_000,
        server_names: tuple[str, ...] = ("localhost", "127.0.0.1"),
    ) -> None:
        binary = _mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (apt-get install -y mosquitto)")
        self.binary = binary
        self.host = HOST
        self.folder = Path(tempfile.mkdtemp(prefix="havel-mosquitto-"))
        _hand_over(self.folder, 0o755)
        self.tls = tls
        self.require_client_cert = require_client_cert
        self.users = dict(users or {})
        self.acl = acl
        self.cert_identity = cert_identity and tls
        self.persistence = persistence
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self.pki: PKI | None = PKI(self.folder / "pki", server_names) if tls else None
        if self.pki is not None:
            os.chmod(self.pki.folder, 0o755)
        self.port = 0
        self.tls_port: int | None = None
        self.acl_port: int | None = None
        self.acl_tls_port: int | None = None
        self.config_path = self.folder / "mosquitto.conf"
        self.log_path = self.folder / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_auth_files()
        self._finalizer = weakref.finalize(self, _cleanup, self.folder, [None])

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._proc.pid if self.running else None

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker (on the same ports as before, if it ran before) and wait until it accepts."""
        if self.running:
            return
        first = self.port == 0
        for attempt in range(5):
            if first:
                self._pick_ports()
            self._write_config()
            log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes to it until stop()
            self._proc = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
            log.close()
            self._finalizer.detach()
            self._finalizer = weakref.finalize(self, _cleanup, self.folder, [self._proc])
            if self._wait_ready(timeout):
                return
            self._terminate()
            text = self.log()
            if first and "Address already in use" in text and attempt < 4:
                continue
            raise RuntimeError(f"mosquitto did not start; its log:\n{text[-3000:]}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker with SIGTERM (it saves its persistence database) and wait for it to exit."""
        self._terminate(timeout)

    def kill(self) -> None:
        """Stop the broker with SIGKILL: nothing flushed, like a power cut."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(10)
        self._proc = None

    def pause(self) -> None:
        """SIGSTOP: the broker keeps its connections open but answers nothing (a hung broker)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the broker and delete its folder."""
        self._terminate()
        self._finalizer()

    def log(self) -> str:
        """The broker's log so far (for assertion messages and debugging)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # ---------------------------------------------------------------- internals

    def _terminate(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)  # a paused broker could not act on SIGTERM
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def _pick_ports(self) -> None:
        ports: set[int] = set()
        while len(ports) < 4:
            ports.add(free_port())
        it = iter(sorted(ports))
        self.port = next(it)
        self.tls_port = next(it) if self.tls else None
        self.acl_port = next(it) if self.users else None
        self.acl_tls_port = next(it) if self.cert_identity else None

    def _all_ports(self) -> list[int]:
        return [p for p in (self.port, self.tls_port, self.acl_port, self.acl_tls_port) if p]

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        pending = self._all_ports()
        while pending and time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection((HOST, pending[0]), timeout=0.5):
                    pending.pop(0)
            except OSError:
                time.sleep(0.02)
        return not pending

    def _write_auth_files(self) -> None:
        if self.users:
            pw = self.folder / "passwords"
            pw.write_text("")
            for user, password in self.users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(pw), user, password],
                    check=True,
                    capture_output=True,
                    timeout=10,
                )
            _hand_over(pw, 0o600)
        acl_path = self.folder / "acl"
        acl_path.write_text(self.acl if self.acl is not None else "pattern readwrite #\n")
        _hand_over(acl_path, 0o600)

    def _write_config(self) -> None:
        lines = [
            "per_listener_settings true",
            "log_dest stderr",
            "log_type all",
            "connection_messages true",
            "log_timestamp_format %H:%M:%S",
        ]
        if self.persistence:
            lines += ["persistence true", f"persistence_location {self.folder}/", "autosave_interval 0"]
        if self.max_inflight is not None:
            lines.append(f"max_inflight_messages {self.max_inflight}")
        if self.max_queued is not None:
            lines.append(f"max_queued_messages {self.max_queued}")
        lines += [f"\nlistener {self.port} {HOST}", "allow_anonymous true"]
        if self.tls_port is not None:
            lines += [
                f"\nlistener {self.tls_port} {HOST}",
                "allow_anonymous true",
                *self._tls_lines(),
                f"require_certificate {'true' if self.require_client_cert else 'false'}",
            ]
        if self.acl_port is not None:
            lines += [
                f"\nlistener {self.acl_port} {HOST}",
                "allow_anonymous false",
                f"password_file {self.folder / 'passwords'}",
                f"acl_file {self.folder / 'acl'}",
            ]
        if self.acl_tls_port is not None:
            lines += [
                f"\nlistener {self.acl_tls_port} {HOST}",
                "allow_anonymous false",
                *self._tls_lines(),
                "require_certificate true",
                "use_identity_as_username true",
                f"acl_file {self.folder / 'acl'}",
            ]
        self.config_path.write_text("\n".join(lines) + "\n")
        os.chmod(self.config_path, 0o644)

    def _tls_lines(self) -> list[str]:
        assert self.pki is not None
        return [
            f"cafile {self.pki.ca_cert}",
            f"certfile {self.pki.server_cert}",
            f"keyfile {self.pki.server_key}",
        ]


def _cleanup(folder: Path, procs: list[subprocess.Popen[bytes] | None]) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(5)
    shutil.rmtree(folder, ignore_errors=True)
