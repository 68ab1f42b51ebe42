// 会话授权 / session grants: a system signs without the phone for some hours; cancel any time.
import { ready, phone } from '../../utils/phone.js';
import { inputs, busy, toast, fail, approval, hasFingerprint, when } from '../../utils/ui.js';

Page({
  data: { systems: [], system: 0, hours: [1, 2, 4, 8, 12], hour: 0, grants: [], pin: '', fingerprint: false, useFingerprint: false },
  ...inputs,
  async onShow() {
    await busy('加载中… / loading…', async () => {
      await ready();
      const [{ items: systems, grant_max_hours: max = 12 }, { items: grants }] = await Promise.all([phone.api('GET', 'systems'), phone.api('GET', 'grants')]);
      const hours = [...new Set([1, 2, 4, 8, 12, max])].filter((n) => n <= max).sort((a, b) => a - b);
      const name = (id) => (systems.find((s) => s.app_id === id) || {}).name || id;
      this.setData({
        systems, hours,
        grants: grants.map((g) => ({ ...g, name: name(g.app_id), until: when(g.expires_at), active: g.state === 'active' })),
        fingerprint: hasFingerprint(),
      });
    });
  },
  pickSystem(e) {
    this.setData({ system: Number(e.detail.value) });
  },
  pickHours(e) {
    this.setData({ hour: Number(e.detail.value) });
  },
  async grant() {
    const s = this.data.systems[this.data.system];
    if (!s) return toast('没有可授权的系统 / no system to grant');
    await busy('授权中… / granting…', async () => {
      await ready();
      const g = await phone.grant({ appId: s.app_id, hours: this.data.hours[this.data.hour] }, approval(this));
      toast(`已授权 ${g.app_name} ${g.hours} 小时 / granted`);
      this.setData({ pin: '' });
    });
    await this.onShow();
  },
  async cancel(e) {
    try {
      await phone.api('DELETE', `grants/${e.currentTarget.dataset.id}`);
      toast('已取消 / cancelled');
      await this.onShow();
    } catch (err) {
      fail(err);
    }
  },
});
