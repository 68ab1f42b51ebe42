// Test kit (not a test file): start the real `medsign serve` (target/debug/medsign, or
// $MEDSIGN_BIN) on loopback with its own data directory, talk JSON to it, and bind and enrol a
// phone through medsign-phone.js. Used by web/wasm/test/*.test.mjs and bench/phone-batch.mjs.
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { createSocket } from 'node:dgram';
import { createServer, connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import * as phone from '../medsign-phone.js';
import { plan } from './netns.mjs';

export const root = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * A local fake NTP server (SNTP, RFC 4330 server side) answering with this machine's clock at
 * stratum 2, so medsign's clock discipline reaches INSYNC and its TSA may issue, on `host`.
 * Resolves to { source: 'host:port', close }.
 */
export function fakeNtpServer(host = '127.0.0.1') {
  const sock = createSocket('udp4');
  const NTP_EPOCH = 2208988800n;
  const stamp = (buf, at) => {
    const ns = BigInt(Date.now()) * 1000000n;
    buf.writeUInt32BE(Number(ns / 1000000000n + NTP_EPOCH), at);
    buf.writeUInt32BE(Number(((ns % 1000000000n) << 32n) / 1000000000n), at + 4);
  };
  sock.on('message', (req, peer) => {
    if (req.length < 48) return;
    const res = Buffer.alloc(48);
    res[0] = (0 << 6) | (4 << 3) | 4; // LI 0, version 4, mode 4 (server)
    res[1] = 2; // stratum
    res[2] = 6; // poll
    res[3] = 0xec; // precision 2^-20
    res.writeUInt32BE(0x00000010, 8); // root dispersion ~0.25 ms
    res.write('LOCL', 12);
    stamp(res, 16); // reference
    req.copy(res, 24, 40, 48); // originate = the client's transmit
    stamp(res, 32); // receive
    stamp(res, 40); // transmit
    sock.send(res, peer.port, peer.address);
  });
  return new Promise((resolve) => sock.bind(0, host, () => resolve({ source: `${host}:${sock.address().port}`, close: () => sock.close() })));
}

export const bin = () => process.env.MEDSIGN_BIN || `${root}target/debug/medsign`;

/** A JSON `call(method, path, token, body)` against `base`. */
function caller(base) {
  return async function call(method, path, token, body) {
    const res = await fetch(base + path, {
      method,
      headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json().catch(() => null) };
  };
}

/**
 * Like `caller`, but as a phone behind the gateway: every `/mobile/v1/…` call is sealed to the
 * servers' channel key (pinned at the first call) and opened here — what the H5 app's api.js does.
 * Other paths go plain (to show what the gateway refuses). `call.pinned` is the fingerprint.
 */
export function sealedCaller(base) {
  const plain = caller(base);
  let ch = null;
  async function call(method, path, token, body) {
    if (!path.startsWith('/mobile/v1/')) return plain(method, path, token, body);
    if (!ch) {
      const c = await fetch(`${base}/mobile/v1/channel`).then((r) => r.json());
      ch = await phone.openChannel(c, call.pinned || '');
      call.pinned = ch.fingerprint;
    }
    const sealed = ch.seal(JSON.stringify({ ts: Date.now(), method, path, auth: token || null, body: body === undefined ? null : body }));
    try {
      const res = await fetch(`${base}/mobile/v1/sealed`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: sealed.body });
      const text = await res.text();
      if (res.status !== 200) return { status: res.status, body: JSON.parse(text || 'null') };
      const inner = JSON.parse(sealed.open(text));
      // the servers rotated their key: read the channel again (and follow the endorsement)
      if (inner.kid && inner.kid !== ch.fingerprint.slice(0, 16)) ch = null;
      return { status: inner.status, body: inner.body };
    } finally { sealed.free(); }
  }
  call.pinned = '';
  return call;
}

/** Run on this machine: `on` for a command that runs where it is spawned. */
const here = (cmd, args) => [cmd, args];

/**
 * Start medsign (its clock synchronised to a local fake NTP server); resolves to { base, admin, call, stop }.
 * `dir`: an existing folder to keep the data directory in (left in place by `stop`); `on`, `listen`
 * and `ntp`: the host it runs on (a function of the command, see netns.mjs `exec`), its address
 * and its time source there (a fake NTP server of its own when not given).
 */
export async function startServer(extraEnv = {}, { dir: keep, on = here, listen = '127.0.0.1:0', ntp: source } = {}) {
  const ntp = source ? { source, close() {} } : await fakeNtpServer();
  await phone.load(readFileSync(`${root}web/wasm/pkg/medsign_wasm_bg.wasm`));
  const dir = keep || mkdtempSync(join(tmpdir(), 'medsign-node-'));
  const server = spawn(...on(bin(), ['serve', '--listen', listen, '--data-dir', join(dir, 'data')]), {
    env: { ...process.env, MEDSIGN_TIME_SOURCES: ntp.source, MEDSIGN_TIME_POLL_SECONDS: '1', ...extraEnv },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines = createInterface({ input: server.stderr });
  let tokenNext = false;
  let admin = null;
  const said = [];
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`medsign did not start:\n${said.join('\n')}`)), 60000);
    server.on('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`medsign exited (${code ?? signal}):\n${said.join('\n')}`)); });
    lines.on('line', (l) => {
      said.push(l);
      if (said.length > 40) said.shift();
      if (tokenNext) { admin = l.trim(); tokenNext = false; }
      if (l.includes('bootstrap token')) tokenNext = true;
      const m = l.match(/listening on (\S+)/);
      if (m) { clearTimeout(timer); resolve(`http://${m[1]}`); }
    });
  });
  const call = caller(base);
  for (let i = 0; ; i++) {
    const r = await fetch(`${base}/readyz`).then((x) => x.json()).catch(() => ({}));
    if (JSON.stringify(r).includes('INSYNC')) break;
    if (i > 200) throw new Error(`medsign's clock did not synchronise: ${JSON.stringify(r)}`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
  const stop = () => {
    ntp.close();
    server.kill();
    if (!keep) rmSync(dir, { recursive: true, force: true });
  };
  return { base, admin, call, stop, process: server };
}

/**
 * The tunnel certificates from the hospital CA `medsign serve` made in `data` (the database named
 * by `env`, or the data directory's SQLite): the gateways' (gw.pem/key, with ca.pem; for the
 * addresses `gateways`) and the servers' (srv.pem/key), written into `dir`. Run `on` a host.
 */
function tunnelCerts(dir, data, env = {}, { on = here, gateways = ['127.0.0.1'] } = {}) {
  for (const [role, names, out] of [['gateway', gateways, 'gw'], ['server', ['medsign-node-1'], 'srv']]) {
    const r = spawnSync(...on(bin(), ['gateway', 'cert', '--data-dir', data, '--role', role, ...names.flatMap((n) => ['--name', n]),
      '--out-cert', join(dir, `${out}.pem`), '--out-key', join(dir, `${out}.key`), ...(role === 'gateway' ? ['--out-ca', join(dir, 'ca.pem')] : [])]),
    { env: { ...process.env, ...env } });
    if (r.status !== 0) throw new Error(`gateway cert: ${r.stderr}`);
  }
}

/**
 * A `medsign gateway` with the certificates of {@link tunnelCerts}, `on` a host with its public and
 * tunnel addresses: { gateway (public URL), tunnel, process }.
 */
async function startGateway(dir, { on = here, listen = '127.0.0.1:0', tunnel: tunnelAt = '127.0.0.1:0', env = {} } = {}) {
  const gw = spawn(...on(bin(), ['gateway']), {
    env: { ...process.env, MEDSIGN_GATEWAY_LISTEN: listen, MEDSIGN_GATEWAY_TUNNEL_LISTEN: tunnelAt, MEDSIGN_GATEWAY_HEARTBEAT_SECONDS: '1',
      MEDSIGN_GATEWAY_TUNNEL_CERT: join(dir, 'gw.pem'), MEDSIGN_GATEWAY_TUNNEL_KEY: join(dir, 'gw.key'), MEDSIGN_GATEWAY_TUNNEL_CA: join(dir, 'ca.pem'), ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the gateway did not start')), 30000);
    let tunnel;
    createInterface({ input: gw.stderr }).on('line', (l) => {
      // what the gateway refused is part of a failing test's story
      if (/allow-list/.test(l)) process.stderr.write(`gateway: ${l}\n`);
      const t = l.match(/tunnels \(mutual TLS\): (\S+)/);
      if (t) tunnel = t[1];
      const m = l.match(/listening on (\S+)/);
      if (m) { clearTimeout(timer); resolve({ gateway: `http://${m[1]}`, tunnel, process: gw }); }
    });
  });
}

/** The environment of a server opening its tunnels to `tunnels` with the certificates in `dir`. */
const tunnelEnv = (dir, tunnels) => ({ MEDSIGN_TUNNEL_GATEWAYS: tunnels.join(','), MEDSIGN_TUNNEL_CERT: join(dir, 'srv.pem'),
  MEDSIGN_TUNNEL_KEY: join(dir, 'srv.key'), MEDSIGN_TUNNEL_CA: join(dir, 'ca.pem'), MEDSIGN_TUNNEL_HEARTBEAT_SECONDS: '1' });

/**
 * Wait until the gateway whose /readyz `readyz()` reads has `n` tunnels; `name` for the error.
 * @param {() => Promise<any>} readyz
 */
async function tunnelsUp(readyz, n, name) {
  for (let i = 0; ; i++) {
    const r = await readyz().catch(() => ({}));
    if (r.tunnels === n) return;
    if (i > 300) throw new Error(`gateway ${name}: ${JSON.stringify(r)} (wanted ${n} tunnels)`);
    await new Promise((ok) => setTimeout(ok, 50));
  }
}

/** A gateway's /readyz, read from where the test runs. */
const readyzAt = (url) => () => fetch(`${url}/readyz`).then((x) => x.json());

/**
 * One of host.mjs's roles (`role`, `args`) started `on` a host; resolves to { address (what it
 * said when ready), process, ask(question) (a JSON line in, its answer out) }.
 */
export function startHelper(on, role, args) {
  const child = spawn(...on(process.execPath, [join(root, 'web/wasm/testkit/host.mjs'), role, ...args]), { stdio: ['pipe', 'pipe', 'inherit'] });
  const waiting = new Map();
  let asked = 0;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`host.mjs ${role} did not start`)), 20000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const gone = new Error(`host.mjs ${role} exited (${code})`);
      reject(gone);
      // a question it can no longer answer fails instead of waiting for ever
      for (const [, [, fail]] of waiting) fail(gone);
      waiting.clear();
    });
    createInterface({ input: child.stdout }).on('line', (l) => {
      if (l.startsWith('ready ')) {
        clearTimeout(timer);
        resolve({ address: l.slice(6), process: child,
          ask: (q) => new Promise((ok, fail) => { waiting.set(++asked, [ok, fail]); child.stdin.write(`${JSON.stringify({ ...q, id: asked })}\n`); }) });
        return;
      }
      let a;
      try { a = JSON.parse(l); } catch { process.stderr.write(`host.mjs ${role}: ${l}\n`); return; }
      waiting.get(a.id)?.[0](a.answer);
      waiting.delete(a.id);
    });
  });
}

/**
 * medsign behind a DMZ gateway (docs/gateway.md): a first start creates the hospital CA, `medsign
 * gateway cert` issues both tunnel certificates, `medsign gateway` runs, and medsign starts again
 * with its tunnel to it. Resolves to { base, admin, call (the server: the HIS's view), gateway,
 * phoneCall (the gateway, sealed as the H5 app seals: all a phone can reach), dataDir, stop }.
 * `gatewayEnv`: more of the gateway's settings.
 */
export async function startBehindGateway(extraEnv = {}, { gatewayEnv = {} } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'medsign-gw-'));
  const first = await startServer(extraEnv, { dir });
  first.stop();
  await new Promise((ok) => setTimeout(ok, 300));
  tunnelCerts(dir, join(dir, 'data'));
  const gw = await startGateway(dir, { env: gatewayEnv });
  const srv = await startServer({ ...extraEnv, ...tunnelEnv(dir, [gw.tunnel]) }, { dir });
  await tunnelsUp(readyzAt(gw.gateway), 1, gw.gateway);
  const stop = () => {
    srv.stop();
    gw.process.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  return { ...srv, admin: first.admin, gateway: gw.gateway, phoneCall: sealedCaller(gw.gateway), dataDir: join(dir, 'data'), stop };
}

/**
 * A stand-in for the load balancer (HAProxy, nginx stream) in front of the DMZ gateways: a TCP
 * proxy that sends each connection to the next backend that accepts it — `host:port`, or the path
 * of a Unix socket (one backend makes it a plain relay). It listens at `listen` (net.Server's
 * options: { host, port } or { path }). Resolves to { url, close, stats }: `stats.connections[i]`
 * counts the connections backend i carried, `stats.bytes[i]` what it answered, `stats.refused` the
 * connections a backend refused (and the next one took).
 */
export function loadBalancer(backends, listen = { host: '127.0.0.1', port: 0 }) {
  let next = 0;
  const stats = { connections: backends.map(() => 0), bytes: backends.map(() => 0), refused: 0 };
  const server = createServer((client) => {
    client.pause();
    client.on('error', () => {});
    const tryFrom = (left) => {
      if (left === 0 || client.destroyed) { client.destroy(); return; }
      const i = next++ % backends.length;
      const b = backends[i];
      const up = b.startsWith('/') ? connect(b) : connect(Number(b.slice(b.lastIndexOf(':') + 1)), b.slice(0, b.lastIndexOf(':')));
      const refused = () => { stats.refused++; tryFrom(left - 1); };
      up.once('error', refused);
      up.once('connect', () => {
        up.off('error', refused);
        stats.connections[i]++;
        up.on('data', (d) => { stats.bytes[i] += d.length; });
        up.on('error', () => client.destroy());
        client.on('error', () => up.destroy());
        client.on('close', () => up.destroy());
        up.on('close', () => client.destroy());
        client.pipe(up).pipe(client);
        client.resume();
      });
    };
    tryFrom(backends.length);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen, () => {
      const a = server.address();
      resolve({ url: typeof a === 'string' ? a : `http://${a.address}:${a.port}`, close: () => server.close(), stats });
    });
  });
}

/**
 * The hospital's layout (issue #17): two `medsign serve` on one PostgreSQL (a fresh database on
 * $MEDSIGN_TEST_POSTGRES_URL's server), two `medsign gateway`, each server tunnelled to both, and
 * a load balancer in front of the gateways that phones reach (the servers' public URL). Resolves
 * to what {@link startBehindGateway} does — `base` and `call` are server A's, `gateway` is the
 * load balancer — plus `bases` and `calls` (each server's), `gateways`, `lbStats()` (the load
 * balancer's counts), `his` (a caller that moves to the other server when one does not answer),
 * `kill(which)` (SIGKILL: 'server:0', 'gateway:1', …), `tunnelsUp(n)`, `phoneHost`: the
 * network namespace the phone's browser must run in (null: any), and `startPhone()`: a phone with
 * the wasm half under Node, there.
 *
 * With $MEDSIGN_TEST_NETNS (set by h5-cluster.test.mjs) every host is a network namespace of
 * netns.mjs's layout: this process runs as the HIS; the servers, the gateways and the load
 * balancer run on theirs; the database and the NTP server are on the database host (started by
 * whoever made the layout). Otherwise all share loopback. Null without PostgreSQL. What it started
 * is stopped again when a step fails.
 */
export async function startCluster(extraEnv = {}) {
  const admin = process.env.MEDSIGN_TEST_POSTGRES_URL;
  if (!admin) return null;
  const netns = process.env.MEDSIGN_TEST_NETNS ? JSON.parse(process.env.MEDSIGN_TEST_NETNS) : null;
  const net = netns && plan(netns.tag, 2, 2);
  /** Where host `h` runs a command: its namespace, or here. */
  const on = (h) => (net ? (cmd, args) => net.exec(h, cmd, args) : here);
  const dir = mkdtempSync(join(tmpdir(), 'medsign-cluster-'));
  const name = `medsign_h5_cluster_${randomBytes(6).toString('hex')}`;
  const psql = (sql) => {
    const r = spawnSync('psql', [admin, '-q', '-c', sql]);
    if (r.status !== 0) throw new Error(`psql ${sql}: ${r.stderr}`);
  };
  const started = { servers: [], gws: [], lb: null, helpers: [] };
  const stop = () => {
    for (const h of started.helpers) h.process.kill();
    started.lb?.close();
    for (const s of started.servers) s.stop();
    for (const g of started.gws) g.process.kill();
    rmSync(dir, { recursive: true, force: true });
    // the namespaced layout's database is its maker's to drop (this host cannot reach the server)
    if (!net) try { psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`); } catch { /* nothing to drop */ }
  };
  try {
    if (!net) psql(`CREATE DATABASE ${name}`);
    const database = net ? netns.database : `${admin.slice(0, admin.lastIndexOf('/'))}/${name}`;
    const env = { ...extraEnv, MEDSIGN_DATABASE_URL: database, MEDSIGN_KEK: randomBytes(16).toString('hex') };
    const serverAt = (i) => ({ on: on(`srv${i}`), listen: net ? `${net.serverApi(i)}:0` : undefined, ntp: netns?.ntp });
    const first = await startServer(env, { dir: join(dir, 'a'), ...serverAt(0) });
    first.stop();
    await new Promise((ok) => setTimeout(ok, 300));
    const gateways = net ? [0, 1].map((j) => net.gatewayDmz(j)) : undefined;
    tunnelCerts(dir, join(dir, 'a', 'data'), env, { on: on('srv0'), gateways });
    for (let j = 0; j < 2; j++) {
      started.gws.push(await startGateway(dir, net ? { on: on(`gw${j}`), listen: `${net.gatewayPublic(j)}:0`, tunnel: `${net.gatewayDmz(j)}:7443` } : {}));
    }
    const gws = started.gws;
    // the phones' address, and so every deep link's: the load balancer, with the gateways' health
    let lb;
    const backends = gws.map((g) => new URL(g.gateway).host);
    if (net) {
      const h = await startHelper(on('lb'), 'lb', [net.lb, ...backends]);
      started.lb = { close: () => h.process.kill() };
      lb = { url: h.address, stats: () => h.ask({ op: 'stats' }), readyz: (j) => () => h.ask({ op: 'readyz', backend: j }) };
    } else {
      const l = started.lb = await loadBalancer(backends);
      lb = { url: l.url, stats: async () => l.stats, readyz: (j) => readyzAt(gws[j].gateway) };
    }
    const serverEnv = { ...env, ...tunnelEnv(dir, gws.map((g) => g.tunnel)), MEDSIGN_SERVER_PUBLIC_URL: lb.url };
    for (const [i, d] of ['a', 'b'].entries()) started.servers.push(await startServer(serverEnv, { dir: join(dir, d), ...serverAt(i) }));
    const servers = started.servers;
    for (const [j, g] of gws.entries()) await tunnelsUp(lb.readyz(j), 2, g.gateway);
    /** The HIS: server A, or B when A does not answer (a refused connection reached nobody). */
    const his = async (method, path, token, body) => {
      let last;
      for (const s of servers) {
        try { return await s.call(method, path, token, body); } catch (e) { last = e; }
      }
      throw last;
    };
    const kill = (which) => {
      const [kind, i] = which.split(':');
      (kind === 'server' ? servers : gws)[Number(i)].process.kill('SIGKILL');
    };
    return { ...servers[0], admin: first.admin, bases: servers.map((s) => s.base), calls: servers.map((s) => s.call), gateway: lb.url,
      gateways: gws.map((g) => g.gateway), lbStats: lb.stats, phoneCall: sealedCaller(lb.url), his, kill, stop,
      phoneHost: net ? net.ns('phones') : null,
      /** A phone with the wasm half under Node on the phones' host (host.mjs `phone`), reaching the load balancer. */
      startPhone: async () => {
        const h = await startHelper(on('phones'), 'phone', [lb.url]);
        started.helpers.push(h);
        return h;
      },
      /** Wait until every gateway still running has `n` tunnels. @param {number} n */
      tunnelsUp: (n) => Promise.all(gws.map((g, j) => [g, j]).filter(([g]) => g.process.exitCode === null && g.process.signalCode === null)
        .map(([g, j]) => tunnelsUp(lb.readyz(j), n, g.gateway))) };
  } catch (e) {
    stop();
    throw e;
  }
}
/** Bind a phone of `employee` (activation code from the HIS token `his`); returns the session token. */
export async function bindPhone(call, his, employee) {
  const code = await call('POST', `/api/v1/users/${employee}/activation-codes`, his);
  if (code.status !== 201) throw new Error(JSON.stringify(code.body));
  const act = await call('POST', '/mobile/v1/activate', null, { employee_no: employee, code: code.body.code, device_name: 'node test phone' });
  if (act.status !== 201) throw new Error(JSON.stringify(act.body));
  return act.body.token;
}

/**
 * The phone's `post(what, body)` transport for medsign-phone.js over the mobile API: 'pin' and
 * 'unlock' (the PIN verifier), 'sign' with `rounds` (the server half of open rounds).
 */
export function mobilePost(call, session, rounds = []) {
  return async (what, body) => {
    const r = what === 'sign'
      ? await call('POST', '/mobile/v1/sign-rounds/answers', session, { answers: body.map((request, i) => ({ round_id: rounds[i].round_id, request })) })
      : await call('POST', `/mobile/v1/${what}`, session, body);
    if (r.status < 200 || r.status > 299) throw Object.assign(new Error(r.body.message), { status: r.status, body: r.body });
    return what === 'sign' ? r.body.responses : r.body;
  };
}

/** Two-party key generation for a bound phone; returns { publicKey, wrapped, certificate }. */
export async function enrol(call, session, pin, secret) {
  const start = await call('POST', '/mobile/v1/keys', session);
  if (start.status !== 201) throw new Error(JSON.stringify(start.body));
  let certificate = null;
  let csrRequired = false;
  const post = async (what, body) => {
    if (what !== 'keygen') return mobilePost(call, session)(what, body);
    const r = await call('POST', `/mobile/v1/keys/${start.body.key_id}`, session, { request: body });
    if (r.status !== 201) throw new Error(r.body.message);
    certificate = r.body.certificate;
    csrRequired = r.body.csr_required === true;
    return r.body.response;
  };
  const out = await phone.enrol({ post, context: start.body.context, pin, deviceSecret: secret, certify: () => csrRequired });
  return { ...out, certificate: out.certificate || certificate };
}

/**
 * What the H5 app does to sign open rounds: one PIN entry through medsign-phone.js, the server
 * half in one request, then the signatures. Returns the per-document results.
 */
export async function signRounds(call, session, { wrapped, pin, deviceSecret, rounds, fingerprint }) {
  const post = mobilePost(call, session, rounds);
  const sigs = await phone.signMany({ post, wrapped, pin, deviceSecret, digests: rounds.map((r) => r.e), fingerprint });
  const signatures = sigs.map((signature, i) => ({ round_id: rounds[i].round_id, signature }));
  const done = await call('POST', '/mobile/v1/sign-rounds/signatures', session, { signatures });
  if (done.status !== 200) throw Object.assign(new Error(done.body.message), { status: done.status });
  return done.body.results;
}

/** Open rounds for `targets` (scanned tickets or pending flows) and sign them. Returns { rounds, results }. */
export async function coSign(call, session, { wrapped, pin, deviceSecret, targets, fingerprint }) {
  const opened = await call('POST', '/mobile/v1/sign-rounds', session, { targets });
  if (opened.status !== 201) throw Object.assign(new Error(opened.body.message), { status: opened.status, body: opened.body });
  const rounds = opened.body.rounds;
  return { rounds, results: await signRounds(call, session, { wrapped, pin, deviceSecret, rounds, fingerprint }) };
}

/** Read a server-sent events stream until `until(event)` is true; resolves to the events seen. */
export async function readEvents(url, until, timeoutMs = 20000) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  const res = await fetch(url, { signal: ac.signal, headers: { Accept: 'text/event-stream' } });
  if (res.status !== 200) throw Object.assign(new Error(`events: HTTP ${res.status}`), { status: res.status });
  const seen = [];
  let buf = '';
  try {
    for await (const chunk of res.body) {
      buf += Buffer.from(chunk).toString('utf8');
      let at;
      while ((at = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, at);
        buf = buf.slice(at + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (!event) continue;
        const e = { event, data: JSON.parse(data) };
        seen.push(e);
        if (until(e)) return seen;
      }
    }
    return seen;
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}
