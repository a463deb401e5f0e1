"""Port detection against faked pyserial port lists (ListPortInfo objects, as comports() returns)."""

from __future__ import annotations

import pytest
from serial.tools.list_ports_common import ListPortInfo

from havel.errors import TransportError
from havel.provisioning import ports


def port(device: str, vid: int | None = None, pid: int | None = None, desc: str = "") -> ListPortInfo:
    p = ListPortInfo(device, skip_link_detection=True)
    p.vid, p.pid, p.description = vid, pid, desc or device
    return p


@pytest.mark.parametrize(
    ("vid", "pid", "chip"),
    [
        (0x1A86, 0x7523, "CH340"),
        (0x1A86, 0x55D4, "CH9102"),
        (0x10C4, 0xEA60, "CP210x"),
        (0x303A, 0x1001, "ESP32 native USB"),
        (0x2E8A, 0x0005, "RP2040 MicroPython"),
    ],
)
def test_known_usb_ids_are_recognised(vid: int, pid: int, chip: str) -> None:
    c = ports.classify(port("/dev/ttyUSB0", vid, pid))
    assert c is not None and c.chip == chip and c.usb_id == f"{vid:04X}:{pid:04X}"


def test_unknown_devices_are_not_candidates() -> None:
    found = ports.candidates([port("/dev/ttyS0"), port("/dev/ttyACM3", 0x2341, 0x0043, "Arduino Uno")])
    assert found == []


def test_auto_picks_the_only_board_among_other_ports() -> None:
    lst = [
        port("/dev/ttyS0"),
        port("/dev/ttyUSB1", 0x10C4, 0xEA60, "CP2102"),
        port("/dev/ttyACM0", 0x2341, 0x43),
    ]
    assert ports.choose_port("auto", lst).device == "/dev/ttyUSB1"


def test_auto_with_two_boards_asks_or_refuses() -> None:
    lst = [port("/dev/ttyUSB0", 0x1A86, 0x7523), port("/dev/ttyACM0", 0x303A, 0x1001)]
    with pytest.raises(TransportError, match="2 boards"):
        ports.choose_port("auto", lst)
    picked = ports.choose_port("auto", lst, ask=lambda found: found[1])
    assert picked.device == "/dev/ttyACM0"


def test_explicit_port_is_taken_as_given() -> None:
    assert ports.choose_port("/dev/ttyUSB7", []).device == "/dev/ttyUSB7"
    c = ports.choose_port("/dev/ttyUSB0", [port("/dev/ttyUSB0", 0x1A86, 0x55D4)])
    assert c.chip == "CH9102"


@pytest.mark.parametrize(
    ("platform", "words"),
    [
        ("linux", ["data cable", "dmesg", "dialout"]),
        ("win32", ["data cable", "driver", "Device Manager"]),
        ("darwin", ["data cable", "driver", "/dev/cu."]),
    ],
)
def test_nothing_found_says_why_for_the_platform(platform: str, words: list[str]) -> None:
    with pytest.raises(TransportError) as err:
        ports.choose_port("auto", [port("/dev/ttyS0")], platform=platform, in_dialout=False)
    text = str(err.value)
    for w in words:
        assert w in text, w


def test_unknown_usb_serial_ports_are_named_in_the_advice() -> None:
    tips = ports.nothing_found_advice("linux", [port("/dev/ttyACM0", 0x2341, 0x0043, "Arduino Uno")], True)
    assert any("2341:0043" in t and "--port" in t for t in tips)
    assert not any("dialout" in t and "not in" in t for t in tips)
