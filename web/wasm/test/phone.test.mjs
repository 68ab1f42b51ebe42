// node:test of the phone's half: the WebAssembly module through medsign-phone.js against the real
// server half of the protocol (crates/wasm/examples/server_half_stdio.rs, JSON lines — a test
// driver until the mobile API carries the protocol over HTTP).
// Run: node --test web/wasm/test/   (scripts/test builds the module and the driver first)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as phone from '../medsign-phone.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

function serverHalf() {
  const bin = process.env.MEDSIGN_SERVER_HALF || `${root}target/debug/examples/server_half_stdio`;
  const child = spawn(bin, [], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const waiting = [];
  lines.on('line', (l) => waiting.shift()(JSON.parse(l)));
  const ask = (msg) => new Promise((resolve) => { waiting.push(resolve); child.stdin.write(JSON.stringify(msg) + '\n'); });
  return { ask, close: () => child.kill() };
}

await phone.load(readFileSync(`${root}web/wasm/pkg/medsign_wasm_bg.wasm`));

test('enrol, sign, verify with the server half', async () => {
  const srv = serverHalf();
  try {
    const context = 'user=1001|key=phone-1';
    let e = null;
    // the server half answers each signing request of a batch for the digest it authorised
    const answering = (authorised) => async (what, requests) => {
      const out = [];
      for (const request of requests) {
        const a = await srv.ask({ op: 'sign', e: authorised(request), request });
        if (a.error) throw new Error(a.error);
        out.push(a.response);
      }
      return out;
    };
    const signPost = answering(() => e);
    // keygen, and the PIN verifier check the server does (pin, unlock)
    const ask = async (op) => {
      const a = await srv.ask(op);
      if (a.error) throw new Error(a.error);
      return a.response;
    };
    const pinOps = (what, body) => (what === 'keygen' ? ask({ op: 'keygen', context, request: body }) : ask({ op: what, ...body }));
    const withPin = (signing) => async (what, body) => (what === 'sign' ? signing(what, body) : pinOps(what, body));
    const post = withPin(signPost);
    const secret = phone.deviceSecret();
    assert.match(secret, /^[0-9a-f]{64}$/);
    const { publicKey, wrapped } = await phone.enrol({ post, context, pin: '135790', deviceSecret: secret });
    assert.match(publicKey, /^04[0-9a-f]{128}$/);
    assert.ok(!wrapped.includes('135790'));
    e = phone.sm3(new TextEncoder().encode('门诊处方 No.1'));
    const sig = await phone.sign({ post, wrapped, pin: '135790', deviceSecret: secret, e });
    assert.equal((await srv.ask({ op: 'verify', e, signature: sig })).valid, true);
    // a batch with one PIN entry
    const digests = ['a', 'b', 'c'].map((m) => phone.sm3(new TextEncoder().encode(m)));
    // (the server authorises each digest; here the driver takes it from the request)
    const each = withPin(answering((request) => request.e));
    const sigs = await phone.signMany({ post: each, wrapped, pin: '135790', deviceSecret: secret, digests });
    for (let i = 0; i < digests.length; i++) {
      assert.equal((await srv.ask({ op: 'verify', e: digests[i], signature: sigs[i] })).valid, true);
    }
    // wrong PIN, other device: the server's verifier check refuses them before any signing request
    await assert.rejects(phone.sign({ post, wrapped, pin: '000000', deviceSecret: secret, e }), /wrong PIN/);
    await assert.rejects(phone.sign({ post, wrapped, pin: '135790', deviceSecret: phone.deviceSecret(), e }), /wrong PIN/);
    // a server answer for another digest does not give a signature
    const wrongPost = withPin(answering(() => phone.sm3(new Uint8Array([1]))));
    await assert.rejects(phone.sign({ post: wrongPost, wrapped, pin: '135790', deviceSecret: secret, e }));
    // a server that answers fewer requests than were sent
    const short = async (what, body) => (what === 'sign' ? (await each(what, body)).slice(1) : each(what, body));
    await assert.rejects(phone.signMany({ post: short, wrapped, pin: '135790', deviceSecret: secret, digests }), /different number/);
  } finally {
    srv.close();
  }
});

test('bad input is an Error with a message, never a crash', async () => {
  await assert.rejects(phone.sign({ post: async () => ({}), wrapped: '{}', pin: '1', deviceSecret: phone.deviceSecret(), e: '00' }), Error);
  await assert.rejects(phone.enrol({ post: async () => ({ nonsense: true }), context: 'x', pin: '1', deviceSecret: phone.deviceSecret() }), /malformed/);
  assert.equal(phone.sm3(new TextEncoder().encode('abc')), '66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0');
});

test('PIN rules are checked on the phone', async () => {
  assert.equal(await phone.pinProblem('135790', '1001'), null);
  assert.match(await phone.pinProblem('123456', '1001'), /consecutive/);
  assert.match(await phone.pinProblem('888888', '1001'), /repeat one digit/);
  assert.match(await phone.pinProblem('12ab56', '1001'), /digits only/);
  assert.match(await phone.pinProblem('019876', 'E2019876'), /employee number/);
  assert.match(await phone.pinProblem('1357', '1001'), /6-12 digits/);
  assert.equal(await phone.pinProblem('1357', '1001', { minLength: 4, maxLength: 4 }), null);
});
