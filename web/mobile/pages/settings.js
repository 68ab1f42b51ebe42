// @ts-check
// medsign H5 — settings (#/settings): change the PIN, fingerprint status, unbind the phone.
import * as phone from '../medsign-phone.js';
import { api, core, store } from '../api.js';
import { h, toast, page, busy, fail, pinInput, val, row, when } from '../dom.js';

/** #/settings: change the PIN, see (or turn off) fingerprint approval, the staff number and certificate, unbind. */
export async function settingsPage() {
  const soter = await api('GET', 'soter');
  const change = h('button', { class: 'primary', id: 'changePin' }, '修改 PIN / Change PIN');
  change.onclick = async () => {
    const next = val('newPin');
    const problem = await phone.pinProblem(next, store.get('employee') || '');
    if (problem) return toast(problem, true);
    const done = busy(change);
    try {
      await core.changePin(val('oldPin'), next);
      toast('PIN 已修改 / PIN changed');
    } catch (e) { fail(e); } finally { done(); }
  };
  const unbind = h('button', { class: 'danger', id: 'unbind' }, '解绑本机 / Unbind this phone');
  unbind.onclick = async () => {
    if (!confirm('解绑后本机的签名密钥和证书将作废，需要新的激活码才能再次使用。确定？/ The key and certificate on this phone will be revoked. Continue?')) return;
    try {
      await core.unbind();
      location.hash = '#/activate';
    } catch (e) { fail(e); }
  };
  // fingerprint approval (WeChat SOTER) is switched on in the mini program; here it can be seen and switched off
  const soterOff = h('button', { class: 'secondary', id: 'soterOff' }, '关闭指纹验证 / Turn fingerprint off');
  soterOff.onclick = async () => {
    try { await api('DELETE', 'soter'); toast('指纹验证已关闭 / fingerprint approval is off'); settingsPage(); } catch (e) { fail(e); }
  };
  const fingerprint = soter.enabled
    ? [row('状态 / Status', `已开通 / on · ${when(soter.enabled_at)}`), soterOff]
    : [h('p', { class: 'muted' }, soter.available
      ? '可在医院微信小程序中用 PIN 开通，之后签名时可用指纹代替 PIN。/ Turn it on in the hospital\'s WeChat mini program (with your PIN); then your fingerprint can stand in for the PIN.'
      : '本院未启用指纹验证（需要医院微信小程序），请使用 PIN。/ Fingerprint approval is not set up here (it needs the hospital\'s WeChat mini program): use the PIN.')];
  page('设置 / Settings',
    h('div', { class: 'card' }, h('h2', {}, '修改 PIN / Change PIN'), ...pinInput('oldPin', '当前 PIN / Current'), ...pinInput('newPin', '新 PIN / New'), change),
    h('div', { class: 'card', id: 'soterStatus' }, h('h2', {}, '指纹验证 / Fingerprint'), ...fingerprint),
    h('div', { class: 'card' }, row('工号 / Staff', store.get('employee')), row('证书 / Certificate', store.get('certSerial')), unbind));
}
