// 确认签署 / confirm a scanned signing (…/m/#/sign?t=…): the summary and the document (R2.4),
// then the PIN or the fingerprint.
import { ready, phone } from '../../utils/phone.js';
import { busy, home, toast, hasFingerprint, backToCaller } from '../../utils/ui.js';
import { soter } from '../../utils/wx-platform.js';

Page({
  data: { state: 'loading', error: '', summary: {}, text: '', pages: [], truncated: false, matches: true, fingerprint: false, busy: false, result: '' },
  async onLoad(q = {}) {
    this.ticket = String(q.t || '');
    try {
      await ready();
      this.rounds = await phone.openRounds([{ ticket: this.ticket }]);
    } catch (e) {
      this.setData({ state: 'error', error: e.message });
      return;
    }
    const round = this.rounds[0];
    let v;
    try {
      v = await phone.view(round);
    } catch (e) {
      // the document did not arrive (a dropped call, a server error): nothing is signed unseen —
      // only a hospital that shows the summary alone (403, `hidden`) signs without it
      this.setData({ state: 'error', error: `文档内容未能显示，不能签署，请重新扫码 / the document could not be shown, so it cannot be signed: scan again (${e.message})` });
      return;
    }
    this.setData({
      state: 'confirm', summary: round.summary, text: v.text || '', pages: v.pages || [], truncated: !!v.truncated,
      matches: v.matches !== false, fingerprint: hasFingerprint(),
    });
  },
  /** `confirm` of <sign-confirm>: { pin } or { fingerprint: true }. */
  async onConfirm(e) {
    if (this.data.state !== 'confirm' || !this.data.matches) return;
    const how = e.detail.fingerprint ? { fingerprint: { soter: soter(wx) } } : { pin: e.detail.pin };
    this.setData({ busy: true });
    await busy('正在签署… / signing…', async () => {
      await ready();
      const results = await phone.signRounds(this.rounds, how);
      if (results[0].error) throw new Error(results[0].error);
      this.setData({ state: 'signed', result: results[0].state });
    });
    this.setData({ busy: false });
    if (this.data.state === 'signed') backToCaller(this.ticket, 'signed');
  },
  onInvalid(e) {
    toast(e.detail.reason);
  },
  onCancel() {
    if (!backToCaller(this.ticket, this.data.state === 'signed' ? 'signed' : 'cancelled')) home();
  },
});
