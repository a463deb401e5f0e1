"""Black-box: two or three `havel gateway run` roofs sharing one real redis-server (docs/multiroof.md),
each with its own concentrator (a scripted GWMP forwarder over real UDP) and a file sink; frames built and
read with lora-packet."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

from .roofkit import Device, LoraPacket, Roof, put_abp, put_otaa, wait_for, water_payload

EUIS = ["AA555A0000000A01", "AA555A0000000B02", "AA555A0000000C03"]


def abp(n: int) -> Device:
    return Device(
        f"pegel-mr-{n}",
        f"70B3D57ED00300{n:02X}",
        dev_addr=f"2603{n:04X}",
        nwk_s_key=f"{n:02x}" + "44024241ed4ce9a68c6a8bc055233f",
        app_s_key=f"{n:02x}" + "ec925802ae430ca77fd3dd73cb2cc5",
    )


def otaa(n: int) -> Device:
    return Device(
        f"pegel-mr-otaa-{n}",
        f"70B3D57ED00400{n:02X}",
        join_eui="70B3D57ED0000000",
        app_key=f"{n:02x}" + "112233445566778899aabbccddeeff",
    )


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def all_ups(roofs: list[Roof]) -> list[dict[str, Any]]:
    return [r for roof in roofs for r in roof.ups()]


def pull_resps(roofs: list[Roof], seconds: float) -> list[tuple[str, bytes]]:
    """Every PULL_RESP the roofs' forwarders get within ``seconds`` (each answered with a TX_ACK)."""
    got: list[tuple[str, bytes]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for roof in roofs:
            d = roof.fwd.take(lambda d: len(d) > 4 and d[3] == 3)
            if d is not None:
                roof.fwd.tx_ack(d[1:3])
                got.append((roof.fwd.eui_hex, d))
        time.sleep(0.02)
    return got


def test_uplink_heard_by_three_roofs_is_delivered_once(
    redis_server: Any, roofs: Callable[..., Roof], lora: LoraPacket
) -> None:
    """multiroof.md steps 1-4: one roof processes the frame once, the message lists every gateway (best
    signal first); ids are <DevEUI>-<epoch>-<FCnt32> (mqtt.md)."""
    dev = abp(1)
    put_abp(redis_server.url, dev)
    rs = [roofs(redis_server.url, f"roof-{c}", EUIS[i]) for i, c in enumerate("abc")]
    for fcnt in (1, 2, 3):
        phy = lora.uplink(dev, fcnt, water_payload(100 + fcnt))
        for i, roof in enumerate(rs):
            roof.fwd.push_acked([roof.fwd.rxpk(phy, lsnr=2.0 + 3 * i, rssi=-100 + 5 * i)])
    wait_for(lambda: len(all_ups(rs)) >= 3, 15, "three uplinks stored")
    time.sleep(1.5)  # the window + take-over time: nothing else may come
    ups = all_ups(rs)
    ids = sorted(r["id"] for r in ups)
    assert ids == [f"{dev.dev_eui}-0-{n}" for n in (1, 2, 3)], ids
    for r in ups:
        gws = [x["gateway"] for x in r["rx"]]
        assert sorted(gws) == sorted(EUIS), r["rx"]
        snrs = [x["snr"] for x in r["rx"]]
        assert snrs == sorted(snrs, reverse=True), r["rx"]
        assert r["data"]["level"] == 100 + r["fcnt"]


def test_join_heard_by_two_roofs_is_answered_once(
    redis_server: Any, roofs: Callable[..., Roof], lora: LoraPacket
) -> None:
    """multiroof.md: a join heard by two roofs is answered once, through the gateway with the best SNR;
    the same join-request again later, on any roof, is refused."""
    dev = otaa(1)
    put_otaa(redis_server.url, dev)
    rs = [roofs(redis_server.url, f"roof-{c}", EUIS[i]) for i, c in enumerate("ab")]
    phy = lora.join_request(dev, 0x0101)
    rs[0].fwd.push_acked([rs[0].fwd.rxpk(phy, lsnr=9.0, rssi=-80)])
    rs[1].fwd.push_acked([rs[1].fwd.rxpk(phy, lsnr=-3.0, rssi=-110)])
    answers = pull_resps(rs, 4.0)
    assert len(answers) == 1, answers
    assert answers[0][0] == EUIS[0]  # the best SNR
    # the join-accept is readable with the device's AppKey
    txpk = answers[0][1]
    data = json.loads(txpk[4:])["txpk"]["data"]
    accept = lora.join_accept(dev, base64.b64decode(data + "=" * (-len(data) % 4)), 0x0101)
    assert accept
    wait_for(lambda: [r for roof in rs for r in roof.records() if "-join-" in r.get("id", "")], 10, "join")
    joins = [r for roof in rs for r in roof.records() if "-join-" in r.get("id", "")]
    assert [j["id"] for j in joins] == [f"{dev.dev_eui}-join-1"], joins
    # the same join-request again on the other roof: no answer
    rs[1].fwd.push_acked([rs[1].fwd.rxpk(phy, lsnr=9.0, rssi=-80)])
    assert pull_resps(rs, 2.5) == []


def test_queued_command_is_transmitted_by_one_roof(
    redis_server: Any, roofs: Callable[..., Roof], lora: LoraPacket
) -> None:
    """multiroof.md step 5: a command is taken from the device's queue once, sent through one gateway."""
    from .roofkit import shared_state

    dev = abp(2)
    put_abp(redis_server.url, dev)
    rs = [roofs(redis_server.url, f"roof-{c}", EUIS[i]) for i, c in enumerate("ab")]
    shared_state(redis_server.url).queue_command(
        int(dev.dev_eui, 16), {"fport": 10, "data": "0102", "confirmed": False}
    )
    phy = lora.uplink(dev, 1, water_payload(120))
    rs[0].fwd.push_acked([rs[0].fwd.rxpk(phy, lsnr=-5.0, rssi=-110)])
    rs[1].fwd.push_acked([rs[1].fwd.rxpk(phy, lsnr=8.0, rssi=-80)])
    answers = pull_resps(rs, 4.0)
    assert len(answers) == 1, answers
    assert answers[0][0] == EUIS[1]  # the gateway with the best SNR
    # the next uplink, heard by both: the queue is empty, nothing goes down
    phy = lora.uplink(dev, 2, water_payload(121))
    for roof in rs:
        roof.fwd.push_acked([roof.fwd.rxpk(phy)])
    assert pull_resps(rs, 2.5) == []
    wait_for(lambda: len(all_ups(rs)) >= 2, 10, "two uplinks")
    assert sorted(r["id"] for r in all_ups(rs)) == [f"{dev.dev_eui}-0-1", f"{dev.dev_eui}-0-2"]


def test_status_shows_the_shared_store(redis_server: Any, roofs: Callable[..., Roof]) -> None:
    """multiroof.md, "The status of a roof"."""
    put_abp(redis_server.url, abp(3))
    roof = roofs(redis_server.url, "roof-a", EUIS[0])
    st = roof.status()["shared_store"]
    for key in ("url", "roof", "reachable", "since", "last_reconcile", "cache_loaded_at", "cached_devices"):
        assert key in st, st
    assert st["roof"] == "roof-a"
    assert st["reachable"] is True
    assert st["url"] == redis_server.url
    assert isinstance(st["since"], (int, float)) and abs(st["since"] - time.time()) < 120
    assert st["last_reconcile"] is None
    assert st["cached_devices"] == 1
    assert roof.metric("havel_gateway_shared_store_online") == 1.0


def test_roof_cut_off_from_redis_keeps_storing(
    redis_server: Any, roofs: Callable[..., Roof], lora: LoraPacket
) -> None:
    """multiroof.md "When things fail": a roof cut off from Redis accepts uplinks with its cached sessions
    and delivers them; it is degraded while cut off, back online when Redis answers."""
    dev = abp(4)
    put_abp(redis_server.url, dev)
    roof = roofs(redis_server.url, "roof-a", EUIS[0])
    roof.fwd.push_acked([roof.fwd.rxpk(lora.uplink(dev, 1, water_payload(101)))])
    wait_for(lambda: len(roof.ups()) == 1, 10, "first uplink")
    redis_server.stop()
    for fcnt in (2, 3):
        roof.fwd.push_acked([roof.fwd.rxpk(lora.uplink(dev, fcnt, water_payload(100 + fcnt)))])
    wait_for(lambda: len(roof.ups()) == 3, 10, "uplinks stored while Redis is down")
    assert [r["id"] for r in roof.ups()] == [f"{dev.dev_eui}-0-{n}" for n in (1, 2, 3)]
    st = roof.status()
    assert st["shared_store"]["reachable"] is False, st["shared_store"]
    assert st["state"] == "degraded", st.get("state")
    assert roof.metric("havel_gateway_shared_store_online") == 0.0
    redis_server.start()
    wait_for(lambda: roof.status()["shared_store"]["reachable"] is True, 10, "back online")
    assert roof.status()["shared_store"]["last_reconcile"] is not None
    # the counters accepted meanwhile were sent as maxima: FCnt 3 again is a replay
    roof.fwd.push_acked([roof.fwd.rxpk(lora.uplink(dev, 3, water_payload(103)))])
    roof.fwd.push_acked([roof.fwd.rxpk(lora.uplink(dev, 4, water_payload(104)))])
    wait_for(lambda: len(roof.ups()) == 4, 10, "FCnt 4")
    time.sleep(0.5)
    assert [r["id"] for r in roof.ups()][-1] == f"{dev.dev_eui}-0-4"
    assert len(roof.ups()) == 4


def test_damaged_entry_does_not_crash_a_roof(
    redis_server: Any, roofs: Callable[..., Roof], lora: LoraPacket
) -> None:
    """multiroof.md: a damaged entry (a string where a hash belongs) leaves that device out; every other
    device goes on."""
    good, bad = abp(5), abp(6)
    put_abp(redis_server.url, good)
    put_abp(redis_server.url, bad)
    client = redis_server.client()
    bad_keys = [
        k for k in client.keys("*") if bad.dev_eui in _text(k).upper() and _text(client.type(k)) == "hash"
    ]
    assert bad_keys, client.keys("*")
    roof = roofs(redis_server.url, "roof-a", EUIS[0])
    for k in bad_keys:
        client.delete(k)
        client.set(k, "garbage")
    for fcnt in (1, 2):
        roof.fwd.push_acked([roof.fwd.rxpk(lora.uplink(bad, fcnt, water_payload(1)))])
        roof.fwd.push_acked([roof.fwd.rxpk(lora.uplink(good, fcnt, water_payload(100 + fcnt)))])
    wait_for(lambda: len(roof.ups()) >= 2, 10, "the good device's uplinks")
    time.sleep(1.0)
    assert roof.alive()
    assert sorted(r["id"] for r in roof.ups()) == [f"{good.dev_eui}-0-1", f"{good.dev_eui}-0-2"]
    assert roof.status()["shared_store"]["reachable"] is True
    log = roof.log.read_text()
    assert any(k in log for k in map(_text, bad_keys)), log[-2000:]


def test_session_with_a_bad_key_names_key_and_field(
    redis_server: Any, roofs: Callable[..., Roof], lora: LoraPacket
) -> None:
    """multiroof.md: a session with a bad key gives a clear error naming the key and field; the device is
    left out, every other device goes on."""
    good, bad = abp(7), abp(8)
    put_abp(redis_server.url, good)
    put_abp(redis_server.url, bad)
    client = redis_server.client()
    key = next(
        _text(k)
        for k in client.keys("*")
        if bad.dev_eui in _text(k).upper() and _text(client.type(k)) == "hash"
    )
    fields = [_text(f) for f in client.hgetall(key)]
    nwk = [f for f in fields if "nwk" in f.lower()]
    assert nwk, fields
    client.hset(key, nwk[0], "not-hex")
    roof = roofs(redis_server.url, "roof-a", EUIS[0])
    for fcnt in (1, 2):
        roof.fwd.push_acked([roof.fwd.rxpk(lora.uplink(bad, fcnt, water_payload(1)))])
        roof.fwd.push_acked([roof.fwd.rxpk(lora.uplink(good, fcnt, water_payload(100 + fcnt)))])
    wait_for(lambda: len(roof.ups()) >= 2, 10, "the good device's uplinks")
    time.sleep(1.0)
    assert roof.alive()
    assert sorted(r["id"] for r in roof.ups()) == [f"{good.dev_eui}-0-1", f"{good.dev_eui}-0-2"]
    log = roof.log.read_text()
    assert key in log and nwk[0] in log, log[-2000:]
