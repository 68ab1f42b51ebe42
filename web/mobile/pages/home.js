// @ts-check
// medsign H5 — home (#/) and scanning a QR code (#/scan).
import * as phone from '../medsign-phone.js';
import { api, core, store } from '../api.js';
import { scanned } from '../links.js';
import { h, toast, page, busy, fail, pinInput, val } from '../dom.js';
import { confirmName, realnameCheck } from './enrol.js';

/** What a hospital system asked of this doctor (R7.4.3, R7.4.4), as shown. @type {Record<string, string>} */
const ASKED = { realname: '完成实名认证 / do the real-name check', handwriting: '留下手写签名 / draw your handwritten signature' };

/**
 * The hospital systems' requests, each with the button that does it.
 * @param {{ task_id: string, kind: string, system: string }[]} tasks
 */
function requests(tasks) {
  if (!tasks.length) return null;
  return h('div', { class: 'card', id: 'tasks' },
    h('b', {}, '医院请求 / Requests from the hospital'),
    ...tasks.map((t) => {
      const go = h('button', { class: 'secondary', id: `task-${t.task_id}`, 'data-kind': t.kind }, ASKED[t.kind] || t.kind);
      go.onclick = async () => {
        if (t.kind === 'handwriting') { location.hash = '#/handwriting'; return; }
        const done = busy(go);
        try { await realnameCheck(); location.reload(); } catch (e) { fail(e); } finally { done(); }
      };
      return h('div', { class: 'row' }, h('span', { class: 'k' }, t.system), go);
    }));
}

/** The key waits for its certificate (an outside CA, issue #17): the PIN, then the request. */
function certificatePending() {
  if (!store.get('wrapped') || store.get('certSerial')) return null;
  const go = h('button', { class: 'primary', id: 'requestCertificate' }, '申请签名证书 / Request the certificate');
  go.onclick = async () => {
    const done = busy(go);
    try {
      const cert = await core.requestCertificate(val('certPin'), confirmName);
      toast('证书已签发 / certificate issued');
      location.reload();
    } catch (e) { fail(e); } finally { done(); }
  };
  return h('div', { class: 'card' },
    h('p', {}, '签名密钥已生成，证书尚未签发。/ Your key is ready; its certificate is not issued yet.'),
    ...pinInput('certPin', 'PIN'), go);
}

/** #/: the staff number and the tiles, with the counts to sign and of active grants. */
export async function homePage() {
  // the hospital's requests are extra: the home page shows without them
  const [pending, grants, asked] = await Promise.all([api('GET', 'pending'), api('GET', 'grants'), api('GET', 'tasks').catch(() => ({ tasks: [] }))]);
  const active = grants.items.filter((g) => g.state === 'active');
  page('医签 medsign',
    h('div', { class: 'card' }, h('div', { class: 'muted' }, `工号 / Staff ${store.get('employee')}`)),
    certificatePending(),
    requests(asked.tasks),
    h('div', { class: 'grid' },
      h('a', { class: 'tile', href: '#/scan', id: 'tileScan' }, h('b', {}, '⌗'), '扫一扫 / Scan'),
      h('a', { class: 'tile', href: '#/pending', id: 'tilePending' }, h('b', {}, String(pending.items.length)), '待签 / To sign'),
      h('a', { class: 'tile', href: '#/grants' }, h('b', {}, String(active.length)), '授权中 / Grants'),
      h('a', { class: 'tile', href: '#/records' }, h('b', {}, '☰'), '我的记录 / Records'),
      h('a', { class: 'tile', href: '#/handwriting' }, h('b', {}, '✍'), '手写签名 / Handwriting'),
      h('a', { class: 'tile', href: '#/settings' }, h('b', {}, '⚙'), '设置 / Settings')));
}

/**
 * Where a scanned QR (a deep link of this app) leads.
 * @param {string} text
 */
function openScanned(text) {
  const s = scanned(text);
  if (!s) return toast('不是医签二维码 / not a medsign QR code', true);
  location.hash = `#/${s.kind}?t=${s.ticket}`;
}

/** #/scan: the camera (the browser's QR reader, or frames decoded in WebAssembly), or a pasted link. */
export async function scanPage() {
  const video = h('video', { id: 'camera', playsinline: true, muted: true });
  const manual = h('input', { id: 'link', placeholder: 'https://…/m/#/sign?t=…' });
  page('扫一扫 / Scan',
    h('div', { class: 'card' },
      h('p', { class: 'muted' }, '对准电脑上的二维码。也可以直接用手机相机扫码，会自动打开本应用。/ Point at the QR code on the PC, or scan it with the phone camera app.'),
      video,
      h('label', { for: 'link' }, '或粘贴链接 / or paste the link'), manual,
      h('button', { class: 'primary', onclick: () => openScanned(manual.value.trim()) }, '打开 / Open')));
  if (!navigator.mediaDevices?.getUserMedia) return;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
    video.srcObject = stream;
    await video.play();
    // the browser's own QR reader where it has one, otherwise frames decoded in WebAssembly
    const formats = 'BarcodeDetector' in window ? await /** @type {any} */ (window).BarcodeDetector.getSupportedFormats().catch(() => []) : [];
    const detector = formats.includes('qr_code') ? new /** @type {any} */ (window).BarcodeDetector({ formats: ['qr_code'] }) : null;
    const canvas = document.createElement('canvas');
    const g = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d', { willReadFrequently: true }));
    const read = async () => {
      if (detector) return (await detector.detect(video).catch(() => []))[0]?.rawValue || null;
      const w = video.videoWidth;
      const hgt = video.videoHeight;
      if (!w || !hgt) return null;
      const scale = Math.min(1, 640 / Math.max(w, hgt));
      canvas.width = Math.round(w * scale);
      canvas.height = Math.round(hgt * scale);
      g.drawImage(video, 0, 0, canvas.width, canvas.height);
      return phone.readQr(g.getImageData(0, 0, canvas.width, canvas.height));
    };
    const tick = async () => {
      if (!document.body.contains(video)) return stream.getTracks().forEach((t) => t.stop());
      const text = await read().catch(() => null);
      if (text) { stream.getTracks().forEach((t) => t.stop()); return openScanned(text); }
      setTimeout(tick, 250);
    };
    tick();
  } catch { /* no camera: the link field remains */ }
}
