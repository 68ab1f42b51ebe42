// @ts-check
// medsign H5 — confirming a scanned signature (#/sign?t=…) or login (#/login?t=…) with the PIN.
import { api, core } from '../api.js';
import { h, toast, page, busy, fail, pinInput, val, row, when } from '../dom.js';
import { KIND, signRounds } from './common.js';

/**
 * What is being signed: title, kind, number, pages, signer order, created, SM3.
 * @param {any} s a sign round's summary
 */
function summaryCard(s) {
  return h('div', { class: 'card' },
    h('h2', {}, s.title),
    row('类型 / Type', KIND[s.kind] || s.kind),
    row('单号 / No.', s.doc_no),
    s.pages ? row('页数 / Pages', String(s.pages)) : null,
    row('签署顺序 / Signer', `${s.signer_index + 1} / ${s.signers}`),
    row('发起 / Created', when(s.created_at)),
    h('div', { class: 'row' }, h('span', { class: 'k' }, 'SM3'), h('span', { class: 'v digest' }, s.content_sm3)));
}

/**
 * The document itself as text (R2.4), made on the server from exactly what the round signs and
 * carried end-to-end encrypted: a data flow's content (checked here against the summary's SM3), or
 * a PDF's text page by page. Null when the hospital shows the summary only.
 * @param {any} round
 * @returns {Promise<{ card: HTMLElement | null, matches: boolean }>}
 */
async function docView(round) {
  let v;
  try {
    v = await core.view(round);
  } catch (e) {
    // the document did not arrive: nothing is signed unseen
    return { card: h('div', { class: 'card' }, h('p', { class: 'bad', id: 'docMissing' }, `文档内容未能显示，不能签署，请重新扫码 / the document could not be shown, so it cannot be signed: scan again (${e.message})`)), matches: false };
  }
  if (v.hidden) return { card: null, matches: true };
  const title = h('h2', {}, '文档内容 / The document');
  const cut = v.truncated ? h('p', { class: 'muted' }, '内容较长，只显示开头部分。/ Long document: the beginning is shown.') : null;
  if (v.text != null) {
    return { matches: v.matches, card: h('div', { class: 'card', id: 'docView' }, title, h('pre', { class: 'doc' }, v.text),
      v.matches ? h('p', { class: 'ok', id: 'docMatches' }, '✓ 与将要签署的内容一致（SM3）/ matches what will be signed (SM3)')
        : h('p', { class: 'bad', id: 'docMatches' }, '✗ 与将要签署的内容不一致，请勿签署 / does NOT match what would be signed: do not sign')) };
  }
  if (v.pages) {
    return { matches: true, card: h('div', { class: 'card', id: 'docView' }, title,
      ...v.pages.map((t, i) => h('div', {}, h('p', { class: 'muted' }, `第 ${i + 1} 页 / Page ${i + 1}`), h('pre', { class: 'doc' }, t))), cut) };
  }
  return { matches: true, card: h('div', { class: 'card', id: 'docView' }, title, h('p', { class: 'muted' }, '非文本内容，只显示摘要。/ Not text: the summary only.')) };
}

/**
 * #/sign?t=…: open a round for the ticket, show the summary, sign with the PIN.
 * @param {URLSearchParams} params
 */
export async function signPage(params) {
  const t = params.get('t');
  let rounds;
  try {
    rounds = await core.openRounds([{ ticket: t }]);
  } catch (e) {
    return page('签署 / Sign', h('div', { class: 'card' }, h('p', { class: 'bad', id: 'signError' }, e.message), h('a', { href: '#/' }, '返回首页 / Home')));
  }
  const go = h('button', { class: 'primary', id: 'confirmSign' }, '确认签署 / Sign');
  go.onclick = async () => {
    const done = busy(go, '正在签署… / signing…');
    try {
      const results = await signRounds(rounds, val('pin'));
      if (results[0].error) throw new Error(results[0].error);
      page('签署完成 / Signed', h('div', { class: 'card', id: 'signed' }, h('h2', { class: 'ok' }, '✓ 已签署 / Signed'), row('文档 / Document', rounds[0].summary.title), row('状态 / State', results[0].state)), h('a', { href: '#/' }, '返回首页 / Home'));
    } catch (e) { fail(e); } finally { done(); }
  };
  const view = await docView(rounds[0]);
  if (!view.matches) go.disabled = true;
  page('确认签署 / Confirm', summaryCard(rounds[0].summary), view.card,
    h('div', { class: 'card' }, h('p', { class: 'muted' }, '核对无误后输入 PIN 签署。文档内容只经端到端加密通道传到手机。/ Check, then enter your PIN. The document reaches the phone only end-to-end encrypted.'), ...pinInput('pin', 'PIN'), go,
      h('button', { class: 'secondary', onclick: () => { location.hash = '#/'; } }, '取消 / Cancel')));
}

/**
 * #/login?t=…: scan the login ticket, confirm with the PIN (signing its challenge) or refuse.
 * @param {URLSearchParams} params
 */
export async function loginPage(params) {
  const t = params.get('t');
  let scanned;
  try {
    scanned = await api('POST', `login-tickets/${encodeURIComponent(t)}/scan`);
  } catch (e) {
    return page('扫码登录 / Login', h('div', { class: 'card' }, h('p', { class: 'bad', id: 'loginError' }, e.message), h('a', { href: '#/' }, '返回首页 / Home')));
  }
  const go = h('button', { class: 'primary', id: 'confirmLogin' }, '确认登录 / Log in');
  go.onclick = async () => {
    const done = busy(go);
    try {
      const results = await signRounds([scanned.round], val('pin'));
      if (results[0].error) throw new Error(results[0].error);
      page('已登录 / Logged in', h('div', { class: 'card', id: 'loggedIn' }, h('h2', { class: 'ok' }, `✓ 已登录 ${scanned.system}`), h('p', { class: 'muted' }, '电脑端将自动进入系统。/ The PC continues by itself.')), h('a', { href: '#/' }, '返回首页 / Home'));
    } catch (e) { fail(e); } finally { done(); }
  };
  const refuse = h('button', { class: 'danger', id: 'refuseLogin' }, '拒绝 / Refuse');
  refuse.onclick = async () => {
    try { await api('POST', `login-tickets/${encodeURIComponent(t)}/refuse`); toast('已拒绝 / refused'); location.hash = '#/'; } catch (e) { fail(e); }
  };
  page('扫码登录 / Login',
    h('div', { class: 'card' }, h('h2', {}, `登录 ${scanned.system}`), row('系统 / System', scanned.system), row('有效期至 / Until', when(scanned.expires_at))),
    h('div', { class: 'card' }, h('p', { class: 'muted' }, '不是您本人在电脑前操作，请拒绝。/ Refuse if you are not at that PC.'), ...pinInput('pin', 'PIN'), go, refuse));
}
