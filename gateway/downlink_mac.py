"""The MAC commands the network answers an uplink with: LinkCheckAns, DeviceTimeAns, DevStatusReq when the
battery report is stale, and LinkADRReq from :mod:`.adr` (which also says when an ADRACKReq needs a downlink
even without any command). The acknowledged transmit power of ADR is kept in the gateway database."""

from __future__ import annotations

import sqlite3
from typing import Any

from havel.codecs.lorawan import airtime, eu868
from havel.codecs.lorawan.ids import eui_hex
from havel.errors import InputError
from havel.gateway.adr import AdrController
from havel.gateway.config import NetworkConfig
from havel.gateway.network.outcome import Outcome
from havel.gateway.network.sessions import Device

__all__ = ["MacAnswers", "SqlAdrStore", "device_time_ans", "gps_time_ms"]

_GPS_EPOCH_UNIX = 315_964_800  # 1980-01-06T00:00:00Z
# GPS time runs ahead of UTC by the leap seconds since 1980: 18 since 2017-01-01, none announced since (the
# IERS bulletins; leap seconds are to end by 2035). Used only without a GPS-timed rxpk (``tmms``).
_GPS_MINUS_UTC_S = 18
_DEVSTATUS_EVERY_S = 3600.0  # do not ask a device for its battery more often than this
_NO_DR = -1  # (in the data-rate cache: a datr that is no EU868 LoRa data rate)


class MacAnswers:
    """Decides the MAC commands of each live uplink's downlink; the ADR state is ``adr``'s."""

    def __init__(self, adr: AdrController, net: NetworkConfig) -> None:
        self.adr = adr
        self.net = net
        self._status_asked: dict[int, float] = {}  # DevEUI -> when a DevStatusReq was last decided
        self._dr: dict[str, int] = {}  # datr text -> EU868 data rate (a network uses a handful)

    def _data_rate(self, datr: str) -> int | None:
        dr = self._dr.get(datr)
        if dr is None:
            try:
                dr = eu868.dr_from_datr(datr)
            except InputError:
                dr = _NO_DR
            if len(self._dr) < 64:
                self._dr[datr] = dr
        return None if dr == _NO_DR else dr

    def answers(self, out: Outcome, dev: Device, now: float) -> tuple[list[dict[str, Any]], bool]:
        """The MAC commands for this uplink's downlink, and whether a downlink must go even without any
        (ADRACKReq: the device backs off towards SF12 if none comes)."""
        cmds: list[dict[str, Any]] = []
        best, frame = out.best, out.frame
        assert best is not None and frame is not None
        mac_up = out.mac_up
        if frame.adr or frame.adr_ack_req or mac_up:
            copies = out.copies
            if len(copies) == 1:  # one concentrator heard it: the usual case
                max_snr = copies[0].rx.lsnr
            else:
                snrs = [c.rx.lsnr for c in copies if c.rx.lsnr is not None]
                max_snr = max(snrs) if snrs else None
            datr = best.rx.datr
            dr = self._dr.get(datr)
            dr = self._data_rate(datr) if dr is None or dr == _NO_DR else dr
            # (positional: once per uplink)
            adr = self.adr.on_uplink(
                dev.dev_eui,
                dev.session.epoch if dev.session is not None else 0,
                frame.adr,
                frame.adr_ack_req,
                dr,
                max_snr,
                mac_up,
                out.fcnt32 if out.fcnt32 is not None else 0,
            )
            if adr.command is not None:
                cmds.append(adr.command)
            answer_adr = adr.answer_needed
        else:
            answer_adr = False
        for up in mac_up:
            if up.get("name") == "LinkCheckReq":
                cmds.append(link_check_ans(out))
            elif up.get("name") == "DeviceTimeReq":
                cmds.append(device_time_ans(out))
        if dev.battery_at is None or now - dev.battery_at > self.net.battery_stale_s:  # stale
            asked = self._status_asked.get(dev.dev_eui, 0.0)
            if now - asked > _DEVSTATUS_EVERY_S:
                cmds.append({"name": "DevStatusReq"})
                self._status_asked[dev.dev_eui] = now
        return cmds, answer_adr


def gps_time_ms(out: Outcome) -> int:
    """GPS time (ms since 1980-01-06) at the end of the uplink: a concentrator's GPS timestamp (``tmms``)
    when one has it, else the receive time (this machine's clock) plus the leap seconds."""
    gps = [c.rx.tmms for c in out.copies if c.rx.tmms is not None]
    if gps:
        return int(gps[0])
    assert out.best is not None
    unix_ms = round(out.best.received_at.timestamp() * 1000)
    return unix_ms - _GPS_EPOCH_UNIX * 1000 + _GPS_MINUS_UTC_S * 1000


def link_check_ans(out: Outcome) -> dict[str, Any]:
    """The LinkCheckAns to a LinkCheckReq: the best copy's margin over the demodulation floor of its
    spreading factor, and how many gateways heard the frame (with several roofs, every roof's copies)."""
    best = out.best
    assert best is not None
    try:
        sf = eu868.DATA_RATES[eu868.dr_from_datr(best.rx.datr)][0]
    except (InputError, KeyError):
        sf = 12
    snr = best.rx.lsnr if best.rx.lsnr is not None else 0.0
    margin = max(0, min(254, round(snr - airtime.DEMOD_SNR_DB.get(sf, -20.0))))
    return {"name": "LinkCheckAns", "margin_db": margin, "gw_cnt": min(255, len(out.copies))}


def device_time_ans(out: Outcome) -> dict[str, Any]:
    """The DeviceTimeAns to a DeviceTimeReq (LoRaWAN 1.0.3 section 5.9): whole GPS seconds and 1/256 s."""
    ms = gps_time_ms(out)
    return {"name": "DeviceTimeAns", "gps_time_s": ms // 1000, "fraction_s": (ms % 1000 * 256 // 1000) / 256}


class SqlAdrStore:
    """The acknowledged TXPower and NbTrans of each device in the gateway database (table ``adr_power``),
    written inside the caller's transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def load_settings(self, dev_eui: int, epoch: int) -> tuple[int, int] | None:
        sql = "SELECT tx_power, nb_trans FROM adr_power WHERE dev_eui = ? AND epoch = ?"
        row = self.conn.execute(sql, (eui_hex(dev_eui), epoch)).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def save_settings(self, dev_eui: int, epoch: int, tx_power: int, nb_trans: int) -> None:
        sql = "INSERT OR REPLACE INTO adr_power (dev_eui, epoch, tx_power, nb_trans) VALUES (?, ?, ?, ?)"
        self.conn.execute(sql, (eui_hex(dev_eui), epoch, tx_power, nb_trans))
