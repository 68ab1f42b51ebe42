// 确认签署 / confirm a scanned signing (…/m/#/sign?t=…): the summary and the document (R2.4),
// then the PIN or the fingerprint.
import { ready, phone } from '../../utils/phone.js';
import { busy, home, toast, hasFingerprint } from '../../utils/ui.js';
import { soter } from '../../utils/wx-platform.js';

Page({
  data: { state: 'loading', error: '', summary: {}, text: '', pages: [], truncated: false, matches: true, fingerprint: false, busy: false, result: '' },
  async onLoad(q = {}) {
    await ready();
    try {
      this.rounds = await phone.openRounds([{ ticket: String(q.t || '') }]);
    } catch (e) {
      this.setData({ state: 'error', error: e.message });
      return;
    }
    const round = this.rounds[0];
    let v = { matches: true };
    try {
      v = await phone.view(round);
    } catch (e) {
      toast(e.message);
    }
    this.setData({
      state: 'confirm', summary: round.summary, text: v.text || '', pages: v.pages || [], truncated: !!v.truncated,
      matches: v.matches !== false, fingerprint: hasFingerprint(),
    });
  },
  /** `confirm` of <sign-confirm>: { pin } or { fingerprint: true }. */
  async onConfirm(e) {
    const how = e.detail.fingerprint ? { fingerprint: { soter: soter(wx) } } : { pin: e.detail.pin };
    this.setData({ busy: true });
    await busy('正在签署… / signing…', async () => {
      await ready();
      const results = await phone.signRounds(this.rounds, how);
      if (results[0].error) throw new Error(results[0].error);
      this.setData({ state: 'signed', result: results[0].state });
    });
    this.setData({ busy: false });
  },
  onInvalid(e) {
    toast(e.detail.reason);
  },
  onCancel() {
    home();
  },
});
