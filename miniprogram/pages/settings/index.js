// 设置 / settings: change the PIN, fingerprint approval (WeChat SOTER, R3.9) on or off, unbind.
import { ready, phone, store, halves } from '../../utils/phone.js';
import { inputs, busy, toast, fail, when } from '../../utils/ui.js';
import { call, loginCode, soter } from '../../utils/wx-platform.js';

Page({
  data: { oldPin: '', newPin: '', fpPin: '', soter: {}, since: '', supported: false, employee: '', cert: '' },
  ...inputs,
  async onShow() {
    await busy('加载中… / loading…', async () => {
      await ready();
      const st = await phone.api('GET', 'soter');
      let supported = false;
      try {
        supported = ((await call(wx.checkIsSupportSoterAuthentication)).supportMode || []).includes('fingerPrint');
      } catch { /* no SOTER on this phone */ }
      this.setData({ soter: st, since: when(st.enabled_at), supported, employee: store.get('employee') || '', cert: store.get('certSerial') || '' });
    });
  },
  async changePin() {
    const problem = await halves.pinProblem(this.data.newPin, store.get('employee') || '');
    if (problem) return toast(problem);
    await busy('修改中… / changing…', async () => {
      await ready();
      await phone.changePin(this.data.oldPin, this.data.newPin);
      this.setData({ oldPin: '', newPin: '' });
      toast('PIN 已修改 / PIN changed');
    });
  },
  /** Fingerprint approval on: with the PIN, SOTER signs the server's enrol challenge. */
  async fingerprintOn() {
    await busy('开通中… / turning on…', async () => {
      await ready();
      await phone.enableFingerprint(this.data.fpPin, await loginCode(wx), soter(wx));
      this.setData({ fpPin: '' });
      toast('指纹验证已开通 / fingerprint approval is on');
    });
    await this.onShow();
  },
  async fingerprintOff() {
    try {
      await phone.api('DELETE', 'soter');
      store.set('fingerprint', null);
      toast('指纹验证已关闭 / fingerprint approval is off');
      await this.onShow();
    } catch (e) {
      fail(e);
    }
  },
  async unbind() {
    const r = await call(wx.showModal, { title: '解绑本机 / Unbind', content: '解绑后本机的签名密钥和证书将作废，需要新的激活码才能再次使用。确定？/ The key and certificate on this phone will be revoked. Continue?' });
    if (!r.confirm) return;
    await busy('解绑中… / unbinding…', async () => {
      await ready();
      await phone.unbind();
      wx.reLaunch({ url: '/pages/activate/index' });
    });
  },
});
