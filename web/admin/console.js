// @ts-check
// medsign — the hospital's console (/admin/, issue #18): people log in with a password and a TOTP
// code (the bootstrap token only creates the first administrator), then run the hospital from
// here. Every call goes to the same /admin/v1 and /api/v1 routes an integration app uses, with
// the session cookie and `X-Medsign-Console: 1`; the server checks the person's role. Chinese
// first; "English" shows the English beside it. The pages (pages.js, the entry) call `start`.

/** @typedef {{ username: string, display_name: string, role: string }} Person */

/** The logged-in person, or null. @type {Person | null} */
export let me = null;

/**
 * An element: `h('button', { class: 'primary', onclick }, '保存', en('Save'))`.
 * @param {string} tag
 * @param {Record<string, any> | null} [attrs]
 * @param {...any} kids
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids.flat()) if (c != null && c !== false) el.append(c.nodeType ? c : String(c));
  return el;
}

/** The English beside a Chinese text, shown with the "English" toggle. @param {string} text */
export const en = (text) => h('span', { class: 'en' }, ` ${text}`);

/** A message at the bottom right (an error in red, longer). @param {string} msg @param {boolean} [error] */
export function toast(msg, error = false) {
  const d = h('div', { class: error ? 'error' : '' }, msg);
  document.getElementById('toast')?.append(d);
  setTimeout(() => d.remove(), error ? 8000 : 3500);
}

/** An API error with the server's envelope. */
export class ApiError extends Error {
  /** @param {number} status @param {any} body */
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/**
 * A JSON call with the session cookie (and, for the first administrator, the bootstrap token).
 * @param {string} method
 * @param {string} path
 * @param {any} [body]
 * @param {string} [bearer]
 */
export async function api(method, path, body, bearer) {
  /** @type {Record<string, string>} */
  const headers = { 'X-Medsign-Console': '1' };
  if (body !== undefined && !(body instanceof FormData)) headers['Content-Type'] = 'application/json';
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const res = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : body instanceof FormData ? body : JSON.stringify(body),
  });
  const text = await res.text();
  const data = text ? (() => { try { return JSON.parse(text); } catch { return text; } })() : null;
  if (res.status === 401 && !bearer && location.hash !== '#/login') { me = null; location.hash = '#/login'; }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

/** Show a failure: the server's message (Chinese / English) and its request id. @param {any} e */
export function fail(e) {
  toast(e instanceof ApiError && e.body?.request_id ? `${e.message}（${e.body.request_id}）` : String(e.message || e), true);
}

/** Disable a button while `work` runs; failures are shown. @param {HTMLElement} btn @param {() => Promise<any>} work */
export async function busy(btn, work) {
  btn.setAttribute('disabled', '');
  try { return await work(); } catch (e) { fail(e); } finally { btn.removeAttribute('disabled'); }
}

/** Replace the page: a heading and the content; focus moves to it (keyboard users land there). */
export function page(/** @type {string} */ zh, /** @type {string} */ english, /** @type {any[]} */ ...kids) {
  const view = /** @type {HTMLElement} */ (document.getElementById('view'));
  view.replaceChildren(h('h1', {}, zh, en(english)), ...kids.filter((k) => k != null && k !== false));
  document.title = `${zh} · 医签 medsign`;
  view.focus();
}

/** @typedef {{ href: string, zh: string, en: string, roles: string[] }} NavItem */
/** @type {Record<string, (q: URLSearchParams) => Promise<void>>} */
let PAGES = {};
/** @type {NavItem[]} */
let NAV = [];

function navigation() {
  const nav = /** @type {HTMLElement} */ (document.getElementById('nav'));
  const current = location.hash.split('?')[0] || '#/';
  nav.replaceChildren(...NAV.filter((n) => me && n.roles.includes(me.role)).map((n) =>
    h('a', { href: n.href, 'aria-current': n.href === current ? 'page' : null }, n.zh, en(n.en))));
  nav.hidden = !me;
  document.body.classList.toggle('public', !me);
  const who = /** @type {HTMLElement} */ (document.getElementById('who'));
  who.textContent = me ? `${me.display_name}（${me.username} · ${me.role}）` : '';
  /** @type {HTMLElement} */ (document.getElementById('logout')).hidden = !me;
}

async function route() {
  const [path, query] = (location.hash.slice(1) || '/').split('?');
  if (!me && path !== '/login' && path !== '/setup' && path !== '/enrol') {
    const st = await api('GET', '/console/v1/state');
    me = st.me;
    if (!me) {
      location.hash = st.has_people ? '#/login' : '#/setup';
      return;
    }
  }
  navigation();
  const show = PAGES[path] || PAGES['/'];
  try {
    await show(new URLSearchParams(query || ''));
  } catch (e) { fail(e); }
}

/** Log in succeeded (or the session is known): go to the dashboard. @param {Person} p */
export function loggedIn(p) {
  me = p;
  location.hash = '#/';
}

document.getElementById('lang')?.addEventListener('click', (ev) => {
  const on = document.body.classList.toggle('show-en');
  localStorage.setItem('medsign-console-en', on ? '1' : '');
  /** @type {HTMLElement} */ (ev.currentTarget).setAttribute('aria-pressed', String(on));
});
if (localStorage.getItem('medsign-console-en')) document.body.classList.add('show-en');
document.getElementById('logout')?.addEventListener('click', async () => {
  await api('POST', '/console/v1/logout').catch(() => null);
  me = null;
  location.hash = '#/login';
});
/**
 * Run the console with these pages and this menu.
 * @param {Record<string, (q: URLSearchParams) => Promise<void>>} pages
 * @param {NavItem[]} nav
 */
export function start(pages, nav) {
  PAGES = pages;
  NAV = nav;
  window.addEventListener('hashchange', route);
  route();
}
