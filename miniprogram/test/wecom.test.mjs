// node:test — the mini program inside WeCom (企业微信, `environment === 'wxwork'`) against the real
// server behind a gateway, with a hospital that binds phones only with the employee's own WeCom
// login (`realname.wecom_required`). WeCom cannot be reached here: the client is the recording MOCK
// of `wx` (testkit/wx.mjs, its `wx.qy.login`), the server talks to a local FAKE of WeCom's server
// API (web/wasm/testkit/wechat.mjs: gettoken, miniprogram/jscode2session).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeWx, launch, loadPage } from '../testkit/wx.mjs';
import { startBehindGateway } from '../../web/wasm/testkit/server.mjs';
import { fakeWechat } from '../../web/wasm/testkit/wechat.mjs';

let srv, wecom, wx, call, his, app, code, bare;

before(async () => {
  wecom = await fakeWechat();
  srv = await startBehindGateway({
    MEDSIGN_REALNAME_WECOM_CORPID: 'ww_test', MEDSIGN_REALNAME_WECOM_SECRET: 'c0rp', MEDSIGN_REALNAME_WECOM_API_BASE: wecom.base,
    MEDSIGN_REALNAME_WECOM_REQUIRED: 'true',
  });
  call = srv.call;
  his = (await call('POST', '/admin/v1/apps', srv.admin, { name: 'HIS', scopes: ['users:write', 'users:read', 'sign'] })).body.token;
  assert.equal((await call('POST', '/api/v1/users', his, [{ employee_no: '2101', name: '赵护士' }, { employee_no: '2102', name: '钱医生' }])).status, 201);
  code = (await call('POST', '/api/v1/users/2101/activation-codes', his)).body.code;
  // the activation code alone (the H5 app, or a client that leaves the WeCom login out), sealed as
  // a phone seals it (before this process turns into WeChat: the test's own phone uses Node's crypto)
  bare = await srv.phoneCall('POST', '/mobile/v1/activate', null, { employee_no: '2101', code, device_name: 'x' });
  wx = makeWx({ server: srv.gateway, environment: 'wxwork', openid: '2101' });
  app = await launch(wx);
});

after(() => {
  srv?.stop();
  wecom?.close();
});

const modals = () => wx.calls.filter((c) => c[0] === 'showModal').map((c) => c[1].content);

test('inside WeCom: detected; a phone is bound only with the staff member\'s own WeCom login', async () => {
  assert.equal(app.globalData.wecom, true);
  assert.equal(bare.status, 403, JSON.stringify(bare.body));
  assert.equal(bare.body.code, 'wecom_required');
  const act = await loadPage('pages/activate/index.js');
  await act.onLoad({ no: '2101', code });
  // another employee's WeCom account (2102 holding 2101's code): refused, the code is not spent
  wx.openid = '2102';
  await act.bind();
  assert.match(modals().at(-1), /不是该工号本人/);
  assert.equal(wx.storage.get('medsign.token'), undefined);
  // a user of another corp with the right user ID: refused
  wx.wecomCode = 'wecomx-2101';
  await act.bind();
  assert.match(modals().at(-1), /不是该工号本人/);
  wx.wecomCode = undefined;
  // the right person: bound with the same, unspent code
  wx.openid = '2101';
  const before = wx.nav.length;
  await act.bind();
  assert.deepEqual(wx.nav.slice(before), [['redirectTo', '/pages/enrol/index']], modals().join('\n'));
  assert.ok(wx.storage.get('medsign.token'));
  assert.ok(wx.calls.some((c) => c[0] === 'qy.login'), 'WeCom\'s wx.qy.login, not wx.login');
  assert.ok(!wx.calls.some((c) => c[0] === 'login'));
  assert.deepEqual(wecom.wecomSeen, ['wecom-2102', 'wecomx-2101', 'wecom-2101'], 'the server asked WeCom each time');
  const devices = (await call('GET', '/api/v1/users/2101/devices', his)).body;
  assert.equal(devices.length, 1);
  assert.equal(devices[0].status, 'active');
});

test('an access token WeCom no longer takes is forgotten: one refusal for the hospital, then binding works', async () => {
  const { code: code2 } = (await call('POST', '/api/v1/users/2102/activation-codes', his)).body;
  wecom.rotateWecom();
  wx.openid = '2102';
  const act = await loadPage('pages/activate/index.js');
  await act.onLoad({ no: '2102', code: code2 });
  wx.modal = true;
  await act.bind(); // (the phone is bound to 2101: the rebind question is answered yes)
  assert.match(modals().at(-1), /企业微信.*40014/, 'the stale token is reported as WeCom\'s, not the user\'s');
  await act.bind();
  const devices = (await call('GET', '/api/v1/users/2102/devices', his)).body;
  assert.equal(devices.length, 1, modals().at(-1));
});
