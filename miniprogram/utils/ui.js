// medsign mini program — what every page shares: navigation, busy and error display, inputs,
// and the approval (PIN or fingerprint) a signing takes.
import { call, soter } from './wx-platform.js';
import { store } from './phone.js';

/** Document kinds as shown. */
export const KIND = { data: '数据 / data', file: 'PDF 文件 / PDF' };

/** China Standard Time, minutes. */
export function when(iso) {
  if (!iso) return '';
  const t = new Date(new Date(iso).getTime() + 8 * 3600e3);
  const p = (n) => String(n).padStart(2, '0');
  return `${t.getUTCFullYear()}-${p(t.getUTCMonth() + 1)}-${p(t.getUTCDate())} ${p(t.getUTCHours())}:${p(t.getUTCMinutes())}`;
}

export const open = (url) => wx.navigateTo({ url });
export const replace = (url) => wx.redirectTo({ url });
export const home = () => wx.reLaunch({ url: '/pages/home/index' });
export const toast = (title) => wx.showToast({ title, icon: 'none', duration: 2500 });

/** Show the error's message (the server's, Chinese first) in a dialog. */
export function fail(e) {
  wx.showModal({ title: '出错了 / Error', content: String(e?.message || e), showCancel: false });
}

/**
 * Run `fn` with a loading mask; errors are shown, not thrown. Resolves to fn's value or undefined.
 * (`noConflict`: closing the mask must not close a toast `fn` showed.)
 */
export async function busy(title, fn) {
  wx.showLoading({ title, mask: true });
  try {
    return await fn();
  } catch (e) {
    wx.hideLoading({ noConflict: true });
    fail(e);
    return undefined;
  } finally {
    wx.hideLoading({ noConflict: true });
  }
}

/** Page methods for `<input data-name="x" bindinput="onInput">` and `<switch data-name="x" bindchange="onInput">`. */
export const inputs = {
  onInput(e) {
    this.setData({ [e.currentTarget.dataset.name]: e.detail.value });
  },
};

/**
 * Back to the mini program that handed this signing over (the plugin's host), with the outcome:
 * `signed`, `logged_in`, `refused` or `cancelled`. False when nobody handed it over.
 */
export function backToCaller(ticket, state) {
  const app = getApp();
  const caller = app && app.globalData.caller;
  if (!caller || caller.ticket !== ticket) return false;
  app.globalData.caller = null;
  wx.navigateBackMiniProgram({ extraData: { ticket, state }, fail: () => home() });
  return true;
}

/** The mini program that opened this page with `ticket`, if one did. */
export function calledBy(ticket) {
  const caller = getApp()?.globalData.caller;
  return caller && caller.ticket === ticket ? caller.appId : null;
}

/** Whether fingerprint approval is on for this phone (a fingerprint copy of the share is stored). */
export const hasFingerprint = () => !!store.get('fingerprint');

/** The approval of a signing: the fingerprint (WeChat SOTER) when chosen, else the PIN typed. */
export function approval(page) {
  return page.data.useFingerprint && hasFingerprint() ? { fingerprint: { soter: soter(wx) } } : { pin: page.data.pin || '' };
}

/** The doctor confirms the name an outside CA's certificate will carry (read from the request the phone signs). */
export async function confirmName(name) {
  const r = await call(wx.showModal, {
    title: '申请证书 / Certificate',
    content: `将以「${name}」的名义申请签名证书。确定？/ Request a signing certificate in the name of ${name}?`,
  });
  return !!r.confirm;
}
