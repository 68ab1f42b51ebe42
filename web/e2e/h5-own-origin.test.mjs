// node:test — the H5 app on an origin of its own (docs/gateway.md, "the H5 app's own code"): its
// files exported by `medsign h5 export` and served by a plain file server (what an nginx or an
// object store would be), the phone's Chromium loading them from there and calling only the
// channel and sealed calls of the real `medsign gateway` across origins. The gateway delivers no
// byte of the app's code, so a gateway taken over cannot rewrite it. Bind, PIN and split key, a
// scanned record signed; the gateway refuses app files, and a page of another origin reads none
// of its answers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join, extname, normalize, sep } from 'node:path';
import { tmpdir, homedir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { startBehindGateway, bin } from '../wasm/testkit/server.mjs';

const PW = process.env.MEDSIGN_PLAYWRIGHT || join(homedir(), '.cache/medsign-test-tools/node/node_modules/playwright-core/index.mjs');
const CHROMIUM = process.env.MEDSIGN_CHROMIUM || '/usr/bin/chromium';
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm' };
const PIN = '258036';

let srv, site, other, work, browser, origin, his;
/** Every URL the phone's browser asked for. */
const asked = [];

/** A plain file server of `root` on loopback; resolves to its origin. */
async function files(root) {
  const s = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const file = normalize(path === '/' ? 'index.html' : decodeURIComponent(path.slice(1)));
    if (file.startsWith('..') || file.includes(`${sep}..`)) return res.writeHead(404).end();
    try {
      const body = readFileSync(join(root, file));
      res.writeHead(200, { 'Content-Type': TYPES[extname(file)] || 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((ok) => s.listen(0, '127.0.0.1', ok));
  return { server: s, origin: `http://127.0.0.1:${s.address().port}` };
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'medsign-own-origin-'));
  site = await files(join(work, 'app'));
  other = await files(work);
  origin = site.origin;
  srv = await startBehindGateway({ MEDSIGN_REALNAME_PROVIDER: 'dev', MEDSIGN_SERVER_APP_URL: `${origin}/` },
    { gatewayEnv: { MEDSIGN_GATEWAY_APP_ORIGINS: origin } });
  execFileSync(bin(), ['h5', 'export', '--out', join(work, 'app'), '--api', srv.gateway], { stdio: ['ignore', 'ignore', 'pipe'] });
  const app = await srv.call('POST', '/admin/v1/apps', srv.admin, { name: 'HIS', scopes: ['users:write', 'users:read', 'sign'] });
  his = app.body.token;
  assert.equal((await srv.call('POST', '/api/v1/users', his, [{ employee_no: '1001', name: '张三', id_card: '11010519491231002X' }])).status, 201);
  const { chromium } = await import(PW);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--lang=zh-CN'] });
});

after(async () => {
  await browser?.close();
  srv?.stop();
  site?.server.close();
  other?.server.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('the app from its own origin binds, enrols and signs through the gateway, which delivers none of its code', async () => {
  const act = (await srv.call('POST', '/api/v1/users/1001/activation-codes', his)).body;
  assert.ok(act.link.startsWith(`${origin}/#/activate?`), act.link);
  const ctx = await browser.newContext({ viewport: { width: 360, height: 640 }, isMobile: true, hasTouch: true, locale: 'zh-CN' });
  const p = await ctx.newPage();
  p.on('pageerror', (e) => { throw e; });
  p.on('request', (r) => asked.push(r.url()));
  await p.goto(act.link);
  await p.waitForSelector('#activate');
  assert.equal(await p.evaluate(() => localStorage.getItem('medsign.channel')), act.channel_fingerprint);
  await p.click('#activate');
  await p.waitForSelector('#enrol');
  await p.fill('#pin1', PIN);
  await p.fill('#pin2', PIN);
  await p.click('#enrol');
  await p.waitForSelector('#pad', { timeout: 30000 });
  // a record scanned from the PC's QR code: the link leads into the app at its own origin
  const f = await srv.call('POST', '/api/v1/sign-flows', his, { kind: 'data', title: '检验报告 O1', content: '检验报告 O1：HGB 135', signers: [{ employee_no: '1001', mode: 'scan' }] });
  assert.equal(f.status, 201, JSON.stringify(f.body));
  assert.ok(f.body.ticket.deep_link.startsWith(`${origin}/#/sign?t=`), f.body.ticket.deep_link);
  await p.goto(f.body.ticket.deep_link);
  await p.waitForSelector('#confirmSign');
  await p.fill('#pin', PIN);
  await p.click('#confirmSign');
  await p.waitForSelector('#signed', { timeout: 30000 });
  const done = await srv.call('GET', `/api/v1/sign-flows/${f.body.id}`, his);
  assert.equal(done.body.state, 'completed');
  // the code came from the app's origin; the gateway was asked for the channel and sealed calls only
  const fromGateway = asked.filter((u) => u.startsWith(srv.gateway)).map((u) => new URL(u).pathname);
  assert.ok(fromGateway.length > 0 && fromGateway.every((x) => x === '/mobile/v1/channel' || x === '/mobile/v1/sealed'), JSON.stringify([...new Set(fromGateway)]));
  assert.ok(asked.some((u) => u.startsWith(`${origin}/pkg/medsign_wasm_bg.wasm`)), 'the WebAssembly half from the app origin');
  await ctx.close();
});

test('the gateway serves no app file, and answers across origins only to the app\'s origin', async () => {
  for (const path of ['/m/', '/m/app.js', '/m/pkg/medsign_wasm_bg.wasm']) {
    assert.equal((await fetch(`${srv.gateway}${path}`)).status, 404, path);
  }
  const channel = await fetch(`${srv.gateway}/mobile/v1/channel`, { headers: { Origin: origin } });
  assert.equal(channel.headers.get('access-control-allow-origin'), origin);
  const stranger = await fetch(`${srv.gateway}/mobile/v1/channel`, { headers: { Origin: other.origin } });
  assert.equal(stranger.status, 200);
  assert.equal(stranger.headers.get('access-control-allow-origin'), null, 'no CORS header for another origin');
  const pre = (o) => fetch(`${srv.gateway}/mobile/v1/sealed`, { method: 'OPTIONS', headers: { Origin: o, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' } });
  const ok = await pre(origin);
  assert.equal(ok.status, 204);
  assert.equal(ok.headers.get('access-control-allow-origin'), origin);
  assert.match(ok.headers.get('access-control-allow-methods'), /POST/);
  assert.equal((await pre(other.origin)).status, 403);
  // and in a browser: a page of another origin cannot read the gateway's answer, one of the app's
  // origin can (both pages plain files, not the app)
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  const reads = async (page) => p.goto(page).then(() => p.evaluate((gw) => fetch(`${gw}/mobile/v1/channel`).then((r) => r.json()).then((c) => c.kid.length, () => 'blocked'), srv.gateway));
  assert.equal(await reads(`${other.origin}/app/app.css`), 'blocked');
  assert.equal(await reads(`${origin}/app.css`), 16);
  await ctx.close();
});
