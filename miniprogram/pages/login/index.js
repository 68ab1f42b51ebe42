// 扫码登录 / scan-to-login (…/m/#/login?t=…): confirm with the PIN (signing its challenge) or refuse.
import { ready, phone } from '../../utils/phone.js';
import { busy, home, toast, fail, when, backToCaller, calledBy } from '../../utils/ui.js';

Page({
  data: { state: 'loading', error: '', system: '', until: '', summary: {}, busy: false },
  async onLoad(q = {}) {
    this.ticket = String(q.t || '');
    // a login code handed over by another mini program could be anyone's PC: logins are confirmed
    // only from medsign's own scanner
    if (calledBy(this.ticket)) {
      this.setData({ state: 'error', error: '扫码登录只能用医签自己的"扫一扫" / scan-to-login works only from medsign\'s own scanner' });
      backToCaller(this.ticket, 'refused');
      return;
    }
    try {
      await ready();
      this.scannedTicket = await phone.api('POST', `login-tickets/${encodeURIComponent(this.ticket)}/scan`);
    } catch (e) {
      this.setData({ state: 'error', error: e.message });
      return;
    }
    const system = this.scannedTicket.system;
    this.setData({ state: 'confirm', system, summary: { title: `登录 ${system} / Log in` }, until: when(this.scannedTicket.expires_at) });
  },
  async onConfirm(e) {
    if (this.data.state !== 'confirm') return;
    this.setData({ busy: true });
    await busy('登录中… / logging in…', async () => {
      await ready();
      const results = await phone.signRounds([this.scannedTicket.round], { pin: e.detail.pin });
      if (results[0].error) throw new Error(results[0].error);
      this.setData({ state: 'done' });
    });
    this.setData({ busy: false });
    if (this.data.state === 'done') backToCaller(this.ticket, 'logged_in');
  },
  async refuse() {
    try {
      await phone.api('POST', `login-tickets/${encodeURIComponent(this.ticket)}/refuse`);
      toast('已拒绝 / refused');
      if (!backToCaller(this.ticket, 'refused')) home();
    } catch (e) {
      fail(e);
    }
  },
  onInvalid(e) {
    toast(e.detail.reason);
  },
  onCancel() {
    if (!backToCaller(this.ticket, this.data.state === 'done' ? 'logged_in' : 'cancelled')) home();
  },
});
