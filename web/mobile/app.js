// @ts-check
// medsign H5 — the doctor's phone (issue #7). Plain ES modules, no build step; served at /m/.
// Pages (hash routes): #/activate, #/enrol, #/handwriting, #/ (home), #/scan, #/sign?t=…,
// #/login?t=…, #/pending, #/grants, #/records, #/settings. The phone's half of two-party SM2 runs
// in WebAssembly (medsign-phone.js); the PIN never leaves the phone (only its verifier does), the
// share d1 is stored wrapped (localStorage) and opens only with PIN + device secret + the server's
// unlock secret. Every text is Chinese first, then English.
// Modules: api.js (the mobile API, the local store), dom.js (h() and the UI helpers), pages/*.js
// (one per page or group of pages); this file is the hash router and the start-up.
import * as phone from './medsign-phone.js';
import { store } from './api.js';
import { h, toast, page } from './dom.js';
import { activatePage, enrolPage, handwritingPage } from './pages/enrol.js';
import { homePage, scanPage } from './pages/home.js';
import { signPage, loginPage } from './pages/sign.js';
import { pendingPage } from './pages/pending.js';
import { grantsPage } from './pages/grants.js';
import { recordsPage } from './pages/records.js';
import { settingsPage } from './pages/settings.js';

// never inside another site's frame (clickjacking a sign or login page): the server's and the
// gateway's answers say so in their headers, but an exported copy on a static host may not
if (window.top !== window.self) {
  document.body.textContent = '医签不能在其他网页中打开 / medsign cannot be opened inside another page';
  throw new Error('framed');
}

// ---------------------------------------------------------------- router

/** Hash path → page. @type {Record<string, (params: URLSearchParams) => unknown>} */
const routes = {
  '/activate': activatePage, '/enrol': enrolPage, '/handwriting': handwritingPage, '/': homePage, '/scan': scanPage,
  '/sign': signPage, '/login': loginPage, '/pending': pendingPage, '/grants': grantsPage, '/records': recordsPage, '/settings': settingsPage,
};

/** Show the page for the current hash: bind first, then enrol; back to a deep link after either. */
async function route() {
  const [path, query] = (location.hash.slice(1) || '/').split('?');
  const params = new URLSearchParams(query || '');
  if (!store.get('token') && path !== '/activate') {
    if (path === '/sign' || path === '/login') store.set('after', location.hash);
    location.hash = '#/activate';
    return;
  }
  if (store.get('token') && !store.get('wrapped') && !['/enrol', '/activate'].includes(path)) {
    if (path === '/sign' || path === '/login') store.set('after', location.hash);
    location.hash = '#/enrol';
    return;
  }
  if (path === '/' && store.get('after')) {
    const after = store.get('after');
    store.set('after', null);
    location.hash = after;
    return;
  }
  try {
    await (routes[path] || homePage)(params);
  } catch (e) {
    if (e.status === 401) { location.hash = '#/activate'; return; }
    page('出错了 / Error', h('div', { class: 'card' }, h('p', { class: 'bad' }, e.message), h('a', { href: '#/' }, '返回首页 / Home')));
  }
}

window.addEventListener('hashchange', () => {
  // a message from the page before stays briefly, then makes room
  if (Date.now() - (toast.at || 0) > 1500) /** @type {HTMLElement} */ (document.getElementById('toast')).hidden = true;
  route();
});
phone.load(new URL('pkg/medsign_wasm_bg.wasm', import.meta.url)).then(route, (e) => page('出错了 / Error', h('p', { class: 'bad' }, `WebAssembly: ${e.message}`)));
