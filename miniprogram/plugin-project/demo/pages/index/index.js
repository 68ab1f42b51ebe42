// The demo host: a hospital's own mini program scanning and signing through the plugin.
const medsign = requirePlugin('medsign');

Page({
  data: { doc: null, done: '' },
  onLoad() {
    medsign.configure({ server: 'https://sign.example' });
  },
  async scan() {
    try {
      this.setData({ doc: await medsign.scanToSign(), done: '' });
    } catch (e) {
      wx.showModal({ title: '出错了 / Error', content: e.message, showCancel: false });
    }
  },
  async onConfirm(e) {
    try {
      const [r] = await medsign.sign(this.data.doc.rounds, e.detail);
      this.setData({ doc: null, done: r.error || r.state });
    } catch (err) {
      wx.showModal({ title: '出错了 / Error', content: err.message, showCancel: false });
    }
  },
});
