// node:test — the pages a newcomer opens first, in headless Chromium (Debian `chromium` driven by
// playwright-core) against the real `medsign serve`: the landing page at `/` leads to the API docs,
// and the API docs page (Swagger UI at /api/docs/) shows every operation of /api/openapi.json —
// it once showed "no API definition provided". No console errors (the page's CSP included).
// Screenshots go to target/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { startServer, root } from '../wasm/testkit/server.mjs';

const PW = process.env.MEDSIGN_PLAYWRIGHT || join(homedir(), '.cache/medsign-test-tools/node/node_modules/playwright-core/index.mjs');
const CHROMIUM = process.env.MEDSIGN_CHROMIUM || '/usr/bin/chromium';
const SHOTS = join(root, 'target/screenshots');
let srv, browser, page;
const problems = [];

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  srv = await startServer();
  const { chromium } = await import(PW);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--lang=zh-CN'] });
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'zh-CN' })).newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()} ${m.location()?.url || ''}`); });
});

after(async () => {
  await browser?.close();
  srv?.stop();
});

test('the landing page says what this is and leads to the API docs', async () => {
  await page.goto(`${srv.base}/`);
  assert.match(await page.title(), /医签 medsign/);
  assert.match(await page.locator('h1').innerText(), /医签 medsign/);
  const phoneLink = await page.locator('a[href$="/m/"]').getAttribute('href');
  assert.ok(phoneLink.startsWith('http'), `the phone app's full address: ${phoneLink}`);
  await page.screenshot({ path: join(SHOTS, 'home.png'), fullPage: true });
  // keyboard only: Tab reaches the console, then the API docs; Enter follows the link
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('href')), '/admin/');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('href')), '/api/docs/');
  await Promise.all([page.waitForURL(/\/api\/docs\/$/), page.keyboard.press('Enter')]);
});

test('the API docs page shows every operation of the spec', async () => {
  const spec = await (await fetch(`${srv.base}/api/openapi.json`)).json();
  const methods = ['get', 'post', 'put', 'delete', 'patch'];
  const ops = Object.values(spec.paths).flatMap((p) => Object.keys(p).filter((m) => methods.includes(m)));
  assert.ok(ops.length > 100, `the spec has ${ops.length} operations`);
  await page.goto(`${srv.base}/api/docs/`);
  await page.waitForSelector('.opblock', { timeout: 30000 });
  assert.equal(await page.locator('.opblock').count(), ops.length, 'one block per operation');
  assert.equal(await page.getByText('No API definition provided').count(), 0);
  // the operations a hospital system starts with are there by path
  for (const path of ['/api/v1/users/{employee_no}', '/api/v1/users/{employee_no}/handwriting-requests', '/api/v1/sign-flows']) {
    assert.ok(await page.locator(`.opblock-summary-path[data-path="${path}"]`).count() >= 1, path);
  }
  await page.screenshot({ path: join(SHOTS, 'api-docs.png') });
  assert.deepEqual(problems, []);
});
