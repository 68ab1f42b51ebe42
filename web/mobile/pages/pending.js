// @ts-check
// medsign H5 — the documents waiting for this doctor (#/pending), signed in a batch with one PIN.
import { api } from '../api.js';
import { h, toast, page, busy, fail, pinInput, val, when } from '../dom.js';
import { KIND, signRounds } from './common.js';

/** #/pending: the list with check boxes (all ticked), one PIN, sign the selected. */
export async function pendingPage() {
  const { items } = await api('GET', 'pending');
  const boxes = items.map((s) => h('input', { type: 'checkbox', value: s.flow_id, checked: true }));
  const go = h('button', { class: 'primary', id: 'signSelected' }, `签署所选 / Sign selected (${items.length})`);
  const count = () => { go.textContent = `签署所选 / Sign selected (${boxes.filter((b) => b.checked).length})`; };
  boxes.forEach((b) => b.addEventListener('change', count));
  go.onclick = async () => {
    const targets = boxes.filter((b) => b.checked).map((b) => ({ flow_id: b.value }));
    if (!targets.length) return toast('请选择文档 / select documents', true);
    const done = busy(go, `正在签署 ${targets.length} 份… / signing…`);
    try {
      const { rounds } = await api('POST', 'sign-rounds', { targets });
      const results = await signRounds(rounds, val('pin'));
      const ok = results.filter((r) => !r.error).length;
      toast(`已签署 ${ok} 份${ok < results.length ? `，${results.length - ok} 份失败` : ''} / ${ok} signed`, ok < results.length);
      pendingPage();
    } catch (e) { fail(e); } finally { done(); }
  };
  page('待签文档 / To sign',
    h('div', { class: 'card', id: 'pendingList' },
      items.length ? null : h('p', { class: 'muted' }, '没有待签文档 / nothing to sign'),
      items.map((s, i) => h('label', { class: 'item' }, boxes[i], h('div', {}, h('div', { class: 't' }, s.title), h('div', { class: 'muted' }, `${KIND[s.kind] || s.kind} · ${s.doc_no} · ${when(s.created_at)}`))))),
    items.length ? h('div', { class: 'card' },
      h('button', { class: 'secondary', onclick: () => { const all = !boxes.every((b) => b.checked); boxes.forEach((b) => { b.checked = all; }); count(); } }, '全选 / 全不选 · All / none'),
      ...pinInput('pin', 'PIN（一次输入，批量签署）/ PIN, once for all'), go) : null);
}
