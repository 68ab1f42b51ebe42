// node:test — rotating the end-to-end channel key (issue #17, docs/gateway.md) while phones are
// bound: the phone core of the H5 app and the mini program (web/mobile/core.js), reaching the
// server only through the real `medsign gateway`, follows `medsign channel rotate` by the old
// key's endorsement and pins the new key; after `--compromised` it stops until activated again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { register } from 'node:module';
import * as phone from '../medsign-phone.js';
import { startBehindGateway, bin } from '../testkit/server.mjs';

// core.js imports ./medsign-phone.js, which the server serves beside it at /m/ from web/wasm/:
// resolve it here the same way, so the core and this test share one loaded module
register(`data:text/javascript,${encodeURIComponent(`export async function resolve(spec, ctx, next) {
  if (spec === './medsign-phone.js' && ctx.parentURL?.endsWith('/web/mobile/core.js')) return next(new URL('../wasm/medsign-phone.js', ctx.parentURL).href, ctx);
  return next(spec, ctx);
}`)}`);
const { createPhone } = await import('../../mobile/core.js');

let srv, his;
/** The SM2 base point: a valid key nobody at the hospital holds. */
const G = '0432c4ae2c1f1981195f9904466a39c9948fe30bbff2660be1715a4589334c74c7bc3736a2f4f6779c59bdcee36b692153d0a9877cc62a474002df32e52139f0a0';
const wait = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** `medsign channel rotate` on the running server's data directory; resolves once the server
 * names the new key to phones (it looks within REFRESH, 2 s, and names it ADVERTISE_AFTER, 5 s,
 * after it took it; after a compromise at once). */
async function rotate(...flags) {
  const before = (await channelNow()).fingerprint;
  execFileSync(bin(), ['channel', 'rotate', '--data-dir', srv.dataDir, ...flags], { stdio: ['ignore', 'ignore', 'pipe'] });
  for (let i = 0; (await channelNow()).fingerprint === before; i++) {
    assert.ok(i < 40, 'the new key was never named');
    await wait(500);
  }
}
const channelNow = () => fetch(`${srv.gateway}/mobile/v1/channel`).then((r) => r.json());

/** A phone core on a Map, reaching the gateway only. */
function phoneCore(pinned) {
  const m = new Map(pinned ? [['channel', pinned]] : []);
  const store = { get: (k) => m.get(k) ?? null, set: (k, v) => (v == null ? m.delete(k) : m.set(k, v)) };
  const request = async ({ method, url, headers, body }) => {
    const res = await fetch(url, { method, headers, body });
    return { status: res.status, text: await res.text() };
  };
  return createPhone({ base: `${srv.gateway}/mobile/v1/`, request, store });
}

/** A fresh activation code for 1001 and its pinned fingerprint; the phone binds with it. */
async function bound(device) {
  const code = await srv.call('POST', '/api/v1/users/1001/activation-codes', his);
  assert.equal(code.status, 201, JSON.stringify(code.body));
  const p = phoneCore(code.body.channel_fingerprint);
  const act = await p.api('POST', 'activate', { employee_no: '1001', code: code.body.code, device_name: device });
  p.store.set('token', act.token);
  return { p, pin: code.body.channel_fingerprint };
}

before(async () => {
  srv = await startBehindGateway();
  const app = await srv.call('POST', '/admin/v1/apps', srv.admin, { name: 'HIS', scopes: ['users:write', 'users:read'] });
  his = app.body.token;
  assert.equal((await srv.call('POST', '/api/v1/users', his, { employee_no: '1001', name: '张三', id_card: '11010519491231002X' })).status, 201);
});

after(() => srv?.stop());

test('a bound phone follows a rotation of the channel key by its endorsement, and stops after a compromise', async () => {
  const { p, pin: first } = await bound('phone A');
  assert.ok((await p.api('GET', 'pending')).items);
  assert.equal(p.store.get('channel'), first);
  const firstChannel = await channelNow();
  assert.deepEqual(firstChannel.history.map((s) => s.generation), [1]);

  // generation 2, while the server runs; the phone's next call is still sealed to generation 1
  await rotate();
  const second = await channelNow();
  assert.notEqual(second.fingerprint, first);
  assert.deepEqual(second.history.map((s) => s.generation), [1, 2]);
  assert.ok((await p.api('GET', 'pending')).items, 'the previous key still opens calls');
  assert.equal(p.store.get('channel'), first, 'the pin moves only when the channel is read again');
  // that answer named the new key: the next call reads the channel, checks the endorsement, pins
  assert.ok((await p.api('GET', 'pending')).items);
  assert.equal(p.store.get('channel'), second.fingerprint);
  // new activation codes carry the new key
  const code = await srv.call('POST', '/api/v1/users/1001/activation-codes', his);
  assert.equal(code.body.channel_fingerprint, second.fingerprint);

  // generation 3: generation 1 no longer opens anything; a phone pinned to it still follows both steps
  await rotate();
  const old = await phone.openChannel(firstChannel, first);
  const call = old.seal(JSON.stringify({ ts: Date.now(), method: 'GET', path: '/mobile/v1/pending', auth: null, body: null }));
  const refused = await fetch(`${srv.gateway}/mobile/v1/sealed`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: call.body });
  call.free();
  assert.equal(refused.status, 409);
  assert.equal((await refused.json()).code, 'e2e_key_changed');
  const third = await channelNow();
  const offline = await phone.openChannel(third, first);
  assert.equal(offline.fingerprint, third.fingerprint, 'pinned to generation 1, led to generation 3');
  // the phone itself: its cached channel (generation 2) still opens, then it moves on
  await p.api('GET', 'pending');
  await p.api('GET', 'pending');
  assert.equal(p.store.get('channel'), third.fingerprint);

  // a gateway's own key (here the SM2 base point) after a made-up step is not followed, nor an
  // older key of the chain offered as the newest
  const forged = { ...third, public_key: G, history: [...third.history, { generation: 4, public_key: G, endorsement: third.history[2].endorsement }] };
  await assert.rejects(phone.openChannel(forged, third.fingerprint), /pinned/);
  // a server still naming the previous key (a rotation seconds old there) does not roll the pin
  // back; the same offer without the newer key in its history is refused
  const kept = await phone.openChannel({ ...third, public_key: second.public_key, history: third.history }, third.fingerprint);
  assert.equal(kept.fingerprint, third.fingerprint);
  await assert.rejects(phone.openChannel({ ...third, public_key: second.public_key, history: third.history.slice(0, 2) }, third.fingerprint), /pinned/);

  // compromised: no endorsement, generation 3 stops at once; the phone refuses the new key
  const oldToken = p.store.get('token');
  await rotate('--compromised');
  await assert.rejects(p.api('GET', 'pending'), (e) => e.body?.code === 'e2e_key_changed');
  await assert.rejects(p.api('GET', 'pending'), /pinned/);
  assert.equal(p.store.get('channel'), third.fingerprint, 'the pin does not move to an unendorsed key');
  const fourth = await channelNow();
  assert.deepEqual(fourth.history.map((s) => s.generation), [4], 'nothing before the compromise is published');
  // every session ended: a token read from calls sealed to the old key opens nothing
  const thief = phoneCore(fourth.fingerprint);
  thief.store.set('token', oldToken);
  await assert.rejects(thief.api('GET', 'pending'), (e) => e.status === 401);
  // the same phone, given a new code in person, trusts the new key on the doctor's word and binds again
  const fresh = await srv.call('POST', '/api/v1/users/1001/activation-codes', his);
  assert.equal(fresh.body.channel_fingerprint, fourth.fingerprint);
  p.repin(fresh.body.channel_fingerprint);
  assert.equal(p.store.get('token'), null);
  await p.activate({ employeeNo: '1001', code: fresh.body.code, deviceName: 'phone A again' });
  assert.ok((await p.api('GET', 'pending')).items);
  assert.equal(p.store.get('channel'), fourth.fingerprint);
});

test('rotations at once: any that lose are told why, and the channel stays whole', async () => {
  const runs = await Promise.allSettled([0, 1, 2].map(() => new Promise((ok, no) => {
    execFile(bin(), ['channel', 'rotate', '--data-dir', srv.dataDir], (err, _o, stderr) => (err ? no(Object.assign(err, { stderr })) : ok(stderr)));
  })));
  const made = runs.filter((r) => r.status === 'fulfilled').length;
  assert.ok(made >= 1, JSON.stringify(runs));
  for (const r of runs.filter((r) => r.status === 'rejected')) assert.match(r.reason.stderr, /another rotation|同时/);
  await wait(5500);
  const c = await channelNow();
  const gens = c.history.map((s) => s.generation);
  assert.deepEqual(gens, gens.map((_, i) => gens[0] + i), 'consecutive generations');
  const { p } = await bound('phone B');
  assert.ok((await p.api('GET', 'pending')).items);
});
