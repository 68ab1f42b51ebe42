// node:test — the H5 app's whole scenario (web/e2e/h5.test.mjs) in the hospital's layout (issue
// #17): two `medsign serve` on one PostgreSQL, two `medsign gateway`, each server tunnelled to
// both, a load balancer in front of the gateways (a TCP stand-in for HAProxy or nginx, see
// web/wasm/testkit/server.mjs), the phone's Chromium reaching that and nothing else, the HIS
// reaching only the servers; then a server and a gateway are killed with SIGKILL and the phone
// signs on. Needs PostgreSQL ($MEDSIGN_TEST_POSTGRES_URL, which scripts/test sets): without it
// the tests are skipped, and under CI they fail.
//
// As root the hosts are network namespaces (web/wasm/testkit/netns.mjs): this file makes the
// layout, the database and the database host's relay and NTP server, then runs itself again as
// the HIS (`ip netns exec`, $MEDSIGN_TEST_NETNS naming the layout) and reports that run's tests
// one by one. Without root they share loopback.
import { test } from 'node:test';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { canMakeNamespaces, makeLayout } from '../wasm/testkit/netns.mjs';
import { loadBalancer, startHelper } from '../wasm/testkit/server.mjs';

const admin = process.env.MEDSIGN_TEST_POSTGRES_URL;
const inside = Boolean(process.env.MEDSIGN_TEST_NETNS);
const why = inside ? null : canMakeNamespaces();

if (inside || why || !admin) {
  if (!inside && admin) {
    // as root the namespaces must be made: a test that quietly lost its isolation would still pass
    if (process.getuid?.() === 0) throw new Error(`network namespaces could not be made as root: ${why}`);
    console.error(`layout: loopback — no network namespaces here (${why})`);
  }
  await import('./cluster-mode.mjs');
  await import('./h5.test.mjs');
} else {
  for (const r of await runInLayout()) {
    (r.skip ? test.skip : test)(r.name, () => {
      if (!r.ok) throw new Error(`in the namespaced layout:\n${r.detail}`);
    });
  }
}

/**
 * Make the layout and run this file inside it as the HIS; resolves to its top-level tests' results
 * ({ name, ok, skip, detail }), read from its TAP output.
 */
async function runInLayout() {
  const net = makeLayout(2, 2);
  const work = mkdtempSync(join(tmpdir(), 'medsign-netns-'));
  const name = `medsign_h5_netns_${randomBytes(6).toString('hex')}`;
  const psql = (sql) => spawnSync('psql', [admin, '-q', '-c', sql]);
  const helpers = [];
  let pg;
  try {
    const made = psql(`CREATE DATABASE ${name}`);
    if (made.status !== 0) throw new Error(`psql: ${made.stderr}`);
    // the database host's port 5432 → a Unix socket here → PostgreSQL on this machine's loopback
    const url = new URL(admin);
    const socket = join(work, 'pg.sock');
    pg = await loadBalancer([url.host], { path: socket });
    const onDb = (cmd, args) => net.exec('db', cmd, args);
    helpers.push(await startHelper(onDb, 'relay', [`${net.db}:5432`, socket]));
    const ntp = await startHelper(onDb, 'ntp', [net.db]);
    helpers.push(ntp);
    url.host = `${net.db}:5432`;
    url.pathname = `/${name}`;
    const env = { ...process.env, MEDSIGN_TEST_NETNS: JSON.stringify({ tag: net.tag, database: url.href, ntp: ntp.address }) };
    // the test runner's own marker would make the inner runner talk its private protocol
    delete env.NODE_TEST_CONTEXT;
    const inner = spawn(...net.exec('his', process.execPath, ['--test', '--test-reporter=tap', fileURLToPath(import.meta.url)]),
      { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    inner.stdout.on('data', (b) => { out += b; });
    // 'close': its output has been read to the end
    const code = await new Promise((ok) => inner.on('close', (c, s) => ok(c ?? s)));
    const results = parseTap(out);
    if ((code !== 0 && results.every((r) => r.ok)) || results.length === 0) {
      results.push({ name: 'the namespaced run ended cleanly', ok: false, detail: `exit ${code}\n${out}` });
    }
    return results;
  } finally {
    for (const h of helpers) h.process.kill();
    pg?.close();
    psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    net.remove();
    rmSync(work, { recursive: true, force: true });
  }
}

/** The top-level tests of node:test's TAP output, each with the YAML block that followed it. */
function parseTap(tap) {
  const results = [];
  for (const line of tap.split('\n')) {
    const m = line.match(/^(not )?ok \d+ - (.*?)(?: # (SKIP|TODO)\b.*)?$/);
    // a test that failed after asking to be skipped is a failure
    if (m) results.push({ name: m[2].replace(/\\#/g, '#').replace(/\\\\/g, '\\'), ok: !m[1], skip: !m[1] && m[3] === 'SKIP', detail: '' });
    else if (results.length && line.startsWith('  ')) results.at(-1).detail += `${line}\n`;
  }
  return results;
}
