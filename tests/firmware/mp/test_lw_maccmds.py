"""MAC commands from the network (LoRaWAN 1.0.x section 5, EU868) and their answers/NACK bits."""

import struct

from lw import mac as lwmac
from lw import maccmds, region

from lwsim import Rig, abp_cfg, otaa_cfg
from mptest import unhex


def _freq3(hz):
    return struct.pack("<I", hz // 100)[:3]


def exchange(rig, cmds, port0=False):
    """Deliver MAC commands in a downlink (FOpts, or FPort 0 payload), then send one more uplink;
    return the FOpts the device answered with."""
    if port0:
        rig.net.queue.append({"fport": 0, "payload": cmds})
    else:
        rig.net.queue.append({"fopts": cmds})
    rig.send()
    rig.send()
    return rig.net.data_uplinks()[-1].fopts


def test_link_check_request_and_answer():
    rig = Rig().joined()
    rig.mac.request_link_check()
    rig.net.queue.append({"fopts": b"\x02\x14\x03"})
    rig.send()
    assert rig.net.data_uplinks()[-1].fopts == b"\x02"
    assert rig.mac.link_check == (20, 3)


def test_device_time_request_and_answer():
    rig = Rig().joined()
    rig.mac.request_device_time()
    rig.net.queue.append({"fopts": b"\x0d" + struct.pack("<I", 1400000000) + b"\x80"})
    rig.send()
    assert rig.net.data_uplinks()[-1].fopts == b"\x0d"
    gps_ms, at = rig.mac.device_time
    assert gps_ms == 1400000000500 and at == rig.radio.uplinks[-1][5]


def test_link_adr_accepts_dr_power_mask_nbtrans():
    rig = Rig(otaa_cfg(dr=5))
    rig.net.cflist_hz = [867100000, 867300000]
    rig.joined()
    # DR3, TXPower 2, ChMask channels 0,1,3 (0b1011), ChMaskCntl 0, NbTrans 2
    ans = exchange(rig, b"\x03\x32\x0b\x00\x02")
    assert ans == b"\x03\x07"
    assert rig.mac.dr == 3 and rig.mac.tx_power == 2 and rig.mac.ch_mask == 0x0B and rig.mac.nb_trans == 2
    assert rig.radio.uplinks[-1][6] == 12  # 16 dBm - 2 x 2
    assert rig.radio.uplinks[-1][2] == 9  # DR3 = SF9
    # later unconfirmed uplinks use only enabled channels and go out NbTrans times
    before = len(rig.net.data_uplinks())
    rig.send()
    ups = rig.net.data_uplinks()[before:]
    assert len(ups) == 2 and ups[0].fcnt32 == ups[1].fcnt32
    assert all(u.freq_hz in (868100000, 868300000, 867100000) for u in ups)


def test_link_adr_nacks_and_changes_nothing():
    rig = Rig().joined()
    state = (rig.mac.dr, rig.mac.tx_power, rig.mac.ch_mask)
    # ChMask enabling undefined channel 5 -> ChMask NACK (bit 0 clear), others ok
    assert exchange(rig, b"\x03\x51\x20\x00\x01") == b"\x03\x06"
    # DR7 (FSK, unsupported here) -> DR NACK; TXPower 9 -> power NACK
    assert exchange(rig, b"\x03\x79\x07\x00\x01") == b"\x03\x01"
    # mask of no channel, ChMaskCntl RFU (3)
    assert exchange(rig, b"\x03\x51\x00\x00\x01") == b"\x03\x06"
    assert exchange(rig, b"\x03\x51\x07\x00\x31") == b"\x03\x06"
    assert (rig.mac.dr, rig.mac.tx_power, rig.mac.ch_mask) == state


def test_link_adr_block_applies_as_one_and_answers_each():
    rig = Rig()
    rig.net.cflist_hz = [867100000]
    rig.joined()
    # first ChMask would be invalid alone? No: block = mask 0x0001 then mask 0x0009 (ch 0 and 3)
    ans = exchange(rig, b"\x03\x40\x01\x00\x01" + b"\x03\x41\x09\x00\x01")
    assert ans == b"\x03\x07\x03\x07"
    assert rig.mac.ch_mask == 0x09 and rig.mac.dr == 4 and rig.mac.tx_power == 1
    # ChMaskCntl 6 switches all defined channels on
    assert exchange(rig, b"\x03\xff\x00\x00\x61") == b"\x03\x07"
    assert rig.mac.ch_mask == 0x0F and rig.mac.dr == 4


def test_duty_cycle_req_limits_aggregate_airtime():
    rig = Rig(otaa_cfg(adr=False)).joined()
    assert exchange(rig, b"\x04\x07") == b"\x04"
    assert rig.mac.dc.max_dcycle == 7
    t0 = rig.radio.uplinks[-1][4]
    toa = rig.radio.uplinks[-1][5] - t0
    rig.send()
    assert rig.radio.uplinks[-1][4] - t0 >= 128 * toa - 1


def test_rx_param_setup_ack_and_nack_sticky_until_downlink():
    rig = Rig().joined()
    good = b"\x05" + bytes((0x13,)) + _freq3(869525000)  # RX1 offset 1, RX2 DR3
    assert exchange(rig, good) == b"\x05\x07"
    assert rig.mac.rx1_dr_offset == 1 and rig.mac.rx2_dr == 3
    rig.net.rx1_dr_offset = 1  # the network applies what it asked for
    rig.net.rx2 = (869525000, 3)
    # repeated in every uplink until a downlink arrives
    rig.send()
    assert rig.net.data_uplinks()[-1].fopts == b"\x05\x07"
    rig.net.queue.append({"fport": 2, "payload": b"x"})
    rig.send()
    rig.send()
    assert rig.net.data_uplinks()[-1].fopts == b""
    bad = b"\x05" + bytes((0x67,)) + _freq3(915000000)  # offset 6, DR7, 915 MHz: all NACK
    assert exchange(rig, bad) == b"\x05\x00"
    assert rig.mac.rx1_dr_offset == 1 and rig.mac.rx2_dr == 3 and rig.mac.rx2_freq_hz == 869525000


def test_dev_status_battery_and_margin():
    rig = Rig().joined()
    rig.mac.battery = lambda: 200
    rig.radio.down_snr = -7
    assert exchange(rig, b"\x06") == b"\x06\xc8" + bytes(((-7) & 0x3F,))
    rig.mac.battery = None
    rig.radio.down_snr = 40
    assert exchange(rig, b"\x06", port0=True) == b"\x06\xff\x1f"


def test_new_channel_add_remove_and_nacks():
    rig = Rig().joined()
    assert exchange(rig, b"\x07\x03" + _freq3(867100000) + b"\x50") == b"\x07\x03"
    assert rig.mac.ch_freq[3] == 867100000 and rig.mac.ch_mask & 0x08
    assert exchange(rig, b"\x07\x01" + _freq3(867300000) + b"\x50") == b"\x07\x00"  # default channel
    assert exchange(rig, b"\x07\x04" + _freq3(915000000) + b"\x50") == b"\x07\x02"  # bad freq
    assert exchange(rig, b"\x07\x04" + _freq3(867300000) + b"\x27") == b"\x07\x01"  # min DR > max DR
    assert exchange(rig, b"\x07\x10" + _freq3(867300000) + b"\x50") == b"\x07\x00"  # no channel 16
    assert rig.mac.ch_freq[4] == 0
    assert exchange(rig, b"\x07\x03" + b"\x00\x00\x00" + b"\x00") == b"\x07\x03"  # remove channel 3
    assert rig.mac.ch_freq[3] == 0 and not rig.mac.ch_mask & 0x08


def test_rx_timing_setup_and_dl_channel():
    rig = Rig().joined()
    assert exchange(rig, b"\x08\x02") == b"\x08"
    assert rig.mac.rx_delay_ms == 2000
    # the network now answers 2 s after the uplink: the MAC must listen there
    rig.net.rx_delay_ms = 2000
    rig.net.queue.append({"fport": 9, "payload": b"late"})
    assert rig.send().downlink == (9, b"late")
    assert exchange(rig, b"\x08\x00") == b"\x08"
    assert rig.mac.rx_delay_ms == 1000
    rig.net.rx_delay_ms = 1000
    ans = exchange(rig, b"\x0a\x00" + _freq3(868900000))
    assert ans == b"\x0a\x03" and rig.mac.ch_dl_freq[0] == 868900000
    rig.net.dl_freq[868100000] = 868900000
    assert exchange(rig, b"\x0a\x09" + _freq3(868900000)) == b"\x0a\x01"  # no uplink channel 9


def test_unknown_cid_stops_processing_and_truncated_command_ignored():
    rig = Rig().joined()
    dc0 = rig.mac.dc.max_dcycle
    assert maccmds.process(rig.mac, b"\x06\x80\x04\x05") == [6]
    assert rig.mac.dc.max_dcycle == dc0
    assert maccmds.process(rig.mac, b"\x03\x50\x07") == []
    assert maccmds.process(rig.mac, b"\x09\x05\x04\x01") == [9, 4]  # TxParamSetup ignored in EU868


def test_adr_ack_req_and_backoff():
    rig = Rig(abp_cfg(dr=5, tx_power=3))
    for _ in range(64):
        rig.send()
    assert not rig.net.data_uplinks()[-1].fctrl & 0x40
    rig.send()
    assert rig.net.data_uplinks()[-1].fctrl & 0x40  # ADRACKReq after ADR_ACK_LIMIT
    for _ in range(32):
        rig.send()
    assert rig.mac.tx_power == 0 and rig.mac.dr == 5  # first: full power
    for _ in range(32):
        rig.send()
    assert rig.mac.dr == 4  # then one DR lower every ADR_ACK_DELAY
    rig.net.queue.append({"fport": 1, "payload": b"x"})
    rig.send()
    rig.send()
    assert not rig.net.data_uplinks()[-1].fctrl & 0x40 and rig.mac.adr_ack_cnt == 1


def test_rejoin_only_after_long_silence_and_not_in_bursts():
    rig = Rig(otaa_cfg(rejoin_after_s=86400, rejoin_min_uplinks=10, rejoin_retry_s=6 * 3600)).joined()
    rig.net.answer_joins = False
    joins = lambda: len([u for u in rig.net.uplinks if u.kind == "join"])  # noqa: E731
    j0 = joins()
    # a day of uplinks every 15 min with no downlink at all: no rejoin before the day is over
    for _ in range(95):
        rig.clock.advance(900000)
        rig.send()
    assert joins() == j0
    for _ in range(8 * 4):  # 8 more hours: one attempt, then at most one per 6 h
        rig.clock.advance(900000)
        rig.send()
    assert joins() - j0 == 2
    # the old session kept working meanwhile
    assert rig.net.data_uplinks()[-1].mic_ok
    # a downlink is evidence of the network: the silence timer restarts
    rig.net.queue.append({"fport": 1, "payload": b"hi"})
    rig.send()
    assert rig.mac.up_since_down == 0 and not rig.mac.rejoin_due()


def test_status_constants_exported():
    assert lwmac.SENT != lwmac.ACKED and unhex("00") == b"\x00"
    assert region.MAX_CHANNELS == 16


def test_answers_beyond_fopts_space_go_in_the_next_uplinks_whole():
    rig = Rig().joined()
    # FPort-0 downlink: two DlChannelReq (sticky answers, 4 bytes), five NewChannelReq (10 bytes),
    # DevStatusReq (3 bytes): 17 bytes of answers, more than the 15 FOpts can carry
    cmds = b"\x0a\x00" + _freq3(868100000) + b"\x0a\x01" + _freq3(868300000)
    for i in range(3, 8):
        cmds += b"\x07" + bytes((i,)) + _freq3(867100000 + 200000 * (i - 3)) + b"\x50"
    cmds += b"\x06"
    rig.net.queue.append({"fport": 0, "payload": cmds})
    rig.send()
    rig.send()
    first = rig.net.data_uplinks()[-1].fopts
    rig.send()
    second = rig.net.data_uplinks()[-1].fopts
    dl = b"\x0a\x03\x0a\x03"
    # sticky answers first, then whole commands only; the rest rides on the next uplink
    assert first == dl + b"\x07\x03" * 5
    assert second == dl + b"\x06\xff" + bytes((rig.radio.down_snr & 0x3F,))
    rig.send()
    assert rig.net.data_uplinks()[-1].fopts == dl  # sticky until a downlink arrives
    rig.net.queue.append({"fport": 1, "payload": b"x"})
    rig.send()
    rig.send()
    assert rig.net.data_uplinks()[-1].fopts == b""


def test_fit_splits_only_between_commands():
    assert maccmds.fit(b"\x06\xff\x1f\x03\x07", 4) == (b"\x06\xff\x1f", bytearray(b"\x03\x07"))
    assert maccmds.fit(b"\x03\x07\x02", 15) == (b"\x03\x07\x02", bytearray())
    assert maccmds.fit(b"\x06\xff\x1f", 2) == (b"", bytearray(b"\x06\xff\x1f"))
