// Frames for the black-box upstream tests, built with the public lora-packet library: what a device and
// what a network server of our own would send. One JSON request per stdin line, one JSON answer per line.
import { createRequire } from "node:module";
import { createInterface } from "node:readline";

const require = createRequire(import.meta.url);
const lp = require(process.env.LORA_PACKET || "lora-packet");
const hex = (s) => Buffer.from(s, "hex");

function uplink(r) {
  const p = lp.fromFields(
    {
      MType: r.confirmed ? "Confirmed Data Up" : "Unconfirmed Data Up",
      DevAddr: hex(r.dev_addr),
      FCtrl: { ADR: false, ADRACKReq: false, ACK: false, FPending: false },
      FCnt: r.fcnt,
      FPort: r.fport,
      payload: hex(r.payload),
    },
    hex(r.app_s_key),
    hex(r.nwk_s_key),
  );
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

// The network server's side: a join-accept encrypted with the AppKey, and the session keys it implies.
function joinAccept(r) {
  const appKey = hex(r.app_key);
  const p = lp.fromFields(
    {
      MType: "Join Accept",
      AppNonce: hex(r.app_nonce),
      NetID: hex(r.net_id),
      DevAddr: hex(r.dev_addr),
      DLSettings: Buffer.from([0]),
      RxDelay: Buffer.from([1]),
      CFList: Buffer.alloc(0),
    },
    undefined,
    undefined,
    appKey,
  );
  const keys = lp.generateSessionKeys(appKey, hex(r.net_id), hex(r.app_nonce), hex(r.dev_nonce));
  // Check our own frame the way a device would, so that a broken builder cannot pass as a roof bug.
  const plain = lp.fromWire(lp.decryptJoinAccept(lp.fromWire(p.getPHYPayload()), appKey));
  if (!lp.verifyMIC(plain, undefined, appKey)) throw new Error("own join-accept does not verify");
  return {
    phy: p.getPHYPayload().toString("hex"),
    nwk_s_key: keys.NwkSKey.toString("hex"),
    app_s_key: keys.AppSKey.toString("hex"),
  };
}

const ops = { uplink, join_request: joinRequest, join_accept: joinAccept };
createInterface({ input: process.stdin }).on("line", (line) => {
  let answer;
  try {
    const r = JSON.parse(line);
    answer = { ok: true, ...ops[r.op](r) };
  } catch (e) {
    answer = { ok: false, error: String(e && e.stack ? e.stack : e) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
});
