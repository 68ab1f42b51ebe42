// @ts-check
// medsign H5 — making DOM (`h`) and the small UI helpers every page uses: the page frame, the
// message line (toast), busy buttons, PIN fields, rows.

const view = /** @type {HTMLElement} */ (document.getElementById('view'));
const titleEl = /** @type {HTMLElement} */ (document.getElementById('title'));
const backEl = /** @type {HTMLElement} */ (document.getElementById('back'));
backEl.onclick = () => history.back();

/**
 * An element: h('div', { class: 'card', onclick }, child, 'text', …).
 * Attributes: `on…` adds a listener, `class` sets the class name, true sets an empty attribute,
 * null/undefined/false leaves it out. Children: nodes, or anything else as text; arrays are
 * flattened one level; null/undefined/false are left out.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, any> | null} [attrs]
 * @param {...any} kids
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat()) if (c != null && c !== false) el.append(c.nodeType ? c : String(c));
  return el;
}

/**
 * Show a message at the bottom (3 s; an error 6 s, in red).
 * @param {string} msg
 * @param {boolean} [error]
 */
export function toast(msg, error = false) {
  const t = /** @type {HTMLElement} */ (document.getElementById('toast'));
  toast.at = Date.now();
  t.textContent = msg;
  t.className = error ? 'error' : '';
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, error ? 6000 : 3000);
}
/** When the last message was shown (ms since the epoch); the router lets it stay briefly. @type {number | undefined} */
toast.at = undefined;
/** @type {ReturnType<typeof setTimeout> | undefined} */
toast.timer = undefined;

/**
 * Show a page: the title bar (and the back button, except on home and activation), the content.
 * @param {string} title
 * @param {...(Node | string)} kids
 */
export function page(title, ...kids) {
  titleEl.textContent = title;
  backEl.hidden = location.hash === '#/' || location.hash === '' || location.hash.startsWith('#/activate');
  // a page leaves out what does not apply by passing null or false; never show it as text
  view.replaceChildren(...kids.filter((k) => k != null && k !== false));
  document.title = `${title} · 医签 medsign`;
}

/**
 * Disable a button and show `text` on it while something runs; returns the function that restores it.
 * @param {HTMLButtonElement} btn
 * @param {string} [text]
 * @returns {() => void}
 */
export function busy(btn, text = '请稍候… / please wait…') {
  const old = btn.textContent;
  btn.disabled = true;
  btn.textContent = text;
  return () => { btn.disabled = false; btn.textContent = old; };
}

/**
 * An error as a red message.
 * @param {any} e
 */
export function fail(e) {
  toast(e.message || String(e), true);
}

/** A PIN field and its label. @type {(id: string, label: string) => [HTMLLabelElement, HTMLInputElement]} */
export const pinInput = (id, label) => [h('label', { for: id }, label), h('input', { id, class: 'pin', type: 'password', inputmode: 'numeric', autocomplete: 'off', maxlength: 12 })];
/** A field's value, trimmed. @type {(id: string) => string} */
export const val = (id) => /** @type {HTMLInputElement} */ (document.getElementById(id)).value.trim();
/** A key/value row; no value shows '—'. @type {(k: string, v: string | null | undefined) => HTMLDivElement} */
export const row = (k, v) => h('div', { class: 'row' }, h('span', { class: 'k' }, k), h('span', { class: 'v' }, v ?? '—'));
/** A time, local and 24-hour; none shows '—'. @type {(t: string | number | null | undefined) => string} */
export const when = (t) => (t ? new Date(t).toLocaleString('zh-CN', { hour12: false }) : '—');
