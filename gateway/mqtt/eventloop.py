"""paho-mqtt's socket driven by the running asyncio loop, through paho's public socket callbacks.

paho's ``on_socket_open``, ``on_socket_close``, ``on_socket_register_write`` and
``on_socket_unregister_write`` put its socket into the running loop (``add_reader``/``add_writer``);
``loop_read`` and ``loop_write`` do the work when the loop finds the socket ready, and ``loop_misc`` (once a
second) sends keepalive pings and notices their timeout. No network thread: a second Python thread would
fight the loop for the GIL, and a callback that raises cannot end a thread that does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

__all__ = ["LoopAdapter"]

_CORK: int | None = getattr(socket, "TCP_CORK", None)


class LoopAdapter:
    """The socket side of :class:`~havel.gateway.mqtt.client.MqttClient` (a base class of it): binds the
    paho client's socket to ``_loop``. :meth:`bind_socket_callbacks` installs the callbacks;
    :meth:`_io_done` runs after each read or write of the socket."""

    client: mqtt.Client
    _loop: asyncio.AbstractEventLoop | None
    _loop_thread: int | None
    _reader_fd: int | None
    _writer_fd: int | None

    def bind_socket_callbacks(self, client: mqtt.Client) -> None:
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write

    def _io_done(self) -> None:
        """After each read or write of the socket (overridden: the publisher hands over acknowledgements)."""

    def _call_in_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        # paho calls the socket callbacks from connect() (in the executor) as well as from the loop
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        elif self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
                self._loop.call_soon_threadsafe(fn, *args)

    async def _misc(self) -> None:
        # keepalive pings and their timeout (paho's loop_misc), once a second
        while True:
            await asyncio.sleep(1.0)
            self.client.loop_misc()

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # each packet goes out when written (no Nagle wait for the previous one's ACK); a run of packets
        # is still sent in full segments, corked in _writable
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._call_in_loop(self._add_reader, sock.fileno())

    def _add_reader(self, fd: int) -> None:
        assert self._loop is not None
        self._reader_fd = fd
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        client = self.client
        sock = client.socket()
        client.loop_read()
        # with TLS, bytes already decrypted in the SSL object are invisible to the selector: read them now
        while (
            sock is not None
            and client.socket() is sock
            and isinstance(sock, ssl.SSLSocket)
            and sock.pending()
        ):
            client.loop_read()
        self._io_done()

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._call_in_loop(self._remove_fds)

    def _remove_fds(self) -> None:
        assert self._loop is not None
        if self._reader_fd is not None:
            self._loop.remove_reader(self._reader_fd)
        if self._writer_fd is not None:
            self._loop.remove_writer(self._writer_fd)
        self._reader_fd = self._writer_fd = None

    def _on_socket_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._call_in_loop(self._add_writer, sock.fileno())

    def _add_writer(self, fd: int) -> None:
        assert self._loop is not None
        self._writer_fd = fd
        self._loop.add_writer(fd, self._writable)

    def _writable(self) -> None:
        # paho sends each queued packet with its own send(); corked, the kernel joins them into full
        # segments and sends the rest when uncorked (Linux; elsewhere plain writes)
        sock = self.client.socket()
        cork = _CORK if isinstance(sock, socket.socket) else None
        if cork is not None and isinstance(sock, socket.socket):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, cork, 1)
            except OSError:
                cork = None
        try:
            self.client.loop_write()
        finally:
            if cork is not None and isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, cork, 0)
        self._io_done()  # a QoS 0 message counts as published once written

    def _on_socket_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._call_in_loop(self._remove_writer)

    def _remove_writer(self) -> None:
        assert self._loop is not None
        if self._writer_fd is not None:
            self._loop.remove_writer(self._writer_fd)
            self._writer_fd = None
