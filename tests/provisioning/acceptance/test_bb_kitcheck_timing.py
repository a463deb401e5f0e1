"""Black-box: `havel kit check` with slow, sleeping, late and paced sensors and lines,
judged by the documents only.

The boards are wired by our own scenarios (tools/vboard/README.md, "The scenario (the wiring)"), not by
scenario.py; the expected sentences are the ones provisioning/README.md and tools/vboard/README.md
("Faults") print. Every run is the real command against the virtual board's pty, with a timeout: a hang
or a traceback fails the test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bbprov_kit import (
    MODE,
    REPLY_CFG,
    SLEEP,
    VBoard,
    air_scenario,
    air_wired,
    assert_green,
    assert_only_red,
    command,
    kit_check,
    on_board,
    split_frames,
    uart_probe,
)

Start = Callable[..., VBoard]


def test_fixed_mode_stays_in_the_sensor_and_the_check_leaves_it_asleep(vboard: Start, tmp_path: Path) -> None:
    """Set reporting mode is kept by the sensor (protocol V1.3); in query mode the check puts it to sleep."""
    board = vboard(air_wired(mode="active"))
    first = kit_check("air", board.path)
    assert_green(first)
    assert "was left in active mode" in first.item("SDS011").advice
    # Ask the sensor ourselves: asleep, it ignores the mode query; after "set work" it says query mode.
    log = on_board(
        board.path,
        uart_probe([(command(MODE), 300), (command(SLEEP, 1, 1), 300), (command(MODE), 300)]),
        tmp_path,
    )
    frames = [split_frames(bytes.fromhex("".join(h for _, h in step))) for step in log]
    assert frames[0] == [], f"a sensor the check left asleep answered: {frames[0]}"
    assert [f[1:5] for f in frames[1]] == [bytes([REPLY_CFG, SLEEP, 1, 1])], frames[1]
    assert [f[1:5] for f in frames[2]] == [bytes([REPLY_CFG, MODE, 0, 1])], frames[2]  # 1: query mode
    # and the next check finds it in query mode (it is awake now, as we left it)
    second = kit_check("air", board.path)
    assert_green(second)
    assert "active mode" not in second.item("SDS011").advice


def test_patient_enough_for_a_sensor_that_answers_late(vboard: Start) -> None:
    # "up to 1 s per reply": replies that start 700 ms after each command (70 times the default) still pass;
    # the margin to 1 s keeps a loaded machine from turning this into a race
    run = kit_check("air", vboard(air_wired(reply_delay_ms=700)).path)
    assert_green(run)
    assert "PM2.5 12.3" in run.item("SDS011").advice


def test_a_sensor_that_never_answers_in_time_gives_a_sentence_not_a_hang(vboard: Start) -> None:
    # replies 5 s after each command: far beyond the documented patience; the check must end with advice
    run = kit_check("air", vboard(air_wired(reply_delay_ms=5000)).path)
    advice = assert_only_red(run, "SDS011")
    assert "SDS011" in advice and len(advice) > 20, advice


def test_bme280_with_a_slow_start_on_vext_is_found(vboard: Start) -> None:
    # the check waits 50 ms after switching Vext on; a part that needs 30 ms is inside that
    run = kit_check("air", vboard(air_wired(bme={"startup_ms": 30})).path)
    assert_green(run)


def test_check_over_a_slow_usb_line_is_green(vboard: Start) -> None:
    # `vboard.py --baud` paces the USB line like a UART: the REPL's bytes reach havel in pieces
    run = kit_check("air", vboard(air_scenario(), baud=115200).path)
    assert_green(run)


def test_sds011_answering_late_is_not_told_to_be_replaced(vboard: Start) -> None:
    """The vboard README says the SDS011's reply delay "is not documented: 10 ms is an assumption", and a
    third-party library (TimOrme/sds011lib, docs/understanding.md) reports that the sensor "typically
    takes about a second" to answer. A sensor that answers every command 1.2 s late did answer the mode
    query (late): the sentence must not send a working sensor to the bin."""
    run = kit_check("air", vboard(air_wired(reply_delay_ms=1200)).path)
    assert "replace the sensor" not in run.item("SDS011").advice, str(run)
