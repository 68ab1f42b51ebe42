// Test kit (not a test file): what runs on a host of the namespaced layout (netns.mjs) besides
// medsign, started there with `ip netns exec` (a process cannot listen in another namespace):
//
//   node host.mjs relay LISTEN UPSTREAM     TCP relay at LISTEN (host:port) to UPSTREAM (host:port or
//                                           a Unix socket path): the database host's PostgreSQL port
//   node host.mjs ntp HOST                  the fake NTP server (server.mjs) on HOST
//   node host.mjs lb HOST BACKEND...        the load balancer in front of the gateways, on HOST; it
//                                           answers JSON lines on stdin: {"op":"stats"} (its
//                                           counts) and {"op":"readyz","backend":j} (backend j's
//                                           /readyz, as HAProxy's health check reads it)
//   node host.mjs phone URL                 a phone with the wasm half (medsign-phone.js) reaching
//                                           URL only, sealed as the H5 app seals; JSON lines on
//                                           stdin: {"op":"bind","employee_no","code","pin"} (activate,
//                                           real name, two-party key) and {"op":"sign","tickets"}
//
// Each prints one line when it is ready: `ready <address>`.
import { createInterface } from 'node:readline';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fakeNtpServer, loadBalancer, sealedCaller, enrol, coSign, root } from './server.mjs';
import * as phone from '../medsign-phone.js';

const [role, at, ...rest] = process.argv.slice(2);
// the test that started it holds its stdin: when that ends (the test is gone), so does this
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
/** Answer each JSON line on stdin with `ask(question)`'s result (or its error), tagged with its id. */
const answer = (ask) => createInterface({ input: process.stdin, terminal: false }).on('line', async (line) => {
  const q = JSON.parse(line);
  const a = await Promise.resolve().then(() => ask(q)).catch((e) => ({ error: String(e) }));
  console.log(JSON.stringify({ id: q.id, answer: a }));
});
const hostPort = (s) => ({ host: s.slice(0, s.lastIndexOf(':')), port: Number(s.slice(s.lastIndexOf(':') + 1)) });

if (role === 'relay') {
  const r = await loadBalancer([rest[0]], hostPort(at));
  console.log(`ready ${r.url}`);
} else if (role === 'ntp') {
  const n = await fakeNtpServer(at);
  console.log(`ready ${n.source}`);
} else if (role === 'lb') {
  const lb = await loadBalancer(rest, { host: at, port: 0 });
  console.log(`ready ${lb.url}`);
  answer((q) => (q.op === 'stats' ? lb.stats : fetch(`http://${rest[q.backend]}/readyz`).then((x) => x.json())));
} else if (role === 'phone') {
  await phone.load(readFileSync(join(root, 'web/wasm/pkg/medsign_wasm_bg.wasm')));
  const call = sealedCaller(at);
  const me = { secret: phone.deviceSecret() };
  const ops = {
    async bind({ employee_no, code, pin }) {
      const act = await call('POST', '/mobile/v1/activate', null, { employee_no, code, device_name: 'node phone (wasm)' });
      if (act.status !== 201) throw new Error(JSON.stringify(act.body));
      me.token = act.body.token;
      me.pin = pin;
      const started = await call('POST', '/mobile/v1/realname', me.token, {});
      const done = await call('POST', `/mobile/v1/realname/${started.body.check_id}`, me.token);
      if (done.status !== 200) throw new Error(JSON.stringify(done.body));
      me.key = await enrol(call, me.token, pin, me.secret);
      return { realname: done.body.realname_status, alg: me.key.certificate.alg, pinned: call.pinned };
    },
    async sign({ tickets }) {
      const r = await coSign(call, me.token, { wrapped: me.key.wrapped, pin: me.pin, deviceSecret: me.secret, targets: tickets.map((ticket) => ({ ticket })) });
      return r.results;
    },
    /**
     * Scan-sign `items` ({ ticket, flow_id }) one after another, `gapMs` apart, as the app does on
     * trouble: a call without an answer is made again (a new connection, perhaps another gateway);
     * after the first try the flow is signed by its id, not the used ticket; a refusal to open a
     * round after a try that lost its answer (the flow may be done) ends the item — the HIS checks.
     * Returns, per item, its outcome, the tries it took and when it ended (ms since the start).
     */
    async signEach({ items, gapMs = 0 }) {
      const t0 = Date.now();
      const out = [];
      for (const { ticket, flow_id } of items) {
        let state = 'unsigned';
        let tries = 0;
        const errors = [];
        while (state === 'unsigned' && tries < 20) {
          const target = tries === 0 ? { ticket } : { flow_id };
          tries += 1;
          try {
            const r = await coSign(call, me.token, { wrapped: me.key.wrapped, pin: me.pin, deviceSecret: me.secret, targets: [target] });
            state = r.results[0]?.state === 'completed' ? 'completed' : 'unsigned';
          } catch (e) {
            errors.push(e.status ? `${e.status} ${e.body?.code || e.message}` : String(e.cause?.code || e.message));
            if (tries > 1 && e.status === 409) state = 'maybe-done';
            // a PIN-rate refusal (429) asks for a second or more
            else await new Promise((ok) => setTimeout(ok, e.status === 429 ? 1500 : 200));
          }
        }
        out.push({ flow_id, state, tries, errors, at: Date.now() - t0 });
        await new Promise((ok) => setTimeout(ok, gapMs));
      }
      return out;
    },
  };
  console.log(`ready ${at}`);
  answer((q) => ops[q.op](q));
} else {
  console.error(`host.mjs: unknown role ${role}`);
  process.exit(2);
}
