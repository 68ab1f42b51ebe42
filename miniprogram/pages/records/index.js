// 我的记录 / the doctor's own records: the last 50 signatures and logins.
import { ready, phone } from '../../utils/phone.js';
import { busy, when } from '../../utils/ui.js';

const CUSTODY = { 'two-party': '手机签署 / phone', grant: '授权签署 / grant', server: '托管 / custody' };

Page({
  data: { signatures: [], logins: [] },
  async onShow() {
    await busy('加载中… / loading…', async () => {
      await ready();
      const r = await phone.api('GET', 'records?limit=50');
      this.setData({
        signatures: r.signatures.map((s) => ({ ...s, label: `${when(s.signed_at)} · ${CUSTODY[s.custody] || s.custody || ''} · ${s.doc_no}` })),
        logins: r.logins.map((l) => ({ ...l, label: `${when(l.at)} · ${l.ip}`, ok: l.outcome === 'ok' })),
      });
    });
  },
});
