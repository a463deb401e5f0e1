"""A real redis-server for tests, on a free loopback port with its own temporary folder, always cleaned up;
and :class:`Gate`, a TCP relay in front of it that a test can cut to partition one client from Redis.

Usage::

    with RedisServer(appendonly=True) as server:
        server.url                    # redis://127.0.0.1:PORT/0
        server.client()               # a redis.Redis on it
        server.stop(); server.start() # same port and folder (with appendonly, the data survives)
    with Gate(server.port) as gate:
        gate.url                      # the same server through the relay
        gate.cut(); gate.restore()    # refuse and drop every connection, then let them through again
        gate.silent = True            # swallow every byte (a silent partition: clients time out)
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


def redis_binary() -> str | None:
    return shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/sbin")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class RedisServer:
    """See the module docstring. ``password`` sets ``requirepass`` (given to redis-server in its config
    file, not in argv)."""

    def __init__(
        self,
        *,
        appendonly: bool = False,
        password: str | None = None,
        fsync: str = "everysec",
        tls: Any = None,
    ) -> None:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed (tools/bootstrap.d/redis.sh installs it)")
        self.binary = binary
        self.appendonly = appendonly
        # appendfsync: everysec (Redis's default; a clean stop writes everything) or always
        self.fsync = fsync
        self.tls = tls  # a support.mosquitto.PKI: TLS only (no plain port), with its server certificate
        self.password = password
        self.dir = Path(tempfile.mkdtemp(prefix="havel-redis-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{HOST}:{self.port}/0"

    def client(self, **kw: Any) -> Any:
        import redis

        return redis.Redis(host=HOST, port=self.port, password=self.password, decode_responses=True, **kw)

    def start(self) -> None:
        conf = self.dir / "redis.conf"
        lines = [f"bind {HOST}"]
        if self.tls is not None:
            lines += [
                "port 0",
                f"tls-port {self.port}",
                f"tls-cert-file {self.tls.server_cert}",
                f"tls-key-file {self.tls.server_key}",
                f"tls-ca-cert-file {self.tls.ca_cert}",
                "tls-auth-clients no",
            ]
        else:
            lines.append(f"port {self.port}")
        lines += [
            f"dir {self.dir}",
            'save ""',
            f"appendonly {'yes' if self.appendonly else 'no'}",
            f"appendfsync {self.fsync}",
            "daemonize no",
            "protected-mode yes",
            f"logfile {self.dir / 'redis.log'}",
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        conf.write_text("\n".join(lines) + "\n")
        conf.chmod(0o600)
        self.proc = subprocess.Popen(
            [self.binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 20
        while not self._ready():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer within 20 s")
            time.sleep(0.05)

    def _ready(self) -> bool:
        if self.tls is None:
            return _answers(self.port)
        import redis

        try:
            redis.Redis(
                host=HOST,
                port=self.port,
                ssl=True,
                ssl_ca_certs=str(self.tls.ca_cert),
                password=self.password,
            ).ping()
            return True
        except (redis.RedisError, OSError):
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Gate:
    """A TCP relay on a free loopback port to ``target_port``; :meth:`cut` closes the listener and every
    relayed connection (a client sees its connection reset and new ones refused), :meth:`restore` opens it
    again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_port()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.silent = False  # True: bytes are swallowed both ways (a link that drops packets, no reset)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def restore(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, self.port))
        s.listen(64)
        self._listener = s
        self._thread = threading.Thread(target=self._accept, args=(s,), daemon=True)
        self._thread.start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((HOST, self.target), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not self.silent:
                    dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Gate:
        self.restore()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()
