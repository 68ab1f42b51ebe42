// 绑定手机 / bind: staff number + the one-time activation code. The activation link (or its QR
// code) may bring the servers' channel fingerprint (`k`): pinned before the first call; a pin this
// phone already holds is replaced only when the doctor confirms that the IT department gave them
// the code in person (after the servers' key was compromised).
import { ready, store, phone } from '../../utils/phone.js';
import { inputs, replace, busy, fail, toast } from '../../utils/ui.js';
import { call, wecomCode } from '../../utils/wx-platform.js';

const HEX64 = /^[0-9a-f]{64}$/;

Page({
  data: { no: '', code: '', device: '手机', differs: false },
  ...inputs,
  async onLoad(q = {}) {
    try {
      await ready();
    } catch (e) {
      return fail(e);
    }
    const k = String(q.k || '').toLowerCase();
    if (HEX64.test(k) && !store.get('channel')) store.set('channel', k);
    let device = '手机';
    try {
      device = wx.getSystemInfoSync().model || device;
    } catch { /* keep the default */ }
    this.k = k;
    this.setData({ no: q.no || '', code: q.code || '', device, differs: HEX64.test(k) && store.get('channel') !== k });
  },
  async repin() {
    // the doctor types the start of the fingerprint the IT department shows them (the console's
    // activation card), so a link alone — from anyone — cannot move the pin
    const r = await call(wx.showModal, { title: '改用新的服务器密钥 / Trust the new server key', editable: true,
      placeholderText: '信息科给出的服务器指纹前 8 位 / first 8 characters of the server fingerprint from IT' });
    if (!r.confirm) return;
    if (String(r.content || '').trim().toLowerCase() !== this.k.slice(0, 8)) {
      toast('指纹不符，未改用 / the fingerprint does not match; nothing changed');
      return;
    }
    phone.repin(this.k);
    this.setData({ differs: false });
  },
  async bind() {
    // a bound phone is not rebound without the doctor's say: binding again replaces its key
    if (store.get('token')) {
      const r = await call(wx.showModal, { title: '重新绑定 / Bind again', content: `本机已绑定工号 ${store.get('employee') || ''}。重新绑定会作废本机现有的签名密钥。继续？/ This phone is bound; binding again revokes its signing key. Continue?` });
      if (!r.confirm) return;
    }
    await busy('绑定中… / binding…', async () => {
      await ready();
      // inside WeCom the employee's own WeCom login goes with the code (the server checks it is theirs)
      const wecom = await wecomCode(wx);
      await phone.activate({ employeeNo: this.data.no.trim(), code: this.data.code.trim(), deviceName: this.data.device || '手机', wecomCode: wecom });
      replace('/pages/enrol/index');
    });
  },
});
