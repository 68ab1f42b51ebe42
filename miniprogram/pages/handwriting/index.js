// 手写签名 / handwriting on a 2d canvas; the doctor approves this very image (its SM3) with the
// PIN before it is stored, so a stolen session cannot replace it.
import { ready, phone } from '../../utils/phone.js';
import { inputs, busy, toast, home } from '../../utils/ui.js';
import { call } from '../../utils/wx-platform.js';

Page({
  data: { pin: '', strokes: 0 },
  ...inputs,
  onReady() {
    this.lines = [];
    wx.createSelectorQuery().in(this).select('#pad').fields({ node: true, size: true }).exec((res) => {
      const r = res && res[0];
      if (!r || !r.node) return;
      const ratio = (wx.getWindowInfo ? wx.getWindowInfo() : wx.getSystemInfoSync()).pixelRatio || 2;
      r.node.width = r.width * ratio;
      r.node.height = r.height * ratio;
      const ctx = r.node.getContext('2d');
      ctx.scale(ratio, ratio);
      ctx.lineCap = 'round';
      ctx.lineJoin = 'round';
      ctx.lineWidth = 4;
      ctx.strokeStyle = '#111a3a';
      this.canvas = r.node;
      this.ctx = ctx;
    });
  },
  start(e) {
    const t = e.touches[0];
    this.lines.push([{ x: t.x, y: t.y }]);
  },
  move(e) {
    const line = this.lines[this.lines.length - 1];
    if (!line || !this.ctx) return;
    const t = e.touches[0];
    const last = line[line.length - 1];
    line.push({ x: t.x, y: t.y });
    this.ctx.beginPath();
    this.ctx.moveTo(last.x, last.y);
    this.ctx.lineTo(t.x, t.y);
    this.ctx.stroke();
  },
  end() {
    this.setData({ strokes: this.lines.filter((l) => l.length > 1).length });
  },
  clear() {
    this.lines = [];
    if (this.ctx) this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.setData({ strokes: 0 });
  },
  async save() {
    if (!this.lines.some((l) => l.length > 1)) return toast('请先手写签名 / please sign first');
    await busy('保存中… / saving…', async () => {
      const { tempFilePath } = await call(wx.canvasToTempFilePath, { canvas: this.canvas, fileType: 'png' });
      const png = new Uint8Array(wx.getFileSystemManager().readFileSync(tempFilePath));
      await ready();
      await phone.saveHandwriting(png, this.data.pin);
      toast('手写签名已保存 / handwriting saved');
      home();
    });
  },
  later() {
    home();
  },
});
