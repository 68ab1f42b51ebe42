// The demo host: a hospital's own mini program scanning a PC's code; signing continues in medsign.
const medsign = requirePlugin('medsign');

Page({
  data: { link: '', appId: 'wx0123456789abcdef', done: '' },
  onLoad() {
    medsign.configure({ appId: this.data.appId });
  },
  onShow() {
    if (!this.handed) return;
    const back = medsign.outcome(wx.getEnterOptionsSync().referrerInfo, this.handed);
    this.handed = null;
    if (back) this.setData({ done: `${back.ticket}: ${back.state}`, link: '' });
  },
  scan() {
    wx.scanCode({ onlyFromCamera: true, success: (r) => this.setData({ link: r.result, done: '' }) });
  },
  open(e) {
    this.handed = e.detail.ticket;
    wx.navigateToMiniProgram({ appId: e.detail.appId, path: e.detail.path, extraData: { from: 'plugin' } });
  },
});
