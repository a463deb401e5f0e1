"""A miniature LoRaWAN network server for host tests and simulations (host only, never flashed).

It sits on a SimRadio: verifies every uplink (MIC with the 32-bit counter), decrypts it, answers
join-requests with join-accepts in RX1 (5 s), and sends queued downlinks in RX1 (or RX2) of the
next uplink, on the frequency and data rate a real EU868 network would use. Tests use it to drive
the MAC through whole exchanges; the host frame layer (havel.codecs.lorawan) cross-checks it.
"""

import struct

import cryptolib
from lw import crypto, region
from lw.session import session_keys


class Uplink:
    def __init__(self):
        self.kind = ""  # "join" or "data"
        self.mic_ok = False
        self.dev_nonce = -1
        self.confirmed = False
        self.fctrl = 0
        self.fcnt32 = -1
        self.fopts = b""
        self.fport = None
        self.payload = b""
        self.freq_hz = 0
        self.sf = 0
        self.end_ms = 0
        self.frame = b""

    def __repr__(self):
        return "Uplink(%s fcnt=%d fport=%r payload=%r fopts=%r)" % (
            self.kind,
            self.fcnt32,
            self.fport,
            self.payload,
            self.fopts,
        )


def build_join_accept(app_key, join_nonce, net_id, dev_addr, dl_settings=0, rx_delay=1, cflist_hz=None):
    """An encrypted join-accept, as a network server sends it."""
    body = bytearray(13)
    body[0] = 0x20
    body[1:4] = struct.pack("<I", join_nonce)[:3]
    body[4:7] = struct.pack("<I", net_id)[:3]
    struct.pack_into("<IBB", body, 7, dev_addr, dl_settings, rx_delay)
    if cflist_hz is not None:
        cf = bytearray(16)
        for k in range(min(5, len(cflist_hz))):
            cf[3 * k : 3 * k + 3] = struct.pack("<I", cflist_hz[k] // 100)[:3]
        body.extend(cf)
    mic = crypto.join_mic(crypto.aes_key(app_key), body)
    plain = bytes(body[1:]) + mic
    enc = cryptolib.aes(bytes(app_key), 1).decrypt(plain)  # the server encrypts with AES decrypt
    return bytes(body[:1]) + enc


def build_data_down(
    nwk_s_key,
    app_s_key,
    dev_addr,
    fcnt32,
    fport=None,
    payload=b"",
    fopts=b"",
    confirmed=False,
    ack=False,
    fpending=False,
    adr=False,
):
    """A downlink data frame with a valid MIC (FPort 0 payload encrypted with NwkSKey)."""
    fctrl = (0x80 if adr else 0) | (0x20 if ack else 0) | (0x10 if fpending else 0) | len(fopts)
    msg = bytearray(struct.pack("<BIBH", 0xA0 if confirmed else 0x60, dev_addr, fctrl, fcnt32 & 0xFFFF))
    msg.extend(fopts)
    if fport is not None:
        msg.append(fport)
        if payload:
            key = nwk_s_key if fport == 0 else app_s_key
            msg.extend(crypto.crypt_payload(crypto.aes_key(key), False, dev_addr, fcnt32, payload))
    return bytes(msg) + crypto.data_mic(crypto.aes_key(nwk_s_key), False, dev_addr, fcnt32, msg)


class SimNetwork:
    """One device's view of a network server. Keys as bytes; DevAddr and NetID as ints."""

    def __init__(
        self, radio, app_key=None, dev_addr=0x260B1234, net_id=0x000013, nwk_s_key=None, app_s_key=None
    ):
        self.radio = radio
        radio.on_uplink = self._on_uplink
        self.app_key = app_key
        self.dev_addr = dev_addr
        self.net_id = net_id
        self.nwk_s_key = nwk_s_key
        self.app_s_key = app_s_key
        self.join_nonce = 0
        self.answer_joins = True
        self.join_dl_settings = 0
        self.join_rx_delay = 1
        self.cflist_hz = None
        self.rx1_dr_offset = 0
        self.rx_delay_ms = 1000
        self.use_rx2 = False
        self.dl_freq = {}  # uplink freq -> RX1 freq (DlChannelReq)
        self.rx2 = (region.RX2_FREQ_HZ, 0)
        self.fcnt_down = 0
        self.fcnt_up_last = None
        self.ack_confirmed = True
        self.queue = []  # dicts of build_data_down keyword arguments for the next uplinks
        self.uplinks = []
        self.dev_nonces = []
        self.last_join_accept = None

    def _sfbw(self, dr):
        return region.DR_SF[dr], region.DR_BW[dr]

    def _dr_of(self, sf, bw):
        for i in range(len(region.DR_SF)):
            if region.DR_SF[i] == sf and region.DR_BW[i] == bw:
                return i
        return 0

    def _schedule(self, frame, up, delay_ms):
        if self.use_rx2:
            f, dr = self.rx2
            sf, bw = self._sfbw(dr)
            self.radio.schedule(frame, f, sf, bw, up.end_ms + delay_ms + 1000)
        else:
            dr = region.rx1_dr(self._dr_of(up.sf, up.bw), self.rx1_dr_offset)
            sf, bw = self._sfbw(dr)
            freq = self.dl_freq.get(up.freq_hz, up.freq_hz)
            self.radio.schedule(frame, freq, sf, bw, up.end_ms + delay_ms)

    def _on_uplink(self, frame, freq_hz, sf, bw_khz, start_ms, end_ms):
        up = Uplink()
        up.frame, up.freq_hz, up.sf, up.bw, up.end_ms = frame, freq_hz, sf, bw_khz, end_ms
        self.uplinks.append(up)
        mtype = frame[0] >> 5
        if mtype == 0 and len(frame) == 23:
            up.kind = "join"
            up.dev_nonce = frame[17] | frame[18] << 8
            up.mic_ok = self.app_key is not None and crypto.equal(
                crypto.join_mic(crypto.aes_key(self.app_key), frame[:19]), frame[19:]
            )
            if up.mic_ok:
                self.dev_nonces.append(up.dev_nonce)
            if up.mic_ok and self.answer_joins:
                self.join_nonce += 1
                ja = build_join_accept(
                    self.app_key,
                    self.join_nonce,
                    self.net_id,
                    self.dev_addr,
                    self.join_dl_settings,
                    self.join_rx_delay,
                    self.cflist_hz,
                )
                jn = struct.pack("<I", self.join_nonce)[:3]
                nid = struct.pack("<I", self.net_id)[:3]
                self.nwk_s_key, self.app_s_key = session_keys(self.app_key, jn, nid, up.dev_nonce)
                self.fcnt_down = 0
                self.fcnt_up_last = None
                self.last_join_accept = ja
                self.rx1_dr_offset = 0  # the join-accept itself goes out with the defaults
                self._schedule(ja, up, 5000)
                self.rx1_dr_offset = (self.join_dl_settings >> 4) & 7
                self.rx_delay_ms = (self.join_rx_delay or 1) * 1000
            return
        if mtype not in (2, 4) or self.nwk_s_key is None:
            return
        up.kind = "data"
        up.confirmed = mtype == 4
        addr, fctrl, f16 = struct.unpack_from("<IBH", frame, 1)
        if addr != self.dev_addr:
            return
        up.fctrl = fctrl
        base = 0 if self.fcnt_up_last is None else self.fcnt_up_last
        f32 = (base & 0xFFFF0000) | f16
        if f32 < base:
            f32 += 0x10000
        nf = fctrl & 0x0F
        up.mic_ok = crypto.equal(
            crypto.data_mic(crypto.aes_key(self.nwk_s_key), True, addr, f32, frame[:-4]), frame[-4:]
        )
        if not up.mic_ok:
            return
        up.fcnt32 = f32
        self.fcnt_up_last = f32
        up.fopts = bytes(frame[8 : 8 + nf])
        if 8 + nf < len(frame) - 4:
            up.fport = frame[8 + nf]
            body = frame[9 + nf : -4]
            key = self.nwk_s_key if up.fport == 0 else self.app_s_key
            up.payload = crypto.crypt_payload(crypto.aes_key(key), True, addr, f32, body)
        kw = self.queue.pop(0) if self.queue else None
        if kw is None and up.confirmed and self.ack_confirmed:
            kw = {}
        if kw is not None:
            kw = dict(kw)
            if up.confirmed and self.ack_confirmed:
                kw["ack"] = True
            fcnt = kw.pop("fcnt", self.fcnt_down)
            dl = build_data_down(self.nwk_s_key, self.app_s_key, self.dev_addr, fcnt, **kw)
            self.fcnt_down = fcnt + 1
            self._schedule(dl, up, self.rx_delay_ms)

    def data_uplinks(self):
        return [u for u in self.uplinks if u.kind == "data" and u.mic_ok]
