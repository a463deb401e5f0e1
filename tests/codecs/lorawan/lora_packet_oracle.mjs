// Oracle for the differential test and the frame benchmark: the Node.js library lora-packet (0.9.3, pinned in
// tools/npm/package.json) answering requests read as JSON Lines on stdin, one JSON line out per request.
// Started once per test session and fed many frames. Hex is in on-air order unless a name ends in _be.
//
// Requests ({"op": ...}):
//   decode       {phy, nwk_s_key?, app_s_key?, app_key?, fcnt32?, dev_nonce_be?} -> the fields lora-packet reads
//   build_data   {mtype, dev_addr_be, fcnt32, fport|null, payload, fopts, adr, adr_ack_req, ack, fpending,
//                 nwk_s_key, app_s_key} -> {phy}
//   build_join_request {join_eui_be, dev_eui_be, dev_nonce_be, app_key} -> {phy}
//   build_join_accept  {app_nonce_be, net_id_be, dev_addr_be, dl_settings, rx_delay, cflist, app_key} -> {phy}
//   bench        {frames: [{phy, nwk_s_key, app_s_key, fcnt32}...], seconds} -> {frames_per_s, ...}
// Any failure answers {"error": message}.

import { createRequire } from "node:module";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const libDir = process.env.LORA_PACKET_DIR ||
  path.resolve(here, "..", "..", "..", "tools", "npm", "node_modules", "lora-packet");
const require = createRequire(path.join(libDir, "package.json"));
const lora = require(libDir);
const version = require(path.join(libDir, "package.json")).version;

const hex = (b) => Buffer.from(b).toString("hex");
const buf = (h) => Buffer.from(h || "", "hex");

// The upper 16 bits of a 32-bit FCnt, in the little-endian order lora-packet puts them into B0 and A_i.
function fcntMsb(fcnt32) {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(Math.floor((fcnt32 || 0) / 65536), 0);
  return b;
}

function decode(req) {
  const p = lora.fromWire(buf(req.phy));
  const out = { mtype: p.getMType(), dir: p.getDir(), mhdr: hex(p.MHDR), mic: hex(p.MIC) };
  const msb = fcntMsb(req.fcnt32);
  if (p.isDataMessage()) {
    Object.assign(out, {
      dev_addr_be: hex(p.DevAddr), fctrl: hex(p.FCtrl), fcnt: p.getFCnt(), fopts: hex(p.FOpts),
      fport: p.getFPort(), frm_payload: hex(p.FRMPayload), confirmed: p.isConfirmed(),
      adr: p.getFCtrlADR(), adr_ack_req: p.getFCtrlADRACKReq(), ack: p.getFCtrlACK(),
      fpending: p.getFCtrlFPending(),
    });
    if (req.nwk_s_key) {
      out.mic_valid = lora.verifyMIC(p, buf(req.nwk_s_key), undefined, msb);
      out.mic_calc = hex(lora.calculateMIC(p, buf(req.nwk_s_key), undefined, msb));
    }
    const key = p.getFPort() === 0 ? req.nwk_s_key : req.app_s_key;
    if (key && p.FRMPayload.length) {
      out.plain = hex(lora.decrypt(p, buf(req.app_s_key || req.nwk_s_key), buf(req.nwk_s_key || req.app_s_key), msb));
    }
  } else if (p.isJoinRequestMessage()) {
    Object.assign(out, { join_eui_be: hex(p.AppEUI), dev_eui_be: hex(p.DevEUI), dev_nonce_be: hex(p.DevNonce) });
    if (req.app_key) out.mic_valid = lora.verifyMIC(p, undefined, buf(req.app_key));
  } else if (p.isJoinAcceptMessage() && req.app_key) {
    const plain = lora.decryptJoinAccept(p, buf(req.app_key));
    const d = lora.fromWire(plain);
    Object.assign(out, {
      plain: hex(plain), app_nonce_be: hex(d.AppNonce), net_id_be: hex(d.NetID), dev_addr_be: hex(d.DevAddr),
      rx1_dr_offset: d.getDLSettingsRxOneDRoffset(), rx2_dr: d.getDLSettingsRxTwoDataRate(),
      rx_delay: d.getRxDelayDel(), cflist: hex(d.CFList), mic: hex(d.MIC),
      mic_valid: lora.verifyMIC(d, undefined, buf(req.app_key)),
    });
    if (req.dev_nonce_be) {
      const keys = lora.generateSessionKeys10(buf(req.app_key), d.NetID, d.AppNonce, buf(req.dev_nonce_be));
      out.nwk_s_key = hex(keys.NwkSKey);
      out.app_s_key = hex(keys.AppSKey);
    }
  } else {
    out.payload = hex(p.MACPayload);
  }
  return out;
}

function buildData(req) {
  const fields = {
    MType: req.mtype, DevAddr: buf(req.dev_addr_be), FCnt: req.fcnt32 % 65536, FOpts: buf(req.fopts),
    FCtrl: { ADR: req.adr, ADRACKReq: req.adr_ack_req, ACK: req.ack, FPending: req.fpending },
    payload: buf(req.payload),
  };
  if (req.fport !== null && req.fport !== undefined) fields.FPort = req.fport;
  const msb = fcntMsb(req.fcnt32);
  const p = lora.fromFields(fields, buf(req.app_s_key), buf(req.nwk_s_key), undefined, msb);
  // fromFields leaves the MIC at EEEEEEEE when there is no FPort: compute it the library's way.
  lora.recalculateMIC(p, buf(req.nwk_s_key), undefined, msb);
  return { phy: hex(p.getPHYPayload()) };
}

function buildJoinRequest(req) {
  const p = lora.fromFields({
    MType: "Join Request", AppEUI: buf(req.join_eui_be), DevEUI: buf(req.dev_eui_be), DevNonce: buf(req.dev_nonce_be),
  }, undefined, undefined, buf(req.app_key));
  return { phy: hex(p.getPHYPayload()) };
}

function buildJoinAccept(req) {
  const p = lora.fromFields({
    MType: "Join Accept", AppNonce: buf(req.app_nonce_be), NetID: buf(req.net_id_be), DevAddr: buf(req.dev_addr_be),
    DLSettings: req.dl_settings, RxDelay: req.rx_delay, CFList: buf(req.cflist),
  }, undefined, undefined, buf(req.app_key));
  return { phy: hex(p.getPHYPayload()) };
}

// Decode + MIC check + decrypt, as a network server does per uplink, for `seconds` of wall time. Each frame
// comes with its device's keys and full 32-bit counter; the work is prepared once, outside the timed loop.
function bench(req) {
  const work = req.frames.map((f) => ({
    phy: buf(f.phy), nwk: buf(f.nwk_s_key), app: buf(f.app_s_key), msb: fcntMsb(f.fcnt32),
  }));
  let n = 0;
  let valid = 0;
  let bytes = 0;
  const t0 = process.hrtime.bigint();
  const limit = BigInt(Math.round((req.seconds || 2) * 1e9));
  while (process.hrtime.bigint() - t0 < limit) {
    for (const w of work) {
      const p = lora.fromWire(w.phy);
      if (lora.verifyMIC(p, w.nwk, undefined, w.msb)) {
        valid++;
        bytes += lora.decrypt(p, w.app, w.nwk, w.msb).length;
      }
      n++;
    }
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return { frames_per_s: n / s, frames: n, mic_valid: valid, plain_bytes: bytes };
}

const ops = { decode, build_data: buildData, build_join_request: buildJoinRequest,
  build_join_accept: buildJoinAccept, bench, version: () => ({ version }) };

const rl = readline.createInterface({ input: process.stdin, terminal: false });
for await (const line of rl) {
  if (!line.trim()) continue;
  let out;
  try {
    const req = JSON.parse(line);
    const op = ops[req.op];
    out = op ? op(req) : { error: `unknown op ${req.op}` };
  } catch (e) {
    out = { error: String(e && e.message ? e.message : e) };
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}
