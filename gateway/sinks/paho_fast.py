"""paho-mqtt's client with fast paths for draining a QoS 1 backlog (matches paho-mqtt 2.2.0; pinned >=2,<3).

The mqtt sink publishes thousands of QoS 1 messages a second through paho, and paho's per-message costs
(not the protocol) bounded the drain rate after an outage. :class:`FastClient` is paho's own ``Client``
with four private methods overridden (``_sock_recv``, ``_packet_read``, ``_handle_pubackcomp``,
``_packet_write``) and two publishing methods added, each doing what paho 2.2.0 does, in fewer steps. The
bytes on the wire, the packet ids, paho's message states (what it re-sends, with DUP and the same id, after
a reconnect) and the callbacks are those of paho's own code: ``tests/gateway/test_sinks_paho_fast.py``
runs paho's code next to the fast paths on socket pairs and compares them, and runs the sink against a
real Mosquitto (partial writes and want-write over TLS, QoS 1 redelivery under the same packet id seen on
the wire; the sink and forwarder tests add broker restarts and TLS reconnects).

- **Reads** (``_sock_recv``): paho reads each packet with two or three ``recv`` calls (command byte,
  length, body): three system calls per PUBACK. Here one ``recv`` of up to 64 KiB fills a buffer and paho's
  small reads are served from it; over TLS, where one read returns one TLS record and a broker sends each
  PUBACK as a record of its own, the buffer is filled with every record already there. The buffer belongs
  to one socket (a new connection starts empty). The selector cannot see bytes held in it, so whoever reads
  on readiness must call ``loop_read`` again while :meth:`FastClient.has_buffered_input` (as it already
  must while an ``SSLSocket`` has ``pending()``).
- **PUBACK** (``_packet_read``, ``_handle_pubackcomp``): complete MQTT v5 PUBACKs of 2 or 3 bytes (no
  properties) waiting in that buffer are handled straight from it, one after the other: the same
  ``_do_on_publish`` call per packet, with a shared ReasonCode per code and an empty Properties, instead of
  paho's dict of packet state and its decoder building fresh ReasonCode and Properties objects (big dicts)
  per packet. Anything else (other packets, other sizes, an unknown reason code, a packet split across
  reads) goes through paho's code.
- **Publishing** (:meth:`FastClient.publish_qos1`, :meth:`FastClient.publish_many`): what
  ``publish(topic, payload, qos=1)`` does for an MQTT v5 client run from an external event loop (socket
  callbacks set, no ``loop_start`` thread, no logging), for one message or a batch (locks taken once),
  without an MQTTMessageInfo with a threading.Condition per message that nobody waits on (delivery is
  tracked by ``on_publish``), and with the PUBLISH bytes appended to one run at the tail of paho's packet
  queue instead of a packet record each. ``publish_many`` then writes at once (paho's ``loop_write``) instead
  of asking the event loop to report the socket writable, which costs two ``epoll_ctl`` calls and a loop
  pass per batch; the loop is asked only for what the socket did not take, or from inside a paho callback
  (as paho's own ``_packet_queue`` decides). In any other situation it calls paho's ``publish``.
- **Writes** (``_packet_write``): paho sends each queued packet with its own ``send``. Here the packets that
  paho does nothing with after sending (everything but QoS 0 PUBLISH, whose info is marked published, and
  DISCONNECT, which closes the socket) are first joined into runs (a new run starts at 64 KiB), then paho's
  own ``_packet_write`` sends them: partial writes, EAGAIN (and TLS want-read/want-write) keep paho's exact
  handling. A packet a write was already tried on (the head after a partial write or EAGAIN; TLS requires
  the retry with the same bytes) is never merged or extended.

paho internals relied on, as in 2.2.0 (the release checked): the methods above, ``_sock``, ``_in_packet``,
``_out_packet`` and its packet dicts, ``_out_messages``, ``_out_message_mutex``, ``_inflight_messages``,
``_max_inflight_messages``, ``_max_queued_messages``, ``_mid_generate`` / ``_last_mid`` /
``_mid_generate_mutex``, ``_do_on_publish``, ``_call_socket_register_write``, ``_in_callback_mutex``,
``loop_write``, ``_raise_for_invalid_topic``, ``_msgtime_mutex`` / ``_last_bytes_received``, ``_thread``,
``_sockpairW``, ``_on_socket_register_write``, ``_logger``, ``_on_log``, and the slots of MQTTMessage and
MQTTMessageInfo. A paho release that changes them fails those tests.
"""

from __future__ import annotations

import ssl
import struct
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

import paho.mqtt.client as mqtt
from paho.mqtt.client import MQTTMessage, MQTTMessageInfo
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["FastClient"]

_RECV_SIZE = 65536  # one recv fills the read buffer with up to this much
_RUN_BYTES = 65536  # packets are joined into sends of about this size (a bounded copy per partial write)
_SUCCESS = mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
_NO_CONN = mqtt.MQTTErrorCode.MQTT_ERR_NO_CONN
_QUEUE_SIZE = mqtt.MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
_AGAIN = mqtt.MQTTErrorCode.MQTT_ERR_AGAIN
_CONN_LOST = mqtt.MQTTErrorCode.MQTT_ERR_CONN_LOST
_PUBLISH = int(mqtt.PUBLISH)
_DISCONNECT = int(mqtt.DISCONNECT)
_PUBACK_BYTE = int(mqtt.PUBACK)  # 0x40: PUBACK with its (reserved, zero) flags
_MAX_PAYLOAD = 268435455
_time = mqtt.time_func
_FIXED1 = struct.Struct(">BB")  # command byte, remaining length < 128
_FIXED2 = struct.Struct(">BBB")  # command byte, 2-byte remaining length
_MID_PROPS = struct.Struct(">HB")  # packet id, properties length


class _Untracked(MQTTMessageInfo):
    """The ``info`` of every message :meth:`FastClient.publish_qos1` queues: one shared object, never handed
    out, so paho marking it published (``_set_as_published``) has nothing to notify."""

    __slots__ = ()

    def __init__(self) -> None:  # no Condition: nobody can wait on it
        self.mid = 0
        self.rc = _SUCCESS
        self._published = False
        self._iterpos = 0

    def _set_as_published(self) -> None:
        pass


_UNTRACKED = _Untracked()


class _QueuedMessage(MQTTMessage):
    """paho's record of an outgoing QoS 1 message, as ``publish`` fills it in (paho re-sends it from here
    after a reconnect, with DUP set, under the same mid)."""

    __slots__ = ()

    def __init__(self, mid: int, topic: bytes, payload: bytes, retain: bool, now: float) -> None:
        self.timestamp = now
        self.state = mqtt.mqtt_ms_invalid
        self.dup = False
        self.mid = mid
        self._topic = topic
        self.payload = payload
        self.qos = 1
        self.retain = retain
        self.info = _UNTRACKED
        self.properties = None


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class FastClient(mqtt.Client):
    """paho's ``mqtt.Client`` with the fast paths of the module docstring."""

    _reason_cache: ClassVar[dict[int, ReasonCode]] = {}
    _no_props = Properties(PacketTypes.PUBACK)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""  # received, not yet handed to paho: self._rbuf[self._rpos:]
        self._rpos = 0
        self._rsock: Any = None  # the socket the buffer was read from
        self._batch: dict[str, Any] | None = None  # the packet publish_qos1 appends to (tail of _out_packet)
        self._tried: Any = None  # the packet paho's last write left at the head (partially written)
        self._topic_heads: dict[bytes, bytes] = {}  # valid topic -> its length and bytes, as on the wire

    # ------------------------------------------------------------------ reading

    def has_buffered_input(self) -> bool:
        """Bytes of the current connection are waiting in the read buffer (call ``loop_read`` again)."""
        return self._rpos < len(self._rbuf) and self._rsock is self._sock and self._sock is not None

    def _sock_recv(self, bufsize: int) -> bytes:
        """paho's read of up to ``bufsize`` bytes, served from the read buffer; one ``recv`` refills it.
        Errors and end of stream come from paho's own ``_sock_recv``, unchanged."""
        sock = self._sock
        if self._rsock is sock:
            pos = self._rpos
            left = len(self._rbuf) - pos
            if left > 0:
                end = pos + (bufsize if bufsize < left else left)
                self._rpos = end
                return self._rbuf[pos:end]
        data = super()._sock_recv(_RECV_SIZE if bufsize < _RECV_SIZE else bufsize)
        if data and isinstance(sock, ssl.SSLSocket):
            data = self._more_records(sock, data)
        if len(data) > bufsize:
            self._rbuf, self._rpos, self._rsock = data, bufsize, sock
            return data[:bufsize]
        self._rbuf, self._rpos, self._rsock = b"", 0, sock
        return data

    def _more_records(self, sock: ssl.SSLSocket, data: bytes) -> bytes:
        # An SSL read returns one TLS record, and a broker writes each PUBACK as a record of its own: read
        # on until the SSL layer wants more from the network. An error or the end of the stream that stops
        # the loop shows again on the next read, once the buffer is used up (as the same error or as the end
        # of the stream): paho reports the connection lost then, after the packets that came before it.
        parts = [data]
        size = len(data)
        recv = sock.recv
        while size < _RECV_SIZE:
            try:
                more = recv(_RECV_SIZE - size)
            except ssl.SSLWantWriteError:
                self._call_socket_register_write()  # as paho's _sock_recv does
                break
            except OSError:  # want-read (nothing more yet) or a real error
                break
            if not more:
                break
            parts.append(more)
            size += len(more)
        return data if len(parts) == 1 else b"".join(parts)

    def _packet_read(self) -> mqtt.MQTTErrorCode:
        """paho's ``_packet_read``; complete small PUBACKs waiting in the read buffer are handled straight
        from it, as many as follow each other (paho's loop calls this once per packet otherwise)."""
        sock = self._sock
        if self._in_packet["command"] != 0 or sock is None:
            return super()._packet_read()  # paho is half way through a packet
        if self._rpos >= len(self._rbuf) or self._rsock is not sock:
            # Nothing buffered: fill the buffer, as paho's read of a command byte would (the same
            # outcomes for no data yet, an error and the end of the stream), then read from it.
            try:
                data = self._sock_recv(_RECV_SIZE)
            except BlockingIOError:
                return _AGAIN
            except TimeoutError as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "timeout on socket: %s", err)
                return _CONN_LOST
            except OSError as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
                return _CONN_LOST
            if not data:
                return _CONN_LOST
            self._rbuf, self._rpos, self._rsock = data, 0, sock
        buf, pos = self._rbuf, self._rpos
        v5 = self._protocol == mqtt.MQTTv5
        end = len(buf)
        rc = _SUCCESS
        done = 0
        cache, acked = self._reason_cache, self._acked
        with self._out_message_mutex:  # paho takes it per PUBACK; here once for the run of them
            while v5 and end - pos >= 4 and buf[pos] == _PUBACK_BYTE and not rc and self._sock is sock:
                length = buf[pos + 1]
                if length == 2:
                    code = 0
                elif length == 3 and end - pos >= 5:
                    code = buf[pos + 4]
                else:
                    break  # with properties, or not all here yet: paho's code
                reason = cache.get(code) or self._reason(code)
                if reason is None:
                    break  # not a PUBACK reason code: paho's decoder reports the malformed packet
                mid = (buf[pos + 2] << 8) | buf[pos + 3]
                pos += 2 + length
                self._rpos = pos
                done += 1
                rc = acked(mid, reason)
        if not done:
            return super()._packet_read()
        with self._msgtime_mutex:
            self._last_bytes_received = _time()
        return rc

    def _handle_pubackcomp(self, cmd: Any) -> mqtt.MQTTErrorCode:
        """paho's PUBACK/PUBCOMP handler; a small v5 PUBACK (2 or 3 bytes) skips the decoder."""
        packet = self._in_packet.get("packet", b"")
        if cmd != "PUBACK" or self._protocol != mqtt.MQTTv5 or len(packet) not in (2, 3):
            return super()._handle_pubackcomp(cmd)
        reason = self._reason(packet[2] if len(packet) == 3 else 0)
        if reason is None:
            return super()._handle_pubackcomp(cmd)
        return self._puback((packet[0] << 8) | packet[1], reason)

    def _reason(self, code: int) -> ReasonCode | None:
        reason = self._reason_cache.get(code)
        if reason is None:
            try:
                reason = ReasonCode(PacketTypes.PUBACK, identifier=code)
            except Exception:  # not a PUBACK reason code
                return None
            self._reason_cache[code] = reason
        return reason

    def _puback(self, mid: int, reason: ReasonCode) -> mqtt.MQTTErrorCode:
        with self._out_message_mutex:
            return self._acked(mid, reason)

    def _acked(self, mid: int, reason: ReasonCode) -> mqtt.MQTTErrorCode:
        # what paho's _handle_pubackcomp does after decoding a PUBACK (_out_message_mutex held)
        if self._logger is not None or self._on_log is not None:
            self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received %s (Mid: %d)", "PUBACK", mid)
        if mid in self._out_messages:
            return self._do_on_publish(mid, reason, self._no_props)
        return _SUCCESS

    # ------------------------------------------------------------------ publishing

    def publish_qos1(
        self, topic: bytes, payload: bytes, retain: bool = False
    ) -> tuple[mqtt.MQTTErrorCode, int]:
        """``publish(topic, payload, qos=1, retain=retain)`` for a UTF-8 ``topic``; returns ``(rc, mid)``.

        Delivery is reported through ``on_publish`` only (there is no MQTTMessageInfo to wait on).
        Raises ValueError for a topic or payload MQTT cannot carry, as ``publish`` does."""
        if not self._fast() or not topic or type(payload) is not bytes:
            info = self.publish(topic.decode(), payload, qos=1, retain=retain)
            return info.rc, info.mid
        head = self._head(topic, payload)
        mid = self._mid_generate()
        parts: list[bytes] = []
        with self._out_message_mutex:
            result = self._queue(parts, mid, topic, head, payload, retain)
            if parts:
                self._append(b"".join(parts))
        if parts:
            self._call_socket_register_write()  # (one message: the loop sends it with whatever follows)
        return result

    def publish_many(
        self, items: Sequence[tuple[bytes, bytes, bool]]
    ) -> list[tuple[mqtt.MQTTErrorCode, int]]:
        """:meth:`publish_qos1` for each ``(topic, payload, retain)`` in order, in one go. A topic or
        payload MQTT cannot carry raises ValueError before any of them is queued."""
        if not self._fast() or any(not t or type(p) is not bytes for t, p, _ in items):
            for t, p, _ in items:
                self._raise_for_invalid_topic(t)
                if len(p) > _MAX_PAYLOAD:
                    raise ValueError("Payload too large.")
            return [self.publish_qos1(t, p, r) for t, p, r in items]
        heads = [self._head(t, p) for t, p, _ in items]
        with self._mid_generate_mutex:  # the mids _mid_generate would give, one after the other
            last = self._last_mid
            mids = []
            for _ in items:
                last = last + 1 if last < 65535 else 1
                mids.append(last)
            self._last_mid = last
        parts: list[bytes] = []
        queue = self._queue
        with self._out_message_mutex:
            results = [
                queue(parts, mid, t, h, p, r) for (t, p, r), h, mid in zip(items, heads, mids, strict=True)
            ]
            if parts:
                self._append(b"".join(parts))
        if parts:
            self._write_now()
        return results

    def _write_now(self) -> None:
        """Send the queued packets now, as far as the socket takes them; the event loop is asked to report
        the socket writable only for what is left. paho queues and asks the loop every time, which costs two
        ``epoll_ctl`` calls and a loop pass per batch: against a broker with a small Receive Maximum (20
        for Mosquitto) that is every few messages. Inside a paho callback (a publish from ``on_connect``)
        it asks the loop, as paho's own ``_packet_queue`` does, so no packet is written from inside a read."""
        if self._in_callback_mutex.acquire(False):
            self._in_callback_mutex.release()
            self.loop_write()  # (its finally registers the writer if anything is left, or unregisters it)
        else:
            self._call_socket_register_write()

    def _fast(self) -> bool:
        # the situation the fast path reproduces paho's publish() in; anything else goes through paho
        return (
            self._sock is not None
            and self._protocol == mqtt.MQTTv5
            and self._thread is None
            and self._sockpairW is None
            and self._on_socket_register_write is not None
            and self._logger is None
            and self._on_log is None
        )

    def _head(self, topic: bytes, payload: bytes) -> bytes:
        """The topic as in the packet (length, bytes); ValueError as paho's publish() raises it."""
        head = self._topic_heads.get(topic)
        if head is None:
            self._raise_for_invalid_topic(topic)
            head = len(topic).to_bytes(2, "big") + topic
            if len(self._topic_heads) < 100_000:
                self._topic_heads[topic] = head
        if len(payload) > _MAX_PAYLOAD:
            raise ValueError("Payload too large.")
        return head

    def _queue(
        self, parts: list[bytes], mid: int, topic: bytes, head: bytes, payload: bytes, retain: bool
    ) -> tuple[mqtt.MQTTErrorCode, int]:
        # What publish() does for QoS 1 once the topic and payload are checked and the mid is drawn, with
        # _out_message_mutex held; the packet's bytes are added to ``parts``.
        message = _QueuedMessage(mid, topic, payload, retain, _time())
        if (
            self._max_queued_messages > 0 and len(self._out_messages) >= self._max_queued_messages
        ) or mid in self._out_messages:
            return _QUEUE_SIZE, mid
        self._out_messages[mid] = message
        if self._max_inflight_messages and self._inflight_messages >= self._max_inflight_messages:
            message.state = mqtt.mqtt_ms_queued  # paho sends it when a PUBACK makes room
            return _SUCCESS, mid
        if self._sock is None:  # lost meanwhile: sent after the reconnect, as publish() does
            message.state = mqtt.mqtt_ms_publish
            return _NO_CONN, mid
        self._inflight_messages += 1
        message.state = mqtt.mqtt_ms_wait_for_puback
        # the bytes of paho's _send_publish for QoS 1, MQTT v5, no DUP, no properties: fixed header,
        # topic length and topic, mid, properties length 0, payload
        n = len(head) + 3 + len(payload)
        command = 0x33 if retain else 0x32  # PUBLISH, QoS 1, RETAIN
        if n < 128:
            fixed = _FIXED1.pack(command, n)
        elif n < 16384:
            fixed = _FIXED2.pack(command, (n & 0x7F) | 0x80, n >> 7)
        else:
            fixed = bytes((command,)) + _remaining_length(n)
        parts += (fixed, head, _MID_PROPS.pack(mid, 0), payload)
        return _SUCCESS, mid

    def _append(self, data: bytes) -> None:
        # queue packet bytes: onto the run at the tail of paho's queue while no write was tried on it
        batch = self._batch
        out = self._out_packet
        if batch is None or batch["to_process"] >= _RUN_BYTES or not out or out[-1] is not batch:
            batch = {"command": 0, "mid": 0, "qos": 0, "pos": 0, "to_process": 0, "info": None}
            batch["packet"] = bytearray()
            out.append(batch)  # type: ignore[arg-type]
            self._batch = batch
        batch["packet"] += data
        batch["to_process"] += len(data)

    # ------------------------------------------------------------------ writing

    def _packet_write(self) -> mqtt.MQTTErrorCode:
        """paho's ``_packet_write`` on the queue with its plain packets joined into runs (one send each)."""
        self._batch = None  # a packet a write may have been tried on is never extended
        out = self._out_packet
        if len(out) > 1:
            self._coalesce(out)
        try:
            return super()._packet_write()
        finally:
            self._tried = out[0] if out else None

    def _coalesce(self, out: deque[Any]) -> None:
        merged: list[Any] = []
        run: dict[str, Any] | None = None
        for p in out:
            kind = p["command"] & 0xF0
            if p is self._tried or p["pos"] or (kind == _PUBLISH and p["qos"] == 0) or kind == _DISCONNECT:
                run = None  # sent alone, by paho, as before
                merged.append(p)
            elif run is not None and run["to_process"] < _RUN_BYTES:
                run["packet"] += p["packet"]
                run["to_process"] += p["to_process"]
            else:
                if p["command"] == 0:  # a batch of publish_qos1: extend it in place
                    run = p
                else:
                    run = {"command": 0, "mid": 0, "qos": 0, "pos": 0, "info": None}
                    run["packet"] = bytearray(p["packet"])
                    run["to_process"] = p["to_process"]
                merged.append(run)
        if len(merged) < len(out):
            out.clear()
            out.extend(merged)
