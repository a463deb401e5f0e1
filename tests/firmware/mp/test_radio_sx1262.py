"""The SX1262 driver against the chip simulator host/fake_sx1262.py (commands, BUSY, IRQs, TCXO,
RF switch, IQ, sleep), and as the MAC's radio in a whole join + uplink."""

from fake_sx1262 import FakeSX1262
from fakeclock import FakeClock
from lw import region
from lw.mac import Mac
from memstore import MemStore
from radio.base import RadioError
from radio.sx1262 import SX1262
from simnet import SimNetwork

from lwsim import APP_KEY, otaa_cfg
from mptest import raises


def make(tcxo_mv=1800, rf_switch=True, board_tcxo=True, board_switch=True):
    clock = FakeClock(1000)
    chip = FakeSX1262(clock, tcxo=board_tcxo, rf_switch=board_switch)
    drv = SX1262(
        chip.spi, chip.nss, chip.reset, chip.busy, chip.dio1, clock, tcxo_mv=tcxo_mv, rf_switch_dio2=rf_switch
    )
    return clock, chip, drv


def test_init_configures_chip_for_lorawan():
    clock, chip, drv = make()
    assert chip.violations == []
    assert chip.tcxo_on and chip.tcxo_mv == 1800
    assert chip.dio2_switch and chip.regulator_dcdc and chip.packet_type == 1
    assert bytes(chip.regs[0x0740:0x0742]) == b"\x34\x44"  # public sync word
    assert chip.regs[0x08D8] & 0x1E == 0x1E  # errata 15.2 TX clamp
    assert chip.pa == (4, 7, 0, 1)
    assert chip.errors == 0
    # TCXO set up before the first calibration (calibration needs its clock)
    assert chip.commands.index(0x97) < chip.commands.index(0x89) < chip.commands.index(0x98)


def test_transmit_puts_frame_on_air_and_returns_tx_done_time():
    clock, chip, drv = make()
    frame = bytes(range(23))
    done = drv.transmit(frame, 868100000, 7, 125, 16)
    assert chip.violations == []
    f, freq, sf, bw, power, start, end, radiated = chip.sent[-1]
    assert f == frame and abs(freq - 868100000) < 100 and (sf, bw) == (7, 125) and radiated
    assert power == 14  # 16 dBm EIRP minus 2 dBi antenna gain
    assert done == end and end - start == (region.airtime_us(23, 7) + 999) // 1000
    assert chip.pkt[3] == 1 and chip.pkt[4] == 0  # CRC on, normal IQ
    assert chip.regs[0x0736] & 0x04  # errata 15.4: bit set for normal IQ
    assert chip.mod[3] == 0
    drv.transmit(frame, 868300000, 12, 125, 16)
    assert chip.mod[:2] == (12, 125) and chip.mod[3] == 1  # LDRO at SF12/125


def test_receive_downlink_with_inverted_iq():
    clock, chip, drv = make()
    chip.schedule(b"\x60downlink", 869525000, 9, 125, clock.now_ms() + 30)
    got = drv.receive(869525000, 9, 125, 100)
    assert got == b"\x60downlink" and chip.violations == []
    assert drv.rssi == -80 and drv.snr == 7
    assert chip.pkt[4] == 1 and not chip.regs[0x0736] & 0x04  # inverted IQ, errata bit cleared


def test_receive_times_out_and_ignores_frames_it_cannot_hear():
    clock, chip, drv = make()
    t0 = clock.now_ms()
    chip.schedule(b"normal-iq", 868100000, 7, 125, t0 + 20, inverted_iq=False)  # another node's uplink
    chip.schedule(b"wrong-sf", 868100000, 8, 125, t0 + 20)
    chip.schedule(b"too-late", 868100000, 7, 125, t0 + 400)
    assert drv.receive(868100000, 7, 125, 100) is None
    assert 100 <= clock.now_ms() - t0 <= 150


def test_tcxo_board_without_tcxo_setting_fails_loudly():
    e = raises(RadioError, make, 0, True, True, True)
    assert "TCXO" in str(e)
    # and a board without TCXO works without it
    clock, chip, drv = make(0, True, False, True)
    drv.transmit(b"x" * 5, 868100000, 7, 125, 14)
    assert chip.sent[-1][7] and chip.violations == []


def test_rf_switch_not_driven_means_nothing_radiated():
    clock, chip, drv = make(1800, False, True, True)
    heard = []
    chip.on_uplink = lambda *a: heard.append(a)
    drv.transmit(b"lost", 868100000, 7, 125, 14)
    assert chip.sent[-1][7] is False and heard == []


def test_sleep_then_wake_on_next_command():
    clock, chip, drv = make()
    drv.sleep()
    assert chip.asleep
    drv.transmit(b"after sleep", 868500000, 7, 125, 14)
    assert not chip.asleep and chip.sent[-1][0] == b"after sleep" and chip.violations == []
    assert chip.tcxo_on  # warm start kept the configuration


def test_simulator_is_strict_about_busy_and_order():
    clock = FakeClock(0)
    chip = FakeSX1262(clock)
    # a command while BUSY is high (right after reset) is lost
    chip.nss.value(0)
    chip.spi.write(b"\x8a\x01")
    chip.nss.value(1)
    assert chip.packet_type is None and chip.violations
    clock.sleep_ms(5)
    while chip.busy.value():
        clock.sleep_ms(1)
    # modulation parameters before the packet type are ignored
    chip.nss.value(0)
    chip.spi.write(b"\x8b\x07\x04\x01\x00")
    chip.nss.value(1)
    assert chip.mod is None and "before SetPacketType" in chip.violations[-1]


def test_mac_joins_and_sends_through_the_sx1262_driver():
    clock = FakeClock(1000)
    chip = FakeSX1262(clock)
    drv = SX1262(chip.spi, chip.nss, chip.reset, chip.busy, chip.dio1, clock, tcxo_mv=1800)
    net = SimNetwork(chip, app_key=APP_KEY)
    mac = Mac(drv, clock, MemStore(), otaa_cfg())
    assert mac.join().status == "joined"
    net.queue.append({"fport": 7, "payload": b"dl"})
    res = mac.send(1, b"over spi", max_wait_ms=10**7)
    assert res.downlink == (7, b"dl")
    assert net.data_uplinks()[-1].payload == b"over spi"
    assert chip.asleep and chip.violations == []
