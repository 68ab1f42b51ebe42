// medsign signing plugin — the phone's signing for a hospital's own mini program (R2): scan a
// PC's QR code, show what is signed (<sign-confirm>), sign with the PIN or the fingerprint. The
// same phone half as the medsign mini program and the H5 app (core.js and the WebAssembly module,
// copied into lib/ by scripts/build-miniprogram). Its storage is its own (prefix medsign.plugin.).
//
//   const medsign = requirePlugin('medsign')
//   medsign.configure({ server: 'https://sign-gw.hospital.example' })   // the DMZ gateway
//   await medsign.activate({ employeeNo, code, deviceName })            // once per phone
//   await medsign.createKey(pin)                                        // once: the split key
//   const doc = await medsign.scanToSign()      // → { rounds, summary, text, pages, matches }
//   <sign-confirm summary="{{doc.summary}}" text="{{doc.text}}" … bindconfirm="onConfirm" />
//   onConfirm(e) { medsign.sign(doc.rounds, e.detail) }                 // { pin } | { fingerprint: true }
import { WASM } from './lib/globals.js';
import { createPhone, scanned } from './lib/core.js';
import * as halves from './lib/medsign-phone.js';
import { wxStore, wxRequest, entropy, scanCode, soter, loginCode, face } from './lib/wx-platform.js';

let phone = null;
let store = null;
let loaded = null;

/** The DMZ gateway's public address (https://…); call once before anything else. */
export function configure({ server }) {
  if (!/^https:\/\/[^/\s]+/.test(String(server || ''))) {
    throw new Error('server 须为网关的 https 地址 / server must be the gateway\'s https address');
  }
  store = wxStore(wx, 'medsign.plugin.');
  phone = createPhone({ base: `${server.replace(/\/+$/, '')}/mobile/v1/`, request: wxRequest(wx), store });
  loaded = null;
}

async function ready() {
  if (!phone) throw new Error('请先调用 configure / call configure first');
  if (!loaded) loaded = Promise.all([store.ready(), halves.load({ wasm: WASM })]).catch((e) => { loaded = null; throw e; });
  await loaded;
  await entropy(wx);
  return phone;
}

/** Whether this phone is bound and holds its key share. */
export async function status() {
  await ready();
  return { bound: !!store.get('token'), enrolled: !!store.get('wrapped'), fingerprint: !!store.get('fingerprint'), employee: store.get('employee') };
}

/** Bind this phone with the one-time activation code from the IT department. */
export async function activate(a) {
  return (await ready()).activate(a);
}

/** The split key and its certificate (with WeChat face verification when the hospital requires it). */
export async function createKey(pin) {
  const p = await ready();
  const confirm = () => true;
  return p.createKey(pin, confirm).catch(async (e) => {
    if (e.body?.code !== 'realname_required') throw e;
    await p.realname({ wxCode: await loginCode(wx), face: face(wx) });
    await ready();
    return p.createKey(pin, confirm);
  });
}

/** Open a signing ticket (a deep link or the ticket itself): the rounds and what the doctor sees. */
export async function open(linkOrTicket) {
  const p = await ready();
  const s = scanned(linkOrTicket);
  const ticket = s ? s.ticket : String(linkOrTicket || '');
  if (s && s.kind !== 'sign') throw new Error('这是登录二维码 / this is a login code');
  const rounds = await p.openRounds([{ ticket }]);
  const v = await p.view(rounds[0]).catch(() => ({ matches: true }));
  return { rounds, summary: rounds[0].summary, text: v.text || '', pages: v.pages || [], truncated: !!v.truncated, matches: v.matches !== false };
}

/** Scan with the camera and open what was scanned. */
export async function scanToSign() {
  return open(await scanCode(wx));
}

/** Sign opened rounds: `approval` is <sign-confirm>'s `confirm` detail, { pin } or { fingerprint: true }. */
export async function sign(rounds, approval) {
  const p = await ready();
  const how = approval && approval.fingerprint ? { fingerprint: { soter: soter(wx) } } : { pin: String(approval?.pin || '') };
  return p.signRounds(rounds, how);
}
