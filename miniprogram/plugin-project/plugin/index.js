// medsign signing plugin — scan-to-sign inside a hospital's own mini program, with the doctor's key
// where it belongs. A plugin cannot hold a signing key: WeChat gives plugins no wx.getRandomValues,
// no wx.login, no face verification and no SOTER, and a second copy of a doctor's key in another
// app would break sole control (binding it would revoke the first). So the plugin reads the scanned
// code, and the medsign mini program — where the doctor bound the phone — shows the document, takes
// the PIN or the fingerprint, signs, and comes back with the outcome.
//
//   const medsign = requirePlugin('medsign')
//   medsign.configure({ appId: 'wx…' })          // the hospital's medsign mini program
//   const { result } = await wx.scanCode({ onlyFromCamera: true })
//   const t = medsign.target(result)             // → { kind, ticket, appId, path }, or throws
//   wx.navigateToMiniProgram({ appId: t.appId, path: t.path, extraData: { from: 'plugin' } })
//   // or <sign-handoff link="{{result}}" app-id="wx…" bindopen="…"> shows it and emits the target
//   App.onShow(options) → medsign.outcome(options.referrerInfo)  // → { ticket, state } or null
import { scanned } from './lib/links.js';

const APPID = /^wx[0-9a-f]{16}$/;
let medsign = null;

/** The AppID of the hospital's medsign mini program (where the doctors' phones are bound). */
export function configure({ appId }) {
  if (!APPID.test(String(appId || ''))) throw new Error('appId 须为医签小程序的 AppID / appId must be the medsign mini program\'s AppID');
  medsign = appId;
}

/**
 * Where a scanned code leads in the medsign mini program: a signing or a login of this hospital,
 * nothing else (any other code throws).
 * @param {string} text what wx.scanCode read
 * @param {string} [appId] the medsign mini program (default: configure's)
 */
export function target(text, appId = medsign) {
  if (!APPID.test(String(appId || ''))) throw new Error('请先调用 configure / call configure first');
  const s = scanned(text);
  if (!s) throw new Error('不是医签二维码 / not a medsign QR code');
  return { kind: s.kind, ticket: s.ticket, appId, path: `pages/${s.kind}/index?t=${s.ticket}` };
}

/**
 * What the medsign mini program reported when it came back (App.onShow's `referrerInfo`) for the
 * ticket this host handed over: its state (`signed`, `logged_in`, `refused`, `cancelled`); null
 * when it was not medsign or not that ticket. A hint for the screen: the HIS learns the outcome
 * from the medsign server.
 */
export function outcome(referrerInfo, ticket) {
  if (!referrerInfo || referrerInfo.appId !== medsign) return null;
  const d = referrerInfo.extraData || {};
  const ok = typeof d.ticket === 'string' && d.ticket === ticket && ['signed', 'logged_in', 'refused', 'cancelled'].includes(d.state);
  return ok ? { ticket: d.ticket, state: d.state } : null;
}
