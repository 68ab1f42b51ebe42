// 首页 / home: who is bound, what waits, scan; a PC's QR code scanned with WeChat's own scanner
// opens the mini program here with the link in `q` ("扫普通链接二维码打开小程序").
import { ready, store, scanned, phone } from '../../utils/phone.js';
import { inputs, open, replace, fail, toast, busy, confirmName } from '../../utils/ui.js';
import { scanCode } from '../../utils/wx-platform.js';

/** The activation link from the IT department (…/m/#/activate?no=…&code=…&k=…) as page options. */
function activation(text) {
  const m = /#\/activate\?([\w=&%.-]{1,400})$/.exec(String(text || '').trim());
  return m ? `/pages/activate/index?${m[1]}` : null;
}

Page({
  data: { employee: '', pending: 0, grants: 0, certMissing: false, wecom: false, pin: '' },
  ...inputs,
  onLoad(options) {
    try {
      if (options && options.q) this.launchLink = decodeURIComponent(options.q);
    } catch {
      toast('无法识别的链接 / a link that cannot be read');
    }
  },
  async onShow() {
    try {
      await ready();
    } catch (e) {
      return fail(e);
    }
    const link = this.launchLink;
    this.launchLink = null;
    // (the activation page asks before it rebinds a bound phone)
    if (link && activation(link)) return replace(activation(link));
    if (!store.get('token')) return replace('/pages/activate/index');
    if (!store.get('wrapped')) return replace('/pages/enrol/index');
    if (link) return this.follow(link);
    try {
      const [pending, grants] = await Promise.all([phone.api('GET', 'pending'), phone.api('GET', 'grants')]);
      this.setData({
        employee: store.get('employee') || '',
        pending: pending.items.length,
        grants: grants.items.filter((g) => g.state === 'active').length,
        certMissing: !store.get('certSerial'),
        wecom: !!getApp().globalData.wecom,
      });
    } catch (e) {
      if (e.status === 401) return replace('/pages/activate/index');
      fail(e);
    }
  },
  /** Where a scanned code leads: a signing or a login of this hospital, nothing else. */
  follow(text) {
    const s = scanned(text);
    if (!s) return toast('不是医签二维码 / not a medsign QR code');
    open(`/pages/${s.kind}/index?t=${s.ticket}`);
  },
  async scan() {
    try {
      this.follow(await scanCode(wx));
    } catch (e) {
      if (!/cancel/.test(e.message)) fail(e);
    }
  },
  go(e) {
    open(e.currentTarget.dataset.url);
  },
  /** The key exists, its certificate does not yet (the CA was unreachable): ask again. */
  async requestCertificate() {
    await busy('申请证书… / requesting…', async () => {
      await ready();
      const cert = await phone.requestCertificate(this.data.pin, confirmName);
      this.setData({ certMissing: false, pin: '' });
      toast(`证书已签发 / certificate issued: ${cert.serial}`);
    });
  },
});
