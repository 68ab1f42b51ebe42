// @ts-check
// medsign H5 — the doctor's own records (#/records): signatures and logins.
import { api } from '../api.js';
import { h, page, when } from '../dom.js';

/** #/records: the last 50 signatures and logins. */
export async function recordsPage() {
  const r = await api('GET', 'records?limit=50');
  /** @type {Record<string, string>} */
  const CUSTODY = { 'two-party': '手机签署 / phone', grant: '授权签署 / grant', server: '托管 / custody' };
  page('我的记录 / Records',
    h('div', { class: 'card', id: 'signRecords' }, h('h2', {}, '签署记录 / Signatures'),
      r.signatures.length ? null : h('p', { class: 'muted' }, '无 / none'),
      r.signatures.map((s) => h('div', { class: 'item' }, h('div', {}, h('div', { class: 't' }, s.title), h('div', { class: 'muted' }, `${when(s.signed_at)} · ${CUSTODY[s.custody] || s.custody || ''} · ${s.doc_no}`))))),
    h('div', { class: 'card', id: 'loginRecords' }, h('h2', {}, '登录记录 / Logins'),
      r.logins.map((l) => h('div', { class: 'item' }, h('div', {}, h('div', { class: l.outcome === 'ok' ? 't' : 't bad' }, `${l.action} · ${l.outcome}`), h('div', { class: 'muted' }, `${when(l.at)} · ${l.ip}`))))));
}
