// node:test — the signing plugin (plugin-project/plugin): it holds no key (WeChat gives plugins no
// randomness, login, face verification or SOTER), reads a scanned code and hands the signing to the
// medsign mini program; <sign-handoff> rendered by miniprogram-simulate in jsdom. (A file of its
// own: miniprogram-simulate keeps state between components of one process.)
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { MP, simulator } from '../testkit/wx.mjs';

let simulate;

before(() => {
  ({ simulate } = simulator());
});

const settle = () => new Promise((ok) => setTimeout(ok, 20));

test('the plugin reads a scanned code and hands it to the medsign mini program; anything else is refused', async () => {
  const plugin = await import(join(MP, 'plugin-project/plugin/index.js'));
  assert.throws(() => plugin.target('https://sign.example/m/#/sign?t=abc'), /configure/);
  assert.throws(() => plugin.configure({ appId: 'not-an-appid' }), /AppID/);
  plugin.configure({ appId: 'wx0123456789abcdef' });
  assert.deepEqual(plugin.target('https://sign.example/m/#/sign?t=tk_9Z-1'),
    { kind: 'sign', ticket: 'tk_9Z-1', appId: 'wx0123456789abcdef', path: 'pages/sign/index?t=tk_9Z-1' });
  assert.equal(plugin.target('https://sign.example/m/#/login?t=lt_1').path, 'pages/login/index?t=lt_1');
  for (const bad of ['https://evil.invalid/pay', 'https://sign.example/m/#/sign?t=a b', 'https://sign.example/m/#/sign?t=x/../y', 'https://sign.example/m/#/activate?no=1&code=2', '']) {
    assert.throws(() => plugin.target(bad), /不是医签二维码/, bad);
  }
  assert.throws(() => plugin.target(`https://sign.example/m/#/sign?t=${'a'.repeat(201)}`), /不是医签二维码/);
  // what medsign reports when it comes back; from anyone else, nothing
  const back = (appId, ticket, state) => ({ appId, extraData: { ticket, state } });
  assert.deepEqual(plugin.outcome(back('wx0123456789abcdef', 'tk_9Z-1', 'signed'), 'tk_9Z-1'), { ticket: 'tk_9Z-1', state: 'signed' });
  assert.equal(plugin.outcome(back('wxfedcba9876543210', 'tk_9Z-1', 'signed'), 'tk_9Z-1'), null, 'not medsign');
  assert.equal(plugin.outcome(back('wx0123456789abcdef', 'tk_OTHER', 'signed'), 'tk_9Z-1'), null, 'not the ticket handed over');
  assert.equal(plugin.outcome(back('wx0123456789abcdef', 'tk_9Z-1', 'hacked'), 'tk_9Z-1'), null);
  assert.equal(plugin.outcome(undefined, 'tk_9Z-1'), null);

  const id = simulate.load(join(MP, 'plugin-project/plugin/components/sign-handoff/index'), 'sign-handoff');
  const c = simulate.render(id, { link: 'https://sign.example/m/#/sign?t=tk_9Z-1', appId: 'wx0123456789abcdef' });
  c.attach(document.createElement('parent-wrapper'));
  const opened = [];
  c.addEventListener('open', (e) => opened.push(e.detail));
  assert.match(c.dom.innerHTML, /在医签中确认/);
  c.querySelector('#open').dispatchEvent('tap');
  await settle();
  assert.deepEqual(opened, [{ kind: 'sign', ticket: 'tk_9Z-1', appId: 'wx0123456789abcdef', path: 'pages/sign/index?t=tk_9Z-1' }]);
  const bad = simulate.render(id, { link: 'https://evil.invalid/pay', appId: 'wx0123456789abcdef' });
  bad.attach(document.createElement('parent-wrapper'));
  assert.match(bad.dom.innerHTML, /不是医签二维码/);
  assert.equal(bad.querySelector('#open'), undefined);
  bad.instance.open();
  await settle();
  assert.equal(opened.length, 1, 'nothing emitted for a foreign code');
});
