// Builds and reads LoRaWAN 1.0.x frames with the public lora-packet library, for the black-box gateway
// tests. One JSON request per stdin line, one JSON answer per stdout line (hex strings for bytes).
import { createRequire } from "node:module";
import { createInterface } from "node:readline";

const require = createRequire(import.meta.url);
const lp = require(process.env.LORA_PACKET || "lora-packet");

const hex = (s) => Buffer.from(s, "hex");

// lora-packet puts these two bytes into B0 and A_i right after the (reversed) low 16 bits, as they are:
// so they are the high half of FCnt32 in on-air (little-endian) order.
function fcntMsb(fcnt32) {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(Math.floor(fcnt32 / 65536) & 0xffff);
  return b;
}

function uplink(r) {
  const fields = {
    MType: r.confirmed ? "Confirmed Data Up" : "Unconfirmed Data Up",
    DevAddr: hex(r.dev_addr),
    FCtrl: { ADR: !!r.adr, ADRACKReq: !!r.adr_ack_req, ACK: !!r.ack, FPending: false },
    FCnt: r.fcnt % 65536,
    FPort: r.fport,
    payload: hex(r.payload),
  };
  if (r.fopts) fields.FOpts = hex(r.fopts);
  const p = lp.fromFields(fields, hex(r.app_s_key), hex(r.nwk_s_key), undefined, fcntMsb(r.fcnt));
  return { phy: p.getPHYPayload().toString("hex") };
}

function joinRequest(r) {
  const p = lp.fromFields(
    { MType: "Join Request", AppEUI: hex(r.join_eui), DevEUI: hex(r.dev_eui), DevNonce: hex(r.dev_nonce) },
    undefined,
    undefined,
    hex(r.app_key),
  );
  return { phy: p.getPHYPayload().toString("hex") };
}

function joinAccept(r) {
  const appKey = hex(r.app_key);
  const wire = lp.fromWire(hex(r.phy));
  const plain = lp.fromWire(lp.decryptJoinAccept(wire, appKey));
  const keys = lp.generateSessionKeys(appKey, plain.NetID, plain.AppNonce, hex(r.dev_nonce));
  return {
    mtype: plain.getMType(),
    mic_ok: lp.verifyMIC(plain, undefined, appKey),
    app_nonce: plain.AppNonce.toString("hex"),
    net_id: plain.NetID.toString("hex"),
    dev_addr: plain.DevAddr.toString("hex"),
    dl_settings: plain.DLSettings.readUInt8(0),
    rx_delay: plain.RxDelay.readUInt8(0),
    cflist: plain.CFList ? plain.CFList.toString("hex") : "",
    nwk_s_key: keys.NwkSKey.toString("hex"),
    app_s_key: keys.AppSKey.toString("hex"),
  };
}

function downlink(r) {
  const p = lp.fromWire(hex(r.phy));
  const msb = fcntMsb(r.fcnt_high || 0);
  const out = {
    mtype: p.getMType(),
    dev_addr: p.DevAddr.toString("hex"),
    fcnt: p.getFCnt(),
    fport: p.getFPort(),
    ack: p.getFCtrlACK(),
    fpending: p.getFCtrlFPending(),
    adr: p.getFCtrlADR(),
    fopts: p.FOpts ? p.FOpts.toString("hex") : "",
    mic_ok: lp.verifyMIC(p, hex(r.nwk_s_key), undefined, msb),
    payload: "",
  };
  if (p.FRMPayload && p.FRMPayload.length) {
    out.payload = lp.decrypt(p, hex(r.app_s_key), hex(r.nwk_s_key), msb).toString("hex");
  }
  return out;
}

const ops = { uplink, join_request: joinRequest, join_accept: joinAccept, downlink };
const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  let answer;
  try {
    const r = JSON.parse(line);
    answer = { ok: true, ...ops[r.op](r) };
  } catch (e) {
    answer = { ok: false, error: String(e && e.stack ? e.stack : e) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
});
