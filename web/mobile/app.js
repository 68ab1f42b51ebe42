// medsign H5 — the doctor's phone (issue #7). Plain ES modules, no build step; served at /m/.
// Pages (hash routes): #/activate, #/enrol, #/handwriting, #/ (home), #/scan, #/sign?t=…,
// #/login?t=…, #/pending, #/grants, #/records, #/settings. The phone's half of two-party SM2 runs
// in WebAssembly (medsign-phone.js); the PIN never leaves the phone (only its verifier does), the
// share d1 is stored wrapped (localStorage) and opens only with PIN + device secret + the server's
// unlock secret. Every text is Chinese first, then English.
import * as phone from './medsign-phone.js';

const API = new URL('../mobile/v1/', location.href).href;
const store = {
  get: (k) => localStorage.getItem(`medsign.${k}`),
  set: (k, v) => (v == null ? localStorage.removeItem(`medsign.${k}`) : localStorage.setItem(`medsign.${k}`, v)),
};
const view = document.getElementById('view');
const titleEl = document.getElementById('title');
const backEl = document.getElementById('back');
backEl.onclick = () => history.back();

/** An element: h('div', { class: 'card', onclick }, child, 'text', …). */
function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat()) if (c != null && c !== false) el.append(c.nodeType ? c : String(c));
  return el;
}

function toast(msg, error = false) {
  const t = document.getElementById('toast');
  toast.at = Date.now();
  t.textContent = msg;
  t.className = error ? 'error' : '';
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, error ? 6000 : 3000);
}

/** Call the mobile API; errors carry the server's message (the JSON envelope) and status. */
async function api(method, path, body) {
  const token = store.get('token');
  const res = await fetch(API + path, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    if (data.code === 'session_invalid') {
      store.set('token', null);
    }
    throw Object.assign(new Error(data.message || `HTTP ${res.status}`), { status: res.status, body: data });
  }
  return data;
}

/** medsign-phone.js transport over the mobile API (pin, unlock, sign with open rounds). */
function transport(rounds = []) {
  return async (what, body) => {
    if (what === 'sign') {
      const answers = body.map((request, i) => ({ round_id: rounds[i].round_id, request }));
      return (await api('POST', 'sign-rounds/answers', { answers })).responses;
    }
    return api('POST', what, body);
  };
}

function page(title, ...kids) {
  titleEl.textContent = title;
  backEl.hidden = location.hash === '#/' || location.hash === '' || location.hash.startsWith('#/activate');
  view.replaceChildren(...kids);
  document.title = `${title} · 医签 medsign`;
}

function busy(btn, text = '请稍候… / please wait…') {
  const old = btn.textContent;
  btn.disabled = true;
  btn.textContent = text;
  return () => { btn.disabled = false; btn.textContent = old; };
}

function fail(e) {
  toast(e.message || String(e), true);
}

const pinInput = (id, label) => [h('label', { for: id }, label), h('input', { id, class: 'pin', type: 'password', inputmode: 'numeric', autocomplete: 'off', maxlength: 12 })];
const val = (id) => document.getElementById(id).value.trim();
const row = (k, v) => h('div', { class: 'row' }, h('span', { class: 'k' }, k), h('span', { class: 'v' }, v ?? '—'));
const when = (t) => (t ? new Date(t).toLocaleString('zh-CN', { hour12: false }) : '—');
const KIND = { data: '数据 / data', file: 'PDF 文件 / PDF' };

// ---------------------------------------------------------------- activation and enrolment

function activatePage() {
  const go = h('button', { class: 'primary', id: 'activate' }, '绑定本机 / Bind this phone');
  go.onclick = async () => {
    const done = busy(go);
    try {
      const s = await api('POST', 'activate', { employee_no: val('employee'), code: val('code'), device_name: val('device') || '手机' });
      store.set('token', s.token);
      store.set('employee', s.employee_no);
      store.set('deviceSecret', phone.deviceSecret());
      store.set('wrapped', null);
      location.hash = '#/enrol';
    } catch (e) { fail(e); } finally { done(); }
  };
  page('绑定手机 / Bind phone',
    h('div', { class: 'card' },
      h('p', { class: 'muted' }, '输入工号和信息科提供的激活码（72 小时内有效，只能用一次）。/ Enter your staff number and the one-time activation code from the IT department.'),
      h('label', { for: 'employee' }, '工号 / Staff number'), h('input', { id: 'employee', inputmode: 'numeric', autocomplete: 'username' }),
      h('label', { for: 'code' }, '激活码 / Activation code'), h('input', { id: 'code', autocapitalize: 'characters', placeholder: 'XXXX-XXXX-XXXX' }),
      h('label', { for: 'device' }, '设备名称 / Device name'), h('input', { id: 'device', value: /iPhone/.test(navigator.userAgent) ? 'iPhone' : '手机' }),
      go));
}

function enrolPage() {
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
      toast('签名密钥已生成，证书已签发 / key created, certificate issued');
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
 */
async function realnameCheck() {
  const st = await api('POST', 'realname', {}).catch((e) => {
    throw new Error(e.body?.code === 'wx_code_required' ? '请在医签微信小程序中完成人脸核身 / do the face check in the medsign WeChat mini program' : e.message);
  });
  const out = await api('POST', `realname/${st.check_id}`);
  if (out.state !== 'verified') throw new Error('实名认证未通过 / the real-name check failed');
  toast(st.demo ? '实名认证（演示，不用于生产）已通过 / DEMO real-name check passed' : '实名认证已通过 / real-name check passed');
}

/** Two-party key generation, the PIN and the certificate. */
async function createKey(pin) {
  const start = await api('POST', 'keys');
  let certificate = null;
  const post = async (what, body) => {
    if (what !== 'keygen') return transport()(what, body);
    const r = await api('POST', `keys/${start.key_id}`, { request: body });
    certificate = r.certificate;
    return r.response;
  };
  const out = await phone.enrol({ post, context: start.context, pin, deviceSecret: store.get('deviceSecret') });
  store.set('wrapped', out.wrapped);
  store.set('certSerial', certificate?.serial || '');
}

// ---------------------------------------------------------------- handwriting pad

function handwritingPage() {
  const canvas = h('canvas', { id: 'pad' });
  const strokes = [];
  let current = null;
  const ctx = canvas.getContext('2d');
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
  const mid = (a, b) => ({ x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 });
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
      await api('POST', 'handwriting', { image_base64: png });
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
      save,
      h('button', { class: 'secondary', onclick: () => { location.hash = '#/'; } }, '以后再说 / Later')));
  requestAnimationFrame(fit);
}

// ---------------------------------------------------------------- home, scan

async function homePage() {
  const [pending, grants] = await Promise.all([api('GET', 'pending'), api('GET', 'grants')]);
  const active = grants.items.filter((g) => g.state === 'active');
  page('医签 medsign',
    h('div', { class: 'card' }, h('div', { class: 'muted' }, `工号 / Staff ${store.get('employee')}`)),
    h('div', { class: 'grid' },
      h('a', { class: 'tile', href: '#/scan', id: 'tileScan' }, h('b', {}, '⌗'), '扫一扫 / Scan'),
      h('a', { class: 'tile', href: '#/pending', id: 'tilePending' }, h('b', {}, String(pending.items.length)), '待签 / To sign'),
      h('a', { class: 'tile', href: '#/grants' }, h('b', {}, String(active.length)), '授权中 / Grants'),
      h('a', { class: 'tile', href: '#/records' }, h('b', {}, '☰'), '我的记录 / Records'),
      h('a', { class: 'tile', href: '#/handwriting' }, h('b', {}, '✍'), '手写签名 / Handwriting'),
      h('a', { class: 'tile', href: '#/settings' }, h('b', {}, '⚙'), '设置 / Settings')));
}

/** Where a scanned QR (a deep link of this app) leads. */
function openScanned(text) {
  const u = new URL(text, location.href);
  const m = /#\/(sign|login)\?t=([\w-]+)/.exec(u.hash || '');
  if (!m) return toast('不是医签二维码 / not a medsign QR code', true);
  location.hash = `#/${m[1]}?t=${m[2]}`;
}

async function scanPage() {
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
    const formats = 'BarcodeDetector' in window ? await window.BarcodeDetector.getSupportedFormats().catch(() => []) : [];
    const detector = formats.includes('qr_code') ? new window.BarcodeDetector({ formats: ['qr_code'] }) : null;
    const canvas = document.createElement('canvas');
    const g = canvas.getContext('2d', { willReadFrequently: true });
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

// ---------------------------------------------------------------- signing

function summaryCard(s) {
  return h('div', { class: 'card' },
    h('h2', {}, s.title),
    row('类型 / Type', KIND[s.kind] || s.kind),
    row('单号 / No.', s.doc_no),
    s.pages ? row('页数 / Pages', String(s.pages)) : null,
    row('签署顺序 / Signer', `${s.signer_index + 1} / ${s.signers}`),
    row('发起 / Created', when(s.created_at)),
    h('div', { class: 'row' }, h('span', { class: 'k' }, 'SM3'), h('span', { class: 'v digest' }, s.content_sm3)));
}

/** Sign open rounds with one PIN entry; returns per-document results. */
async function signRounds(rounds, pin) {
  const sigs = await phone.signMany({ post: transport(rounds), wrapped: store.get('wrapped'), pin, deviceSecret: store.get('deviceSecret'), digests: rounds.map((r) => r.e) });
  const signatures = sigs.map((signature, i) => ({ round_id: rounds[i].round_id, signature }));
  return (await api('POST', 'sign-rounds/signatures', { signatures })).results;
}

async function signPage(params) {
  const t = params.get('t');
  let rounds;
  try {
    rounds = (await api('POST', 'sign-rounds', { targets: [{ ticket: t }] })).rounds;
  } catch (e) {
    return page('签署 / Sign', h('div', { class: 'card' }, h('p', { class: 'bad', id: 'signError' }, e.message), h('a', { href: '#/' }, '返回首页 / Home')));
  }
  const go = h('button', { class: 'primary', id: 'confirmSign' }, '确认签署 / Sign');
  go.onclick = async () => {
    const done = busy(go, '正在签署… / signing…');
    try {
      const results = await signRounds(rounds, val('pin'));
      if (results[0].error) throw new Error(results[0].error);
      page('签署完成 / Signed', h('div', { class: 'card', id: 'signed' }, h('h2', { class: 'ok' }, '✓ 已签署 / Signed'), row('文档 / Document', rounds[0].summary.title), row('状态 / State', results[0].state)), h('a', { href: '#/' }, '返回首页 / Home'));
    } catch (e) { fail(e); } finally { done(); }
  };
  page('确认签署 / Confirm', summaryCard(rounds[0].summary),
    h('div', { class: 'card' }, h('p', { class: 'muted' }, '核对无误后输入 PIN 签署。文档内容不经过互联网传到手机。/ Check, then enter your PIN. The document itself never travels to the phone.'), ...pinInput('pin', 'PIN'), go,
      h('button', { class: 'secondary', onclick: () => { location.hash = '#/'; } }, '取消 / Cancel')));
}

async function loginPage(params) {
  const t = params.get('t');
  let scanned;
  try {
    scanned = await api('POST', `login-tickets/${encodeURIComponent(t)}/scan`);
  } catch (e) {
    return page('扫码登录 / Login', h('div', { class: 'card' }, h('p', { class: 'bad', id: 'loginError' }, e.message), h('a', { href: '#/' }, '返回首页 / Home')));
  }
  const go = h('button', { class: 'primary', id: 'confirmLogin' }, '确认登录 / Log in');
  go.onclick = async () => {
    const done = busy(go);
    try {
      const results = await signRounds([scanned.round], val('pin'));
      if (results[0].error) throw new Error(results[0].error);
      page('已登录 / Logged in', h('div', { class: 'card', id: 'loggedIn' }, h('h2', { class: 'ok' }, `✓ 已登录 ${scanned.system}`), h('p', { class: 'muted' }, '电脑端将自动进入系统。/ The PC continues by itself.')), h('a', { href: '#/' }, '返回首页 / Home'));
    } catch (e) { fail(e); } finally { done(); }
  };
  const refuse = h('button', { class: 'danger', id: 'refuseLogin' }, '拒绝 / Refuse');
  refuse.onclick = async () => {
    try { await api('POST', `login-tickets/${encodeURIComponent(t)}/refuse`); toast('已拒绝 / refused'); location.hash = '#/'; } catch (e) { fail(e); }
  };
  page('扫码登录 / Login',
    h('div', { class: 'card' }, h('h2', {}, `登录 ${scanned.system}`), row('系统 / System', scanned.system), row('有效期至 / Until', when(scanned.expires_at))),
    h('div', { class: 'card' }, h('p', { class: 'muted' }, '不是您本人在电脑前操作，请拒绝。/ Refuse if you are not at that PC.'), ...pinInput('pin', 'PIN'), go, refuse));
}

async function pendingPage() {
  const { items } = await api('GET', 'pending');
  const boxes = items.map((s) => h('input', { type: 'checkbox', value: s.flow_id, checked: true }));
  const go = h('button', { class: 'primary', id: 'signSelected' }, `签署所选 / Sign selected (${items.length})`);
  const count = () => { go.textContent = `签署所选 / Sign selected (${boxes.filter((b) => b.checked).length})`; };
  boxes.forEach((b) => b.addEventListener('change', count));
  go.onclick = async () => {
    const targets = boxes.filter((b) => b.checked).map((b) => ({ flow_id: b.value }));
    if (!targets.length) return toast('请选择文档 / select documents', true);
    const done = busy(go, `正在签署 ${targets.length} 份… / signing…`);
    try {
      const { rounds } = await api('POST', 'sign-rounds', { targets });
      const results = await signRounds(rounds, val('pin'));
      const ok = results.filter((r) => !r.error).length;
      toast(`已签署 ${ok} 份${ok < results.length ? `，${results.length - ok} 份失败` : ''} / ${ok} signed`, ok < results.length);
      pendingPage();
    } catch (e) { fail(e); } finally { done(); }
  };
  page('待签文档 / To sign',
    h('div', { class: 'card', id: 'pendingList' },
      items.length ? null : h('p', { class: 'muted' }, '没有待签文档 / nothing to sign'),
      items.map((s, i) => h('label', { class: 'item' }, boxes[i], h('div', {}, h('div', { class: 't' }, s.title), h('div', { class: 'muted' }, `${KIND[s.kind] || s.kind} · ${s.doc_no} · ${when(s.created_at)}`))))),
    items.length ? h('div', { class: 'card' },
      h('button', { class: 'secondary', onclick: () => { const all = !boxes.every((b) => b.checked); boxes.forEach((b) => { b.checked = all; }); count(); } }, '全选 / 全不选 · All / none'),
      ...pinInput('pin', 'PIN（一次输入，批量签署）/ PIN, once for all'), go) : null);
}

// ---------------------------------------------------------------- grants, records, settings

async function grantsPage() {
  const [{ items: systems, grant_max_hours: maxHours = 12 }, { items: grants }] = await Promise.all([api('GET', 'systems'), api('GET', 'grants')]);
  const go = h('button', { class: 'primary', id: 'grant' }, '授权 / Grant');
  go.onclick = async () => {
    const done = busy(go);
    try {
      const start = await api('POST', 'grants', { app_id: val('system'), hours: Number(val('hours')) });
      const sealed = await phone.sealForGrant({ post: transport(), wrapped: store.get('wrapped'), pin: val('pin'), deviceSecret: store.get('deviceSecret'), publicKey: start.public_key, context: start.context });
      await api('POST', `grants/${start.grant_id}/share`, { sealed });
      toast(`已授权 ${start.app_name} ${start.hours} 小时 / granted`);
      grantsPage();
    } catch (e) { fail(e); } finally { done(); }
  };
  const name = (id) => systems.find((s) => s.app_id === id)?.name || id;
  page('会话授权 / Session grants',
    h('div', { class: 'card' },
      h('p', { class: 'muted' }, '授权期间，所选系统的自动签署无需手机确认；可随时取消，到期自动失效。/ While a grant lasts, that system signs for you without the phone; cancel any time.'),
      h('label', { for: 'system' }, '业务系统 / System'), h('select', { id: 'system' }, systems.map((s) => h('option', { value: s.app_id }, s.name))),
      h('label', { for: 'hours' }, '时长 / Hours'), h('select', { id: 'hours' }, [...new Set([1, 2, 4, 8, 12, maxHours])].filter((n) => n <= maxHours).sort((a, b) => a - b).map((n) => h('option', { value: n }, `${n} 小时`))),
      ...pinInput('pin', 'PIN'), go),
    h('div', { class: 'card', id: 'grantList' }, h('h2', {}, '我的授权 / My grants'),
      grants.length ? null : h('p', { class: 'muted' }, '无 / none'),
      grants.map((g) => h('div', { class: 'item' }, h('div', { style: 'flex:1' },
        h('div', { class: 't' }, `${name(g.app_id)} · ${g.state === 'active' ? '生效中 / active' : g.state}`),
        h('div', { class: 'muted' }, `至 / until ${when(g.expires_at)} · 已签 / used ${g.used_count}`)),
      g.state === 'active' ? h('button', { class: 'danger', style: 'width:auto;margin:0;padding:0 12px', onclick: async () => { try { await api('DELETE', `grants/${g.grant_id}`); toast('已取消 / cancelled'); grantsPage(); } catch (e) { fail(e); } } }, '取消 / Cancel') : null))));
}

async function recordsPage() {
  const r = await api('GET', 'records?limit=50');
  const CUSTODY = { 'two-party': '手机签署 / phone', grant: '授权签署 / grant', server: '托管 / custody' };
  page('我的记录 / Records',
    h('div', { class: 'card', id: 'signRecords' }, h('h2', {}, '签署记录 / Signatures'),
      r.signatures.length ? null : h('p', { class: 'muted' }, '无 / none'),
      r.signatures.map((s) => h('div', { class: 'item' }, h('div', {}, h('div', { class: 't' }, s.title), h('div', { class: 'muted' }, `${when(s.signed_at)} · ${CUSTODY[s.custody] || s.custody || ''} · ${s.doc_no}`))))),
    h('div', { class: 'card', id: 'loginRecords' }, h('h2', {}, '登录记录 / Logins'),
      r.logins.map((l) => h('div', { class: 'item' }, h('div', {}, h('div', { class: l.outcome === 'ok' ? 't' : 't bad' }, `${l.action} · ${l.outcome}`), h('div', { class: 'muted' }, `${when(l.at)} · ${l.ip}`))))));
}

async function settingsPage() {
  const soter = await api('GET', 'soter');
  const change = h('button', { class: 'primary', id: 'changePin' }, '修改 PIN / Change PIN');
  change.onclick = async () => {
    const next = val('newPin');
    const problem = await phone.pinProblem(next, store.get('employee') || '');
    if (problem) return toast(problem, true);
    const done = busy(change);
    try {
      store.set('wrapped', await phone.changePin({ post: transport(), wrapped: store.get('wrapped'), pin: val('oldPin'), newPin: next, deviceSecret: store.get('deviceSecret') }));
      toast('PIN 已修改 / PIN changed');
    } catch (e) { fail(e); } finally { done(); }
  };
  const unbind = h('button', { class: 'danger', id: 'unbind' }, '解绑本机 / Unbind this phone');
  unbind.onclick = async () => {
    if (!confirm('解绑后本机的签名密钥和证书将作废，需要新的激活码才能再次使用。确定？/ The key and certificate on this phone will be revoked. Continue?')) return;
    try {
      await api('DELETE', 'device');
      for (const k of ['token', 'wrapped', 'deviceSecret', 'certSerial']) store.set(k, null);
      location.hash = '#/activate';
    } catch (e) { fail(e); }
  };
  // fingerprint approval (WeChat SOTER) is switched on in the mini program; here it can be seen and switched off
  const soterOff = h('button', { class: 'secondary', id: 'soterOff' }, '关闭指纹验证 / Turn fingerprint off');
  soterOff.onclick = async () => {
    try { await api('DELETE', 'soter'); toast('指纹验证已关闭 / fingerprint approval is off'); settingsPage(); } catch (e) { fail(e); }
  };
  const fingerprint = soter.enabled
    ? [row('状态 / Status', `已开通 / on · ${when(soter.enabled_at)}`), soterOff]
    : [h('p', { class: 'muted' }, soter.available
      ? '可在医院微信小程序中用 PIN 开通，之后签名时可用指纹代替 PIN。/ Turn it on in the hospital\'s WeChat mini program (with your PIN); then your fingerprint can stand in for the PIN.'
      : '本院未启用指纹验证（需要医院微信小程序），请使用 PIN。/ Fingerprint approval is not set up here (it needs the hospital\'s WeChat mini program): use the PIN.')];
  page('设置 / Settings',
    h('div', { class: 'card' }, h('h2', {}, '修改 PIN / Change PIN'), ...pinInput('oldPin', '当前 PIN / Current'), ...pinInput('newPin', '新 PIN / New'), change),
    h('div', { class: 'card', id: 'soterStatus' }, h('h2', {}, '指纹验证 / Fingerprint'), ...fingerprint),
    h('div', { class: 'card' }, row('工号 / Staff', store.get('employee')), row('证书 / Certificate', store.get('certSerial')), unbind));
}

// ---------------------------------------------------------------- router

const routes = {
  '/activate': activatePage, '/enrol': enrolPage, '/handwriting': handwritingPage, '/': homePage, '/scan': scanPage,
  '/sign': signPage, '/login': loginPage, '/pending': pendingPage, '/grants': grantsPage, '/records': recordsPage, '/settings': settingsPage,
};

async function route() {
  const [path, query] = (location.hash.slice(1) || '/').split('?');
  const params = new URLSearchParams(query || '');
  if (!store.get('token') && path !== '/activate') {
    if (path === '/sign' || path === '/login') store.set('after', location.hash);
    location.hash = '#/activate';
    return;
  }
  if (store.get('token') && !store.get('wrapped') && !['/enrol', '/activate'].includes(path)) {
    if (path === '/sign' || path === '/login') store.set('after', location.hash);
    location.hash = '#/enrol';
    return;
  }
  if (path === '/' && store.get('after')) {
    const after = store.get('after');
    store.set('after', null);
    location.hash = after;
    return;
  }
  try {
    await (routes[path] || homePage)(params);
  } catch (e) {
    if (e.status === 401) { location.hash = '#/activate'; return; }
    page('出错了 / Error', h('div', { class: 'card' }, h('p', { class: 'bad' }, e.message), h('a', { href: '#/' }, '返回首页 / Home')));
  }
}

window.addEventListener('hashchange', () => {
  // a message from the page before stays briefly, then makes room
  if (Date.now() - (toast.at || 0) > 1500) document.getElementById('toast').hidden = true;
  route();
});
phone.load(new URL('pkg/medsign_wasm_bg.wasm', import.meta.url)).then(route, (e) => page('出错了 / Error', h('p', { class: 'bad' }, `WebAssembly: ${e.message}`)));
