"""The kit bench's API over HTTP, against the virtual board, without a browser: the DS18B20 fault of the
temperature kit and its wire, the questions answered No and Yes, a wrong passphrase, no board at all."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from havel.provisioning.registry import Registry

from .conftest import post, restage, scenario, usb_port

PW = "temperature bench passphrase"


def wait_event(
    env: dict[str, Any], kinds: set[str], after: int, timeout: float = 240.0
) -> tuple[int, str, Any]:
    """The first event of one of ``kinds`` with an id above ``after`` (polls the page's event history)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for i, kind, data in env["bench"].app.events.history():
            if i > after and kind in kinds:
                return i, kind, data
        time.sleep(0.1)
    raise AssertionError(f"no {kinds} event in {timeout} s: {env['bench'].app.events.history()[-5:]}")


def last_id(env: dict[str, Any]) -> int:
    h = env["bench"].app.events.history()
    return h[-1][0] if h else 0


@pytest.mark.timeout(600)
def test_bench_api_on_the_temperature_kit(
    bench_env: Callable[[str], dict[str, Any]], start_board: Callable[..., Any]
) -> None:
    env = bench_env("temperature")
    kit, port, settings = env["kit"], env["port"], env["settings"]

    status, ans = post(port, "/api/build", {"kit": "temperature", "passphrase": PW, "passphrase_again": PW})
    assert status == 409 and ans["error"] == "no board found on USB" and "USB data cable" in ans["hint"]

    vb = start_board(scenario.build(kit, kit.board(), {"ds18b20_85"}))
    env["plugged"].append(usb_port(vb.path))
    status, ans = post(
        port, "/api/build", {"kit": "temperature", "passphrase": PW, "passphrase_again": "typo"}
    )
    assert status == 400 and "differ" in ans["error"]
    status, ans = post(port, "/api/build", {"kit": "nonsense"})
    assert status == 400

    mark = last_id(env)
    status, ans = post(port, "/api/build", {"kit": "temperature", "passphrase": PW, "passphrase_again": PW})
    assert status == 200 and ans["board"] == vb.path
    _, kind, data = wait_event(env, {"finished", "failed"}, mark)
    assert kind == "finished" and data["ok"] is False
    flash = [d for _, k, d in env["bench"].app.events.history() if k == "flash"]
    assert flash and flash[-1]["done"] == flash[-1]["total"] > 0  # the page's progress bar reaches 100 %
    assert [d["done"] for d in flash] == sorted(d["done"] for d in flash)
    items = [d for _, k, d in env["bench"].app.events.history() if k == "check_item"]
    ds = next(d for d in items if d["name"].startswith("DS18B20"))
    assert ds["status"] == "fail" and "connect its red VDD wire to 3V3" in ds["advice"]
    assert ds["wires"] == [1]  # the red VDD wire in the diagram and the guide's table

    # Fixed; the build asks to create the registry: No stops it before registering...
    restage(vb, scenario.build(kit, kit.board(), set()))
    mark = last_id(env)
    assert (
        post(port, "/api/build", {"kit": "temperature", "passphrase": PW, "passphrase_again": PW})[0] == 200
    )
    _, _, q = wait_event(env, {"question"}, mark)
    assert "Create a new encrypted registry" in q["text"]
    assert post(port, "/api/answer", {"id": "not-the-question", "yes": True})[0] == 409
    assert post(port, "/api/answer", {"id": q["id"], "yes": False})[0] == 200
    _, kind, data = wait_event(env, {"finished", "failed"}, mark)
    assert kind == "failed" and "no registry" in data["error"]
    assert not settings.registry.exists()

    # ...Yes registers the node and makes its label.
    mark = last_id(env)
    assert (
        post(port, "/api/build", {"kit": "temperature", "passphrase": PW, "passphrase_again": PW})[0] == 200
    )
    _, _, q = wait_event(env, {"question"}, mark)
    assert post(port, "/api/answer", {"id": q["id"], "yes": True})[0] == 200
    _, kind, data = wait_event(env, {"finished", "failed"}, mark)
    assert kind == "finished" and data["ok"] is True, data
    name = data["name"]
    assert [e.name for e in Registry.open(settings.registry, PW).entries] == [name]

    # A wrong passphrase for the existing registry: a clear failure, and the board is free again.
    mark = last_id(env)
    assert post(port, "/api/build", {"kit": "temperature", "passphrase": "wrong"})[0] == 200
    _, kind, data = wait_event(env, {"finished", "failed"}, mark)
    assert kind == "failed" and "passphrase" in (data["error"] + data["hint"]).lower(), data
    mark = last_id(env)
    assert post(port, "/api/build", {"kit": "temperature", "passphrase": PW})[0] == 200
    _, kind, data = wait_event(env, {"finished", "failed"}, mark)
    assert kind == "finished" and data["ok"] and data["name"] == name
