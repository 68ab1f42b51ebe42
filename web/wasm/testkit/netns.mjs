// Test kit (not a test file): the hospital's network as separate hosts for the Node and Chromium
// tests — Linux network namespaces (`ip netns`, root only) joined by bridges in a namespace of
// their own, the address plan of crates/cli/tests/common/netns.rs (198.18.0.0/15, RFC 2544, set
// aside for network tests), plus a load balancer host in front of the gateways:
//
//   phones ─┐                                     ┌─ HIS (the test process itself)
//           br-pub ── gateways ── br-dmz ── servers ── br-his
//   lb ─────┘                                 └─ br-db ── db (PostgreSQL relay, NTP)
//
// No namespace routes beyond its own subnets (ip_forward=0 in each), so the phones reach the load
// balancer and the gateways' public side and nothing else; the HIS reaches the servers' API only.
// The machine's own namespace is left alone.
import { spawnSync } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';

const PUB = '198.18.3';
const DMZ = '198.18.2';
const HIS = '198.18.4';
const DB = '198.18.1';

/** Whether this process may make namespaces (root, with `ip`), and why not. */
export function canMakeNamespaces() {
  if (process.getuid?.() !== 0) return 'not root';
  const r = spawnSync('ip', ['netns', 'list']);
  if (r.error || r.status !== 0) return `ip netns: ${r.error?.message ?? r.stderr}`;
  return null;
}

function ip(...args) {
  const r = spawnSync('ip', args);
  if (r.error || r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.error?.message ?? String(r.stderr).trim()}`);
}

/** End what still runs in namespace `n` (a process left by a run that died), then remove it. */
function del(n) {
  const pids = spawnSync('ip', ['netns', 'pids', n]).stdout?.toString().split(/\s+/).filter(Boolean) ?? [];
  for (const pid of pids) {
    try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone already */ }
  }
  spawnSync('ip', ['netns', 'del', n]);
}

/** Remove namespaces of layouts whose process is gone (killed before it could clean up). */
function sweep() {
  let names = [];
  try { names = readdirSync('/run/netns'); } catch { return; }
  for (const name of names) {
    const m = name.match(/^mj(\d+)-/);
    if (m && Number(m[1]) !== process.pid && !existsSync(`/proc/${m[1]}`)) del(name);
  }
}

/**
 * The plan of layout `tag` (see {@link makeLayout}): `ns(host)` (host: 'db', 'srv0', 'gw1',
 * 'phones', 'his', 'lb'), the addresses, and `exec(host, cmd, args)` → [command, args] that runs
 * `cmd` there.
 */
export function plan(tag, servers, gateways) {
  const ns = (h) => `${tag}-${h}`;
  return {
    tag,
    servers,
    gateways,
    ns,
    db: `${DB}.1`,
    his: `${HIS}.20`,
    phone: `${PUB}.100`,
    lb: `${PUB}.10`,
    serverApi: (i) => `${HIS}.${11 + i}`,
    serverDmz: (i) => `${DMZ}.${11 + i}`,
    gatewayDmz: (j) => `${DMZ}.${21 + j}`,
    gatewayPublic: (j) => `${PUB}.${21 + j}`,
    /** @returns {[string, string[]]} */
    exec: (h, cmd, args = []) => ['ip', ['netns', 'exec', ns(h), cmd, ...args]],
  };
}

/**
 * Make the layout: `servers` servers and `gateways` gateways (at most 9 each). Returns its
 * {@link plan} with `remove()`.
 */
export function makeLayout(servers, gateways) {
  sweep();
  const made = [];
  const net = { ...plan(`mj${process.pid}`, servers, gateways),
    remove: () => { for (const n of made.reverse()) del(n); made.length = 0; } };
  const { ns } = net;
  const add = (h) => {
    const n = ns(h);
    ip('netns', 'add', n);
    made.push(n);
    ip('-n', n, 'link', 'set', 'lo', 'up');
    // no host routes between its networks (a new namespace may inherit the machine's setting)
    const r = spawnSync('ip', ['netns', 'exec', n, 'sysctl', '-qw', 'net.ipv4.ip_forward=0']);
    if (r.status !== 0) throw new Error(`sysctl in ${n}: ${r.stderr}`);
  };
  let port = 0;
  const attach = (h, dev, br, addrs) => {
    const p = `p${++port}`;
    ip('link', 'add', dev, 'netns', ns(h), 'type', 'veth', 'peer', 'name', p, 'netns', ns('sw'));
    ip('-n', ns('sw'), 'link', 'set', p, 'master', br, 'up');
    for (const a of addrs) ip('-n', ns(h), 'addr', 'add', `${a}/24`, 'dev', dev);
    ip('-n', ns(h), 'link', 'set', dev, 'up');
  };
  try {
    add('sw');
    for (const br of ['br-pub', 'br-dmz', 'br-his', 'br-db']) {
      ip('-n', ns('sw'), 'link', 'add', br, 'type', 'bridge');
      ip('-n', ns('sw'), 'link', 'set', br, 'up');
    }
    add('db');
    attach('db', 'eth0', 'br-db', [net.db]);
    for (let i = 0; i < servers; i++) {
      add(`srv${i}`);
      attach(`srv${i}`, 'eth0', 'br-db', [`${DB}.${11 + i}`]);
      attach(`srv${i}`, 'eth1', 'br-his', [net.serverApi(i)]);
      attach(`srv${i}`, 'eth2', 'br-dmz', [net.serverDmz(i)]);
    }
    for (let j = 0; j < gateways; j++) {
      add(`gw${j}`);
      attach(`gw${j}`, 'eth0', 'br-dmz', [net.gatewayDmz(j)]);
      attach(`gw${j}`, 'eth1', 'br-pub', [net.gatewayPublic(j)]);
    }
    add('lb');
    attach('lb', 'eth0', 'br-pub', [net.lb]);
    add('phones');
    attach('phones', 'eth0', 'br-pub', [net.phone]);
    add('his');
    attach('his', 'eth0', 'br-his', [net.his]);
  } catch (e) {
    net.remove();
    throw e;
  }
  return net;
}
