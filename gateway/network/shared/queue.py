"""The downlink part of the shared store: each device's command queue, the downlinks handed to another
roof, and the duty-cycle pause of each gateway."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import redis

from havel.gateway.network.shared.connection import text


class Taken(NamedTuple):
    """What :meth:`CommandQueue.take_commands` found for one device: (event, JSON) pairs (``acked``,
    ``failed``, ``expired``, ``expired_aw``, ``damaged``; last ``next`` or ``again``, the command to send),
    how many more commands wait, and the device's MAC state (JSON, None if none)."""

    events: list[tuple[str, str]]
    more: int
    mac: str | None


class CommandQueue:
    """Part of :class:`~havel.gateway.network.shared.state.SharedState`: its downlink operations."""

    r: redis.Redis
    p: str

    _take: Any
    _queue: Any
    _expire: Any

    # ---------------------------------------------------------------------------------- commands
    def queue_command(
        self,
        dev_eui: int,
        command: dict[str, Any],
        *,
        limit: int | None = None,
        expires_at: float | None = None,
    ) -> int:
        """A command for the device, sent once (by the roof that processes its next uplink); ``expires_at``
        (unix time) when its ``ttl_s`` runs out. Returns how many commands wait for the device with it, or
        minus how many wait when the queue holds ``limit`` already (then it is not queued)."""
        eui = f"{dev_eui:016X}"
        raw = json.dumps(command)
        keys = [f"{self.p}dlq:{eui}", f"{self.p}awaiting:{eui}", f"{self.p}dlexp"]
        exp = "+inf" if expires_at is None else repr(float(expires_at))
        state, n = (
            text(x) for x in self._queue(keys=keys, args=[raw, limit or 1 << 30, exp, f"{eui} {raw}"])
        )
        return int(n) if state == "queued" else -int(n)

    def submit_command(
        self, dev_eui: int, command: dict[str, Any], *, limit: int, expires_at: float, at: float
    ) -> tuple[str, int, float]:
        """Queue a command from the platform (with ``id``, ``seq`` and ``req``): ("queued", its number,
        ``at``), ("full", commands waiting, ``at``), or ("again", the first number, the first time) when the
        same id and request came before within its ttl_s (a QoS 1 re-delivery: not queued twice)."""
        eui = f"{dev_eui:016X}"
        raw = json.dumps(command)
        keys = [
            f"{self.p}dlq:{eui}",
            f"{self.p}awaiting:{eui}",
            f"{self.p}dlexp",
            f"{self.p}cmdid:{eui}:{command['id']}",
        ]
        req = json.dumps(command["req"], sort_keys=True)
        ttl_ms = max(1, int((expires_at - at) * 1000))
        args = [raw, limit, repr(float(expires_at)), f"{eui} {raw}", req, command["seq"], repr(at), ttl_ms]
        reply = [text(x) for x in self._queue(keys=keys, args=args)]
        if reply[0] == "again":
            return "again", int(reply[1]), float(reply[2])
        return reply[0], int(command["seq"]) if reply[0] == "queued" else int(reply[1]), at

    def queued_commands(self, dev_eui: int) -> list[str]:
        """The device's queued commands (JSON), oldest first, left in the queue."""
        return [text(x) for x in self.r.lrange(f"{self.p}dlq:{dev_eui:016X}", 0, -1)]

    def requeue_command(self, dev_eui: int, raw: str) -> None:
        """Put a command taken but not sent back at the head of the device's queue."""
        self.r.lpush(f"{self.p}dlq:{dev_eui:016X}", raw)

    def take_commands(self, uplinks: list[tuple[int, bool]], now: float, attempts: int) -> list[Taken]:
        """After these devices' uplinks (DevEUI, the uplink's ACK bit): for each, what became of its commands
        and what goes down next (see ``scripts.TAKE``), and its MAC state; one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for e, ack in uplinks:
            eui = f"{e:016X}"
            keys = [f"{self.p}dlq:{eui}", f"{self.p}awaiting:{eui}"]
            self._take(keys=keys, args=["1" if ack else "0", repr(now), attempts], client=pipe)
            pipe.get(f"{self.p}mac:{eui}")
        replies = pipe.execute()
        out: list[Taken] = []
        for i in range(0, len(replies), 2):
            flat = [text(x) for x in replies[i]]
            pairs = list(zip(flat[0::2], flat[1::2], strict=True))
            more = int(pairs.pop()[1]) if pairs and pairs[-1][0] == "more" else 0
            mac = replies[i + 1]
            out.append(Taken(pairs, more, text(mac) if mac is not None else None))
        return out

    def await_ack(self, dev_eui: int, raw: str, attempts: int, fcnt_down: int) -> None:
        """A confirmed command went down (``attempts`` times so far): it waits for the device's ACK."""
        state = {"raw": raw, "attempts": attempts, "fcnt_down": fcnt_down}
        try:
            exp = json.loads(raw).get("exp")
        except (ValueError, AttributeError):
            exp = None
        if exp is not None:
            state["exp"] = exp
        eui = f"{dev_eui:016X}"
        pipe = self.r.pipeline(transaction=True)
        pipe.set(f"{self.p}awaiting:{eui}", json.dumps(state))
        if isinstance(exp, int | float):  # (still swept when its time runs out)
            pipe.zadd(f"{self.p}dlexp", {f"{eui} {raw}": float(exp)})
        pipe.execute()

    def drop_wait(self, dev_eui: int) -> None:
        """Forget the device's command waiting for its ACK (one that cannot be read)."""
        self.r.delete(f"{self.p}awaiting:{dev_eui:016X}")

    def expire_commands(self, now: float, limit: int = 100) -> list[tuple[str, str]]:
        """Commands whose ttl_s ran out, taken out of the store (each by one roof only): (event, JSON)."""
        flat = [text(x) for x in self._expire(keys=[f"{self.p}dlexp"], args=[self.p, repr(now), limit])]
        return list(zip(flat[0::2], flat[1::2], strict=True))

    def save_mac_states(self, states: dict[int, str], keep_s: int = 30 * 86_400) -> None:
        """Each device's MAC state (ADR history, what was asked when), for the roof that hears it next."""
        if states:
            pipe = self.r.pipeline(transaction=False)
            for e, state in states.items():
                pipe.set(f"{self.p}mac:{e:016X}", state, ex=keep_s)
            pipe.execute()

    def next_command_seq(self) -> int:
        """The network's submission number for a downlink command (part of its result ids)."""
        return int(self.r.incr(f"{self.p}cmdseq"))

    def hand_over(self, roof: str, downlink: dict[str, Any]) -> None:
        self.r.rpush(f"{self.p}tx:{roof}", json.dumps(downlink))

    def handed_to(self, roof: str, limit: int = 64) -> list[str]:
        v = self.r.lpop(f"{self.p}tx:{roof}", limit)
        return [text(x) for x in v] if v else []

    def gateways_waiting(self, gateways: list[int]) -> set[int]:
        """The gateways among these that still wait for their duty cycle."""
        if not gateways:
            return set()
        pipe = self.r.pipeline(transaction=False)
        for g in gateways:
            pipe.exists(f"{self.p}dc:{g:016X}")
        return {g for g, n in zip(gateways, pipe.execute(), strict=True) if n}

    def gateway_busy(self, gateway: int, wait_s: float) -> None:
        if wait_s > 0:
            self.r.set(f"{self.p}dc:{gateway:016X}", "1", px=max(1, int(wait_s * 1000)))
