// node:test — the PC page SDK's TypeScript types (web/sdk/medsign.d.ts) name every function the
// script defines and nothing else, and the server serves them beside the script. (No TypeScript
// compiler is needed here: the script is run in a bare context and its `MedSign` compared with the
// interface's members.)
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import { startServer, root } from '../wasm/testkit/server.mjs';

let srv;
after(() => srv?.stop());

test('the SDK types declare exactly what medsign.js defines, and are served', async () => {
  const js = readFileSync(`${root}web/sdk/medsign.js`, 'utf8');
  const dts = readFileSync(`${root}web/sdk/medsign.d.ts`, 'utf8');
  const window = {};
  vm.runInNewContext(js, { window });
  const defined = Object.keys(window.MedSign).sort();
  const iface = /interface MedSignSdk \{([\s\S]*?)\n\}/.exec(dts)[1];
  const declared = [...iface.matchAll(/^\s+(\w+)\(/gm)].map((m) => m[1]).sort();
  assert.deepEqual(declared, defined);
  assert.match(dts, /declare var MedSign: MedSignSdk;/);
  for (const fn of defined) assert.equal(typeof window.MedSign[fn], 'function');
  srv = await startServer();
  const r = await fetch(`${srv.base}/sdk/medsign.d.ts`);
  assert.equal(r.status, 200);
  assert.equal(await r.text(), dts);
});
