"""The SX1276 driver against the register-level simulator host/fake_sx1276.py, and as the MAC's radio."""

from fake_sx1276 import FakeSX1276
from fakeclock import FakeClock
from lw import region
from lw.mac import Mac
from memstore import MemStore
from radio.base import RadioError
from radio.sx1276 import SX1276
from simnet import SimNetwork

from lwsim import APP_KEY, abp_cfg, otaa_cfg
from mptest import raises


def make(present=True):
    clock = FakeClock(1000)
    chip = FakeSX1276(clock, present=present)
    drv = SX1276(chip.spi, chip.nss, chip.reset, chip.dio0, clock)
    return clock, chip, drv


def test_init_enters_lora_mode_with_public_sync_word():
    clock, chip, drv = make()
    assert chip.lora and chip.mode == 1 and chip.regs[0x39] == 0x34
    assert chip.violations == []


def test_missing_chip_is_reported():
    e = raises(RadioError, make, False)
    assert "RegVersion" in str(e)


def test_transmit_frame_frequency_modulation_power():
    clock, chip, drv = make()
    done = drv.transmit(b"\x40hello-sx1276", 868300000, 9, 125, 16)
    frame, freq, sf, bw, pa, start, end = chip.sent[-1]
    assert frame == b"\x40hello-sx1276" and abs(freq - 868300000) < 100 and (sf, bw) == (9, 125)
    assert pa & 0x80 and 2 + (pa & 0x0F) == 14  # PA_BOOST, 16 dBm EIRP - 2 dBi
    assert done == end and end - start == (region.airtime_us(13, 9) + 999) // 1000
    assert chip.regs[0x1E] & 0x04  # CRC on for uplinks
    assert chip.regs[0x33] == 0x27 and chip.regs[0x3B] == 0x1D  # normal IQ
    assert chip.violations == []
    drv.transmit(b"x" * 10, 868100000, 12, 125, 16)
    assert chip.regs[0x26] & 0x08  # LDRO at SF12


def test_receive_inverted_iq_and_timeout():
    clock, chip, drv = make()
    t0 = clock.now_ms()
    chip.schedule(b"\x60down", 869525000, 12, 125, t0 + 50)
    assert drv.receive(869525000, 12, 125, 300) == b"\x60down"
    assert drv.snr == 7 and drv.rssi == -80
    assert chip.regs[0x33] == 0x67 and chip.regs[0x3B] == 0x19
    t1 = clock.now_ms()
    chip.schedule(b"uplink-iq", 868100000, 7, 125, t1 + 10, inverted_iq=False)
    assert drv.receive(868100000, 7, 125, 100) is None
    assert clock.now_ms() - t1 < 200
    assert chip.violations == []


def test_simulator_refuses_lora_switch_outside_sleep():
    clock = FakeClock(0)
    chip = FakeSX1276(clock)
    chip.nss.value(0)
    chip.spi.write(b"\x81\x81")  # LoRa + standby, from FSK standby
    chip.nss.value(1)
    assert not chip.lora and chip.violations


def test_sleep_clears_fifo_and_mac_works_over_sx1276():
    clock = FakeClock(1000)
    chip = FakeSX1276(clock)
    drv = SX1276(chip.spi, chip.nss, chip.reset, chip.dio0, clock)
    net = SimNetwork(chip, app_key=APP_KEY)
    mac = Mac(drv, clock, MemStore(), otaa_cfg())
    assert mac.join().status == "joined"
    assert chip.mode == 0  # the MAC put the radio to sleep
    net.queue.append({"fport": 3, "payload": b"dl"})
    res = mac.send(2, b"sx1276", max_wait_ms=10**7)
    assert res.downlink == (3, b"dl") and net.data_uplinks()[-1].payload == b"sx1276"
    assert chip.violations == []


def test_abp_uplink_over_sx1276_at_sf12():
    clock = FakeClock(1000)
    chip = FakeSX1276(clock)
    drv = SX1276(chip.spi, chip.nss, chip.reset, chip.dio0, clock)
    mac = Mac(drv, clock, MemStore(), abp_cfg(dr=0, adr=False))
    assert mac.send(1, bytes(51)).status == "sent"
    assert chip.sent[-1][2] == 12 and len(chip.sent[-1][0]) == 64
