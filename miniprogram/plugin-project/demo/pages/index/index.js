// The demo host: a hospital's own mini program scanning a PC's code; signing continues in medsign.
const medsign = requirePlugin('medsign');

Page({
  data: { link: '', appId: 'wx0123456789abcdef', done: '' },
  onLoad() {
    medsign.configure({ appId: this.data.appId });
  },
  onShow() {
    const back = medsign.outcome(wx.getEnterOptionsSync().referrerInfo);
    if (back) this.setData({ done: `${back.ticket}: ${back.state}`, link: '' });
  },
  scan() {
    wx.scanCode({ onlyFromCamera: true, success: (r) => this.setData({ link: r.result, done: '' }) });
  },
  open(e) {
    wx.navigateToMiniProgram({ appId: e.detail.appId, path: e.detail.path, extraData: { from: 'plugin' } });
  },
});
