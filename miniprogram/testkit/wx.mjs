// A recording `wx` for the mini program's tests under Node (WeChat itself cannot run here). It is a
// MOCK of WeChat's client API, written from WeChat's documentation: `wx.request` really goes to the
// network (the configured server address is mapped to a local gateway, as DNS would), storage is a
// Map that remembers whether each write asked for encryption, WXWebAssembly loads the package's
// file by its path with Node's WebAssembly, `wx.getRandomValues` is Node's CSPRNG, and the rest
// (login, face verification, SOTER, scan, dialogs, navigation, canvas) records the call and
// answers as the test set it up. Every call is in `wx.calls` ([api, args]).
//
// What WeChat's JavaScript lacks and the browser has — crypto.getRandomValues, TextEncoder,
// TextDecoder, btoa/atob, WebAssembly as a global API — is taken away, so the mini program's own
// replacements (utils/wx-platform.js) are what runs.
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { deflateSync, crc32 } from 'node:zlib';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';

/** The mini program's folder. */
export const MP = fileURLToPath(new URL('../', import.meta.url));

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  throw new Error(`需要 Node 20.19 以上 / the mini program's tests need Node 20.19 or later (ES module syntax detection), not ${process.versions.node}`);
}

const RealWebAssembly = globalThis.WebAssembly;
const realFetch = globalThis.fetch;

/** A PNG of `w`×`h` grey pixels with dark strokes where `ink(x, y)` — what the canvas exports. */
export function png(w, h, ink) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  const raw = Buffer.alloc((w * 4 + 1) * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = y * (w * 4 + 1) + 1 + x * 4;
      if (ink(x, y)) raw.set([17, 26, 58, 255], o);
    }
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/**
 * The mock. `server`: the real base URL the configured address (https://sign.example) maps to.
 * `env.environment`: 'wxwork' in WeCom. Queues the test fills: `scans` (what wx.scanCode reads),
 * `modal` (the answer to wx.showModal, default confirm), `tee` (what answers
 * wx.startSoterAuthentication), `faced(verifyId)` (WeChat's side of face verification), `openid`.
 */
export function makeWx({ server, environment, faced, openid = 'oMP' } = {}) {
  const calls = [];
  const storage = new Map(); // key → { data, encrypt }
  const nav = [];
  const tmp = mkdtempSync(join(tmpdir(), 'medsign-mp-'));
  const ok = (args, v) => { queueMicrotask(() => { args.success?.(v); args.complete?.(v); }); };
  const no = (args, errMsg) => { queueMicrotask(() => { args.fail?.({ errMsg }); args.complete?.({ errMsg }); }); };
  const rec = (api, args) => calls.push([api, args && typeof args === 'object' ? { ...args } : args]);
  const wx = {
    calls, storage, nav, scans: [], modal: true, tee: null, openid,
    request(a) {
      rec('request', { url: a.url, method: a.method, header: a.header });
      if (!/^https:\/\//.test(a.url)) return no(a, 'request:fail url not in domain list');
      // a hostile gateway: the next n-th sealed call is dropped with a clear-text 502
      if (a.url.endsWith('/mobile/v1/sealed') && wx.dropSealed && --wx.dropSealed === 0) {
        const statusCode = wx.dropStatus || 502;
        return ok(a, { statusCode, data: JSON.stringify({ code: statusCode === 403 ? 'forbidden' : 'bad_gateway', message: '网关 / gateway' }) });
      }
      const url = a.url.replace(/^https:\/\/sign\.example/, server);
      realFetch(url, { method: a.method || 'GET', headers: a.header, body: a.data })
        .then(async (r) => ok(a, { statusCode: r.status, data: await r.text(), header: Object.fromEntries(r.headers) }))
        .catch((e) => no(a, `request:fail ${e.message}`));
    },
    getStorage(a) {
      rec('getStorage', a);
      const v = storage.get(a.key);
      if (!v) return no(a, 'getStorage:fail data not found');
      if (!!v.encrypt !== !!a.encrypt) return no(a, 'getStorage:fail encrypt mismatch');
      ok(a, { data: v.data });
    },
    setStorage(a) {
      rec('setStorage', a);
      if (wx.storageFull) return no(a, 'setStorage:fail exceed storage max size 10MB');
      storage.set(a.key, { data: a.data, encrypt: !!a.encrypt });
      ok(a, {});
    },
    removeStorage(a) { rec('removeStorage', a); storage.delete(a.key); ok(a, {}); },
    getRandomValues(a) { rec('getRandomValues', a); ok(a, { randomValues: new Uint8Array(randomBytes(a.length)).buffer }); },
    login(a) { rec('login', a); ok(a, { code: `code-${wx.openid}` }); },
    qy: { login(a) { rec('qy.login', a); ok(a, { code: wx.wecomCode || `wecom-${wx.openid}` }); } },
    getSystemInfoSync() { return { environment, model: 'FAKE phone', pixelRatio: 2, platform: 'devtools' }; },
    getWindowInfo() { return { pixelRatio: 2, windowWidth: 375, windowHeight: 667 }; },
    scanCode(a) {
      rec('scanCode', a);
      const r = wx.scans.shift();
      return r ? ok(a, { result: r, scanType: 'QR_CODE' }) : no(a, 'scanCode:fail cancel');
    },
    requestFacialVerify(a) {
      rec('requestFacialVerify', a);
      return !wx.faceFails && faced && faced(a.verifyId) ? ok(a, { errCode: 0, verifyResult: 'fake' }) : no(a, 'requestFacialVerify:fail face not matched');
    },
    checkIsSupportSoterAuthentication(a) { rec('checkIsSupportSoterAuthentication', a); ok(a, { supportMode: wx.tee ? ['fingerPrint'] : [] }); },
    startSoterAuthentication(a) {
      rec('startSoterAuthentication', a);
      if (!wx.tee) return no(a, 'startSoterAuthentication:fail not supported');
      wx.tee(a.challenge).then((r) => ok(a, r), (e) => no(a, String(e)));
    },
    showModal(a) { rec('showModal', a); ok(a, { confirm: wx.modal, cancel: !wx.modal, ...(a.editable ? { content: wx.modalText ?? '' } : {}) }); },
    showToast(a) { rec('showToast', a); },
    showLoading(a) { rec('showLoading', a); },
    hideLoading(a) { rec('hideLoading', a); },
    canIUse(what) { rec('canIUse', what); return what === 'setStorage.object.encrypt' && !wx.oldWechat; },
    navigateTo(a) { nav.push(['navigateTo', a.url]); },
    redirectTo(a) { nav.push(['redirectTo', a.url]); },
    reLaunch(a) { nav.push(['reLaunch', a.url]); },
    navigateBackMiniProgram(a) { nav.push(['navigateBackMiniProgram', a.extraData]); },
    /** The canvas 2d node of `#pad`: records what is drawn; exported as a PNG of the strokes. */
    createSelectorQuery() {
      const q = {
        in: () => q, select: () => q, fields: () => q,
        exec(cb) {
          const ops = [];
          const ctx = new Proxy({}, { get: (_, k) => (k in ctx_props ? ctx_props[k] : (...args) => ops.push([k, ...args])), set: () => true });
          const ctx_props = {};
          const node = { width: 0, height: 0, ops, getContext: () => ctx };
          wx.canvas = node;
          cb([{ node, width: 300, height: 120 }]);
        },
      };
      return q;
    },
    canvasToTempFilePath(a) {
      rec('canvasToTempFilePath', { fileType: a.fileType });
      const lines = (a.canvas?.ops || []).filter((o) => o[0] === 'lineTo').length;
      if (!lines) return no(a, 'canvasToTempFilePath:fail empty');
      const file = join(tmp, `pad-${calls.length}.png`);
      writeFileSync(file, png(300, 120, (x, y) => Math.abs(y - 60 - 20 * Math.sin(x / 15)) < 3));
      ok(a, { tempFilePath: file });
    },
    getFileSystemManager() {
      return { readFileSync: (p) => { const b = readFileSync(p); return b.buffer.slice(b.byteOffset, b.byteOffset + b.length); } };
    },
  };
  return wx;
}

/**
 * Make this process look like WeChat's JavaScript: the mock as `wx`, WXWebAssembly loading package
 * files, no browser crypto or text codecs.
 */
export function becomeWechat(wx) {
  globalThis.wx = wx;
  globalThis.WXWebAssembly = {
    instantiate(path, imports) {
      wx.calls.push(['WXWebAssembly.instantiate', path]);
      return RealWebAssembly.instantiate(readFileSync(join(MP, path)), imports);
    },
  };
  for (const k of ['crypto', 'TextEncoder', 'TextDecoder', 'btoa', 'atob']) {
    Object.defineProperty(globalThis, k, { value: undefined, configurable: true, writable: true });
  }
}

/**
 * Load a page (or the app) as WeChat would: its module registers itself with Page() / App(); the
 * instance gets `data` (a copy), `setData` and the methods. Resolves to the instance.
 */
const registered = new Map();

export async function loadPage(path) {
  if (!registered.has(path)) {
    let config = null;
    globalThis.Page = (c) => { config = c; };
    globalThis.App = (c) => { config = c; };
    await import(pathToFileURL(join(MP, path)).href);
    if (!config) throw new Error(`${path} registered nothing`);
    registered.set(path, config);
  }
  const config = registered.get(path);
  const page = { ...config, data: structuredClone(config.data || {}) };
  page.setData = (d) => Object.assign(page.data, structuredClone(d));
  return page;
}

/** This process as WeChat running the mini program on `wx`: the app launched, `getApp()` answering. */
export async function launch(wx) {
  becomeWechat(wx);
  const app = await loadPage('app.js');
  app.onLaunch();
  globalThis.getApp = () => app;
  return app;
}

/** A tap or input event as WeChat delivers it. */
export const ev = (value, dataset = {}) => ({ detail: { value }, currentTarget: { dataset } });

/**
 * WeChat's component simulator and compilers (npm: miniprogram-simulate, miniprogram-compiler, as
 * scripts/test installs them beside playwright-core), with jsdom's window as the globals they use.
 */
export function simulator() {
  const modules = process.env.MEDSIGN_TEST_NODE_MODULES || join(homedir(), '.cache/medsign-test-tools/node/node_modules');
  const need = createRequire(join(modules, 'x.js'));
  const { JSDOM } = need('jsdom');
  const dom = new JSDOM('<!doctype html><html><body></body></html>');
  for (const k of ['window', 'document', 'navigator', 'HTMLElement', 'Node', 'Event', 'CustomEvent', 'MutationObserver', 'Touch', 'TouchEvent']) {
    Object.defineProperty(globalThis, k, { value: dom.window[k], configurable: true, writable: true });
  }
  return { simulate: need('miniprogram-simulate'), compiler: need('miniprogram-compiler') };
}
