"""The data path: a data frame's session found by DevAddr (the MIC decides between devices sharing one), its
32-bit counter reconstructed, the MIC verified, replays refused, the payload decrypted, the MAC commands read,
the new counter written and the message built. Nothing is written for a frame that is rejected."""

from __future__ import annotations

from typing import Any

from havel.codecs.lorawan import crypto, fcnt, maccmds, phy
from havel.gateway.network.messages import MessageBuilder
from havel.gateway.network.outcome import Outcome, Reason, Status, rejected
from havel.gateway.network.reception import Reception
from havel.gateway.network.sessions import Device, Session, SessionStore
from havel.gateway.outbox_records import Row


class DataPath:
    """Accepts data uplinks against the sessions in ``store`` (inside the caller's transaction)."""

    def __init__(self, store: SessionStore, messages: MessageBuilder) -> None:
        self.store = store
        self.messages = messages
        self._time: tuple[Any, float] = (None, 0.0)  # the last receive time and its POSIX seconds

    def uplink(
        self,
        frame: phy.DataFrame,
        copies: list[Reception],
        fcnt_seen: dict[tuple[int, int], int],
        records: list[Row],
    ) -> Outcome:
        """A new data frame (``copies`` best first). ``fcnt_seen`` holds the counters accepted earlier in
        the batch per (DevEUI, session epoch) (the store's cache changes only at commit); the message's
        outbox row goes to ``records``."""
        best = copies[0]
        candidates = self.store.by_dev_addr(frame.dev_addr)
        if not candidates:
            return rejected(
                Reason.UNKNOWN_DEV_ADDR, f"no session with DevAddr {frame.dev_addr:08X}", copies, frame=frame
            )
        match: tuple[Device, Session, int, int | None] | None = None
        for dev in candidates:
            s = dev.session
            assert s is not None
            last = fcnt_seen.get((dev.dev_eui, s.epoch), s.fcnt_up)
            fcnt32 = fcnt.reconstruct(last, frame.fcnt16)
            mic = crypto.data_mic(s.nwk_s_key, True, frame.dev_addr, fcnt32, frame.msg)
            if crypto.verify_mic(mic, frame.mic):
                match = (dev, s, fcnt32, last)
                break
        if match is None:
            gap = self._counter_gap(frame, candidates, fcnt_seen)
            if gap is not None:
                dev, last, ahead = gap
                return rejected(
                    Reason.FCNT_GAP,
                    f"the MIC verifies with FCnt {ahead}, {ahead - last} frames after the last accepted "
                    f"{last}: the device's counter jumped (keys are fine); reset its counter or rejoin it",
                    copies,
                    device=dev,
                    fcnt32=ahead,
                    frame=frame,
                )
            return rejected(
                Reason.MIC,
                f"MIC does not verify for any of {len(candidates)} session(s) "
                f"with DevAddr {frame.dev_addr:08X}",
                copies,
                frame=frame,
            )
        dev, s, fcnt32, last = match
        if last is not None and fcnt32 <= last:
            return rejected(
                Reason.REPLAY,
                f"FCnt {fcnt32} is not above the last accepted {last}",
                copies,
                device=dev,
                fcnt32=fcnt32,
                frame=frame,
            )
        payload = b""
        mac_raw = frame.fopts
        if frame.fport is not None and frame.frm_payload:
            key = s.nwk_s_key if frame.fport == 0 else s.app_s_key
            payload = crypto.crypt_frm_payload(key, True, frame.dev_addr, fcnt32, frame.frm_payload)
            if frame.fport == 0:
                mac_raw = payload
        mac_up = maccmds.decode(mac_raw, True) if mac_raw else []
        record, row = self.messages.uplink_stored(dev, frame, fcnt32, payload, copies)
        at = best.received_at
        if at is self._time[0]:  # the frames of one datagram share their receive time
            seen = self._time[1]
        else:
            seen = at.timestamp()
            self._time = (at, seen)
        current = self.store.set_fcnt_up(dev.dev_eui, fcnt32, seen, epoch=s.epoch)
        if current:
            for cmd in mac_up:
                if cmd.get("name") == "DevStatusAns" and isinstance(cmd.get("battery"), int):
                    self.store.set_battery(dev.dev_eui, int(cmd["battery"]), seen)
        records.append(row)
        fcnt_seen[(dev.dev_eui, s.epoch)] = fcnt32
        return Outcome.accepted(dev, fcnt32, frame, best, copies, mac_up, record, not current)

    def sent_again(self, frame: phy.DataFrame, copies: list[Reception]) -> Outcome:
        """A frame stored before, sent again: if it is the last accepted frame of a device (same FCnt, MIC
        verified), a retransmission (a confirmed one gets an ACK again); nothing is stored. Anything else
        stays a duplicate."""
        best = copies[0]
        for dev in self.store.by_dev_addr(frame.dev_addr):
            s = dev.session
            if s is None or s.fcnt_up is None or fcnt.reconstruct(s.fcnt_up, frame.fcnt16) != s.fcnt_up:
                continue
            mic = crypto.data_mic(s.nwk_s_key, True, frame.dev_addr, s.fcnt_up, frame.msg)
            if crypto.verify_mic(mic, frame.mic):
                return Outcome(
                    Status.RETRANSMISSION, device=dev, fcnt32=s.fcnt_up, frame=frame, best=best, copies=copies
                )
        return rejected(Reason.DUPLICATE, "copy arrived after its frame was processed", copies, frame=frame)

    def _counter_gap(
        self, frame: phy.DataFrame, candidates: list[Device], fcnt_seen: dict[tuple[int, int], int]
    ) -> tuple[Device, int, int] | None:
        """After a MIC failure: whether the frame verifies with a counter one or two 16-bit rounds further
        than the reconstructed one (the device's counter jumped by 49,152 or more, which the 16 bits on air
        cannot tell from an old counter). Costs two more MICs per session, on failures only."""
        for dev in candidates:
            s = dev.session
            if s is None or s.fcnt_up is None:
                continue
            last = fcnt_seen.get((dev.dev_eui, s.epoch), s.fcnt_up)
            base = fcnt.reconstruct(last, frame.fcnt16)
            for ahead in (base + (1 << 16), base + (2 << 16)):
                if ahead > 0xFFFFFFFF:
                    break
                mic = crypto.data_mic(s.nwk_s_key, True, frame.dev_addr, ahead, frame.msg)
                if crypto.verify_mic(mic, frame.mic):
                    return dev, last, ahead
        return None
