// node:test — the console (/admin/, issue #18) in headless Chromium (Debian `chromium` driven by
// playwright-core) against the real `medsign serve`, walked as a new administrator would: the
// bootstrap token creates the first account (TOTP enrolment; this test plays the authenticator
// app, RFC 6238), log in by keyboard, a department, 20 users by import (and an import with a bad
// row, refused with its row), the audit log names the person and its chain verifies, an app is
// created (token shown once) and disabled; a certificate for a server-held key, held and released;
// a template edited by keyboard and pointer, previewed and saved as a version; a flow on it, found,
// its timeline and file; an app secret rotated; a CA channel added and switched to and back; an
// auditor is added — who sees no admin pages and is refused by the server when trying. The English toggle shows English. No console errors except
// the refusal this test provokes. Screenshots go to target/screenshots/console-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir, homedir } from 'node:os';
import { createHmac } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { startServer, root, bindPhone, enrol, signRounds } from '../wasm/testkit/server.mjs';
import * as phone from '../wasm/medsign-phone.js';

const PW = process.env.MEDSIGN_PLAYWRIGHT || join(homedir(), '.cache/medsign-test-tools/node/node_modules/playwright-core/index.mjs');
const CHROMIUM = process.env.MEDSIGN_CHROMIUM || '/usr/bin/chromium';
const SHOTS = join(root, 'target/screenshots');
let srv, browser, p, work;
const problems = [];

/** What an authenticator app shows for a base32 secret now (RFC 6238, SHA-1, 6 digits). */
function totp(secretB32, at = Date.now()) {
  const bits = [...secretB32].map((c) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'.indexOf(c).toString(2).padStart(5, '0')).join('');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const step = Buffer.alloc(8);
  step.writeBigUInt64BE(BigInt(Math.floor(at / 1000 / 30)));
  const mac = createHmac('sha1', key).update(step).digest();
  const o = mac[19] & 0xf;
  return String((mac.readUInt32BE(o) & 0x7fffffff) % 1000000).padStart(6, '0');
}

async function shot(name) {
  await p.waitForTimeout(150);
  await p.screenshot({ path: join(SHOTS, `console-${name}.png`), fullPage: true });
}

/** Go to a page of the console and wait for its heading. */
async function open(hash, heading) {
  await p.goto(`${srv.base}/admin/${hash}`);
  await p.locator('h1', { hasText: heading }).waitFor();
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  work = mkdtempSync(join(tmpdir(), 'medsign-console-'));
  srv = await startServer();
  const { chromium } = await import(PW);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--lang=zh-CN'] });
  p = await (await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'zh-CN' })).newPage();
  p.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  p.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()} ${m.location()?.url || ''}`); });
  p.on('dialog', (d) => d.accept());
});

after(async () => {
  await browser?.close();
  srv?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

let adminSecret;

test('first run: the bootstrap token creates the first administrator, who logs in by keyboard', async () => {
  await p.goto(`${srv.base}/admin`);
  await p.waitForURL(/#\/setup$/);
  await p.fill('#token', srv.admin);
  await p.fill('#username', 'wang.it');
  await p.fill('#display_name', '王工');
  await p.fill('#password', 'correct horse battery');
  await shot('setup');
  await p.click('#create');
  adminSecret = (await p.locator('#totpSecret').innerText()).trim();
  assert.match(adminSecret, /^[A-Z2-7]{32}$/);
  assert.equal(await p.locator('#enrolled img').evaluate((i) => i.naturalWidth > 100), true, 'the QR code shows');
  await shot('enrolled');
  // a wrong bootstrap token creates nothing; the right one no second administrator
  const r = await fetch(`${srv.base}/admin/v1/people`, { method: 'POST', headers: { Authorization: 'Bearer app_x.y', 'Content-Type': 'application/json' }, body: '{}' });
  assert.equal(r.status, 401);
  const second = await fetch(`${srv.base}/admin/v1/people`, { method: 'POST', headers: { Authorization: `Bearer ${srv.admin}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'mallory', display_name: 'M', role: 'administrator', password: 'another long password' }) });
  assert.equal(second.status, 403);
  const invited = await fetch(`${srv.base}/admin/v1/people`, { method: 'POST', headers: { Authorization: `Bearer ${srv.admin}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'mallory', display_name: 'M', role: 'administrator' }) });
  assert.equal(invited.status, 403, 'a token invites nobody');

  await p.click('#toLogin');
  // the login page's own button: the page before it may have fields of the same names
  await p.locator('#login').waitFor();
  // keyboard only: the username field has focus; Tab between fields, Enter submits
  await p.keyboard.type('wang.it');
  await p.keyboard.press('Tab');
  await p.keyboard.type('correct horse battery');
  await p.keyboard.press('Tab');
  await p.keyboard.type(totp(adminSecret));
  await shot('login');
  await p.keyboard.press('Enter');
  await p.locator('#statUsers').waitFor();
  assert.match(await p.locator('#who').innerText(), /王工/);
  await shot('dashboard');
});

test('a department, 20 users by import (a bad file refused by row), and the list', async () => {
  await open('#/departments', '科室');
  await p.fill('#code', 'NK');
  await p.fill('#dname', '内科');
  await p.click('#addDept');
  await p.locator('td', { hasText: '内科' }).waitFor();
  await shot('departments');

  await open('#/users', '人员');
  const bad = join(work, 'bad.csv');
  writeFileSync(bad, '工号,姓名,身份证号\n3001,甲,110105194912310021\n3002,乙,11010519491231002X\n');
  await p.setInputFiles('#importFile', bad);
  await p.click('#import');
  await p.locator('#importResult td', { hasText: '身份证' }).first().waitFor();
  assert.match(await p.locator('#importResult').innerText(), /\b2\b|身份证/);
  await shot('import-refused');
  problems.length = 0; // the refusal above is a 422 the browser logs

  const csv = ['工号,姓名,科室,职称', ...Array.from({ length: 20 }, (_, i) => `${2001 + i},医生${i + 1},NK,主治医师`)].join('\n');
  const good = join(work, 'users.csv');
  writeFileSync(good, `\ufeff${csv}\n`);
  await p.setInputFiles('#importFile', good);
  await p.click('#import');
  // the preview: every row checked, shown, nothing written until confirmed
  await p.locator('#importResult', { hasText: '检查通过：将导入 20 人' }).waitFor();
  assert.equal(await p.locator('#importResult tbody tr').count(), 20);
  const before = await p.evaluate(() => fetch('/api/v1/users?page_size=1').then((r) => r.json()));
  assert.equal(before.total, 0, 'a preview writes nothing');
  await shot('import-preview');
  await p.click('#confirmImport');
  await p.locator('#toast div', { hasText: '已导入 20 人' }).waitFor();
  await p.locator('text=共 20 人').waitFor();
  // one more by hand, then found by search
  await p.fill('#employee_no', '9001');
  await p.fill('#name', '赵六');
  await p.click('#addUser');
  await p.locator('td', { hasText: '赵六' }).waitFor();
  await p.fill('#q', '赵六');
  await p.keyboard.press('Enter');
  await p.waitForURL(/q=/);
  await p.locator('text=共 1 人').waitFor();
  // edited: a title given; an activation code for the phone, shown once
  await p.click('#edit-9001');
  await p.fill('#eTitle', '主任医师');
  await p.click('#saveUser');
  await p.locator('td', { hasText: '主任医师' }).waitFor();
  await p.click('#activate-9001');
  const code = (await p.locator('#activationCode').innerText()).trim();
  assert.match(code, /^[0-9A-Z]{4}(-[0-9A-Z]{4}){2}$/);
  // the QR code holds the activation link: decoded as a phone's camera would (zbarimg), it names
  // this staff member, this code and the server's key, and binds a phone
  const png = (await p.locator('#activationQr').getAttribute('src')).replace(/^data:image\/png;base64,/, '');
  writeFileSync(join(work, 'activation.png'), Buffer.from(png, 'base64'));
  const link = execFileSync('zbarimg', ['--raw', '-q', join(work, 'activation.png')]).toString().trim();
  assert.equal(link, (await p.locator('#activationLink').innerText()).trim());
  const fields = new URLSearchParams(new URL(link).hash.split('?')[1]);
  assert.equal(new URL(link).hash.split('?')[0], '#/activate');
  assert.deepEqual([fields.get('no'), fields.get('code')], ['9001', code]);
  assert.equal(fields.get('k'), (await srv.call('GET', '/mobile/v1/channel')).body.fingerprint);
  const bound = await srv.call('POST', '/mobile/v1/activate', null, { employee_no: fields.get('no'), code: fields.get('code'), device_name: 'QR' });
  assert.equal(bound.status, 201, JSON.stringify(bound.body));
  // a one-time secret: no cache may keep the answer
  assert.equal(await p.evaluate(() => fetch('/api/v1/users/9001/activation-codes', { method: 'POST', headers: { 'X-Medsign-Console': '1' } })
    .then((r) => r.headers.get('cache-control'))), 'no-store');
  await shot('users');
});

test('the audit log names the person; its chain verifies; CSV export', async () => {
  await open('#/logs?actor=person%3Awang.it', '日志');
  await p.locator('td', { hasText: 'console.login' }).first().waitFor();
  const actors = await p.locator('tbody tr td:nth-child(3)').allInnerTexts();
  assert.ok(actors.length > 3 && actors.every((a) => a === 'person:wang.it'), actors.join(','));
  await p.click('#verifyChain');
  await p.locator('#chain .ok').waitFor();
  const csv = await p.evaluate(async () => (await fetch(document.getElementById('export').getAttribute('href'))).text());
  assert.match(csv, /person:wang\.it/);
  const rows = csv.trim().split('\n').slice(1);
  assert.equal(rows.length, actors.length, 'the export holds every match, not a page');
  // the month's archive: this month's entries, oldest first (the chain's order)
  // (the month, in China Standard Time, of this person's first entry: a run across midnight on
  // the 1st still finds it)
  const firstSeq = Number(rows[0].split(',')[0]);
  const firstAt = new Date(Date.parse(rows[0].split(',')[1].replace(/"/g, '')) + 8 * 3600e3);
  await p.fill('#archiveMonth', `${firstAt.getUTCFullYear()}-${String(firstAt.getUTCMonth() + 1).padStart(2, '0')}`);
  await p.dispatchEvent('#archiveMonth', 'change');
  const month = await p.evaluate(async () => (await fetch(document.getElementById('archive').getAttribute('href'))).text());
  const seqs = month.trim().split('\n').slice(1).map((l) => Number(l.split(',')[0]));
  assert.ok(seqs.includes(firstSeq) && seqs.every((x, i) => i === 0 || x > seqs[i - 1]), seqs.join(','));
  await p.locator('#retention', { hasText: '永久保存' }).waitFor();
  await shot('logs');
});

test('apps: a new app shows its token once and can be disabled; other pages render', async () => {
  await open('#/apps', '接入应用');
  await p.fill('#appName', 'LIS 检验');
  await p.click('#addApp');
  const token = (await p.locator('#appToken').innerText()).trim();
  assert.match(token, /^app_[0-9a-f]{16}\.[0-9a-f]{64}$/);
  const row = p.locator('tr', { hasText: 'LIS 检验' });
  await row.locator('button', { hasText: '停用' }).click();
  await row.locator('td', { hasText: '停用 / disabled' }).waitFor();
  const r = await fetch(`${srv.base}/api/v1/users/2001`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(r.status, 401, 'a disabled app is refused');
  await shot('apps');
  for (const [hash, heading] of [['#/certificates', '证书'], ['#/channels', 'CA 通道'], ['#/time', '时间'], ['#/templates', '模板'], ['#/settings', '设置']]) {
    await open(hash, heading);
    await shot(hash.slice(2));
  }
  // the settings in effect, read-only (the last page opened above)
  await p.locator('code', { hasText: 'MEDSIGN_TIME_SOURCES' }).waitFor();
  await open('#/templates', '模板');
  await p.locator('td', { hasText: 'outpatient-prescription' }).waitFor();
  // seals: the generated round seal shows; a certificate for the department's seal is issued
  await open('#/seals', '印章');
  await p.waitForFunction(() => { const i = document.getElementById('seal-hospital'); return i?.complete && i.naturalWidth > 100; }, null, { timeout: 15000 });
  await p.click('#sealCert-NK');
  await p.locator('td', { hasText: '内科' }).waitFor();
  await shot('seals');
  // English beside the Chinese
  await p.click('#lang');
  assert.equal(await p.locator('h1 .en').isVisible(), true);
  await shot('english');
  await p.click('#lang');
  assert.deepEqual(problems, []);
});

test('certificates, a template edited and previewed, a flow and its timeline, a secret rotated, a CA channel switched', async () => {
  // a server-held key for 2001, on the hospital's written basis; then held and released
  await open('#/certificates', '证书');
  await p.fill('#custodyUser', '2001');
  await p.fill('#custodyReason', '检验科自动审核报告（测试）/ auto-verified lab reports (test)');
  await p.click('#custody');
  const certRow = p.locator('tbody tr', { hasText: '2001' }).filter({ hasText: 'active' });
  await certRow.waitFor();
  const serial = (await certRow.locator('td').first().innerText()).trim();
  // the CRL served now lists the held certificate (read back and its signature checked), and not
  // once it is released
  const sm2Crl = () => p.locator('#revocation tbody tr', { hasText: 'SM2' });
  await sm2Crl().locator('td', { hasText: '✔' }).waitFor();
  await p.click(`#hold-${serial}`);
  await p.locator(`#release-${serial}`).waitFor();
  const listed = async () => (await sm2Crl().locator('td').nth(4).innerText()).trim();
  assert.equal(await listed(), '1（1）');
  const number = Number((await sm2Crl().locator('td').nth(1).innerText()).trim());
  await p.click(`#release-${serial}`);
  await p.locator(`#hold-${serial}`).waitFor();
  assert.equal(await listed(), '0（0）');
  assert.ok(Number((await sm2Crl().locator('td').nth(1).innerText()).trim()) > number, 'a new CRL number');
  // another CA on the trust list (a cross-certificate's issuer, say), then removed
  const pem = execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(work, 'other-ca.key'),
    '-subj', '/CN=Regional Test CA/O=Regional/C=CN', '-days', '30', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']).toString();
  await p.fill('#trustPem', pem);
  await p.fill('#trustNote', '区域平台（测试）');
  await p.click('#addTrust');
  const trusted = p.locator('#trust tbody tr', { hasText: 'Regional Test CA' });
  await trusted.waitFor();
  assert.match(await trusted.innerText(), /根 \/ anchor/);
  await shot('certificates-issued');
  await trusted.locator('button[id^="untrust-"]').click();
  await trusted.waitFor({ state: 'detached' });

  // the template editor: the keyboard moves a field (Shift+→ is 10 pt), the pointer drags another
  await open('#/templates', '模板');
  await p.click('#edit-lab-report');
  await p.locator('h1', { hasText: '模板 lab-report' }).waitFor();
  await p.focus('#field-patient_name');
  await p.keyboard.press('Enter');
  assert.equal(await p.inputValue('#p-name'), 'patient_name');
  const x1 = Number(await p.inputValue('#p-x1'));
  for (let i = 0; i < 3; i++) await p.keyboard.press('Shift+ArrowRight');
  assert.equal(Number(await p.inputValue('#p-x1')), x1 + 30);
  await p.locator('#field-remarks rect').scrollIntoViewIfNeeded();
  const box = await p.locator('#field-remarks rect').boundingBox();
  await p.mouse.move(box.x + 20, box.y + 10);
  await p.mouse.down();
  await p.mouse.move(box.x + 20, box.y + 60, { steps: 6 });
  await p.mouse.up();
  assert.equal(await p.inputValue('#p-name'), 'remarks');
  const remarksY = Number(await p.inputValue('#p-y1'));
  assert.ok(remarksY < 190 - 20, `the remarks box moved down: y1 = ${remarksY}`);
  // a preview without the required data is refused with the field named; with the sample it renders
  const sample = await p.inputValue('#sample');
  await p.fill('#sample', '{}');
  await p.click('#preview');
  await p.locator('#toast div.error', { hasText: 'hospital' }).waitFor();
  problems.length = 0; // the 400 above, logged by the browser
  await p.fill('#sample', sample);
  await p.click('#preview');
  // (the page checked the %PDF- header; the frame shows the blob, which the page's CSP allows only as a frame)
  assert.match(await p.locator('#previewPdf').getAttribute('href'), /^blob:/);
  assert.ok(parseFloat(await p.locator('#previewSize').innerText()) > 5, 'a PDF of some KB');
  await shot('template-editor');
  await p.click('#saveTemplate');
  await p.waitForURL(/version=2/);
  const saved = await p.evaluate(() => fetch('/admin/v1/templates/lab-report?version=2').then((r) => r.json()));
  assert.deepEqual(saved.definition.fields.find((f) => f.name === 'patient_name').rect.slice(0, 1), [x1 + 30]);
  assert.equal(saved.definition.fields.find((f) => f.name === 'remarks').rect[1], remarksY);

  // a flow from a hospital system (an app made here), on the new version: auto signature + seal
  await open('#/apps', '接入应用');
  await p.fill('#appName', 'EMR 电子病历');
  await p.click('#addApp');
  const emr = (await p.locator('#appToken').innerText()).trim();
  const data = { hospital: '某县人民医院', patient_name: '王小明', gender: '男', age: '45岁', patient_id: 'P20261204001', sample_no: 'S0012',
    department: '内科', specimen: '血清', items: [{ code: 'GLU', name: '葡萄糖', result: '5.1', unit: 'mmol/L', reference: '3.9–6.1' }] };
  const created = await fetch(`${srv.base}/api/v1/sign-flows`, { method: 'POST', headers: { Authorization: `Bearer ${emr}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ kind: 'file', title: '检验报告单 S0012', template_id: 'lab-report', data, callback_url: 'http://127.0.0.1:9/medsign-callback',
      signers: [{ employee_no: '2001', mode: 'auto', field: 'tester' }, { seal: 'hospital', field: 'lab_seal' }] }) });
  const f = await created.json();
  assert.equal(created.status, 201, JSON.stringify(f));
  assert.equal(f.state, 'completed');
  assert.equal(f.template_version, 2);
  await open('#/flows?signer=2001', '签署流程');
  await p.locator('text=共 1 个').waitFor();
  await p.click(`a:has-text("${f.doc_no}")`);
  await p.locator('h1', { hasText: f.doc_no }).waitFor();
  const timeline = await p.locator('#timeline').innerText();
  for (const step of ['创建流程', '签名', '盖章']) assert.ok(timeline.includes(step), `${step} in ${timeline}`);
  const pdf = await p.evaluate(async () => new TextDecoder().decode((await (await fetch(document.getElementById('download').getAttribute('href'))).arrayBuffer()).slice(0, 5)));
  assert.equal(pdf, '%PDF-');
  await shot('flow-timeline');
  await open('#/flows?state=failed', '签署流程');
  await p.locator('text=共 0 个').waitFor();
  await open('#/logs?action=flow.sign', '日志');
  await p.locator('td', { hasText: 'flow.sign' }).first().waitFor();
  await open('#/webhooks', '推送记录');
  await p.locator('td', { hasText: 'flow.completed' }).first().waitFor();

  // a batch of 30 (one names a seal that does not exist): its progress shows while it runs and
  // refreshes by itself; at the end the failed item comes first with its reason
  const items = Array.from({ length: 30 }, (_, i) => ({ kind: 'data', title: `检验报告 B${i}`, content: `WBC ${i}`, signers: [{ seal: i === 17 ? 'NOPE' : 'hospital' }] }));
  const queued = await fetch(`${srv.base}/api/v1/batches`, { method: 'POST', headers: { Authorization: `Bearer ${emr}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ items }) });
  const batch = await queued.json();
  assert.equal(queued.status, 202, JSON.stringify(batch));
  await open(`#/batches?id=${batch.id}`, '批量签署');
  await p.locator(`#batch-${batch.id}`).waitFor();
  await p.locator('#batchSummary', { hasText: '已结束' }).waitFor({ timeout: 60000 });
  assert.match(await p.locator('#batchSummary').innerText(), /成功 29，失败 1，待处理 0（共 30）/);
  const first = p.locator('#batchDetail tbody tr').first();
  assert.match(await first.innerText(), /17\s+failed[\s\S]*NOPE/);
  assert.equal(await p.locator(`progress[aria-label^="${batch.id}"]`).getAttribute('value'), '30');
  await shot('batches');

  // the app's secret rotated: the old token stops at once, the new one works
  await open('#/apps', '接入应用');
  await p.click(`#rotate-${emr.split('.')[0]}`);
  const fresh = (await p.locator('#appToken').innerText()).trim();
  assert.notEqual(fresh, emr);
  const status = (t) => fetch(`${srv.base}/api/v1/users/2001`, { headers: { Authorization: `Bearer ${t}` } }).then((r) => r.status);
  assert.deepEqual([await status(emr), await status(fresh)], [401, 200]);

  // a second CA channel added, made active, and the built-in one made active again: both in the history
  await open('#/channels', 'CA 通道');
  await p.fill('#chName', '区域平台（测试）');
  await p.selectOption('#chKind', 'medsign');
  await p.fill('#chUrl', `${srv.base}/`);
  await p.fill('#chSecret', fresh);
  await p.click('#addChannel');
  const chRow = p.locator('table').first().locator('tbody tr', { hasText: '区域平台' });
  await chRow.waitFor();
  await chRow.locator('button[id^="activate-"]').click();
  await p.locator('#activate-builtin').waitFor();
  await p.click('#activate-builtin');
  await chRow.locator('button[id^="activate-"]').waitFor();
  const history = await p.locator('tbody').last().innerText();
  assert.equal((history.match(/ca\.channel\.activate/g) || []).length, 2, history);
  await shot('channels');
  assert.deepEqual(problems, []);
});

test('the dashboard counts today\'s signatures over two weeks; the time page draws the clock over time', async () => {
  await open('#/', '概览');
  // the flow above (the doctor's signature and the seal) and the batch's 29 seals
  assert.equal(Number(await p.locator('#statSignatures b').innerText()), 2 + 29);
  assert.equal(await p.locator('#signaturesChart rect.bar').count(), 14);
  await shot('dashboard-history');
  await open('#/time', '时间');
  await p.waitForFunction(() => document.querySelectorAll('#offsetChart polyline').length === 1);
  const rows = await p.locator('tbody tr').count();
  assert.ok(rows >= 1, 'the last polls are listed');
  await shot('time-history');
  assert.deepEqual(problems, []);
});

test('scan-to-login: the phone of the linked staff member logs the administrator in; nobody else collects it', async () => {
  // staff member 2002's phone is bound and has its key; the administrator links their console
  // account to that phone (a staff number without a bound phone cannot be linked)
  const app = await p.evaluate(() => fetch('/admin/v1/apps', { method: 'POST', headers: { 'X-Medsign-Console': '1', 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: '测试手机绑定 / test phone binding', scopes: ['users:read', 'users:write', 'sign'] }) }).then((r) => r.json()));
  await open('#/people', '控制台账号');
  await p.selectOption('#linkUser', 'wang.it');
  await p.fill('#linkNo', '2002');
  await p.click('#link');
  await p.locator('#toast div.error', { hasText: '尚未绑定手机' }).waitFor();
  problems.length = 0; // that 409
  const me2002 = await bindPhone(srv.call, app.token, '2002');
  const secret = phone.deviceSecret();
  const key = await enrol(srv.call, me2002, '135790', secret);
  await p.click('#link');
  await p.locator('td', { hasText: '2002' }).waitFor();
  await p.click('#logout');
  await p.goto(`${srv.base}/admin/#/login`);
  await p.locator('#qrLogin').waitFor();
  await p.click('#qrLogin');
  const link = (await p.locator('#qrLink').innerText()).trim();
  assert.match(link, /\/m\/#\/login\?t=lt_/);
  const id = link.split('t=')[1];
  await shot('qr-login');
  // someone who saw the QR code cannot collect the session: no browser cookie, no session
  const stranger = await fetch(`${srv.base}/console/v1/qr-login/${id}`, { method: 'POST', headers: { 'X-Medsign-Console': '1' } });
  assert.equal(stranger.status, 404);
  // nor can an integration app read the console's ticket (it belongs to no app)
  assert.equal((await srv.call('GET', `/api/v1/login-tickets/${id}`, app.token)).status, 404);
  const scanned = await srv.call('POST', `/mobile/v1/login-tickets/${id}/scan`, me2002);
  assert.equal(scanned.status, 201, JSON.stringify(scanned.body));
  assert.match(scanned.body.system, /医签管理控制台/);
  const results = await signRounds(srv.call, me2002, { wrapped: key.wrapped, pin: '135790', deviceSecret: secret, rounds: [scanned.body.round] });
  assert.equal(results[0].state, 'completed');
  await p.locator('#statUsers').waitFor();
  assert.match(await p.locator('#who').innerText(), /王工/);
  // the audit log says how
  const log = await p.evaluate(() => fetch('/admin/v1/audit?action=console.login&page_size=1').then((r) => r.json()));
  assert.match(log.items[0].details, /"via":"phone"/);
  problems.length = 0; // the stranger's 404 above is not the page's
  // the phone is lost: IT unbinds it from the users page; the phone's session is dead at once,
  // and with it the console login it carried
  await open('#/users?q=2002', '人员');
  // the list shows the phone bound and its state
  const row2002 = p.locator('tbody tr', { hasText: '2002' });
  assert.match(await row2002.innerText(), /node test phone · 密钥 ✔/);
  await p.click('#unbind-2002');
  await p.locator('#toast div', { hasText: '已解绑' }).waitFor();
  await row2002.filter({ hasNotText: 'node test phone' }).waitFor();
  const history = await p.evaluate(() => fetch('/api/v1/users/2002/devices').then((r) => r.json()));
  assert.deepEqual(history.map((d) => [d.status, d.key]), [['unbound', 'destroyed']]);
  assert.equal((await srv.call('GET', '/mobile/v1/tasks', me2002)).status, 401);
  await p.click('#unbind-2002');
  await p.locator('#toast div.error', { hasText: '没有已绑定的手机' }).waitFor();
  problems.length = 0; // that 404, the one this test asked for
});

/** Press Tab until the focused element matches `want` (text or id); fails after `max` presses. */
async function tabTo(want, max = 60) {
  for (let i = 0; i < max; i++) {
    await p.keyboard.press('Tab');
    const [id, text] = await p.evaluate(() => [document.activeElement?.id || '', (document.activeElement?.textContent || '').trim()]);
    if (id === want || text.startsWith(want)) return;
  }
  assert.fail(`${want} not reached with ${max} Tab presses`);
}

test('keyboard only: the menu, a search, a flow, a user added, the logs', async () => {
  await open('#/', '概览');
  // from the page: the menu is reached by Tab, Enter follows a link; focus lands on the new page
  await p.evaluate(() => document.querySelector('header .brand')?.focus());
  await tabTo('签署流程');
  await p.keyboard.press('Enter');
  await p.locator('h1', { hasText: '签署流程' }).waitFor();
  assert.equal(await p.evaluate(() => document.activeElement?.id), 'view', 'focus moves to the page');
  await tabTo('q');
  await p.keyboard.type('检验报告单');
  await p.keyboard.press('Enter');
  await p.waitForURL(/q=/);
  await p.locator('text=共 1 个').waitFor();
  await tabTo('QM-');
  await p.keyboard.press('Enter');
  await p.locator('#timeline').waitFor();
  // users: add one with the keyboard alone
  await p.evaluate(() => document.querySelector('header .brand')?.focus());
  await tabTo('人员');
  await p.keyboard.press('Enter');
  await p.locator('h1', { hasText: '人员' }).waitFor();
  await tabTo('employee_no');
  await p.keyboard.type('9002');
  await p.keyboard.press('Tab');
  await p.keyboard.type('钱七');
  await p.keyboard.press('Enter');
  await p.locator('td', { hasText: '钱七' }).waitFor();
  // the logs: filter by kind with the keyboard (a select changes with the arrow keys)
  await p.evaluate(() => document.querySelector('header .brand')?.focus());
  await tabTo('日志');
  await p.keyboard.press('Enter');
  await p.locator('h1', { hasText: '日志' }).waitFor();
  await tabTo('kind');
  await p.keyboard.press('ArrowDown');
  await tabTo('筛选');
  await p.keyboard.press('Enter');
  await p.waitForURL(/kind=login/);
  await p.locator('td', { hasText: 'console.login' }).first().waitFor();
  await shot('keyboard');
  assert.deepEqual(problems, []);
});

test('an auditor sees the logs but no admin pages, and the server refuses what the role may not do', async () => {
  await open('#/people', '控制台账号');
  await p.fill('#username', 'zhao.audit');
  await p.fill('#display_name', '赵审计');
  await p.selectOption('#role', 'auditor');
  await p.click('#addPerson');
  // an invitation link: the administrator never sees the auditor's password or code
  const link = (await p.locator('#inviteLink').innerText()).trim();
  assert.match(link, /#\/enrol\?u=zhao\.audit&code=[0-9a-f]{32}$/);
  await p.locator('td', { hasText: 'zhao.audit' }).waitFor();
  await shot('people');
  await p.click('#logout');
  await p.locator('#login').waitFor();
  await p.goto(link);
  await p.locator('h1', { hasText: '接受邀请' }).waitFor();
  await p.fill('#password', 'auditor password 1');
  await p.click('#enrol');
  const secret = (await p.locator('#totpSecret').innerText()).trim();
  await shot('enrol');
  await p.click('#toLogin');
  // not '#code': the enrolment page has an invitation code field of that name, and filling it
  // before the login page replaced it left the login's username empty
  await p.locator('#login').waitFor();
  await p.fill('#username', 'zhao.audit');
  await p.fill('#password', 'auditor password 1');
  await p.fill('#code', totp(secret));
  await p.click('#login');
  await p.locator('#statUsers').waitFor();
  const menu = await p.locator('nav a').allInnerTexts();
  assert.ok(menu.some((m) => m.startsWith('日志')) && !menu.some((m) => m.startsWith('接入应用') || m.startsWith('控制台账号')), menu.join('|'));
  await open('#/logs', '日志');
  // what the page would not offer, tried anyway: refused by the server (403 with the envelope)
  problems.length = 0;
  const tried = await p.evaluate(async () => {
    const post = (path, body) => fetch(path, { method: 'POST', headers: { 'X-Medsign-Console': '1', 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
      .then(async (r) => [r.status, (await r.json()).code]);
    return [await post('/admin/v1/departments', [{ code: 'X', name: 'x' }]), await post('/admin/v1/apps', { name: 'x' }),
      await fetch('/admin/v1/apps').then((r) => r.status)];
  });
  assert.deepEqual(tried, [[403, 'forbidden'], [403, 'forbidden'], 403]);
  // the cookie alone changes nothing: a page of another site cannot add the console header
  const forged = await p.evaluate(() => fetch('/api/v1/users', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"employee_no":"7","name":"x"}' })
    .then(async (r) => [r.status, (await r.json()).message]));
  assert.equal(forged[0], 403);
  assert.match(forged[1], /X-Medsign-Console/);
});
