// 待签文档 / waiting for this doctor: all ticked, signed in a batch with one PIN (or fingerprint).
import { ready, phone } from '../../utils/phone.js';
import { inputs, busy, toast, approval, hasFingerprint, KIND, when } from '../../utils/ui.js';

Page({
  data: { items: [], selected: [], pin: '', fingerprint: false, useFingerprint: false },
  ...inputs,
  async onShow() {
    await busy('加载中… / loading…', async () => {
      await ready();
      const { items } = await phone.api('GET', 'pending');
      this.setData({
        items: items.map((s) => ({ ...s, label: `${KIND[s.kind] || s.kind} · ${s.doc_no} · ${when(s.created_at)}`, checked: true })),
        selected: items.map((s) => s.flow_id),
        fingerprint: hasFingerprint(),
        useFingerprint: hasFingerprint(),
      });
    });
  },
  select(e) {
    this.setData({ selected: e.detail.value });
  },
  async signSelected() {
    const targets = this.data.selected.map((flow_id) => ({ flow_id }));
    if (!targets.length) return toast('请选择文档 / select documents');
    await busy(`正在签署 ${targets.length} 份… / signing…`, async () => {
      await ready();
      const rounds = await phone.openRounds(targets);
      const results = await phone.signRounds(rounds, approval(this));
      const ok = results.filter((r) => !r.error).length;
      toast(`已签署 ${ok} 份${ok < results.length ? `，${results.length - ok} 份失败` : ''} / ${ok} signed`);
      this.setData({ pin: '' });
    });
    await this.onShow();
  },
});
