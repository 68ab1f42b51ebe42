// @ts-check
// medsign H5 — binding the phone (#/activate), the PIN and the split key (#/enrol), the
// handwritten signature (#/handwriting).
import * as phone from '../medsign-phone.js';
import { core, store } from '../api.js';
import { h, toast, page, busy, fail, pinInput, val } from '../dom.js';

// ---------------------------------------------------------------- activation and enrolment

/**
 * #/activate: staff number + one-time activation code → a session; a fresh device secret. The
 * activation link from the IT department may bring the server's channel fingerprint (`k`), which
 * the phone then pins before its first call (a gateway cannot slip its own key in). A pin the
 * phone already has is replaced only when the doctor says so (after the servers' key was
 * compromised, the IT department hands out new links in person). `no` and `code` fill the form.
 * @param {URLSearchParams} [params]
 */
export function activatePage(params) {
  const k = (params?.get('k') || '').toLowerCase();
  if (/^[0-9a-f]{64}$/.test(k) && !store.get('channel')) store.set('channel', k);
  // a link naming another key than the one this phone pinned: never re-pinned from a link alone
  const differs = /^[0-9a-f]{64}$/.test(k) && store.get('channel') !== k;
  // after an ordinary rotation the servers' chain of endorsements leads there: no question to ask
  if (differs) core.follow().then((pin) => { if (pin === k) activatePage(params); }, () => {});
  const go = h('button', { class: 'primary', id: 'activate' }, '绑定本机 / Bind this phone');
  go.onclick = async () => {
    const done = busy(go);
    try {
      await core.activate({ employeeNo: val('employee'), code: val('code'), deviceName: val('device') || '手机' });
      location.hash = '#/enrol';
    } catch (e) { fail(e); } finally { done(); }
  };
  page('绑定手机 / Bind phone',
    h('div', { class: 'card' },
      h('p', { class: 'muted' }, '输入工号和信息科提供的激活码（72 小时内有效，只能用一次）。/ Enter your staff number and the one-time activation code from the IT department.'),
      differs ? h('p', { class: 'bad', id: 'pinDiffers' }, '此链接中的服务器指纹与本机记录的不同，请联系信息科，不要继续。/ This link names another server key than the one this phone trusts: contact the IT department and do not go on.') : null,
      differs ? h('label', { for: 'repinCheck' }, '信息科当面给了我这个激活码：输入他们给出的服务器指纹前 8 位，改用新的服务器密钥 / The IT department gave me this code in person: type the first 8 characters of the server fingerprint they showed me to trust the new server key') : null,
      differs ? h('input', { id: 'repinCheck', autocapitalize: 'none', autocomplete: 'off', maxlength: '8' }) : null,
      differs ? h('button', { class: 'secondary', id: 'repin', onclick: () => {
        // typed, not taken from the link: a link alone — from anyone — cannot move the pin
        if (val('repinCheck').trim().toLowerCase() !== k.slice(0, 8)) return toast('指纹不符，未改用 / the fingerprint does not match; nothing changed', true);
        core.repin(k);
        activatePage(params);
      } }, '改用新的服务器密钥 / Trust the new server key') : null,
      h('label', { for: 'employee' }, '工号 / Staff number'), h('input', { id: 'employee', inputmode: 'numeric', autocomplete: 'username', value: params?.get('no') || '' }),
      h('label', { for: 'code' }, '激活码 / Activation code'), h('input', { id: 'code', autocapitalize: 'characters', placeholder: 'XXXX-XXXX-XXXX', value: params?.get('code') || '' }),
      h('label', { for: 'device' }, '设备名称 / Device name'), h('input', { id: 'device', value: /iPhone/.test(navigator.userAgent) ? 'iPhone' : '手机' }),
      go));
}

/** #/enrol: the PIN (checked on the phone), then the split key and the certificate. */
export function enrolPage() {
  const go = h('button', { class: 'primary', id: 'enrol' }, '生成签名密钥 / Create my signing key');
  go.onclick = async () => {
    const pin = val('pin1');
    if (pin !== val('pin2')) return toast('两次输入的 PIN 不一致 / the PINs differ', true);
    const problem = await phone.pinProblem(pin, store.get('employee') || '');
    if (problem) return toast(problem, true);
    const done = busy(go, '正在生成密钥… / creating the key…');
    try {
      await createKey(pin).catch(async (e) => {
        if (e.body?.code !== 'realname_required') throw e;
        await realnameCheck();
        await createKey(pin);
      });
      if (store.get('certSerial')) toast('签名密钥已生成，证书已签发 / key created, certificate issued');
      location.hash = '#/handwriting';
    } catch (e) { fail(e); } finally { done(); }
  };
  page('设置 PIN / Set PIN',
    h('div', { class: 'card' },
      h('p', { class: 'muted' }, '签名密钥分成两半：一半在本机（用 PIN 保护），一半在医院服务器，任何一方都无法单独签名。PIN 为 6–12 位数字，不能是连续或重复数字，也不能包含工号。/ Your key is split between this phone (protected by the PIN) and the hospital server. The PIN has 6–12 digits, no runs or repeats, not your staff number.'),
      ...pinInput('pin1', 'PIN'), ...pinInput('pin2', '再输一次 / Again'),
      go));
}

/**
 * The real-name check the hospital requires before the certificate (R2.2, R3.2). In a browser only
 * the DEMO provider can run (WeChat face verification needs the mini program).
 * @returns {Promise<void>}
 */
export async function realnameCheck() {
  const st = await core.realname().catch((e) => {
    throw new Error(e.body?.code === 'wx_code_required' ? '请在医签微信小程序中完成人脸核身 / do the face check in the medsign WeChat mini program' : e.message);
  });
  toast(st.demo ? '实名认证（演示，不用于生产）已通过 / DEMO real-name check passed' : '实名认证已通过 / real-name check passed');
}

/**
 * Two-party key generation, the PIN and the certificate (core.js).
 * @param {string} pin
 * @returns {Promise<void>}
 */
async function createKey(pin) {
  const out = await core.createKey(pin, confirmName);
  if (out.certifyError) toast(`密钥已生成，证书尚未签发，可在首页重试：${out.certifyError.message} / key created; the certificate is not issued yet (retry from the home page)`, true);
}

/**
 * The doctor confirms the name an outside CA's certificate will carry (read from the request the
 * phone signs).
 * @param {string} name
 * @returns {boolean}
 */
export function confirmName(name) {
  return confirm(`将以「${name}」的名义申请签名证书。确定？/ Request a signing certificate in the name of ${name}?`);
}

// ---------------------------------------------------------------- handwriting pad

/** @typedef {{ x: number, y: number, t: number, w: number }} Point a pad point: position, time, line width */

/** #/handwriting: draw the signature on the pad and save it as a PNG. */
export function handwritingPage() {
  const canvas = h('canvas', { id: 'pad' });
  /** @type {Point[][]} */
  const strokes = [];
  /** @type {Point[] | null} */
  let current = null;
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
  const fit = () => {
    const r = canvas.getBoundingClientRect();
    canvas.width = Math.round(r.width * devicePixelRatio);
    canvas.height = Math.round(r.height * devicePixelRatio);
    redraw();
  };
  const redraw = () => {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.strokeStyle = '#111a3a';
    for (const s of strokes) drawStroke(s);
  };
  // smooth strokes: quadratic curves through the midpoints, width from the speed
  /** @param {Point[]} pts */
  const drawStroke = (pts) => {
    if (pts.length < 2) return;
    for (let i = 1; i < pts.length; i++) {
      const a = pts[i - 1], b = pts[i];
      const m0 = i > 1 ? mid(pts[i - 2], a) : a;
      const m1 = mid(a, b);
      ctx.lineWidth = b.w;
      ctx.beginPath();
      ctx.moveTo(m0.x, m0.y);
      ctx.quadraticCurveTo(a.x, a.y, m1.x, m1.y);
      ctx.stroke();
    }
  };
  /** @type {(a: { x: number, y: number }, b: { x: number, y: number }) => { x: number, y: number }} */
  const mid = (a, b) => ({ x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 });
  /** @type {(ev: PointerEvent) => Point} */
  const point = (ev) => {
    const r = canvas.getBoundingClientRect();
    const x = (ev.clientX - r.left) * devicePixelRatio, y = (ev.clientY - r.top) * devicePixelRatio;
    const last = current?.[current.length - 1];
    const speed = last ? Math.hypot(x - last.x, y - last.y) / Math.max(1, ev.timeStamp - last.t) : 0;
    const w = Math.max(2, Math.min(7, 7 - speed * 2)) * devicePixelRatio * 0.8;
    return { x, y, t: ev.timeStamp, w: last ? last.w * 0.6 + w * 0.4 : w };
  };
  canvas.addEventListener('pointerdown', (ev) => { canvas.setPointerCapture(ev.pointerId); current = [point(ev)]; strokes.push(current); });
  canvas.addEventListener('pointermove', (ev) => { if (current) { current.push(point(ev)); redraw(); } });
  const end = () => { current = null; };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
  const save = h('button', { class: 'primary', id: 'saveHandwriting' }, '保存签名 / Save');
  save.onclick = async () => {
    if (!strokes.some((s) => s.length > 1)) return toast('请先手写签名 / please sign first', true);
    const done = busy(save);
    try {
      const png = canvas.toDataURL('image/png').split(',')[1];
      // the doctor approves this very image with the PIN (a stolen session cannot replace it)
      await core.saveHandwriting(Uint8Array.from(atob(png), (c) => c.charCodeAt(0)), val('hwPin'));
      toast('手写签名已保存 / handwriting saved');
      location.hash = '#/';
    } catch (e) { fail(e); } finally { done(); }
  };
  page('手写签名 / Handwriting',
    h('div', { class: 'card' },
      h('p', { class: 'muted' }, '请在框内写下您的姓名，它会出现在您签署的 PDF 上。/ Write your name in the box; it appears on the PDFs you sign.'),
      canvas,
      h('div', { class: 'grid' },
        h('button', { class: 'secondary', onclick: () => { strokes.pop(); redraw(); } }, '撤销一笔 / Undo'),
        h('button', { class: 'secondary', onclick: () => { strokes.length = 0; redraw(); } }, '清除 / Clear')),
      ...pinInput('hwPin', 'PIN'),
      save,
      h('button', { class: 'secondary', onclick: () => { location.hash = '#/'; } }, '以后再说 / Later')));
  requestAnimationFrame(fit);
}
