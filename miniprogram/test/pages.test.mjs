// node:test — the WeChat mini program's pages and its phone half against the real `medsign serve`
// behind a DMZ gateway (issue #19). WeChat cannot run here: the pages run under Node with a
// recording MOCK of `wx` (test/wx.mjs) and the server talks to a local FAKE of WeChat's server API
// (web/wasm/testkit/wechat.mjs: login, face verification, SOTER). What is real: the pages' code,
// core.js and the WebAssembly module as the mini program loads them (WXWebAssembly by path, the
// randomness pool, the UTF-8 codecs — the browser's are taken away), every sealed call through
// the gateway, the server, its CA and its signatures.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeWx, launch, loadPage, ev } from '../testkit/wx.mjs';
import { startBehindGateway } from '../../web/wasm/testkit/server.mjs';
import { fakeWechat, fakeTee } from '../../web/wasm/testkit/wechat.mjs';

const PIN = '258036';
let srv, wechat, wx, call, his, app;

const last = (list, api) => list.filter((c) => c[0] === api).at(-1);
const lastNav = () => wx.nav.at(-1);
const toasts = () => wx.calls.filter((c) => c[0] === 'showToast').map((c) => c[1].title);
const modals = () => wx.calls.filter((c) => c[0] === 'showModal').map((c) => c[1].content);

/** A flow the HIS starts for 2001 to sign by scanning; its id and deep link. */
async function scanFlow(title) {
  const r = await call('POST', '/api/v1/sign-flows', his, { kind: 'data', title, content: `${title}：阿莫西林 0.5g tid`, signers: [{ employee_no: '2001', mode: 'scan' }] });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return { id: r.body.id, link: r.body.ticket.deep_link };
}

before(async () => {
  wechat = await fakeWechat();
  srv = await startBehindGateway({
    MEDSIGN_REALNAME_PROVIDER: 'wechat', MEDSIGN_REALNAME_WECHAT_APPID: 'wx_test', MEDSIGN_REALNAME_WECHAT_SECRET: 's3cret', MEDSIGN_REALNAME_WECHAT_API_BASE: wechat.base,
  });
  call = srv.call;
  const a = await call('POST', '/admin/v1/apps', srv.admin, { name: 'HIS', scopes: ['users:write', 'users:read', 'sign', 'verify'] });
  his = a.body.token;
  assert.equal((await call('POST', '/api/v1/users', his, [{ employee_no: '2001', name: '王医生', title: '主治医师', id_card: '11010519491231002X' }])).status, 201);
  wx = makeWx({ server: srv.gateway, faced: wechat.faced, openid: 'oMP2001' });
  app = await launch(wx);
});

after(() => {
  srv?.stop();
  wechat?.close();
});

test('the app starts as WeChat runs it: WXWebAssembly by path, randomness from wx.getRandomValues, no browser crypto', async () => {
  const home = await loadPage('pages/home/index.js');
  home.onLoad({});
  await home.onShow();
  assert.deepEqual(lastNav(), ['redirectTo', '/pages/activate/index'], 'not bound: to the activation page');
  assert.ok(wx.calls.some((c) => c[0] === 'WXWebAssembly.instantiate' && c[1] === '/lib/pkg/medsign_wasm_bg.wasm'));
  assert.ok(wx.calls.some((c) => c[0] === 'getRandomValues'), 'the pool is filled from wx.getRandomValues');
  assert.equal(typeof globalThis.crypto.getRandomValues, 'function', 'the pool stands in for crypto.getRandomValues');
  assert.equal(app.globalData.wecom, false);
});

test('bind with the activation link, the PIN, WeChat face verification, the split key and handwriting', async () => {
  const code = (await call('POST', '/api/v1/users/2001/activation-codes', his)).body;
  // the link's QR code scanned with WeChat's scanner opens the mini program with the link in `q`
  const home = await loadPage('pages/home/index.js');
  home.onLoad({ q: encodeURIComponent(code.link) });
  await home.onShow();
  const [how, url] = lastNav();
  assert.equal(how, 'redirectTo');
  assert.match(url, /^\/pages\/activate\/index\?/);
  const act = await loadPage('pages/activate/index.js');
  await act.onLoad(Object.fromEntries(new URLSearchParams(url.split('?')[1])));
  // (not bound yet: no question asked)
  assert.equal(act.data.no, '2001');
  assert.equal(wx.storage.get('medsign.channel').data, code.channel_fingerprint, 'the link\'s fingerprint is pinned before the first call');
  assert.equal(act.data.differs, false);
  await act.bind();
  assert.deepEqual(lastNav(), ['redirectTo', '/pages/enrol/index'], modals().join('\n'));
  // everything the phone keeps is in WeChat's encrypted storage
  for (const [k, v] of wx.storage) assert.equal(v.encrypt, true, `${k} stored without encryption`);
  assert.ok(wx.storage.get('medsign.token') && wx.storage.get('medsign.deviceSecret'));

  const enrol = await loadPage('pages/enrol/index.js');
  enrol.onInput(ev('123456', { name: 'pin1' }));
  enrol.onInput(ev('123456', { name: 'pin2' }));
  await enrol.create();
  assert.match(toasts().at(-1), /PIN/, 'a weak PIN is refused on the phone');
  enrol.onInput(ev(PIN, { name: 'pin1' }));
  enrol.onInput(ev(PIN, { name: 'pin2' }));
  // a face WeChat does not match to the person on record: no certificate, nothing stored
  wx.faceFails = true;
  await enrol.create();
  wx.faceFails = false;
  assert.match(modals().at(-1), /face not matched|实名/, 'the failed face check is reported');
  assert.notDeepEqual(lastNav(), ['redirectTo', '/pages/handwriting/index']);
  assert.equal(wx.storage.get('medsign.wrapped'), undefined);
  await enrol.create();
  assert.deepEqual(lastNav(), ['redirectTo', '/pages/handwriting/index'], modals().join('\n'));
  // the hospital requires the real-name check: wx.login for the server, then WeChat's face check
  const face = last(wx.calls, 'requestFacialVerify');
  assert.ok(face && face[1].verifyId.startsWith('vid_'), 'wx.requestFacialVerify ran with the server\'s verify_id');
  const rn = (await call('GET', '/api/v1/users/2001/realname', his)).body;
  assert.equal(rn.realname_status, 'verified', JSON.stringify(rn));
  const [device] = (await call('GET', '/api/v1/users/2001/devices', his)).body;
  assert.equal(device.key, 'active', JSON.stringify(device));
  assert.equal(device.cert_serial, wx.storage.get('medsign.certSerial').data, 'the certificate issued after the check');
  // neither the PIN nor anything but the wrapped share is kept
  for (const [k, v] of wx.storage) assert.ok(!String(v.data).includes(PIN), `${k} holds the PIN`);

  const pad = await loadPage('pages/handwriting/index.js');
  pad.onReady();
  await pad.save();
  assert.match(toasts().at(-1), /请先手写/, 'an empty pad is not saved');
  pad.start({ touches: [{ x: 10, y: 60 }] });
  for (let x = 12; x < 290; x += 6) pad.move({ touches: [{ x, y: 60 + 20 * Math.sin(x / 15) }] });
  pad.end();
  pad.onInput(ev(PIN, { name: 'pin' }));
  await pad.save();
  assert.deepEqual(lastNav(), ['reLaunch', '/pages/home/index'], modals().join('\n'));
  const hw = await fetch(`${srv.base}/api/v1/users/2001/handwriting.png`, { headers: { Authorization: `Bearer ${his}` } });
  assert.equal(hw.status, 200);
});

test('scan with wx.scanCode, see the document, sign with the PIN; a foreign QR code is refused', async () => {
  const home = await loadPage('pages/home/index.js');
  wx.scans.push('https://evil.invalid/#/pay?t=1');
  await home.scan();
  assert.match(toasts().at(-1), /不是医签二维码/);
  const flow = await scanFlow('处方 RX-MP-1');
  wx.scans.push(flow.link);
  await home.scan();
  assert.equal(last(wx.calls, 'scanCode')[1].onlyFromCamera, true, 'the camera only: an album picture could be anyone\'s');
  const [how, url] = lastNav();
  assert.equal(how, 'navigateTo');
  assert.match(url, /^\/pages\/sign\/index\?t=/);
  const sign = await loadPage('pages/sign/index.js');
  await sign.onLoad({ t: url.split('t=')[1] });
  assert.equal(sign.data.state, 'confirm', sign.data.error);
  assert.equal(sign.data.summary.title, '处方 RX-MP-1');
  assert.match(sign.data.text, /阿莫西林/, 'the document itself, through the sealed channel');
  assert.equal(sign.data.matches, true, 'its SM3 checked on the phone');
  await sign.onConfirm({ detail: { pin: PIN } });
  assert.equal(sign.data.state, 'signed', modals().join('\n'));
  assert.equal((await call('GET', `/api/v1/sign-flows/${flow.id}`, his)).body.state, 'completed');
  // the same ticket again: used
  const again = await loadPage('pages/sign/index.js');
  await again.onLoad({ t: url.split('t=')[1] });
  assert.equal(again.data.state, 'error');
  // closing the loading mask never closes the toast a step showed
  assert.ok(wx.calls.filter((c) => c[0] === 'hideLoading').every((c) => c[1]?.noConflict === true));
});

test('a document that does not arrive (a gateway drops the call) cannot be signed', async () => {
  const flow = await scanFlow('处方 RX-MP-DROP');
  const sign = await loadPage('pages/sign/index.js');
  wx.dropSealed = 2; // the rounds arrive, the document view is dropped with a clear-text 502
  await sign.onLoad({ t: flow.link.split('t=')[1] });
  assert.equal(sign.data.state, 'error');
  assert.match(sign.data.error, /不能签署/);
  await sign.onConfirm({ detail: { pin: PIN } });
  assert.notEqual((await call('GET', `/api/v1/sign-flows/${flow.id}`, his)).body.state, 'completed', 'nothing signed unseen');
});

test('handed over by another mini program (the plugin\'s host): signed, then back there with the outcome', async () => {
  const flow = await scanFlow('处方 RX-MP-HANDOFF');
  const ticket = flow.link.split('t=')[1];
  app.onShow({ scene: 1037, path: 'pages/sign/index', query: { t: ticket }, referrerInfo: { appId: 'wx0123456789abcdef', extraData: { from: 'plugin' } } });
  const sign = await loadPage('pages/sign/index.js');
  await sign.onLoad({ t: ticket });
  await sign.onConfirm({ detail: { pin: PIN } });
  assert.equal(sign.data.state, 'signed', modals().join('\n'));
  assert.deepEqual(lastNav(), ['navigateBackMiniProgram', { ticket, state: 'signed' }]);
  assert.equal(app.globalData.caller, null, 'only once');
  // a login code handed over by another app (anyone's PC) is refused, and nothing is scanned
  const login = await call('POST', '/api/v1/login-tickets', his, { system: 'EMR' });
  assert.equal(login.status, 201, JSON.stringify(login.body));
  const lt = login.body.deep_link ? login.body.deep_link.split('t=')[1] : login.body.ticket_id;
  app.onShow({ scene: 1037, path: 'pages/login/index', query: { t: lt }, referrerInfo: { appId: 'wx0123456789abcdef' } });
  const page = await loadPage('pages/login/index.js');
  await page.onLoad({ t: lt });
  assert.equal(page.data.state, 'error');
  assert.match(page.data.error, /只能用医签自己的/);
  assert.deepEqual(lastNav(), ['navigateBackMiniProgram', { ticket: lt, state: 'refused' }]);
  const st = await call('GET', `/api/v1/login-tickets/${login.body.ticket_id}`, his);
  assert.equal(st.body.state, 'waiting', 'never scanned' + JSON.stringify(st.body));
  // opened from anywhere else, the caller is not remembered
  app.onShow({ scene: 1001, path: 'pages/home/index', query: {} });
  assert.equal(app.globalData.caller, null);
});

test('the randomness pool lasts a 200-document batch; a 403 in the clear never stands for "summary only"', async () => {
  const { ready } = await import('../utils/phone.js');
  await ready();
  // about what a batch of 200 takes (32 bytes per signature nonce, sealed calls), and more
  for (let i = 0; i < 400; i++) globalThis.crypto.getRandomValues(new Uint8Array(32));
  assert.throws(() => { globalThis.crypto = { getRandomValues: (b) => b.fill(7) }; }, TypeError, 'the source cannot be swapped');
  assert.notEqual(globalThis.crypto.getRandomValues(new Uint8Array(8)).join(), '7,7,7,7,7,7,7,7');
  const flow = await scanFlow('处方 RX-MP-403');
  const sign = await loadPage('pages/sign/index.js');
  wx.dropSealed = 2;
  wx.dropStatus = 403;
  await sign.onLoad({ t: flow.link.split('t=')[1] });
  wx.dropStatus = undefined;
  assert.equal(sign.data.state, 'error', 'a clear-text 403 from the way is not the hospital\'s setting');
});

test('a storage write that fails is reported, and an old WeChat that cannot encrypt storage is refused', async () => {
  const { ready } = await import('../utils/phone.js');
  wx.storageFull = true;
  const pin = wx.storage.get('medsign.certSerial');
  (await import('../utils/phone.js')).store.set('certSerial', 'X');
  await new Promise((ok) => setTimeout(ok, 10));
  wx.storageFull = false;
  await assert.rejects(ready(), /本机存储失败/);
  await ready();
  (await import('../utils/phone.js')).store.set('certSerial', pin.data);
  const { wxStore } = await import('../utils/wx-platform.js');
  wx.oldWechat = true;
  await assert.rejects(wxStore(wx, 'medsign.other.').ready(), /微信版本过低/);
  wx.oldWechat = false;
});

test('a wrong PIN signs nothing; the pending list signs a batch with one PIN', async () => {
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await scanFlow(`检验报告 MP${i}`)).id);
  const pending = await loadPage('pages/pending/index.js');
  await pending.onShow();
  const listed = () => pending.data.items.map((s) => s.flow_id);
  assert.ok(ids.every((id) => listed().includes(id)), 'every waiting flow is listed');
  assert.deepEqual(pending.data.selected, listed(), 'all ticked');
  pending.onInput(ev('999999', { name: 'pin' }));
  await pending.signSelected();
  assert.match(modals().at(-1), /PIN/, 'the wrong PIN is reported');
  assert.equal((await call('GET', `/api/v1/sign-flows/${ids[0]}`, his)).body.state !== 'completed', true);
  pending.select(ev(ids.slice(0, 4)));
  pending.onInput(ev(PIN, { name: 'pin' }));
  await pending.signSelected();
  assert.match(toasts().at(-1), /已签署 4 份/);
  const states = await Promise.all(ids.map(async (id) => (await call('GET', `/api/v1/sign-flows/${id}`, his)).body.state));
  assert.deepEqual(states.slice(0, 4), ['completed', 'completed', 'completed', 'completed']);
  assert.notEqual(states[4], 'completed', 'the one left unticked is not signed');
  assert.ok(listed().includes(ids[4]) && !ids.slice(0, 4).some((id) => listed().includes(id)), 'the list is read again');
});

test('fingerprint approval with WeChat SOTER: on with the PIN, then a signing with the finger alone', async () => {
  wx.tee = fakeTee(wechat, 'oMP2001', 'cpu-mp');
  const settings = await loadPage('pages/settings/index.js');
  await settings.onShow();
  assert.equal(settings.data.supported, true);
  assert.equal(settings.data.soter.available, true, JSON.stringify(settings.data.soter));
  settings.onInput(ev(PIN, { name: 'fpPin' }));
  await settings.fingerprintOn();
  assert.ok(wx.storage.get('medsign.fingerprint'), modals().join('\n'));
  assert.equal(settings.data.soter.enabled, true);
  const flow = await scanFlow('处方 RX-MP-FP');
  const sign = await loadPage('pages/sign/index.js');
  await sign.onLoad({ t: flow.link.split('t=')[1] });
  assert.equal(sign.data.fingerprint, true, 'the fingerprint is offered');
  const soters = wx.calls.filter((c) => c[0] === 'startSoterAuthentication').length;
  await sign.onConfirm({ detail: { fingerprint: true } });
  assert.equal(sign.data.state, 'signed', modals().join('\n'));
  assert.equal(wx.calls.filter((c) => c[0] === 'startSoterAuthentication').length, soters + 1);
  assert.equal((await call('GET', `/api/v1/sign-flows/${flow.id}`, his)).body.state, 'completed');
  // a finger the server never enrolled (another phone's TEE) opens nothing
  wx.tee = fakeTee(wechat, 'oSTRANGER', 'cpu-mp');
  const other = await scanFlow('处方 RX-MP-FP2');
  const s2 = await loadPage('pages/sign/index.js');
  await s2.onLoad({ t: other.link.split('t=')[1] });
  assert.equal(s2.data.state, 'confirm');
  const before = wx.calls.filter((c) => c[0] === 'startSoterAuthentication').length;
  await s2.onConfirm({ detail: { fingerprint: true } });
  assert.equal(wx.calls.filter((c) => c[0] === 'startSoterAuthentication').length, before + 1, 'the stranger\'s finger was asked');
  assert.notEqual(s2.data.state, 'signed');
  assert.notEqual((await call('GET', `/api/v1/sign-flows/${other.id}`, his)).body.state, 'completed');
  await settings.fingerprintOff();
  assert.equal(wx.storage.get('medsign.fingerprint'), undefined);
});

test('a session grant, then the records; unbinding revokes the session', async () => {
  const grants = await loadPage('pages/grants/index.js');
  await grants.onShow();
  assert.ok(grants.data.systems.some((s) => s.name === 'HIS'), JSON.stringify(grants.data.systems));
  grants.pickSystem(ev(String(grants.data.systems.findIndex((s) => s.name === 'HIS'))));
  grants.pickHours(ev('1'));
  grants.onInput(ev(PIN, { name: 'pin' }));
  await grants.grant();
  assert.equal(grants.data.grants.filter((g) => g.active).length, 1, modals().join('\n'));
  const auto = await call('POST', '/api/v1/sign-flows', his, { kind: 'data', title: '医嘱 MP', content: '医嘱 MP：NS 250ml', signers: [{ employee_no: '2001' }] });
  assert.equal(auto.status, 201, JSON.stringify(auto.body));
  assert.equal(auto.body.state, 'completed', 'signed under the grant, without the phone');
  await grants.cancel({ currentTarget: { dataset: { id: grants.data.grants[0].grant_id } } });
  assert.equal(grants.data.grants.filter((g) => g.active).length, 0);

  assert.equal((await call('POST', '/api/v1/sign-flows', his, { kind: 'data', title: '医嘱 MP2', content: '医嘱 MP2', signers: [{ employee_no: '2001' }] })).status, 400, 'cancelled: refused');
  const records = await loadPage('pages/records/index.js');
  await records.onShow();
  assert.ok(records.data.signatures.some((s) => s.title === '医嘱 MP' && s.custody === 'grant'), JSON.stringify(records.data.signatures.map((s) => [s.title, s.custody])));

  const token = wx.storage.get('medsign.token').data;
  // a bound phone given an activation link asks before it rebinds, and a no keeps everything
  const act = await loadPage('pages/activate/index.js');
  await act.onLoad({ no: '2001', code: 'AAAA-BBBB-CCCC' });
  wx.modal = false;
  await act.bind();
  wx.modal = true;
  assert.match(modals().at(-1), /重新绑定会作废/);
  assert.equal(wx.storage.get('medsign.token').data, token);
  const settings = await loadPage('pages/settings/index.js');
  wx.modal = false;
  await settings.unbind();
  assert.ok(wx.storage.get('medsign.token'), 'a cancelled dialog unbinds nothing');
  wx.modal = true;
  await settings.unbind();
  assert.deepEqual(lastNav(), ['reLaunch', '/pages/activate/index']);
  for (const k of ['token', 'wrapped', 'deviceSecret', 'certSerial', 'fingerprint']) assert.equal(wx.storage.get(`medsign.${k}`), undefined, k);
  // a copy of the old session token (a stolen phone's) is refused
  const stolen = await srv.phoneCall('GET', '/mobile/v1/pending', token);
  assert.equal(stolen.status, 401, JSON.stringify(stolen.body));
  // a link naming another key than the pinned one (the IT department's new link after the servers'
  // key was compromised) moves the pin only on the doctor's confirmed word
  const pinned = wx.storage.get('medsign.channel').data;
  const other = 'ab'.repeat(32);
  const relink = await loadPage('pages/activate/index.js');
  await relink.onLoad({ no: '2001', code: 'AAAA-BBBB-CCCC', k: other });
  assert.equal(relink.data.differs, true);
  assert.equal(wx.storage.get('medsign.channel').data, pinned, 'not moved by the link alone');
  wx.modal = false;
  wx.modalText = other.slice(0, 8);
  await relink.repin();
  wx.modal = true;
  assert.equal(wx.storage.get('medsign.channel').data, pinned, 'a no keeps the pin');
  wx.modalText = pinned.slice(0, 8);
  await relink.repin();
  assert.equal(wx.storage.get('medsign.channel').data, pinned, 'a fingerprint that does not match the link keeps the pin');
  wx.modalText = other.slice(0, 8).toUpperCase();
  await relink.repin();
  assert.equal(wx.storage.get('medsign.channel').data, other);
  assert.equal(relink.data.differs, false);
});
