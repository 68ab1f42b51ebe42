// @ts-check
// medsign H5 — session grants (#/grants): a system signs without the phone for some hours.
import { api, core } from '../api.js';
import { h, toast, page, busy, fail, pinInput, val, when } from '../dom.js';

/** #/grants: grant a system (hours, PIN) and list or cancel the grants. */
export async function grantsPage() {
  const [{ items: systems, grant_max_hours: maxHours = 12 }, { items: grants }] = await Promise.all([api('GET', 'systems'), api('GET', 'grants')]);
  const go = h('button', { class: 'primary', id: 'grant' }, '授权 / Grant');
  go.onclick = async () => {
    const done = busy(go);
    try {
      const start = await core.grant({ appId: val('system'), hours: Number(val('hours')) }, { pin: val('pin') });
      toast(`已授权 ${start.app_name} ${start.hours} 小时 / granted`);
      grantsPage();
    } catch (e) { fail(e); } finally { done(); }
  };
  const name = (id) => systems.find((s) => s.app_id === id)?.name || id;
  page('会话授权 / Session grants',
    h('div', { class: 'card' },
      h('p', { class: 'muted' }, '授权期间，所选系统的自动签署无需手机确认；可随时取消，到期自动失效。/ While a grant lasts, that system signs for you without the phone; cancel any time.'),
      h('label', { for: 'system' }, '业务系统 / System'), h('select', { id: 'system' }, systems.map((s) => h('option', { value: s.app_id }, s.name))),
      h('label', { for: 'hours' }, '时长 / Hours'), h('select', { id: 'hours' }, [...new Set([1, 2, 4, 8, 12, maxHours])].filter((n) => n <= maxHours).sort((a, b) => a - b).map((n) => h('option', { value: n }, `${n} 小时`))),
      ...pinInput('pin', 'PIN'), go),
    h('div', { class: 'card', id: 'grantList' }, h('h2', {}, '我的授权 / My grants'),
      grants.length ? null : h('p', { class: 'muted' }, '无 / none'),
      grants.map((g) => h('div', { class: 'item' }, h('div', { style: 'flex:1' },
        h('div', { class: 't' }, `${name(g.app_id)} · ${g.state === 'active' ? '生效中 / active' : g.state}`),
        h('div', { class: 'muted' }, `至 / until ${when(g.expires_at)} · 已签 / used ${g.used_count}`)),
      g.state === 'active' ? h('button', { class: 'danger', style: 'width:auto;margin:0;padding:0 12px', onclick: async () => { try { await api('DELETE', `grants/${g.grant_id}`); toast('已取消 / cancelled'); grantsPage(); } catch (e) { fail(e); } } }, '取消 / Cancel') : null))));
}
