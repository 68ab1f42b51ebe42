// Issue #7 benchmarks, run by bench/phone.sh against a release `medsign serve` (MEDSIGN_BIN):
//  1. a doctor's batch: 200 lab reports rendered from the shipped template wait for the doctor's
//     phone (scan mode, field "tester", SM2 + SM2 timestamp); timed end to end as the H5 app does
//     it: pending list → open 200 rounds → one PIN unwrap + 200 phone halves in WebAssembly under
//     Node → the server half (one request) → 200 signatures recorded and timestamped;
//  2. the server half alone over HTTP: N single-round `answers` requests one after another, each
//     with its own PIN approval (untimed, entered on that phone before its answers; rounds opened
//     beforehand), latency percentiles.
// Prints JSON lines for bench/phone.sh.
import { performance } from 'node:perf_hooks';
import http from 'node:http';
import * as phone from '../web/wasm/medsign-phone.js';
import { startServer, bindPhone, enrol, coSign, mobilePost } from '../web/wasm/testkit/server.mjs';

const BATCH = Number(process.env.BATCH || 200);
const ROUNDS = Number(process.env.ROUNDS || 500);
const PIN = '135790';
const srv = await startServer();
const { call } = srv;
try {
  const app = await call('POST', '/admin/v1/apps', srv.admin, { name: 'HIS', scopes: ['users:write', 'users:read', 'sign'] });
  const his = app.body.token;
  await call('POST', '/api/v1/users', his, { employee_no: '1001', name: '张三', title: '检验师' });
  const me = await bindPhone(call, his, '1001');
  const secret = phone.deviceSecret();
  const key = await enrol(call, me, PIN, secret);
  const lab = (i) => ({
    kind: 'file', title: `检验报告单 S-${i}`, template_id: 'lab-report',
    data: { hospital: '某县人民医院', patient_name: '患者', gender: '女', age: '32岁', patient_id: `ZY${String(i).padStart(5, '0')}`,
      sample_no: `S-${i}`, department: '内科', specimen: '血清',
      items: [{ code: 'GLU', name: '葡萄糖', result: '5.1', unit: 'mmol/L', reference: '3.9–6.1' }] },
    signers: [{ employee_no: '1001', mode: 'scan', field: 'tester' }],
  });
  for (let i = 0; i < BATCH; i++) {
    const r = await call('POST', '/api/v1/sign-flows', his, lab(i));
    if (r.status !== 201) throw new Error(JSON.stringify(r.body));
  }
  const t0 = performance.now();
  const pending = await call('GET', '/mobile/v1/pending', me);
  const t1 = performance.now();
  const { results } = await coSign(call, me, { wrapped: key.wrapped, pin: PIN, deviceSecret: secret, targets: pending.body.items.map((i) => ({ flow_id: i.flow_id })) });
  const t2 = performance.now();
  const done = results.filter((r) => r.state === 'completed').length;
  console.log(JSON.stringify({ bench: 'batch', documents: BATCH, completed: done, pending_ms: +(t1 - t0).toFixed(1), total_ms: +(t2 - t0).toFixed(1) }));

  // the server half alone: single-round answers, sequential. Each answer needs its own approval
  // (issue #15: the PIN approves exactly the digests it names, once), and PIN entries are limited
  // per device (10 at once), so the rounds are spread over ROUNDS/10 doctors' phones.
  const PER_PHONE = 10;
  const phones = [];
  for (let p = 0; p * PER_PHONE < ROUNDS; p++) {
    const no = String(2000 + p);
    await call('POST', '/api/v1/users', his, { employee_no: no, name: `医生${no}` });
    // phone activation is limited per address (10 at once, then one per 3 s): wait when told to
    let token;
    for (;;) {
      try {
        token = await bindPhone(call, his, no);
        break;
      } catch (e) {
        if (!String(e.message).includes('too_many_requests')) throw e;
        await new Promise((ok) => setTimeout(ok, 3100));
      }
    }
    const sec = phone.deviceSecret();
    phones.push({ no, token, secret: sec, key: await enrol(call, token, PIN, sec) });
  }
  const work = [];
  for (const [p, ph] of phones.entries()) {
    const ids = [];
    for (let i = p * PER_PHONE; i < Math.min(ROUNDS, (p + 1) * PER_PHONE); i++) {
      const r = await call('POST', '/api/v1/sign-flows', his, { kind: 'data', title: `医嘱 ${i}`, content: `NS 250ml ivgtt qd #${i}`, signers: [{ employee_no: ph.no, mode: 'scan' }] });
      ids.push(r.body.id);
    }
    const opened = await call('POST', '/mobile/v1/sign-rounds', ph.token, { targets: ids.map((flow_id) => ({ flow_id })) });
    if (opened.status !== 201) throw new Error(JSON.stringify(opened.body));
    for (const round of opened.body.rounds) work.push({ ph, round });
  }
  const times = [];
  // the timed requests go through node:http with one kept-alive connection (fetch's WHATWG
  // streams add client-side jitter that is not the server's)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const answer = (token, body) => new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = http.request(`${srv.base}/mobile/v1/sign-rounds/answers`, { method: 'POST', agent,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Content-Length': data.length } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(Buffer.concat(chunks).toString()) }));
    });
    req.on('error', reject);
    req.end(data);
  });
  // the floor of this machine in the same run: a GET /healthz (no database, no signature) on the
  // same kept-alive connection right after each timed answer. A p99 of the server half below the
  // floor's cannot be had here; the gap between the two is what the server half adds.
  const floor = [];
  const health = () => new Promise((resolve, reject) => {
    const req = http.request(`${srv.base}/healthz`, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end();
  });
  // per phone: the doctor's PIN entries first (each approves one round, untimed), then that
  // phone's answers one after another (timed), then the phone finishes its signatures. Timing an
  // answer right after the client's own PIN work (WebAssembly key derivation, and the garbage
  // collection it leaves) measured the client on a shared machine, not medsign; on a real phone
  // the PIN entry happens on the phone, seconds before.
  const byPhone = new Map();
  for (const { ph, round } of work) byPhone.set(ph, [...(byPhone.get(ph) || []), round]);
  for (const [ph, rounds] of byPhone) {
    const pinPost = mobilePost(call, ph.token);
    const gated = [];
    const runs = [];
    for (const round of rounds) {
      let reached;
      const atGate = new Promise((ok) => { reached = ok; });
      const post = (what, body) => (what !== 'sign' ? pinPost(what, body)
        : new Promise((resolve, reject) => reached({ round, body, resolve, reject })));
      const run = phone.signMany({ post, wrapped: ph.key.wrapped, pin: PIN, deviceSecret: ph.secret, digests: [round.e] });
      runs.push(run);
      gated.push(await Promise.race([atGate, run.then(() => { throw new Error('signMany ended before its answer'); })]));
    }
    const answered = [];
    for (const g of gated) {
      const a = performance.now();
      const r = await answer(ph.token, { answers: [{ round_id: g.round.round_id, request: g.body[0] }] });
      times.push(performance.now() - a);
      if (r.status !== 200) throw new Error(JSON.stringify(r.body));
      const h = performance.now();
      if ((await health()) !== 200) throw new Error('/healthz did not answer 200');
      floor.push(performance.now() - h);
      answered.push(r.body.responses);
    }
    gated.forEach((g, i) => g.resolve(answered[i]));
    await Promise.all(runs);
  }
  agent.destroy();
  times.sort((a, b) => a - b);
  floor.sort((a, b) => a - b);
  const pctOf = (v, p) => +v[Math.min(v.length - 1, Math.floor(v.length * p))].toFixed(2);
  const pct = (p) => pctOf(times, p);
  // the server's own view (Prometheus histogram of the route): time inside medsign per request
  const metrics = await (await fetch(`${srv.base}/metrics`)).text();
  const route = 'route="/mobile/v1/sign-rounds/answers"';
  const bucket = (le) => Number((metrics.match(new RegExp(`duration_seconds_bucket\\{${route},le="${le}"\\} (\\d+)`)) || [])[1] || 0);
  const count = Number((metrics.match(new RegExp(`duration_seconds_count\\{${route}\\} (\\d+)`)) || [])[1] || 0);
  const sum = Number((metrics.match(new RegExp(`duration_seconds_sum\\{${route}\\} ([0-9.e-]+)`)) || [])[1] || 0);
  console.log(JSON.stringify({ bench: 'server-half', requests: times.length, p50_ms: pct(0.5), p99_ms: pct(0.99), max_ms: pct(1),
    floor_p50_ms: pctOf(floor, 0.5), floor_p99_ms: pctOf(floor, 0.99),
    server_mean_ms: count ? +((sum / count) * 1000).toFixed(2) : null,
    server_le_1ms: count ? +(bucket('0.001') / count).toFixed(4) : null,
    server_le_2_5ms: count ? +(bucket('0.0025') / count).toFixed(4) : null,
    server_le_5ms: count ? +(bucket('0.005') / count).toFixed(4) : null }));
} finally {
  srv.stop();
}
