// @ts-check
// medsign console — the pages (the module the page loads). Each is a function of the query
// string that calls `page(…)`.
import { h, en, api, toast, busy, page, loggedIn, me, start } from './console.js';
import { field, val, table, when, chart } from './ui.js';
import { flows, flow, webhooks, batches } from './flows.js';
import { template } from './editor.js';

const ALL = ['administrator', 'operator', 'auditor'];
const STAFF = ['administrator', 'operator'];
const ADMIN = ['administrator'];

/** The menu, by role (the server checks the same rights). */
export const NAV = [
  { href: '#/', zh: '概览', en: 'Dashboard', roles: ALL },
  { href: '#/users', zh: '人员', en: 'Users', roles: ALL },
  { href: '#/departments', zh: '科室', en: 'Departments', roles: ALL },
  { href: '#/certificates', zh: '证书', en: 'Certificates', roles: STAFF },
  { href: '#/seals', zh: '印章', en: 'Seals', roles: STAFF },
  { href: '#/templates', zh: '模板', en: 'Templates', roles: STAFF },
  { href: '#/flows', zh: '签署流程', en: 'Signing flows', roles: ALL },
  { href: '#/batches', zh: '批量签署', en: 'Batches', roles: ALL },
  { href: '#/logs', zh: '日志', en: 'Logs', roles: ALL },
  { href: '#/webhooks', zh: '推送记录', en: 'Webhooks', roles: ALL },
  { href: '#/apps', zh: '接入应用', en: 'Apps', roles: ADMIN },
  { href: '#/channels', zh: 'CA 通道', en: 'CA channels', roles: STAFF },
  { href: '#/time', zh: '时间', en: 'Time', roles: ALL },
  { href: '#/people', zh: '控制台账号', en: 'Console accounts', roles: ADMIN },
  { href: '#/settings', zh: '设置', en: 'Settings', roles: STAFF },
];

// ------------------------------------------------------------------ first administrator, login

/** #/setup: nobody can log in yet — the bootstrap token creates the first administrator. */
async function setup() {
  const go = h('button', { class: 'primary', type: 'submit', id: 'create' }, '创建管理员', en('Create the administrator'));
  const out = h('div', {});
  const form = h('form', { onsubmit: (/** @type {Event} */ ev) => {
    ev.preventDefault();
    busy(go, async () => {
      out.replaceChildren(enrolment(await api('POST', '/admin/v1/people', { username: val('username'), display_name: val('display_name'), role: 'administrator', password: val('password') }, val('token'))));
    });
  } },
  h('p', { class: 'muted' }, '还没有控制台账号。请输入 medsign serve 首次启动时打印的引导令牌，创建第一位管理员。', en('No console account yet: the bootstrap token printed at first start creates the first administrator.')),
  field('token', '引导令牌', 'Bootstrap token', { type: 'password', autocomplete: 'off', required: true }),
  field('username', '用户名', 'Username', { autocomplete: 'username', required: true, pattern: '[a-z0-9._\\-]{3,32}' }),
  field('display_name', '姓名', 'Name', { required: true }),
  field('password', '密码（至少 10 位）', 'Password (10+ characters)', { type: 'password', autocomplete: 'new-password', required: true, minlength: 10 }),
  go);
  page('首次设置', 'First run', h('div', { class: 'card login' }, form), out);
}

/** #/login: password and the authenticator's code. */
async function login() {
  const go = h('button', { class: 'primary', type: 'submit', id: 'login' }, '登录', en('Log in'));
  const form = h('form', { onsubmit: (/** @type {Event} */ ev) => {
    ev.preventDefault();
    busy(go, async () => loggedIn(await api('POST', '/console/v1/login', { username: val('username'), password: val('password'), code: val('code') })));
  } },
  field('username', '用户名', 'Username', { autocomplete: 'username', required: true }),
  field('password', '密码', 'Password', { type: 'password', autocomplete: 'current-password', required: true }),
  field('code', '动态码（身份验证器中的 6 位数字）', '6-digit code from the authenticator', { inputmode: 'numeric', autocomplete: 'one-time-code', required: true, pattern: '[0-9]{6}' }),
  go);
  // or: scan with the medsign phone app of the staff member linked to one's account
  const qrOut = h('div', { id: 'qrOut' });
  const qr = h('button', { class: 'secondary', type: 'button', id: 'qrLogin' }, '用手机扫码登录', en('Log in with the phone app'));
  qr.onclick = () => busy(qr, async () => {
    const t = await api('POST', '/console/v1/qr-login');
    qrOut.replaceChildren(h('img', { src: `data:image/png;base64,${t.qr_png_base64}`, alt: '登录二维码 / login QR code', width: 220, height: 220, id: 'qrImage' }),
      h('p', { class: 'muted' }, '用医签手机端（微信小程序或手机网页）扫码，在手机上确认。需管理员已在“控制台账号”中关联您的工号。', en('Scan with the medsign phone app and confirm there; an administrator links your staff number first.')),
      h('p', { class: 'secret', id: 'qrLink' }, t.deep_link), h('p', { id: 'qrState', role: 'status' }, '等待扫码… / waiting…'));
    const until = Date.now() + 125000;
    while (Date.now() < until && location.hash.startsWith('#/login')) {
      await new Promise((ok) => setTimeout(ok, 1000));
      const r = await api('POST', `/console/v1/qr-login/${encodeURIComponent(t.ticket_id)}`);
      const st = document.getElementById('qrState');
      if (r.state === 'confirmed') return loggedIn(r.me);
      if (st) st.textContent = { scanned: '已扫码，请在手机上确认 / scanned: confirm on the phone', refused: '已在手机上拒绝 / declined on the phone', expired: '二维码已过期 / the QR code expired' }[/** @type {string} */ (r.state)] || '等待扫码… / waiting…';
      if (r.state === 'refused' || r.state === 'expired') return;
    }
  });
  page('登录', 'Log in', h('div', { class: 'card login' }, form, h('hr', {}), qr, qrOut));
  document.getElementById('username')?.focus();
}

// ------------------------------------------------------------------ dashboard

/** #/: the state at a glance — today, the last two weeks, and what is waiting. */
async function dashboard() {
  const [users, ready, expiring, channels, stats] = await Promise.all([
    api('GET', '/api/v1/users?page_size=1').catch(() => null),
    api('GET', '/readyz').catch((e) => e.body),
    api('GET', '/api/v1/certificates/expiring?days=30').catch(() => null),
    api('GET', '/admin/v1/ca-channels').catch(() => null),
    api('GET', '/admin/v1/stats?days=14').catch(() => null),
  ]);
  const stat = (/** @type {string} */ id, /** @type {string} */ zh, /** @type {string} */ english, /** @type {any} */ value, /** @type {string} */ cls = '') =>
    h('div', { class: `card stat ${cls}`, id }, h('b', {}, value ?? '—'), zh, en(english));
  const clock = ready?.clock?.state;
  const down = (channels?.channels || channels || []).filter?.((/** @type {any} */ c) => c.enabled && c.health === 'down') || [];
  const today = stats?.days?.[stats.days.length - 1];
  page('概览', 'Dashboard',
    h('div', { class: 'cards' },
      stat('statSignatures', '今日签名', 'signatures today', today?.signatures),
      stat('statFlows', '今日流程（完成）', 'flows today (completed)', today ? `${today.flows}（${today.completed}）` : null),
      stat('statPending', '待签流程', 'flows waiting for a signer', stats?.pending_flows),
      stat('statUsers', '人员', 'users', users?.total),
      stat('statClock', '时钟', 'clock', clock, clock === 'INSYNC' ? 'good' : 'bad'),
      stat('statExpiring', '30 天内到期证书', 'certificates expiring in 30 days', expiring?.items?.length, expiring?.items?.length ? 'bad' : ''),
      stat('statChannels', '故障 CA 通道', 'CA channels down', channels ? down.length : null, down.length ? 'bad' : 'good'),
      stat('statQueue', '队列：推送待发 / 批量', 'queues: webhooks / batch items', stats ? `${stats.webhooks_pending} / ${stats.batch_queue}` : null),
      stat('statHooks', '推送失败', 'failed webhooks', stats?.webhooks_failed, stats?.webhooks_failed ? 'bad' : '')),
    stats ? chart('signaturesChart', '近 14 天每日签名数 / signatures per day, last 14 days', stats.days.map((/** @type {any} */ d) => [d.day, d.signatures]), 'bars') : null,
    stats ? table([['日期', 'Day'], ['流程', 'Flows'], ['完成', 'Completed'], ['签名', 'Signatures']],
      stats.days.slice().reverse().map((/** @type {any} */ d) => [d.day, String(d.flows), String(d.completed), String(d.signatures)])) : null,
    h('div', { class: 'card' }, h('b', {}, '服务状态', en('Readiness')), h('pre', {}, JSON.stringify(ready, null, 2))));
}

// ------------------------------------------------------------------ users, departments

/** #/users: search, create, delete. @param {URLSearchParams} q */
async function users(q) {
  const params = new URLSearchParams({ page_size: '100' });
  if (q.get('q')) params.set('q', q.get('q') || '');
  const [list, phones] = await Promise.all([api('GET', `/api/v1/users?${params}`), api('GET', '/admin/v1/devices')]);
  /** @type {Map<string, any>} */
  const phoneOf = new Map(phones.map((/** @type {any} */ d) => [d.employee_no, d]));
  /** The bound phone's state in a few words. @param {any} d */
  const phone = (d) => (d ? h('span', { title: `${d.device_id} · ${when(d.bound_at)}` }, d.name,
    d.key === 'active' ? ' · 密钥 ✔' : ' · 未生成密钥', d.pin_locked ? h('b', { class: 'bad' }, ' · PIN 已锁') : '', d.fingerprint ? ' · 指纹' : '') : null);
  const canWrite = me?.role !== 'auditor';
  const search = h('form', { class: 'inline', role: 'search', onsubmit: (/** @type {Event} */ ev) => { ev.preventDefault(); location.hash = `#/users?q=${encodeURIComponent(val('q'))}`; } },
    field('q', '工号或姓名', 'staff number or name', { value: q.get('q') || '', type: 'search' }),
    h('button', { class: 'secondary', type: 'submit' }, '搜索', en('Search')));
  const add = h('button', { class: 'primary', type: 'submit', id: 'addUser' }, '新增', en('Add'));
  const create = canWrite && h('form', { class: 'inline card', onsubmit: (/** @type {Event} */ ev) => {
    ev.preventDefault();
    busy(add, async () => {
      const body = { employee_no: val('employee_no'), name: val('name') };
      if (val('department')) Object.assign(body, { department: val('department') });
      if (val('title')) Object.assign(body, { title: val('title') });
      await api('POST', '/api/v1/users', body);
      toast('已新增 / added');
      users(q);
    });
  } },
  field('employee_no', '工号', 'Staff number', { required: true }), field('name', '姓名', 'Name', { required: true }),
  field('department', '科室代码', 'Department code'), field('title', '职称', 'Title'), add);
  const file = h('input', { type: 'file', id: 'importFile', accept: '.csv,.xlsx' });
  const importBtn = h('button', { class: 'secondary', type: 'submit', id: 'import' }, '预览', en('Preview'));
  const importResult = h('div', { id: 'importResult' });
  /** Show a refused import's rows. @param {any} e */
  const refused = (e) => importResult.replaceChildren(h('p', { class: 'bad' }, /** @type {any} */ (e).message),
    table([['行', 'row'], ['字段', 'field'], ['问题', 'problem']], (e.body?.errors || []).map((/** @type {any} */ r) => [String(r.row + 1), r.field, r.message])));
  const form = () => { const fd = new FormData(); fd.append('file', /** @type {File} */ (/** @type {HTMLInputElement} */ (file).files?.[0])); return fd; };
  // first the preview (every row checked, nothing written), then the import itself
  const importer = canWrite && h('form', { class: 'inline card', onsubmit: (/** @type {Event} */ ev) => {
    ev.preventDefault();
    busy(importBtn, async () => {
      if (!/** @type {HTMLInputElement} */ (file).files?.[0]) return toast('请选择文件 / choose a file', true);
      importResult.textContent = '检查中… / checking…';
      let r;
      try { r = await api('POST', '/api/v1/users/import?dry_run=true', form()); } catch (e) { if (/** @type {any} */ (e).status === 422) return refused(e); importResult.textContent = ''; throw e; }
      const go = h('button', { class: 'primary', type: 'button', id: 'confirmImport' }, `确认导入 ${r.would_import} 人`, en(`Import ${r.would_import}`));
      go.onclick = () => busy(go, async () => {
        importResult.textContent = `正在导入 ${r.would_import} 人… / importing…`;
        try {
          const done = await api('POST', '/api/v1/users/import', form());
          toast(`已导入 ${done.imported} 人 / ${done.imported} imported`);
          await users(q);
        } catch (e) { if (/** @type {any} */ (e).status === 422) refused(e); else throw e; }
      });
      const yes = (/** @type {boolean} */ b) => (b ? '✔' : '');
      importResult.replaceChildren(h('p', {}, `检查通过：将导入 ${r.would_import} 人，尚未写入。`, en(`All rows pass: ${r.would_import} to import; nothing written yet.`),
        r.ignored_columns.length ? h('span', { class: 'muted' }, ` 忽略的列：${r.ignored_columns.join('、')} / ignored columns`) : null), go,
      table([['行', 'line'], ['工号', 'No.'], ['姓名', 'Name'], ['科室', 'Dept.'], ['职称', 'Title'], ['角色', 'Role'], ['手机', 'Phone'], ['身份证', 'ID card']],
        r.rows.slice(0, 200).map((/** @type {any} */ u) => [String(u.line), u.employee_no, u.name, u.department, u.title, u.role, yes(u.phone), yes(u.id_card)])),
      r.rows.length > 200 ? h('p', { class: 'muted' }, `仅显示前 200 行 / the first 200 rows shown`) : null);
    });
  } },
  h('label', { for: 'importFile' }, h('span', {}, '批量导入（CSV 或 XLSX；先预览检查，全部通过才写入）', en('Import (CSV or XLSX; previewed and checked first, all or nothing)')), file),
  h('a', { href: '/api/v1/users/import/template.csv' }, '下载模板', en('template')), importBtn, importResult);
  const del = (/** @type {string} */ no) => h('button', { class: 'secondary', onclick: async (/** @type {Event} */ ev) => {
    if (!confirm(`删除人员 ${no}？/ Delete ${no}?`)) return;
    await busy(/** @type {HTMLElement} */ (ev.currentTarget), async () => { await api('DELETE', `/api/v1/users/${encodeURIComponent(no)}`); users(q); });
  } }, '删除', en('Delete'));
  // editing one person: name, department, title, phone (the staff number stays)
  const editor = h('div', { id: 'userEditor' });
  const edit = (/** @type {any} */ u) => h('button', { class: 'secondary', id: `edit-${u.employee_no}`, onclick: () => {
    const save = h('button', { class: 'primary', type: 'submit', id: 'saveUser' }, '保存', en('Save'));
    const opt = (/** @type {string} */ id) => val(id) || null;
    editor.replaceChildren(h('form', { class: 'inline card', onsubmit: (/** @type {Event} */ ev) => {
      ev.preventDefault();
      busy(save, async () => {
        await api('PATCH', `/api/v1/users/${encodeURIComponent(u.employee_no)}`, { name: val('eName'), department: opt('eDept'), title: opt('eTitle'), phone: opt('ePhone') });
        toast('已保存 / saved');
        users(q);
      });
    } }, h('b', {}, `编辑 ${u.employee_no}`, en('Edit')), field('eName', '姓名', 'Name', { value: u.name, required: true }),
    field('eDept', '科室代码', 'Department code', { value: u.department || '' }), field('eTitle', '职称', 'Title', { value: u.title || '' }),
    field('ePhone', '手机', 'Mobile', { value: u.phone || '', inputmode: 'tel' }), save));
    document.getElementById('eName')?.focus();
  } }, '编辑', en('Edit'));
  // a one-time code the doctor types into the phone app to bind it (72 h; an earlier one stops)
  const activate = (/** @type {any} */ u) => h('button', { class: 'secondary', id: `activate-${u.employee_no}`, onclick: (/** @type {Event} */ ev) =>
    busy(/** @type {HTMLElement} */ (ev.currentTarget), async () => {
      const a = await api('POST', `/api/v1/users/${encodeURIComponent(u.employee_no)}/activation-codes`);
      editor.replaceChildren(h('div', { class: 'card', id: 'activation' },
        h('p', {}, `请把激活码当面交给 ${u.name} 本人（${when(a.expires_at)} 前有效，只能用一次；再次生成则旧码作废）。在手机上打开医签（微信小程序或 ${location.origin}/m/），输入工号和激活码。`,
          en('Hand the code to the person (valid once, until then; a new one voids it). They open the medsign app and type their staff number and the code.')),
        h('p', { class: 'secret', id: 'activationCode' }, a.code),
        a.qr_png_base64 ? h('img', { src: `data:image/png;base64,${a.qr_png_base64}`, alt: '激活二维码 / activation QR code', width: 220, height: 220, id: 'activationQr' }) : null,
        h('p', { class: 'muted' }, '或用手机相机、微信扫此二维码：打开医签并填好工号和激活码，同时记下服务器的密钥指纹。',
          en('Or scan this with the phone\'s camera or WeChat: it opens medsign with the form filled and pins the server\'s key.')),
        h('p', { class: 'muted', id: 'activationLink' }, a.link || ''),
        h('p', { class: 'muted' }, `服务器通道指纹 / channel fingerprint: ${a.channel_fingerprint}`)));
    }) }, '激活码', en('Activation code'));
  // a lost or stolen phone unbound at once (its session, PIN, key share end; the certificate is revoked)
  const unbind = (/** @type {any} */ u) => h('button', { class: 'secondary', id: `unbind-${u.employee_no}`, onclick: async (/** @type {Event} */ ev) => {
    if (!confirm(`解绑 ${u.name} 的手机？该手机的密钥分量被销毁、证书被吊销，需用新激活码重新绑定。/ Unbind ${u.name}'s phone? Its key share is destroyed and the certificate revoked.`)) return;
    await busy(/** @type {HTMLElement} */ (ev.currentTarget), async () => {
      await api('DELETE', `/api/v1/users/${encodeURIComponent(u.employee_no)}/devices`);
      toast('已解绑 / unbound');
      users(q);
    });
  } }, '解绑手机', en('Unbind phone'));
  page('人员', 'Users', search, create, importer, editor,
    h('p', { class: 'muted' }, `共 ${list.total} 人 / ${list.total} in all`),
    table([['工号', 'No.'], ['姓名', 'Name'], ['科室', 'Dept.'], ['职称', 'Title'], ['实名', 'Real name'], ['手机', 'Phone'], ['证书', 'Certificate'], ['状态', 'State'], ['', '']],
      list.items.map((/** @type {any} */ u) => [u.employee_no, u.name, u.department, u.title, u.realname_status, phone(phoneOf.get(u.employee_no)),
        u.certificate ? `${u.certificate.key || ''} ${u.certificate.valid_now ? '✔' : '✘'}` : null, u.status,
        canWrite ? h('span', {}, edit(u), ' ', activate(u), ' ', unbind(u), ' ', del(u.employee_no)) : null])));
}

/** #/departments: the tree (by parent) and adding one. */
async function departments() {
  const { departments: list } = await api('GET', '/admin/v1/departments');
  const add = h('button', { class: 'primary', type: 'submit', id: 'addDept' }, '新增', en('Add'));
  const form = me?.role !== 'auditor' && h('form', { class: 'inline card', onsubmit: (/** @type {Event} */ ev) => {
    ev.preventDefault();
    busy(add, async () => {
      const d = { code: val('code'), name: val('dname') };
      if (val('parent')) Object.assign(d, { parent_code: val('parent') });
      await api('POST', '/admin/v1/departments', [d]);
      toast('已新增 / added');
      departments();
    });
  } }, field('code', '代码', 'Code', { required: true }), field('dname', '名称', 'Name', { required: true }), field('parent', '上级代码', 'Parent code'), add);
  /** @type {(parent: string | null, depth: number) => any[][]} */
  const rows = (parent, depth) => list.filter((/** @type {any} */ d) => (d.parent_code ?? null) === parent)
    .flatMap((/** @type {any} */ d) => [[`${'　'.repeat(depth)}${d.name}`, d.code], ...rows(d.code, depth + 1)]);
  page('科室', 'Departments', form, table([['名称', 'Name'], ['代码', 'Code']], rows(null, 0)));
}

// ------------------------------------------------------------------ certificates, channels, time

/** #/certificates: the list; issue from a CSR, server custody (administrators), renew, hold, release, revoke. @param {URLSearchParams} q */
async function certificates(q) {
  const params = new URLSearchParams({ page_size: '200' });
  if (q.get('employee_no')) params.set('employee_no', q.get('employee_no') || '');
  const list = await api('GET', `/api/v1/certificates?${params}`);
  const act = (/** @type {string} */ serial, /** @type {string} */ what, /** @type {string} */ zh, /** @type {string} */ english, /** @type {any} */ body) => h('button', { class: 'secondary', id: `${what}-${serial}`, onclick: async (/** @type {Event} */ ev) => {
    if (what === 'revoke' && !confirm(`吊销证书 ${serial}？吊销不可恢复。/ Revoke ${serial}? This cannot be undone.`)) return;
    await busy(/** @type {HTMLElement} */ (ev.currentTarget), async () => { await api('POST', `/api/v1/certificates/${serial}/${what}`, body); toast(`${zh} / ${english}`); certificates(q); });
  } }, zh, en(english));
  const actions = (/** @type {any} */ c) => (c.status === 'active'
    ? h('span', {}, act(c.serial, 'renew', '续期', 'Renew', {}), ' ', act(c.serial, 'hold', '冻结', 'Hold'), ' ', act(c.serial, 'revoke', '吊销', 'Revoke', { reason: 'unspecified' }))
    : c.status === 'on_hold' ? h('span', {}, act(c.serial, 'release', '解冻', 'Release'), ' ', act(c.serial, 'revoke', '吊销', 'Revoke', { reason: 'unspecified' })) : null);
  const out = h('div', {});
  const issueBtn = h('button', { class: 'primary', type: 'submit', id: 'issueCsr' }, '签发', en('Issue'));
  const csr = h('textarea', { id: 'csr', rows: 4, placeholder: '-----BEGIN CERTIFICATE REQUEST-----', required: true });
  const issue = h('form', { class: 'card', onsubmit: (/** @type {Event} */ ev) => {
    ev.preventDefault();
    busy(issueBtn, async () => {
      const c = await api('POST', `/api/v1/users/${encodeURIComponent(val('csrUser'))}/certificates`, { csr: /** @type {HTMLTextAreaElement} */ (csr).value.trim() });
      toast(`已签发 ${c.serial} / issued`);
      certificates(q);
    });
  } }, h('b', {}, '用证书请求（CSR）签发', en('Issue from a certificate request (CSR)')),
  field('csrUser', '工号', 'Staff number', { required: true }), h('label', { for: 'csr' }, h('span', {}, 'PKCS#10 请求（PEM）', en('PKCS#10 request (PEM)')), csr), issueBtn);
  const custodyBtn = h('button', { class: 'primary', type: 'submit', id: 'custody' }, '授权托管并签发', en('Authorize custody and issue'));
  const custody = me?.role === 'administrator' && h('form', { class: 'card', onsubmit: (/** @type {Event} */ ev) => {
    ev.preventDefault();
    busy(custodyBtn, async () => {
      const c = await api('POST', `/admin/v1/users/${encodeURIComponent(val('custodyUser'))}/custody`, { reason: val('custodyReason') });
      toast(`已签发 ${c.serial} / issued`);
      certificates(q);
    });
  } }, h('b', {}, '服务器托管密钥', en('Server-held key')),
  h('p', { class: 'muted' }, '医生的签名密钥通常由手机与服务器分持（医生在手机上绑定时自动签发）。仅在医院有正式依据时（如自动审核的检验报告）由服务器托管，须写明依据，全程记录。',
    en('A doctor\'s key is normally split between phone and server (issued when the phone is bound). Hold it on the server only on the hospital\'s documented basis; it is audited.')),
  field('custodyUser', '工号', 'Staff number', { required: true }), field('custodyReason', '依据', 'Basis (policy, resolution, consent)', { required: true }), custodyBtn);
  const [revocation, trust] = await Promise.all([api('GET', '/admin/v1/ca/revocation'), api('GET', '/admin/v1/trust')]);
  page('证书', 'Certificates', h('div', { class: 'cards' }, issue, custody), out,
    table([['序列号', 'Serial'], ['工号', 'No.'], ['算法', 'Alg.'], ['通道', 'Channel'], ['状态', 'State'], ['有效期至', 'Not after'], ['', '']],
      list.items.map((/** @type {any} */ c) => [c.serial, c.employee_no, c.alg, c.channel, c.status, when(c.not_after), actions(c)])),
    revocationState(revocation), trustList(trust, () => certificates(q)));
}

/**
 * The built-in CAs' CRL and OCSP as relying parties find them now. @param {any[]} list
 */
const revocationState = (list) => h('div', { id: 'revocation' }, h('h2', {}, '吊销状态（CRL 与 OCSP）', en('Revocation (CRL and OCSP)')),
  h('p', { class: 'muted' }, '证书状态一变（吊销、冻结、解冻）即重签 CRL；OCSP 实时应答。验签方从证书中的地址获取。',
    en('The CRL is re-signed on every status change; OCSP answers live. Relying parties find both from the certificates.')),
  table([['CA', 'CA'], ['CRL 编号', 'CRL number'], ['签发于', 'This update'], ['下次更新', 'Next update'], ['列入（冻结）', 'Listed (on hold)'], ['签名', 'Signature'], ['OCSP 响应证书至', 'OCSP responder until'], ['', '']],
    list.map((r) => [r.ca.toUpperCase(), String(r.crl_number), when(r.crl_this_update), when(r.crl_next_update), `${r.crl_entries}（${r.on_hold}）`,
      r.crl_signature_valid ? h('span', { class: 'ok' }, '✔ 有效 / valid') : h('b', { class: 'bad' }, '✘ 无效 / invalid'), when(r.ocsp_responder_not_after),
      h('span', {}, h('a', { href: `/pki/crl?ca=${r.ca}` }, '下载 CRL', en('CRL')), ' ', h('a', { href: `/pki/${r.ca}/ca.pem` }, 'CA 证书', en('CA certificates')))])),
  h('p', { class: 'muted' }, `OCSP：${location.origin}/pki/ocsp`));

/**
 * The trust list: CA certificates trusted besides the built-in roots (other CAs' channels,
 * cross-certificates), with their CRLs. Administrators add, refresh and remove.
 * @param {any[]} list @param {() => unknown} reload
 */
function trustList(list, reload) {
  const admin = me?.role === 'administrator';
  const addBtn = h('button', { class: 'primary', type: 'submit', id: 'addTrust' }, '加入信任列表', en('Trust'));
  const pem = h('textarea', { id: 'trustPem', rows: 4, placeholder: '-----BEGIN CERTIFICATE-----', required: true });
  const add = admin && h('form', { class: 'card', onsubmit: (/** @type {Event} */ ev) => {
    ev.preventDefault();
    busy(addBtn, async () => {
      const body = { pem: /** @type {HTMLTextAreaElement} */ (pem).value.trim(), note: val('trustNote') };
      if (val('trustCrl')) Object.assign(body, { crl_url: val('trustCrl') });
      await api('POST', '/admin/v1/trust', body);
      toast('已加入 / trusted');
      reload();
    });
  } }, h('b', {}, '信任外部 CA（根证书、中级证书或交叉证书）', en('Trust another CA (root, intermediate or cross-certificate)')),
  h('label', { for: 'trustPem' }, h('span', {}, 'CA 证书（PEM）', en('CA certificate (PEM)')), pem),
  field('trustCrl', 'CRL 地址（可选）', 'CRL URL (optional)', { type: 'url' }), field('trustNote', '说明', 'Note', { maxlength: 200 }), addBtn);
  const refresh = h('button', { class: 'secondary', id: 'refreshTrust' }, '立即更新 CRL', en('Fetch the CRLs now'));
  refresh.onclick = () => busy(refresh, async () => { await api('POST', '/admin/v1/trust/refresh'); toast('已更新 / fetched'); reload(); });
  const remove = (/** @type {any} */ t) => h('button', { class: 'secondary', id: `untrust-${t.fingerprint.slice(0, 16)}`, onclick: async (/** @type {Event} */ ev) => {
    if (!confirm(`不再信任 ${t.subject}？由它签发的签名将验证为“无法确定”。/ Stop trusting ${t.subject}?`)) return;
    await busy(/** @type {HTMLElement} */ (ev.currentTarget), async () => { await api('DELETE', `/admin/v1/trust/${t.fingerprint}`); reload(); });
  } }, '移除', en('Remove'));
  return h('div', { id: 'trust' }, h('h2', {}, '信任列表', en('Trust list')),
    h('p', { class: 'muted' }, '内置根证书之外，验签时信任的 CA。/ CAs trusted in every verification besides the built-in roots.'), add,
    admin ? refresh : null,
    table([['主体', 'Subject'], ['类型', 'Kind'], ['有效期至', 'Not after'], ['CRL', 'CRL'], ['CRL 获取于', 'CRL fetched'], ['说明', 'Note'], ['', '']],
      list.map((t) => [t.subject, t.anchor ? '根 / anchor' : '中级或交叉 / intermediate', when(t.not_after), t.crl_url,
        t.crl_error ? h('span', { class: 'bad' }, `✘ ${t.crl_error}`) : when(t.crl_at), t.note, admin ? remove(t) : null])));
}

/** #/seals: the hospital's and each department's seal — image (generated or uploaded) and certificate (R1.6). */
async function seals() {
  const [{ departments: depts }, certs] = await Promise.all([api('GET', '/admin/v1/departments'), api('GET', '/admin/v1/seals')]);
  const card = (/** @type {string} */ seal, /** @type {string} */ name) => {
    const img = h('img', { src: `/admin/v1/seals/${encodeURIComponent(seal)}/image.png?t=${Date.now()}`, alt: `${name} 印章 / seal`, width: 130, height: 130, id: `seal-${seal}` });
    const file = h('input', { type: 'file', accept: 'image/png', id: `sealFile-${seal}`, 'aria-label': `${name} 印章图片 / seal image` });
    const up = h('button', { class: 'secondary', id: `sealUpload-${seal}` }, '上传图片', en('Upload'));
    up.onclick = () => busy(up, async () => {
      const f = /** @type {HTMLInputElement} */ (file).files?.[0];
      if (!f) return toast('请选择 PNG 图片 / choose a PNG', true);
      const b64 = btoa(String.fromCharCode(...new Uint8Array(await f.arrayBuffer())));
      await api('PUT', `/admin/v1/seals/${encodeURIComponent(seal)}/image`, { image_base64: b64 });
      toast('已更新 / updated');
      seals();
    });
    const issue = h('button', { class: 'secondary', id: `sealCert-${seal}` }, '签发印章证书', en('Issue the seal certificate'));
    issue.onclick = () => busy(issue, async () => {
      const c = await api('POST', '/admin/v1/seals', seal === 'hospital' ? {} : { department: seal });
      toast(`证书 ${c.serial} / certificate ${c.serial}`);
      seals();
    });
    return h('div', { class: 'card' }, h('b', {}, name), h('div', {}, img), file, up, ' ', issue);
  };
  page('印章', 'Seals', h('div', { class: 'cards' }, card('hospital', '本院 / hospital'), ...depts.map((/** @type {any} */ d) => card(d.code, d.name))),
    table([['证书序列号', 'Serial'], ['主体', 'Subject'], ['状态', 'State'], ['有效期至', 'Not after']],
      certs.items.map((/** @type {any} */ c) => [c.serial, c.subject, c.status, when(c.not_after)])));
}

/** #/templates: the PDF form templates and their versions (R1.8); edit, enable or disable, start a new one. */
async function templates() {
  const list = await api('GET', '/admin/v1/templates');
  const toggle = (/** @type {any} */ t) => h('button', { class: 'secondary', onclick: async (/** @type {Event} */ ev) => {
    await busy(/** @type {HTMLElement} */ (ev.currentTarget), async () => { await api('POST', `/admin/v1/templates/${encodeURIComponent(t.id)}/${t.enabled ? 'disable' : 'enable'}`); templates(); });
  } }, t.enabled ? '停用' : '启用', en(t.enabled ? 'Disable' : 'Enable'));
  const add = h('button', { class: 'primary', type: 'submit', id: 'newTemplate' }, '新建', en('New'));
  const form = h('form', { class: 'inline card', onsubmit: (/** @type {Event} */ ev) => {
    ev.preventDefault();
    location.hash = `#/template?id=${encodeURIComponent(val('tplId'))}&new=1`;
  } }, field('tplId', '模板代码（字母、数字、- 或 _）', 'Template id (letters, digits, - or _)', { required: true, pattern: '[A-Za-z0-9_\-]{1,64}' }), add);
  page('模板', 'Templates', form, table([['模板', 'Template'], ['名称', 'Name'], ['版本', 'Version'], ['状态', 'State'], ['保存', 'Saved'], ['', '']],
    list.map((/** @type {any} */ t) => [h('a', { href: `#/template?id=${encodeURIComponent(t.id)}`, id: `edit-${t.id}` }, t.id), t.name, String(t.version),
      t.enabled ? '启用 / enabled' : '停用 / disabled', `${t.created_by} ${when(t.created_at)}`, toggle(t)])));
}

/** #/channels: CA channels — add (EST or another medsign), test, switch, and the switching history. */
async function channels() {
  const [r, history] = await Promise.all([api('GET', '/admin/v1/ca-channels'),
    api('GET', '/admin/v1/audit?kind=admin&page_size=200').catch(() => ({ items: [] }))]);
  const list = r.channels || r;
  const admin = me?.role === 'administrator';
  const button = (/** @type {any} */ c, /** @type {string} */ what, /** @type {string} */ zh, /** @type {string} */ english) => h('button', { class: 'secondary', id: `${what}-${c.id}`, onclick: async (/** @type {Event} */ ev) => {
    await busy(/** @type {HTMLElement} */ (ev.currentTarget), async () => {
      const res = await api('POST', `/admin/v1/ca-channels/${c.id}/${what}`);
      toast(what === 'check' ? `检测结果：${res.health}${res.health_error ? `（${res.health_error}）` : ''} / health: ${res.health}` : `${zh} / ${english}`, what === 'check' && res.health !== 'ok');
      channels();
    });
  } }, zh, en(english));
  const act = (/** @type {any} */ c) => admin ? h('span', {}, button(c, 'check', '检测', 'Test'), ' ',
    !c.active ? button(c, 'activate', '设为当前', 'Make active') : null, ' ',
    !c.active ? (c.enabled ? button(c, 'disable', '停用', 'Disable') : button(c, 'enable', '启用', 'Enable')) : null) : null;
  const kind = /** @type {HTMLSelectElement} */ (h('select', { id: 'chKind' }, h('option', { value: 'est' }, 'EST（RFC 7030）'), h('option', { value: 'medsign' }, '另一个 medsign / another medsign')));
  const add = h('button', { class: 'primary', type: 'submit', id: 'addChannel' }, '添加', en('Add'));
  const form = admin && h('form', { class: 'inline card', onsubmit: (/** @type {Event} */ ev) => {
    ev.preventDefault();
    busy(add, async () => {
      /** @type {Record<string, any>} */
      const config = { url: val('chUrl') };
      if (val('chUser')) config.username = val('chUser');
      const body = { name: val('chName'), kind: kind.value, priority: Number(val('chPriority') || 10), config };
      if (val('chSecret')) Object.assign(body, { secret: val('chSecret') });
      await api('POST', '/admin/v1/ca-channels', body);
      toast('已添加 / added');
      channels();
    });
  } }, field('chName', '名称', 'Name', { required: true }), h('label', { for: 'chKind' }, h('span', {}, '类型', en('Kind')), kind),
  field('chUrl', '地址', 'URL', { required: true, type: 'url', placeholder: 'https://ca.example/.well-known/est' }),
  field('chUser', 'EST 用户名', 'EST user name'), field('chSecret', '密码或令牌（加密保存，不再显示）', 'Password or token (kept encrypted, never shown)', { type: 'password', autocomplete: 'off' }),
  field('chPriority', '优先级（小者先用）', 'Priority (lower first)', { type: 'number', value: '10', min: 1 }), add);
  const switches = history.items.filter((/** @type {any} */ e) => e.action.startsWith('ca.channel.'));
  page('CA 通道', 'CA channels', form, table([['名称', 'Name'], ['类型', 'Kind'], ['优先级', 'Priority'], ['当前', 'Active'], ['启用', 'Enabled'], ['健康', 'Health'], ['', '']],
    list.map((/** @type {any} */ c) => [c.name, c.kind, String(c.priority), c.active ? '✔' : '', c.enabled ? '✔' : '', c.health_error ? `${c.health}（${c.health_error}）` : c.health, act(c)])),
  h('h2', {}, '切换记录', en('Switching history')),
  table([['时间', 'At'], ['动作', 'Action'], ['通道', 'Channel'], ['操作者', 'By'], ['详情', 'Details']],
    switches.map((/** @type {any} */ e) => [when(e.at), e.action, e.target, e.actor, e.details])));
}

/** #/time: the clock as the TSA sees it, and its offset and uncertainty over the last polls. */
async function time() {
  const [t, history] = await Promise.all([api('GET', '/admin/v1/time'), api('GET', '/admin/v1/time/history')]);
  const recent = history.slice(-240);
  page('时间', 'Time', h('div', { class: 'cards' },
    ...[['state', '状态', 'state'], ['offset_ms', '偏差 ms', 'offset ms'], ['uncertainty_ms', '不确定度 ms', 'uncertainty ms'], ['source', '时间源', 'source'], ['last_sync', '上次同步', 'last sync']]
      .map(([k, zh, english]) => h('div', { class: 'card stat' }, h('b', {}, k === 'last_sync' ? when(t[k]) : typeof t[k] === 'number' ? t[k].toFixed(3) : t[k] ?? '—'), zh, en(english)))),
  chart('offsetChart', `偏差 ± 不确定度（ms），最近 ${recent.length} 次同步（本实例，重启后重新记录）/ offset ± uncertainty, last polls of this instance`,
    recent.map((/** @type {any} */ p) => [p.at, p.offset_ms, p.uncertainty_ms]), 'line'),
  table([['时间', 'At'], ['状态', 'State'], ['偏差 ms', 'Offset ms'], ['不确定度 ms', 'Uncertainty ms'], ['时间源', 'Source']],
    recent.slice(-10).reverse().map((/** @type {any} */ p) => [when(p.at), p.state, p.offset_ms?.toFixed(3), p.uncertainty_ms?.toFixed(3), p.source])),
  h('div', { class: 'card' }, h('pre', {}, JSON.stringify(t, null, 2))));
}

// ------------------------------------------------------------------ logs

/** #/logs: the audit log (R1.7) with filters, export, and the chain's state. @param {URLSearchParams} q */
async function logs(q) {
  const params = new URLSearchParams({ page_size: '100' });
  for (const k of ['kind', 'actor', 'action']) if (q.get(k)) params.set(k, q.get(k) || '');
  const r = await api('GET', `/admin/v1/audit?${params}`);
  const kinds = h('select', { id: 'kind', name: 'kind' }, ...[['', '全部', 'all'], ['login', '登录', 'login'], ['signing', '签署', 'signing'], ['data_maintenance', '数据维护', 'data maintenance'], ['admin', '管理', 'admin']]
    .map(([v, zh, english]) => h('option', { value: v, selected: q.get('kind') === v }, `${zh} / ${english}`)));
  const filter = h('form', { class: 'inline', role: 'search', onsubmit: (/** @type {Event} */ ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const k of ['actor', 'action']) if (val(k)) p.set(k, val(k));
    if (/** @type {HTMLSelectElement} */ (kinds).value) p.set('kind', /** @type {HTMLSelectElement} */ (kinds).value);
    location.hash = `#/logs?${p}`;
  } },
  h('label', { for: 'kind' }, h('span', {}, '类别', en('Kind')), kinds),
  field('actor', '操作者', 'Actor', { value: q.get('actor') || '' }), field('action', '动作', 'Action', { value: q.get('action') || '' }),
  h('button', { class: 'secondary', type: 'submit' }, '筛选', en('Filter')),
  h('a', { href: `/admin/v1/audit.csv?${exportParams(q)}`, id: 'export' }, '导出 CSV（全部匹配记录）', en('Export CSV (every match)')));
  const chain = h('span', { id: 'chain' }, '…');
  const verify = h('button', { class: 'secondary', id: 'verifyChain', onclick: () => busy(verify, async () => {
    const v = await api('GET', '/admin/v1/audit/verify');
    chain.replaceChildren(v.broken ? h('b', { class: 'bad' }, `链在第 ${v.broken.seq ?? v.broken} 条断开 / broken`) : h('b', { class: 'ok' }, `完整：${v.entries} 条，${v.anchors} 个锚点 / intact`));
  }) }, '校验哈希链', en('Verify the chain'));
  page('日志', 'Logs', h('div', { class: 'card' }, filter), h('div', { class: 'card' }, verify, ' ', chain), retention(),
    h('p', { class: 'muted' }, `共 ${r.total} 条 / ${r.total} entries`),
    table([['时间', 'At'], ['类别', 'Kind'], ['操作者', 'Actor'], ['动作', 'Action'], ['对象', 'Target'], ['结果', 'Outcome'], ['地址', 'IP']],
      r.items.map((/** @type {any} */ e) => [when(e.at), e.kind, e.actor, e.action, e.target, e.outcome, e.ip])));
}

/** The filters of #/logs as the export takes them (no paging: it holds every match). @param {URLSearchParams} q */
const exportParams = (q) => new URLSearchParams([...q].filter(([k]) => ['kind', 'actor', 'action'].includes(k)));

/** How long the log is kept, and a month's archive (the hospital's days are UTC+8). */
function retention() {
  const now = new Date(Date.now() + 8 * 3600e3);
  const month = h('input', { type: 'month', id: 'archiveMonth', value: `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}` });
  const link = h('a', { id: 'archive', download: '' }, '导出该月日志', en('Export the month'));
  const aim = () => {
    const [y, m] = /** @type {HTMLInputElement} */ (month).value.split('-').map(Number);
    if (!y || !m) return;
    const next = m === 12 ? `${y + 1}-01` : `${y}-${String(m + 1).padStart(2, '0')}`;
    const p = new URLSearchParams({ from: `${y}-${String(m).padStart(2, '0')}-01T00:00:00+08:00`, to: `${next}-01T00:00:00+08:00` });
    link.setAttribute('href', `/admin/v1/audit.csv?${p}`);
  };
  month.addEventListener('change', aim);
  aim();
  return h('div', { class: 'card', id: 'retention' }, h('b', {}, '保存与归档', en('Retention and archiving')),
    h('p', {}, '日志永久保存：系统不删除、不修改任何一条。每条记录含前一条的哈希，链头定期由平台密钥签名（锚点），删改会被“校验哈希链”发现。',
      en('The log is kept for good: nothing deletes or edits an entry. Each holds the hash of the one before and the platform key signs the head (anchors), so a change shows when the chain is verified.')),
    h('p', {}, '归档：按月导出 CSV（该月全部记录，按先后顺序），与 medsign backup 的备份一同离线保存。保存期限请按医院制度执行（参考：《电子签名法》第二十四条，认证信息保存至证书失效后五年；病历保存期限见《医疗机构病历管理规定》）。',
      en('To archive, export each month (every entry, in order) and keep it offline with the medsign backup. Keep them as hospital policy and the law require.')),
    h('label', { for: 'archiveMonth' }, h('span', {}, '月份（北京时间）', en('Month (UTC+8)')), month), ' ', link);
}

// ------------------------------------------------------------------ apps, people

/** #/apps: integration apps; a new one's token is shown once. */
async function apps() {
  const { apps: list } = await api('GET', '/admin/v1/apps');
  const out = h('div', {});
  const add = h('button', { class: 'primary', type: 'submit', id: 'addApp' }, '新增', en('Add'));
  const scopes = ['users:read', 'users:write', 'certs', 'sign', 'verify', 'timestamps'];
  const form = h('form', { class: 'inline card', onsubmit: (/** @type {Event} */ ev) => {
    ev.preventDefault();
    busy(add, async () => {
      const chosen = scopes.filter((s) => /** @type {HTMLInputElement} */ (document.getElementById(`scope-${s}`)).checked);
      const a = await api('POST', '/admin/v1/apps', { name: val('appName'), scopes: chosen });
      out.replaceChildren(h('div', { class: 'card' }, h('p', {}, '令牌只显示这一次，请交给对接系统的开发人员妥善保存：', en('Shown once: hand it to the system\'s developers.')), h('p', { class: 'secret', id: 'appToken' }, a.token)));
      apps().then(() => document.getElementById('view')?.append(out));
    });
  } }, field('appName', '名称', 'Name', { required: true }),
  ...scopes.map((s) => h('label', { for: `scope-${s}` }, s, h('input', { type: 'checkbox', id: `scope-${s}`, checked: s.startsWith('users') || s === 'sign' || s === 'verify' }))), add);
  const toggle = (/** @type {any} */ a) => h('button', { class: 'secondary', onclick: async (/** @type {Event} */ ev) => {
    await busy(/** @type {HTMLElement} */ (ev.currentTarget), async () => { await api('POST', `/admin/v1/apps/${a.app_id}/${a.disabled ? 'enable' : 'disable'}`); apps(); });
  } }, a.disabled ? '启用' : '停用', en(a.disabled ? 'Enable' : 'Disable'));
  const rotate = (/** @type {any} */ a) => h('button', { class: 'secondary', id: `rotate-${a.app_id}`, onclick: async (/** @type {Event} */ ev) => {
    if (!confirm(`为 ${a.name} 更换密钥？旧密钥立即失效，对接系统须换用新令牌。/ Rotate the secret of ${a.name}? The old one stops at once.`)) return;
    await busy(/** @type {HTMLElement} */ (ev.currentTarget), async () => {
      const r = await api('POST', `/admin/v1/apps/${a.app_id}/rotate`);
      // the old secret is dead now: show the new one before anything else can fail
      out.replaceChildren(h('div', { class: 'card' }, h('p', {}, `${a.name} 的新令牌只显示这一次：`, en('The new token, shown once:')), h('p', { class: 'secret', id: 'appToken' }, r.token)));
      document.getElementById('view')?.append(out);
      await apps().catch(() => null);
      document.getElementById('view')?.append(out);
    });
  } }, '更换密钥', en('Rotate secret'));
  page('接入应用', 'Apps', form, h('p', {}, h('a', { href: '#/webhooks' }, '推送记录与重试', en('Webhook deliveries and retry'))),
    table([['应用', 'App'], ['名称', 'Name'], ['权限', 'Scopes'], ['状态', 'State'], ['创建', 'Created'], ['', '']],
      list.map((/** @type {any} */ a) => [a.app_id, a.name, a.scopes.join(', '), a.disabled ? '停用 / disabled' : '启用 / enabled', when(a.created_at), h('span', {}, toggle(a), ' ', rotate(a))])));
}

/** The secret of a new enrolment, for the authenticator app (shown once). @param {any} e */
const enrolment = (e) => h('div', { class: 'card', id: 'enrolled' },
  h('p', {}, '用手机上的身份验证器（如 Microsoft Authenticator、Google Authenticator）扫描二维码，或输入密钥。此密钥只显示这一次。', en('Scan with an authenticator app, or type the key. It is shown once.')),
  h('img', { src: `data:image/png;base64,${e.qr_png_base64}`, alt: 'TOTP 二维码 / QR code', width: 200, height: 200 }),
  h('p', { class: 'secret', id: 'totpSecret' }, e.totp_secret),
  h('a', { href: '#/login', id: 'toLogin' }, '去登录', en('Log in')));

/** An invitation to hand over (shown once). @param {any} inv */
const invitation = (inv) => {
  const link = `${location.origin}/admin/#/enrol?u=${encodeURIComponent(inv.person.username)}&code=${inv.invite_code}`;
  return h('div', { class: 'card', id: 'invited' },
    h('p', {}, `请把此链接交给 ${inv.person.display_name} 本人（${new Date(inv.expires_at).toLocaleString('zh-CN', { hour12: false })} 前有效，只能用一次）。本人设置自己的密码和动态码，您看不到。`,
      en('Hand this link to the person (valid once, until then). They set their own password and code; you never see them.')),
    h('p', { class: 'secret', id: 'inviteLink' }, link));
};

/** #/enrol?u=&code=: an invited person sets their password and gets their TOTP secret. @param {URLSearchParams} q */
async function enrol(q) {
  const go = h('button', { class: 'primary', type: 'submit', id: 'enrol' }, '设置密码', en('Set my password'));
  const out = h('div', {});
  const form = h('form', { onsubmit: (/** @type {Event} */ ev) => {
    ev.preventDefault();
    busy(go, async () => out.replaceChildren(enrolment(await api('POST', '/console/v1/enrol', { username: val('username'), code: val('code'), password: val('password') }))));
  } },
  field('username', '用户名', 'Username', { value: q.get('u') || '', required: true }),
  field('code', '邀请码', 'Invitation code', { value: q.get('code') || '', required: true }),
  field('password', '设置密码（至少 10 位）', 'Choose a password (10+ characters)', { type: 'password', autocomplete: 'new-password', required: true, minlength: 10 }),
  go);
  page('接受邀请', 'Accept the invitation', h('div', { class: 'card login' }, form), out);
}

/** #/people: console accounts: invite, reset, disable. */
async function people() {
  const list = await api('GET', '/admin/v1/people');
  const out = h('div', {});
  const add = h('button', { class: 'primary', type: 'submit', id: 'addPerson' }, '邀请', en('Invite'));
  const role = h('select', { id: 'role' }, ...[['operator', '操作员', 'operator'], ['auditor', '审计员', 'auditor'], ['administrator', '管理员', 'administrator']].map(([v, zh, english]) => h('option', { value: v }, `${zh} / ${english}`)));
  const show = async (/** @type {any} */ inv) => { await people(); out.replaceChildren(invitation(inv)); document.getElementById('view')?.append(out); };
  const form = h('form', { class: 'inline card', onsubmit: (/** @type {Event} */ ev) => {
    ev.preventDefault();
    busy(add, async () => show(await api('POST', '/admin/v1/people', { username: val('username'), display_name: val('display_name'), role: /** @type {HTMLSelectElement} */ (role).value })));
  } }, field('username', '用户名', 'Username', { required: true }), field('display_name', '姓名', 'Name', { required: true }),
  h('label', { for: 'role' }, h('span', {}, '角色', en('Role')), role), add);
  const act = (/** @type {any} */ p, /** @type {string} */ what, /** @type {string} */ zh, /** @type {string} */ english) => h('button', { class: 'secondary', onclick: async (/** @type {Event} */ ev) => {
    if (what === 'reset' && !confirm(`重置 ${p.username} 的密码和动态码？/ Reset ${p.username}?`)) return;
    await busy(/** @type {HTMLElement} */ (ev.currentTarget), async () => {
      const r = await api('POST', `/admin/v1/people/${p.username}/${what}`);
      if (what === 'reset') await show(r); else await people();
    });
  } }, zh, en(english));
  const state = (/** @type {any} */ p) => (p.disabled ? '停用 / disabled' : p.invited ? '待接受邀请 / invited' : p.locked_until ? `锁定至 ${when(p.locked_until)} / locked` : '正常 / ok');
  const who = h('select', { id: 'linkUser' }, ...list.map((/** @type {any} */ p) => h('option', { value: p.username }, `${p.display_name}（${p.username}）`)));
  const linkBtn = h('button', { class: 'secondary', type: 'submit', id: 'link' }, '关联', en('Link'));
  const link = h('form', { class: 'inline card', onsubmit: (/** @type {Event} */ ev) => {
    ev.preventDefault();
    busy(linkBtn, async () => {
      await api('PUT', `/admin/v1/people/${encodeURIComponent(/** @type {HTMLSelectElement} */ (who).value)}/staff`, { employee_no: val('linkNo') || null });
      toast('已关联 / linked');
      people();
    });
  } }, h('p', { class: 'muted' }, '关联工号后，此人可用该工号绑定的医签手机端扫码登录控制台（留空则取消关联）。', en('Linked to a staff number, the person may log in by scanning with that staff member\'s phone app (empty: unlink).')),
  h('label', { for: 'linkUser' }, h('span', {}, '控制台账号', en('Console account')), who), field('linkNo', '工号', 'Staff number'), linkBtn);
  page('控制台账号', 'Console accounts', form, link, table([['用户名', 'Username'], ['姓名', 'Name'], ['角色', 'Role'], ['工号', 'Staff no.'], ['状态', 'State'], ['上次登录', 'Last login'], ['', '']],
    list.map((/** @type {any} */ p) => [p.username, p.display_name, p.role, p.employee_no, state(p), when(p.last_login_at),
      h('span', {}, act(p, 'reset', '重置', 'Reset'), ' ', p.disabled ? act(p, 'enable', '启用', 'Enable') : act(p, 'disable', '停用', 'Disable'))])));
}

/** #/settings: the configuration in effect (read-only: it changes in medsign.toml or the environment). */
async function settings() {
  const r = await api('GET', '/admin/v1/settings');
  const sections = [...new Set(r.settings.map((/** @type {any} */ x) => x.key.split('.')[0]))];
  page('设置', 'Settings', h('p', { class: 'muted' }, r.changed_by),
    ...sections.map((sec) => h('div', {}, h('h2', {}, `[${sec}]`),
      table([['设置项', 'Key'], ['当前值', 'Value in effect'], ['环境变量', 'Environment variable']],
        r.settings.filter((/** @type {any} */ x) => x.key.split('.')[0] === sec)
          .map((/** @type {any} */ x) => [h('code', {}, x.key), x.value ?? h('span', { class: 'muted' }, '未设置（默认）/ not set (default)'), h('code', {}, x.env)])))));
}

/** The pages by path. @type {Record<string, (q: URLSearchParams) => Promise<void>>} */
export const PAGES = {
  '/': dashboard, '/setup': setup, '/login': login, '/enrol': enrol, '/users': users, '/departments': departments,
  '/certificates': certificates, '/seals': seals, '/templates': templates, '/template': template, '/flows': flows, '/flow': flow, '/batches': batches, '/webhooks': webhooks,
  '/channels': channels, '/time': time, '/logs': logs, '/apps': apps, '/people': people, '/settings': settings,
};

start(PAGES, NAV);
