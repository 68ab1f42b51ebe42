// @ts-check
// medsign console — signing flows (search, one flow's timeline, download, revoke), the webhook
// delivery log (retry) and batch signings (progress). Every app's flows are listed
// (GET /admin/v1/sign-flows); administrators download and revoke through the same /api/v1 routes a
// hospital system uses.
import { h, en, api, toast, busy, page, me } from './console.js';
import { field, val, table, when } from './ui.js';

/** Flow states, as the API names them, in Chinese and English. */
const STATES = [['pending', '待签', 'pending'], ['signing', '签署中', 'signing'], ['completed', '已完成', 'completed'],
  ['revoked', '已撤销', 'revoked'], ['expired', '已过期', 'expired'], ['failed', '失败', 'failed']];
/** @param {string} s */
const stateText = (s) => { const t = STATES.find(([v]) => v === s); return t ? `${t[1]} / ${t[2]}` : s; };

/** #/flows: search every app's flows. @param {URLSearchParams} q */
export async function flows(q) {
  const params = new URLSearchParams({ page_size: '50', page: q.get('page') || '1' });
  for (const k of ['q', 'state', 'signer', 'app_id']) if (q.get(k)) params.set(k, q.get(k) || '');
  for (const k of ['from', 'to']) if (q.get(k)) params.set(k, new Date(`${q.get(k)}T00:00:00`).toISOString());
  const r = await api('GET', `/admin/v1/sign-flows?${params}`);
  const state = h('select', { id: 'state', name: 'state' }, h('option', { value: '' }, '全部 / all'),
    ...STATES.map(([v, zh, english]) => h('option', { value: v, selected: q.get('state') === v }, `${zh} / ${english}`)));
  const filter = h('form', { class: 'inline', role: 'search', onsubmit: (/** @type {Event} */ ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const k of ['q', 'signer', 'app_id', 'from', 'to']) if (val(k)) p.set(k, val(k));
    if (/** @type {HTMLSelectElement} */ (state).value) p.set('state', /** @type {HTMLSelectElement} */ (state).value);
    location.hash = `#/flows?${p}`;
  } },
  field('q', '单号或标题', 'document no. or title', { value: q.get('q') || '', type: 'search' }),
  h('label', { for: 'state' }, h('span', {}, '状态', en('State')), state),
  field('signer', '签署人工号', 'signer staff no.', { value: q.get('signer') || '' }),
  field('app_id', '应用', 'app', { value: q.get('app_id') || '' }),
  field('from', '起始日期', 'from', { type: 'date', value: q.get('from') || '' }),
  field('to', '截止日期（不含）', 'to (exclusive)', { type: 'date', value: q.get('to') || '' }),
  h('button', { class: 'secondary', type: 'submit', id: 'searchFlows' }, '搜索', en('Search')));
  const pageNo = Number(params.get('page'));
  const go = (/** @type {number} */ n) => { const p = new URLSearchParams(q); p.set('page', String(n)); return `#/flows?${p}`; };
  const pager = h('p', { class: 'muted' }, `共 ${r.total} 个 / ${r.total} flows · 第 ${pageNo} 页 / page ${pageNo} `,
    pageNo > 1 ? h('a', { href: go(pageNo - 1) }, '上一页', en('previous')) : null, ' ',
    pageNo * r.page_size < r.total ? h('a', { href: go(pageNo + 1), id: 'nextPage' }, '下一页', en('next')) : null);
  page('签署流程', 'Signing flows', h('div', { class: 'card' }, filter), pager,
    table([['单号', 'Document no.'], ['标题', 'Title'], ['类型', 'Kind'], ['状态', 'State'], ['签署', 'Signed'], ['应用', 'App'], ['创建', 'Created']],
      r.items.map((/** @type {any} */ f) => [h('a', { href: `#/flow?id=${encodeURIComponent(f.id)}` }, f.doc_no), f.title, f.kind,
        h('span', { class: `state-${f.state}` }, stateText(f.state)), `${f.signed}/${f.signers}`, f.app_id, when(f.created_at)])));
}

/** What an audit action means on a flow's timeline. */
const ACTIONS = /** @type {Record<string, string>} */ ({
  'flow.create': '创建流程 / flow created', 'flow.sign': '签名 / signed', 'seal.use': '盖章 / sealed', 'flow.revoke': '撤销 / revoked',
  'flow.fail': '失败 / failed', 'flow.expire': '过期 / expired', 'ticket.create': '生成二维码 / QR ticket opened', 'ticket.scan': '扫码 / scanned',
  'realname.verify': '实名核验 / real-name check', 'pin.verify': 'PIN 验证 / PIN approval', 'soter.unlock': '指纹验证 / fingerprint approval',
  'evidence.create': '出具证据报告 / evidence report', 'flow.ltv': '长期验证数据 / long-term validation data',
});

/** #/flow?id=: one flow — signers, its timeline (the audit events the evidence report uses), webhooks. @param {URLSearchParams} q */
export async function flow(q) {
  const id = q.get('id') || '';
  const { flow: f, events, webhooks } = await api('GET', `/admin/v1/sign-flows/${encodeURIComponent(id)}`);
  const admin = me?.role === 'administrator';
  const base = `/api/v1/sign-flows/${encodeURIComponent(f.id)}`;
  const actions = h('div', { class: 'card', id: 'flowActions' });
  if (admin && f.state === 'completed') {
    actions.append(h('a', { href: f.kind === 'data' ? `${base}/file?signature=p7s` : `${base}/file`, id: 'download', download: '' },
      f.kind === 'data' ? '下载签名（CMS）' : '下载已签 PDF', en(f.kind === 'data' ? 'Download the signature (CMS)' : 'Download the signed PDF')), ' · ',
    h('a', { href: `${base}/evidence.pdf`, id: 'evidence', download: '' }, '证据报告', en('Evidence report')));
  }
  if (admin && (f.state === 'pending' || f.state === 'signing')) {
    const revoke = h('button', { class: 'secondary', id: 'revokeFlow' }, '撤销流程', en('Revoke the flow'));
    revoke.onclick = () => busy(revoke, async () => {
      const reason = prompt('撤销原因 / reason for revoking');
      if (!reason) return;
      await api('POST', `${base}/revoke`, { reason });
      toast('已撤销 / revoked');
      await flow(q);
    });
    actions.append(revoke);
  }
  if (!actions.childNodes.length) actions.append(h('span', { class: 'muted' }, '无可用操作', en('nothing to do here')));
  const facts = [['单号', 'Document no.', f.doc_no], ['标题', 'Title', f.title], ['状态', 'State', stateText(f.state)], ['类型', 'Kind', f.kind],
    ['算法', 'Algorithm', f.alg], ['内容 SM3', 'Content SM3', f.content_sm3], ['PAdES', 'PAdES', f.pades_level], ['模板', 'Template', f.template_id ? `${f.template_id} v${f.template_version}` : null],
    ['创建', 'Created', when(f.created_at)], ['到期', 'Expires', when(f.expires_at)], ['原因', 'Reason', f.reason], ['错误', 'Error', f.error]];
  page(`流程 ${f.doc_no}`, 'Flow', actions,
    h('dl', { class: 'card facts' }, ...facts.filter(([, , v]) => v != null).flatMap(([zh, english, v]) => [h('dt', {}, zh, en(english)), h('dd', {}, v)])),
    h('h2', {}, '签署人', en('Signers')),
    table([['顺序', '#'], ['签署人', 'Signer'], ['方式', 'Mode'], ['密钥', 'Key'], ['状态', 'State'], ['证书', 'Certificate'], ['签署时间', 'Signed'], ['时间戳', 'Timestamp']],
      f.signers.map((/** @type {any} */ s) => [String(s.index + 1), `${s.kind === 'seal' ? '印章 ' : ''}${s.ref ?? s.subject_ref}`, s.mode, s.custody, s.state, s.cert_serial, when(s.signed_at), when(s.timestamp_at)])),
    h('h2', {}, '时间线', en('Timeline')),
    h('ol', { class: 'timeline', id: 'timeline' }, ...events.map((/** @type {any} */ e) => h('li', { class: e.outcome === 'ok' ? '' : 'bad' },
      h('time', { datetime: e.at }, when(e.at)), ' ', h('b', {}, ACTIONS[e.action] || e.action), ' ', h('span', { class: 'muted' }, `${e.actor} · ${e.action} · ${e.outcome}`)))),
    h('h2', {}, '推送', en('Webhooks')), deliveries(webhooks, () => flow(q)));
}

/** A table of webhook deliveries with "retry" on the failed ones. @param {any[]} list @param {() => Promise<void>} again */
function deliveries(list, again) {
  const retry = (/** @type {any} */ d) => (d.state === 'failed' && me?.role !== 'auditor' ? h('button', { class: 'secondary', id: `retry-${d.id}`, onclick: (/** @type {Event} */ ev) =>
    busy(/** @type {HTMLElement} */ (ev.currentTarget), async () => { await api('POST', `/admin/v1/webhooks/${encodeURIComponent(d.id)}/retry`); toast('已重新排队 / queued again'); await again(); }) },
  '重试', en('Retry')) : null);
  return table([['事件', 'Event'], ['流程/任务', 'Flow/task'], ['地址', 'URL'], ['状态', 'State'], ['次数', 'Attempts'], ['最后结果', 'Last result'], ['送达', 'Delivered'], ['', '']],
    list.map((/** @type {any} */ d) => [d.event, d.flow_id.startsWith('sf_') ? h('a', { href: `#/flow?id=${encodeURIComponent(d.flow_id)}` }, d.flow_id) : d.flow_id, d.url,
      d.state, String(d.attempts), d.last_error || (d.last_status ? `HTTP ${d.last_status}` : null), when(d.delivered_at), retry(d)]));
}

/** #/webhooks: the delivery log (newest 500), failed ones retried by hand. */
export async function webhooks() {
  const list = await api('GET', '/admin/v1/webhooks');
  const failed = list.filter((/** @type {any} */ d) => d.state === 'failed').length;
  page('推送记录', 'Webhook deliveries',
    h('p', { class: 'muted' }, `最近 ${list.length} 条，失败 ${failed} 条。失败的推送在重试 10 次后停止，可在此手动再发一次。`,
      en(`${list.length} latest, ${failed} failed. A delivery stops after 10 attempts; send it once more here.`)),
    deliveries(list, webhooks));
}

const BATCH_STATES = /** @type {Record<string, string>} */ ({ queued: '排队中 / queued', running: '进行中 / running', completed: '已结束 / finished' });
/** The latest render of #/batches: an older refresh loop stops when a newer one starts. */
let batchesRender = 0;

/**
 * #/batches[?id=]: server-side batch signing (up to 1,000 flows each), newest first, with progress
 * bars; the lists are refreshed every 2 s while one is unfinished (in place: the heading and the
 * keyboard focus stay). With `id`: that batch's items, failures first.
 * @param {URLSearchParams} q
 */
export async function batches(q) {
  const mine = ++batchesRender;
  const body = h('div', { id: 'batches' });
  const id = q.get('id');
  const current = () => mine === batchesRender && body.isConnected && location.hash.startsWith('#/batches');
  /** Draw the lists; says whether anything shown is unfinished. */
  const draw = async () => {
    const list = await api('GET', '/admin/v1/batches?limit=50');
    const b = id ? await api('GET', `/admin/v1/batches/${encodeURIComponent(id)}`) : null;
    // a draw of a page the user has left does not touch the page shown now
    if (mine !== batchesRender) return false;
    const focused = body.contains(document.activeElement) ? document.activeElement?.id : null;
    body.replaceChildren(...batchViews(list, b));
    if (focused) document.getElementById(focused)?.focus();
    return list.some((/** @type {any} */ x) => x.state !== 'completed') || (b != null && b.state !== 'completed');
  };
  let unfinished = await draw();
  if (mine !== batchesRender) return;
  page('批量签署', 'Batches',
    h('p', { class: 'muted' }, '对接系统通过 POST /api/v1/batches 一次提交至多 1000 份文档，由服务器排队签署；中途重启不丢失、不重签。',
      en('Hospital systems queue up to 1,000 documents with POST /api/v1/batches; the server signs them from a durable queue — nothing lost or signed twice on a restart.')),
    body);
  // refreshed while something runs and the page is shown (a hidden tab asks nothing); a failed
  // refresh is tried again at the next tick
  while (unfinished) {
    await new Promise((ok) => setTimeout(ok, 2000));
    if (!current()) return;
    if (document.visibilityState === 'hidden') continue;
    unfinished = await draw().catch(() => true);
  }
}

/** The batch list and, when one is chosen, its items. @param {any[]} list @param {any} b */
function batchViews(list, b) {
  const bar = (/** @type {any} */ x) => h('span', { class: 'progress' },
    h('progress', { max: x.total, value: x.done + x.failed, 'aria-label': `${x.id} 进度 / progress` }), ` ${x.done + x.failed}/${x.total}`);
  const rows = list.length
    ? table([['批次', 'Batch'], ['应用', 'App'], ['创建', 'Created'], ['状态', 'State'], ['进度', 'Progress'], ['成功', 'Signed'], ['失败', 'Failed']],
      list.map((/** @type {any} */ x) => [h('a', { href: `#/batches?id=${encodeURIComponent(x.id)}`, id: `batch-${x.id}` }, x.id), x.app_id, when(x.created_at),
        BATCH_STATES[x.state] || x.state, bar(x), String(x.done), x.failed ? h('b', { class: 'bad' }, String(x.failed)) : '0']))
    : h('p', { class: 'muted' }, '还没有批次 / no batches yet');
  if (!b) return [rows];
  const items = b.items.slice().sort((/** @type {any} */ x, /** @type {any} */ y) => (y.state === 'failed' ? 1 : 0) - (x.state === 'failed' ? 1 : 0) || x.index - y.index);
  return [h('div', { class: 'card', id: 'batchDetail' }, h('h2', {}, `批次 ${b.id}`, en('Batch')),
    h('p', { id: 'batchSummary' }, `${BATCH_STATES[b.state] || b.state}：成功 ${b.done}，失败 ${b.failed}，待处理 ${b.pending}（共 ${b.total}）`,
      en(`${b.done} signed, ${b.failed} failed, ${b.pending} to go of ${b.total}`)),
    table([['序号', '#'], ['状态', 'State'], ['流程', 'Flow'], ['错误', 'Error']],
      items.slice(0, 300).map((/** @type {any} */ it) => [String(it.index), it.state,
        it.flow_id ? h('a', { href: `#/flow?id=${encodeURIComponent(it.flow_id)}` }, it.flow_id) : null, it.error])),
    items.length > 300 ? h('p', { class: 'muted' }, '仅显示前 300 项 / the first 300 items shown') : null), rows];
}
