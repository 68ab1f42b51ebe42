// node:test — the H5 app (/m/) in headless Chromium (Debian `chromium` driven by playwright-core),
// against the real `medsign serve`, the phone reaching it only through `medsign gateway` (its tunnel,
// docs/gateway.md). The phone is a mobile-emulated context (360×640, touch); it
// "scans" by decoding the QR image the API gave the PC with zbarimg (zbar-tools) and opening the
// deep link, as the phone's camera app would; a second, desktop context is the demo HIS page
// (/demo/his) using the PC SDK, whose QR the phone reads from a screenshot of the PC screen — once
// with zbarimg, once through the H5 scan page itself: Chromium's fake camera plays a frame made
// from that screenshot and the page decodes it (WebAssembly QR reader, getUserMedia).
// Scenario: bind → PIN + split key → handwriting drawn on the pad → scan-to-sign a prescription PDF
// (verified) → scan-to-login (SSE) → the demo HIS logs in and signs through the SDK → batch-sign 20
// from the pending list → grant → the HIS signs without the phone → cancel → refused.
// Screenshots of every page go to target/screenshots/.
import { test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir, homedir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { startBehindGateway, startCluster, readEvents, root } from '../wasm/testkit/server.mjs';

const PW = process.env.MEDSIGN_PLAYWRIGHT || join(homedir(), '.cache/medsign-test-tools/node/node_modules/playwright-core/index.mjs');
const CHROMIUM = process.env.MEDSIGN_CHROMIUM || '/usr/bin/chromium';
const SHOTS = join(root, 'target/screenshots');
/**
 * Run by web/e2e/h5-cluster.test.mjs (web/e2e/cluster-mode.mjs): the same scenario in the hospital's
 * layout (two servers on one PostgreSQL, two gateways behind a load balancer, the phone reaching
 * only that), then servers and gateways killed (the last test).
 */
const CLUSTER = globalThis.medsignH5Cluster === true;
/** The layout needs PostgreSQL: without it the cluster run is skipped (under CI, it fails). */
const NO_POSTGRES = CLUSTER && !process.env.MEDSIGN_TEST_POSTGRES_URL;
if (NO_POSTGRES && process.env.CI) throw new Error('MEDSIGN_TEST_POSTGRES_URL is unset: run scripts/test');
const test = NO_POSTGRES ? nodeTest.skip : nodeTest;
/** Where a screenshot or a kept file goes (the cluster run's are prefixed). @param {string} name */
const kept = (name) => join(SHOTS, CLUSTER ? `cluster-${name}` : name);
const PIN = '258036';
let srv, call, his, browser, phoneBrowser, ctx, p, work, camera;
/** The cluster run's second phone: the wasm half under Node, on the phones' host. */
let nodePhone;
/** Every path the phone's browser asked the gateway for. */
const asked = [];
/** What the phone's browser asked anyone else for (the cluster layout cuts it). */
const strayed = [];

/** Chromium's fake camera plays this Y4M file (one grey 640×480 frame, I420; chroma neutral). */
function cameraFrame(luma) {
  const header = Buffer.from('YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\nFRAME\n');
  writeFileSync(camera, Buffer.concat([header, Buffer.from(luma), Buffer.alloc(320 * 240 * 2, 128)]));
}

/** Point the phone's camera at the PC screen: a frame with the QR the SDK drew, small and off-centre. */
async function pointCameraAt(pc, scope) {
  const png = await pc.locator(`${scope} .medsign-qr img`).screenshot();
  const luma = await pc.evaluate(async (b64) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = 640;
    c.height = 480;
    const g = c.getContext('2d');
    g.fillStyle = '#8c8c8c';
    g.fillRect(0, 0, 640, 480);
    g.drawImage(img, 250, 110, 300, (300 * img.height) / img.width);
    const d = g.getImageData(0, 0, 640, 480).data;
    return Array.from({ length: 640 * 480 }, (_, i) => Math.round(0.299 * d[4 * i] + 0.587 * d[4 * i + 1] + 0.114 * d[4 * i + 2]));
  }, png.toString('base64'));
  cameraFrame(luma);
}

async function shot(name) {
  await p.waitForTimeout(150);
  await p.screenshot({ path: kept(`${name}.png`), fullPage: true });
}

/** What a phone camera does with the QR the PC shows: decode it (zbarimg) and open the link. */
function decodeQr(pngBase64, name) {
  const file = join(work, `${name}.png`);
  writeFileSync(file, Buffer.from(pngBase64, 'base64'));
  return execFileSync('zbarimg', ['--raw', '-q', file]).toString().trim();
}

async function openLink(link) {
  const u = new URL(link);
  // in the hospital layout the link names the phones' address itself (server.public_url)
  if (CLUSTER) assert.equal(u.origin, srv.gateway, link);
  await p.goto(`${srv.gateway}/m/${u.hash}`);
}

before(async () => {
  if (NO_POSTGRES) return;
  mkdirSync(SHOTS, { recursive: true });
  work = mkdtempSync(join(tmpdir(), 'medsign-e2e-'));
  // the DEMO real-name provider (explicitly configured): enrolment passes through a real-name check
  // the phone's browser opens the H5 app at the DMZ gateway (all its API calls go there); the HIS,
  // the PC page and the verification page talk to the server
  srv = CLUSTER ? await startCluster({ MEDSIGN_REALNAME_PROVIDER: 'dev' }) : await startBehindGateway({ MEDSIGN_REALNAME_PROVIDER: 'dev' });
  call = srv.call;
  const app = await call('POST', '/admin/v1/apps', srv.admin, { name: 'HIS', scopes: ['users:write', 'users:read', 'sign', 'verify'] });
  his = app.body.token;
  assert.equal((await call('POST', '/api/v1/users', his, [{ employee_no: '1001', name: '张三', title: '主治医师', id_card: '11010519491231002X' }])).status, 201);
  const { chromium } = await import(PW);
  camera = join(work, 'camera.y4m');
  cameraFrame(new Uint8Array(640 * 480).fill(140));
  const launch = (executablePath, more = []) => chromium.launch({ executablePath,
    args: ['--no-sandbox', '--lang=zh-CN', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${camera}`, ...more] });
  browser = await launch(CHROMIUM);
  // in the namespaced layout the phone's Chromium runs on the phones' host (playwright drives it
  // over the pipe it inherits); the PC pages stay with the HIS. Phones reach the gateways over
  // HTTPS, which the load balancer terminates (docs/deploy.md); this stand-in speaks plain HTTP
  // on an address that is not loopback, so Chromium is told to treat it as the secure origin
  // HTTPS would make it (the camera needs one).
  phoneBrowser = browser;
  if (srv.phoneHost) {
    const onPhone = join(work, 'chromium-on-phone');
    writeFileSync(onPhone, `#!/bin/sh\nexec ip netns exec '${srv.phoneHost}' '${CHROMIUM}' "$@"\n`, { mode: 0o755 });
    phoneBrowser = await launch(onPhone, [`--unsafely-treat-insecure-origin-as-secure=${srv.gateway}`]);
  }
  ctx = await phoneBrowser.newContext({ viewport: { width: 360, height: 640 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: 'zh-CN', permissions: ['camera'],
    userAgent: 'Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126 Mobile Safari/537.36' });
  // in the hospital's layout the phone reaches the load balancer in front of the gateways and
  // nothing else: any other request is cut (and the last test says so)
  if (CLUSTER) {
    await ctx.route('**/*', (r) => {
      const u = new URL(r.request().url());
      if (u.origin === srv.gateway || u.protocol === 'data:' || u.protocol === 'blob:') return r.continue();
      strayed.push(u.href);
      return r.abort();
    });
  }
  p = await ctx.newPage();
  p.on('pageerror', (e) => { throw e; });
  p.on('request', (r) => { const u = new URL(r.url()); if (u.origin === srv.gateway) asked.push(u.pathname); });
});

after(async () => {
  if (phoneBrowser !== browser) await phoneBrowser?.close();
  await browser?.close();
  srv?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('bind the phone, set the PIN and create the split key, draw the handwriting', async () => {
  const act = (await call('POST', '/api/v1/users/1001/activation-codes', his)).body;
  const code = act.code;
  // the activation link from the IT department carries the channel key's fingerprint: pinned
  // before the first call
  await p.goto(`${srv.gateway}/m/#/activate?k=${act.channel_fingerprint}`);
  await p.waitForSelector('#activate');
  assert.equal(await p.evaluate(() => localStorage.getItem('medsign.channel')), act.channel_fingerprint);
  // a link naming another key is refused with a warning; only the doctor's explicit word (the IT
  // department gave the code in person, after a compromise of the servers' key) moves the pin
  const other = 'ab'.repeat(32);
  for (const [k, pinned] of [[other, other], [act.channel_fingerprint, act.channel_fingerprint]]) {
    await p.goto(`${srv.gateway}/m/#/activate?k=${k}`);
    await p.waitForSelector('#pinDiffers');
    assert.notEqual(await p.evaluate(() => localStorage.getItem('medsign.channel')), k, 'not moved by the link alone');
    await p.click('#repin');
    await p.waitForSelector('#toast.error');
    assert.notEqual(await p.evaluate(() => localStorage.getItem('medsign.channel')), k, 'nor by the button without the fingerprint');
    await p.fill('#repinCheck', k.slice(0, 8).toUpperCase());
    await p.click('#repin');
    await p.waitForSelector('#activate');
    assert.equal(await p.$('#pinDiffers'), null);
    assert.equal(await p.evaluate(() => localStorage.getItem('medsign.channel')), pinned);
  }
  await shot('01-activate');
  await p.fill('#employee', '1001');
  await p.fill('#code', code.toLowerCase());
  await p.click('#activate');
  await p.waitForSelector('#enrol');
  // a weak PIN is refused on the phone, with the reason
  await p.fill('#pin1', '123456');
  await p.fill('#pin2', '123456');
  await p.click('#enrol');
  await p.waitForSelector('#toast.error');
  assert.match(await p.textContent('#toast'), /PIN/);
  await p.fill('#pin1', PIN);
  await p.fill('#pin2', PIN);
  await shot('02-set-pin');
  await p.click('#enrol');
  await p.waitForSelector('#pad', { timeout: 30000 });
  const rn = await call('GET', '/api/v1/users/1001/realname', his);
  assert.equal(rn.body.realname_status, 'verified-demo', 'the demo real-name check ran before the certificate');
  // draw on the pad with touch-like pointer strokes
  const box = await p.locator('#pad').boundingBox();
  await p.mouse.move(box.x + 20, box.y + 120);
  await p.mouse.down();
  for (let i = 0; i <= 40; i++) await p.mouse.move(box.x + 20 + i * 7, box.y + 100 + Math.sin(i / 4) * 40, { steps: 2 });
  await p.mouse.up();
  await p.fill('#hwPin', PIN);
  await shot('03-handwriting');
  await p.click('#saveHandwriting');
  await p.waitForSelector('#tileScan');
  await shot('04-home');
  const hw = await fetch(`${srv.base}/api/v1/users/1001/handwriting.png`, { headers: { Authorization: `Bearer ${his}` } });
  assert.equal(hw.status, 200, 'the drawn signature is stored');
});

test('scan-to-sign a prescription: summary, PIN, signed; the PDF verifies', async () => {
  const data = { hospital: '某县人民医院', category: '普通', fee_type: '医保', department: '内科', outpatient_no: 'MZ20261127077',
    patient_name: '王小明', gender: '男', age: '45岁', diagnosis: '上呼吸道感染', amount: '¥56.80',
    items: [{ drug: '阿莫西林胶囊 0.25g×24粒', dosage: '0.5g', usage: '口服 每日三次', quantity: '2盒' }] };
  const f = await call('POST', '/api/v1/sign-flows', his, { kind: 'file', title: '门诊处方笺 MZ20261127077', template_id: 'outpatient-prescription', data,
    signers: [{ employee_no: '1001', mode: 'scan', field: 'doctor' }, { seal: 'hospital', field: 'hospital_seal' }] });
  assert.equal(f.status, 201, JSON.stringify(f.body));
  const link = decodeQr(f.body.ticket.qr_png_base64, 'sign-qr');
  assert.match(link, /\/m\/#\/sign\?t=tk_/);
  await openLink(link);
  await p.waitForSelector('#confirmSign');
  assert.match(await p.textContent('main'), /门诊处方笺 MZ20261127077/);
  // the prescription itself, as text, before the PIN (R2.4), through the gateway sealed
  const shown = (await p.textContent('#docView')).replace(/\s/g, '');
  for (const v of ['王小明', '上呼吸道感染', '阿莫西林胶囊']) assert.ok(shown.includes(v), `${v} in ${shown}`);
  await shot('05-confirm-sign');
  await p.fill('#pin', PIN);
  await p.click('#confirmSign');
  await p.waitForSelector('#signed', { timeout: 30000 });
  await shot('06-signed');
  const flow = await call('GET', `/api/v1/sign-flows/${f.body.id}`, his);
  assert.equal(flow.body.state, 'completed');
  const pdf = await fetch(`${srv.base}/api/v1/sign-flows/${f.body.id}/file`, { headers: { Authorization: `Bearer ${his}` } });
  const file = Buffer.from(await pdf.arrayBuffer()).toString('base64');
  const v = await call('POST', '/api/v1/verify/file', his, { file });
  assert.equal(v.body.indication, 'TOTAL_PASSED', JSON.stringify(v.body));
  writeFileSync(kept('scan-signed-prescription.pdf'), Buffer.from(file, 'base64'));
});

test('scan-to-login: the PC sees it confirmed over SSE', async () => {
  const t = await call('POST', '/api/v1/login-tickets', his, { system: '门诊医生站' });
  const events = readEvents(`${srv.base}/api/v1/login-tickets/${t.body.ticket_id}/events`, (e) => e.data.state === 'confirmed');
  await openLink(decodeQr(t.body.qr_png_base64, 'login-qr'));
  await p.waitForSelector('#confirmLogin');
  await shot('07-confirm-login');
  await p.fill('#pin', PIN);
  await p.click('#confirmLogin');
  await p.waitForSelector('#loggedIn', { timeout: 30000 });
  await shot('08-logged-in');
  assert.equal((await events).at(-1).data.state, 'confirmed');
  const v = await call('GET', `/api/v1/login-tickets/${t.body.ticket_id}`, his);
  assert.equal(v.body.assertion.employee_no, '1001');
});

/** The phone camera on the PC screen: screenshot the QR the SDK drew and decode it. */
async function scanPcScreen(pc, scope, name) {
  const file = join(work, `${name}.png`);
  await pc.locator(`${scope} .medsign-qr img`).screenshot({ path: file });
  return execFileSync('zbarimg', ['--raw', '-q', file]).toString().trim();
}

test('the demo HIS page (PC) logs in and signs through the SDK; the phone scans the PC screen', async () => {
  const pcCtx = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'zh-CN' });
  const pc = await pcCtx.newPage();
  pc.on('pageerror', (e) => { throw e; });
  await pc.goto(`${srv.base}/demo/his`);
  assert.match(await pc.textContent('#banner'), /演示页面/);
  await pc.fill('#token', his);
  // login
  await pc.click('#login');
  await pc.waitForSelector('.medsign-qr img');
  await pc.screenshot({ path: kept('pc-01-login-qr.png') });
  await openLink(await scanPcScreen(pc, '#loginQr', 'pc-login'));
  await p.waitForSelector('#confirmLogin');
  await p.fill('#pin', PIN);
  await p.click('#confirmLogin');
  await pc.waitForSelector('#loginResult.ok', { timeout: 30000 });
  assert.match(await pc.textContent('#loginResult'), /1001.*TOTAL_PASSED/);
  await pc.screenshot({ path: kept('pc-02-logged-in.png') });
  // a prescription signed by scanning, verified and downloadable on the PC
  await pc.click('#sign');
  await pc.waitForSelector('#signQr .medsign-qr img');
  await pc.screenshot({ path: kept('pc-03-sign-qr.png') });
  // this time the phone's own scan page reads the PC screen through the camera
  await pointCameraAt(pc, '#signQr');
  await p.goto(`${srv.gateway}/m/#/scan`);
  await p.waitForSelector('#camera');
  assert.equal(await p.evaluate(() => 'BarcodeDetector' in window), false, 'Linux Chromium has no BarcodeDetector: the wasm reader decodes');
  await p.waitForSelector('#confirmSign', { timeout: 30000 });
  assert.match(p.url(), /#\/sign\?t=tk_/);
  await p.fill('#pin', PIN);
  await p.click('#confirmSign');
  await p.waitForSelector('#signed', { timeout: 30000 });
  await pc.waitForSelector('#signResult.ok', { timeout: 30000 });
  assert.match(await pc.textContent('#signResult'), /TOTAL_PASSED.*2 个签名/);
  assert.equal(await pc.locator('#download').count(), 1);
  await pc.screenshot({ path: kept('pc-04-signed.png') });
  await pcCtx.close();
});

test('batch-sign 20 from the pending list with one PIN entry', async () => {
  const ids = [];
  for (let i = 0; i < 20; i++) {
    const r = await call('POST', '/api/v1/sign-flows', his, { kind: 'data', title: `检验报告 LIS${String(i).padStart(4, '0')}`, content: `WBC 6.${i}`, signers: [{ employee_no: '1001', mode: 'scan' }] });
    assert.equal(r.status, 201);
    ids.push(r.body.id);
  }
  await p.goto(`${srv.gateway}/m/#/pending`);
  await p.waitForSelector('#signSelected');
  assert.equal(await p.locator('#pendingList input[type=checkbox]').count(), 20);
  await shot('09-pending');
  await p.fill('#pin', PIN);
  await p.click('#signSelected');
  await p.waitForFunction(() => document.querySelectorAll('#pendingList input[type=checkbox]').length === 0, null, { timeout: 60000 });
  await shot('10-pending-done');
  assert.equal((await p.locator('#view').innerText()).includes('null'), false, 'an empty list shows no stray null');
  assert.match(await p.locator('#pendingList').innerText(), /没有待签文档 \/ nothing to sign/);
  for (const id of ids) assert.equal((await call('GET', `/api/v1/sign-flows/${id}`, his)).body.state, 'completed');
});

test('grant → the HIS signs without the phone → cancel → refused; records and settings', async () => {
  const autoFlow = (title) => ({ kind: 'data', title, content: `${title}：NS 250ml ivgtt qd`, signers: [{ employee_no: '1001' }] });
  assert.equal((await call('POST', '/api/v1/sign-flows', his, autoFlow('医嘱 A'))).status, 400);
  await grantAndCancel(autoFlow);
  await records();
});

/** The phone grants the HIS two hours; the HIS signs without it; the phone cancels; refused. */
async function grantAndCancel(autoFlow) {
  await p.goto(`${srv.gateway}/m/#/grants`);
  await p.waitForSelector('#grant');
  await p.selectOption('#system', { label: 'HIS' });
  await p.selectOption('#hours', '2');
  await p.fill('#pin', PIN);
  await shot('11-grants');
  await p.click('#grant');
  await p.waitForSelector('#grantList .danger', { timeout: 30000 });
  await shot('12-granted');
  // in the hospital layout, on either server: the grant's key reached both (docs/cluster.md)
  const servers = CLUSTER ? srv.calls : [call];
  for (const [i, c] of servers.entries()) {
    const signed = await c('POST', '/api/v1/sign-flows', his, autoFlow(`医嘱 B${i}`));
    assert.equal(signed.body.state, 'completed', JSON.stringify(signed.body));
    assert.equal(signed.body.signers[0].custody, 'grant');
  }
  await p.click('#grantList .danger');
  await p.waitForFunction(() => !document.querySelector('#grantList .danger'));
  for (const c of servers) assert.equal((await c('POST', '/api/v1/sign-flows', his, autoFlow('医嘱 C'))).status, 400, 'refused after cancel');
}

/** The phone's records and settings pages; the scan page. */
async function records() {
  await p.goto(`${srv.gateway}/m/#/records`);
  await p.waitForSelector('#signRecords .item');
  assert.match(await p.textContent('#signRecords'), /门诊处方笺 MZ20261127077/);
  await shot('13-records');
  await p.goto(`${srv.gateway}/m/#/settings`);
  await p.waitForSelector('#unbind');
  assert.match(await p.textContent('#soterStatus'), /未启用指纹验证.*use the PIN/, 'no mini program configured here');
  await shot('14-settings');
  cameraFrame(new Uint8Array(640 * 480).fill(140));
  await p.goto(`${srv.gateway}/m/#/scan`);
  await p.waitForSelector('#link');
  await shot('15-scan');
}

test('an evidence report\'s verification link checks the file in the browser, uploading nothing', async () => {
  const { createHash } = await import('node:crypto');
  const held = join(work, 'held.pdf');
  const other = join(work, 'other.pdf');
  writeFileSync(held, Buffer.from(`%PDF-1.7\n% the file the report describes ${Date.now()}\n`));
  writeFileSync(other, Buffer.from('%PDF-1.7\n% another file\n'));
  const digest = createHash('sm3').update(readFileSync(held)).digest('hex'); // OpenSSL's SM3, not the page's
  // anyone's browser (not the phone app): a page of the server itself
  const vctx = await browser.newContext({ locale: 'zh-CN' });
  const v = await vctx.newPage();
  const posts = [];
  v.on('request', (r) => { if (r.method() !== 'GET') posts.push(r.url()); });
  v.on('pageerror', (e) => { throw e; });
  await v.goto(`${srv.base}/verify?sm3=${digest}&doc=QM-20261203-<b>x</b>`);
  assert.equal(await v.textContent('#expected'), digest);
  assert.equal(await v.textContent('#doc'), 'QM-20261203-bxb', 'the document number is shown as plain text');
  await v.setInputFiles('#file', held);
  await v.waitForSelector('#result.ok');
  assert.match(await v.textContent('#result'), /一致.*Matches/s);
  await v.screenshot({ path: kept('30-verify-match.png'), fullPage: true });
  await v.setInputFiles('#file', other);
  await v.waitForSelector('#result.bad');
  assert.match(await v.textContent('#result'), /不一致.*Does not match/s);
  await v.goto(`${srv.base}/verify?sm3=not-a-digest`);
  assert.match(await v.textContent('#expected'), /没有有效的 SM3/);
  assert.deepEqual(posts, [], 'the page sends nothing');
  await vctx.close();
});

test('the phone spoke to the gateway only sealed: no plain call of the phone API left the browser', () => {
  const api = asked.filter((a) => a.startsWith('/mobile/v1/'));
  assert.ok(api.filter((a) => a === '/mobile/v1/sealed').length > 20, `sealed calls: ${api.length}`);
  assert.deepEqual(api.filter((a) => a !== '/mobile/v1/sealed' && a !== '/mobile/v1/channel'), []);
});

if (CLUSTER) {
  test('the network itself: the phone\'s browser reaches the gateways only, the HIS the servers only', async (t) => {
    if (!srv.phoneHost) return t.skip('loopback layout: every process reaches every other');
    // a context without the route that cuts strays: only the network stops these
    const bare = await phoneBrowser.newContext();
    const page = await bare.newPage();
    for (const [url, reach] of [[`${srv.gateway}/healthz`, true], [`${srv.gateways[1]}/healthz`, true], [`${srv.bases[0]}/healthz`, false], [`${srv.bases[1]}/healthz`, false]]) {
      const got = await page.goto(url, { timeout: 5000 }).then((r) => r.status(), (e) => e.message.split('\n')[0]);
      if (reach) assert.equal(got, 200, url);
      // no route there: not a refused connection (a listener's port closed on a reachable host)
      else assert.match(String(got), /ERR_(ADDRESS|NETWORK)_UNREACHABLE|ERR_CONNECTION_TIMED_OUT/, url);
    }
    await bare.close();
    // this process is the HIS: the servers answer, the gateways and the load balancer do not
    assert.equal((await fetch(`${srv.bases[1]}/healthz`)).status, 200);
    for (const url of [srv.gateway, ...srv.gateways]) {
      await assert.rejects(fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5000) }), url);
    }
  });

  test('a second phone, the wasm half under Node on the phones\' host: binds, passes real name, enrols and scan-signs through the load balancer', async () => {
    assert.equal((await call('POST', '/api/v1/users', his, [{ employee_no: '1002', name: '李四', title: '主管技师', id_card: '110105198001010024' }])).status, 201);
    const code = (await call('POST', '/api/v1/users/1002/activation-codes', his)).body.code;
    nodePhone = await srv.startPhone();
    const bound = await nodePhone.ask({ op: 'bind', employee_no: '1002', code, pin: '471036' });
    assert.equal(bound.alg, 'sm2', JSON.stringify(bound));
    assert.equal(bound.realname, 'verified-demo');
    const f = await srv.his('POST', '/api/v1/sign-flows', his, { kind: 'data', title: '检验报告 N1', content: '检验报告 N1：HGB 135', signers: [{ employee_no: '1002', mode: 'scan' }] });
    const ticket = new URL(f.body.ticket.deep_link).hash.split('t=')[1];
    const signed = await nodePhone.ask({ op: 'sign', tickets: [ticket] });
    assert.equal(signed[0]?.state, 'completed', JSON.stringify(signed));
  });

  test('the hospital layout: a server, then a gateway killed (SIGKILL); the phone signs on through the rest, nothing lost or signed twice', async () => {
    const signed = [];
    /** The HIS starts a scan-signed record; the phone opens its link, confirms with the PIN; done. */
    const scanSign = async (title) => {
      const f = await srv.his('POST', '/api/v1/sign-flows', his, { kind: 'data', title, content: `${title}：WBC 6.1`, signers: [{ employee_no: '1001', mode: 'scan' }] });
      assert.equal(f.status, 201, JSON.stringify(f.body));
      await openLink(f.body.ticket.deep_link);
      await p.waitForSelector('#confirmSign');
      await p.fill('#pin', PIN);
      await p.click('#confirmSign');
      await p.waitForSelector('#signed', { timeout: 30000 });
      signed.push(f.body.id);
    };
    await scanSign('检验报告 K1');
    // the Node phone scan-signs records one after another meanwhile, through both kills (a PIN
    // entry each, so few: the server allows a phone 10 at once, then 20 a minute)
    const items = [];
    for (let i = 0; i < 6; i++) {
      const f = await srv.his('POST', '/api/v1/sign-flows', his, { kind: 'data', title: `检验报告 D${i}`, content: `检验报告 D${i}：RBC 4.5`, signers: [{ employee_no: '1002', mode: 'scan' }] });
      assert.equal(f.status, 201, JSON.stringify(f.body));
      items.push({ ticket: new URL(f.body.ticket.deep_link).hash.split('t=')[1], flow_id: f.body.id });
    }
    const t0 = Date.now();
    const during = nodePhone.ask({ op: 'signEach', items, gapMs: 1000 });
    await new Promise((ok) => setTimeout(ok, 900));
    const killedServer = Date.now() - t0;
    srv.kill('server:0');
    // the gateways drop the dead server's tunnel at the next missed heartbeat (1 s), as a load
    // balancer's health check would; the HIS moves to server B on a refused connection
    await srv.tunnelsUp(1);
    await scanSign('检验报告 K2');
    await shot('40-cluster-server-down');
    // gateway 1 carried some of the phone's connections (the load balancer's first backend)
    const lb = await srv.lbStats();
    assert.ok(lb.connections[0] > 0 && lb.bytes[0] > 0, JSON.stringify(lb));
    const killedGateway = Date.now() - t0;
    srv.kill('gateway:0');
    const [gone, before] = [lb.bytes[0], lb.bytes[1]];
    await scanSign('检验报告 K3');
    // what the phone did next travelled through gateway 2 alone
    const later = await srv.lbStats();
    assert.equal(later.bytes[0], gone, JSON.stringify(later));
    assert.ok(later.bytes[1] > before, JSON.stringify(later));
    await shot('41-cluster-gateway-down');
    // the Node phone's records, signed before, between and after the kills: every one completed
    // once, whatever the tries it took
    const each = await during;
    const ended = each.map((r) => r.at);
    assert.ok(ended.some((t) => t < killedServer) && ended.some((t) => t > killedServer && t < killedGateway) && ended.some((t) => t > killedGateway),
      `signed across both kills: ${JSON.stringify({ killedServer, killedGateway, ended })}`);
    const retried = each.filter((r) => r.tries > 1);
    console.log(`# Node phone: ${each.length} records through the kills, ${retried.length} retried: ${JSON.stringify(retried.map((r) => r.errors))}`);
    for (const r of each) assert.notEqual(r.state, 'unsigned', JSON.stringify(r));
    signed.push(...items.map((i) => i.flow_id));
    // the Node phone signs on too, through what is left
    const n = await srv.his('POST', '/api/v1/sign-flows', his, { kind: 'data', title: '检验报告 N2', content: '检验报告 N2：PLT 210', signers: [{ employee_no: '1002', mode: 'scan' }] });
    const nodeSigned = await nodePhone.ask({ op: 'sign', tickets: [new URL(n.body.ticket.deep_link).hash.split('t=')[1]] });
    assert.equal(nodeSigned[0]?.state, 'completed', JSON.stringify(nodeSigned));
    signed.push(n.body.id);
    for (const id of signed) {
      const f = await srv.his('GET', `/api/v1/sign-flows/${id}`, his);
      assert.equal(f.body.state, 'completed', JSON.stringify(f.body));
      assert.equal(f.body.signers.filter((s) => s.state === 'signed').length, 1);
    }
    const chain = await srv.his('GET', '/admin/v1/audit/verify', srv.admin);
    assert.equal(chain.body.broken, null, JSON.stringify(chain.body));
    assert.deepEqual(strayed, [], 'the phone reached nothing but the load balancer in front of the gateways');
  });
}
