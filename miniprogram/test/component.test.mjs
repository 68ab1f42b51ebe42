// node:test — <sign-confirm> (the mini program's signing view: what is signed, the PIN or fingerprint) rendered
// by miniprogram-simulate (WeChat's own component simulator, npm) in jsdom, and every WXML, WXSS
// and JSON file of the mini program, the plugin and its demo host compiled or parsed by WeChat's
// own compilers (wcc, wcsc from miniprogram-compiler): an error in any of them fails here.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { tmpdir } from 'node:os';
import { MP, simulator } from '../testkit/wx.mjs';

let simulate, compiler;

before(() => {
  ({ simulate, compiler } = simulator());
});

const SUMMARY = { title: '处方 RX-0001', kind: 'data', doc_no: 'RX-0001', signer_index: 0, signers: 2, content_sm3: 'ab'.repeat(32) };

/** Render <sign-confirm> with these properties; the events it emits are collected. */
function render(props) {
  const id = simulate.load(join(MP, 'components/sign-confirm/index'));
  const c = simulate.render(id, props);
  c.attach(document.createElement('parent-wrapper'));
  const events = [];
  for (const name of ['confirm', 'invalid', 'cancel']) c.addEventListener(name, (e) => events.push([name, e.detail]));
  return { c, events };
}

const settle = () => new Promise((ok) => setTimeout(ok, 20));

test('<sign-confirm> shows what is signed and emits the PIN only when the document matches', async () => {
  const { c, events } = render({ summary: SUMMARY, text: '阿莫西林 0.5g tid', matches: true });
  const html = c.dom.innerHTML;
  assert.match(html, /处方 RX-0001/);
  assert.match(html, /1 \/ 2/, 'the signer order');
  assert.match(html, /阿莫西林/);
  assert.match(html, /与将要签署的内容一致/);
  assert.doesNotMatch(html, /用指纹确认/, 'no fingerprint button unless offered');
  c.querySelector('#confirm').dispatchEvent('tap');
  await settle();
  assert.deepEqual(events.map((e) => e[0]), ['invalid'], 'no PIN: nothing to sign with');
  c.querySelector('#pin').dispatchEvent('input', { detail: { value: '2580x36' } });
  await settle();
  assert.equal(c.data.pin, '258036', 'digits only');
  c.querySelector('#confirm').dispatchEvent('tap');
  await settle();
  assert.deepEqual(events.at(-1), ['confirm', { pin: '258036' }]);
  assert.equal(c.data.pin, '', 'the PIN does not stay in the component');
});

test('<sign-confirm> never confirms a document whose text does not match what would be signed', async () => {
  const { c, events } = render({ summary: SUMMARY, text: '被篡改的内容', matches: false, fingerprint: true });
  assert.match(c.dom.innerHTML, /不一致，请勿签署/);
  c.querySelector('#pin').dispatchEvent('input', { detail: { value: '258036' } });
  await settle();
  c.querySelector('#confirm').dispatchEvent('tap');
  c.querySelector('#fingerprint').dispatchEvent('tap');
  // and the methods themselves, whatever the view does with `disabled`
  c.instance.confirm();
  c.instance.useFingerprint();
  await settle();
  assert.deepEqual(events, []);
  c.querySelector('#cancel').dispatchEvent('tap');
  await settle();
  assert.deepEqual(events, [['cancel', {}]]);
});

test('<sign-confirm> offers the fingerprint when asked, and shows PDF pages', async () => {
  const { c, events } = render({ summary: { ...SUMMARY, pages: 2 }, pages: ['第一页正文', '第二页正文'], fingerprint: true, action: '确认登录 / Log in' });
  assert.match(c.dom.innerHTML, /第 2 页/);
  assert.match(c.dom.innerHTML, /确认登录/);
  c.querySelector('#fingerprint').dispatchEvent('tap');
  await settle();
  assert.deepEqual(events, [['confirm', { fingerprint: true }]]);
});

/** Every file under `dir` ending in `ext`, but the copies scripts/build-miniprogram makes. */
function files(dir, ext, out = []) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (['lib', 'node_modules', 'test', 'testkit'].includes(name)) continue;
    if (statSync(p).isDirectory()) files(p, ext, out);
    else if (name.endsWith(ext)) out.push(p);
  }
  return out;
}

const ROOTS = [MP, join(MP, 'plugin-project/plugin'), join(MP, 'plugin-project/demo')];

test('WeChat\'s compilers take every WXML and WXSS file; every JSON parses; every page and component is whole', () => {
  for (const root of ROOTS) {
    const rel = (p) => relative(root, p).replace(/\.wxml$|\.wxss$/, '');
    const own = (p) => root !== MP || !relative(MP, p).startsWith('plugin-project');
    const wxml = files(root, '.wxml').filter(own).map(rel);
    assert.ok(wxml.length > 0, root);
    compiler.wxmlToJs(root, { wxmlList: wxml.map((f) => `${f}.wxml`), wxsList: [] });
    compiler.wxssToJs(root, { wxssList: files(root, '.wxss').filter(own).map((p) => `${rel(p)}.wxss`) });
    for (const f of files(root, '.json').filter(own)) JSON.parse(readFileSync(f, 'utf8'));
  }
  const app = JSON.parse(readFileSync(join(MP, 'app.json'), 'utf8'));
  for (const page of app.pages) {
    for (const ext of ['js', 'json', 'wxml', 'wxss']) assert.ok(existsSync(join(MP, `${page}.${ext}`)), `${page}.${ext}`);
    const json = JSON.parse(readFileSync(join(MP, `${page}.json`), 'utf8'));
    for (const c of Object.values(json.usingComponents || {})) assert.ok(existsSync(join(MP, `${c}.json`)), `${page} uses ${c}`);
  }
  const plugin = JSON.parse(readFileSync(join(MP, 'plugin-project/plugin/plugin.json'), 'utf8'));
  assert.ok(existsSync(join(MP, 'plugin-project/plugin', plugin.main)));
  for (const c of Object.values(plugin.publicComponents)) assert.ok(existsSync(join(MP, 'plugin-project/plugin', `${c}.wxml`)), c);
});

test('the check fails on a broken WXML file (an unclosed tag) and on a WXSS syntax error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'medsign-wxml-'));
  writeFileSync(join(dir, 'index.wxml'), '<view>{{title}}</view><button bindtap="go">签名\n');
  assert.throws(() => compiler.wxmlToJs(dir, { wxmlList: ['index.wxml'], wxsList: [] }), /end tag missing/);
  writeFileSync(join(dir, 'index.wxss'), '.a { color: red; \n');
  assert.throws(() => compiler.wxssToJs(dir, { wxssList: ['index.wxss'] }));
});
