// node:test — the console (/admin/, issue #18) in headless Chromium (Debian `chromium` driven by
// playwright-core) against the real `medsign serve`, walked as a new administrator would: the
// bootstrap token creates the first account (TOTP enrolment; this test plays the authenticator
// app, RFC 6238), log in by keyboard, a department, 20 users by import (and an import with a bad
// row, refused with its row), the audit log names the person and its chain verifies, an app is
// created (token shown once) and disabled, an auditor is added — who sees no admin pages and is
// refused by the server when trying. The English toggle shows English. No console errors except
// the refusal this test provokes. Screenshots go to target/screenshots/console-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir, homedir } from 'node:os';
import { createHmac } from 'node:crypto';
import { startServer, root } from '../wasm/testkit/server.mjs';

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
  await p.locator('#code').waitFor();
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
  await shot('logs');
});

test('apps: a new app shows its token once and can be disabled; other pages render', async () => {
  await open('#/apps', '接入应用');
  await p.fill('#appName', 'LIS 检验');
  await p.click('#addApp');
  const token = (await p.locator('#appToken').innerText()).trim();
  assert.match(token, /^app_[0-9a-f]{16}\.[0-9a-f]{64}$/);
  const row = p.locator('tr', { hasText: 'LIS 检验' });
  await row.locator('button').click();
  await row.locator('td', { hasText: '停用 / disabled' }).waitFor();
  const r = await fetch(`${srv.base}/api/v1/users/2001`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(r.status, 401, 'a disabled app is refused');
  await shot('apps');
  for (const [hash, heading] of [['#/certificates', '证书'], ['#/channels', 'CA 通道'], ['#/time', '时间'], ['#/templates', '模板']]) {
    await open(hash, heading);
    await shot(hash.slice(2));
  }
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
  await p.locator('#code').waitFor();
  await p.goto(link);
  await p.locator('h1', { hasText: '接受邀请' }).waitFor();
  await p.fill('#password', 'auditor password 1');
  await p.click('#enrol');
  const secret = (await p.locator('#totpSecret').innerText()).trim();
  await shot('enrol');
  await p.click('#toLogin');
  await p.locator('#code').waitFor();
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
