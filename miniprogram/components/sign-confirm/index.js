// <sign-confirm>: what is being signed and the doctor's approval — the summary, the document as
// the server made it from exactly what is signed (with the phone's own SM3 check), the PIN or the
// fingerprint. A view only: it emits `confirm` ({ pin } or { fingerprint: true }) and `cancel`; the
// page (or the hospital's own mini program, through the plugin) signs. Nothing is emitted while
// the document does not match what would be signed.
Component({
  properties: {
    /** a sign round's summary: title, kind, doc_no, pages, signer_index, signers, created_at, content_sm3 */
    summary: { type: Object, value: {} },
    /** the document as text, or its pages; both empty: the summary only */
    text: { type: String, value: '' },
    pages: { type: Array, value: [] },
    truncated: { type: Boolean, value: false },
    /** false: the text's SM3 is not the summary's — never signed */
    matches: { type: Boolean, value: true },
    /** offer the fingerprint (WeChat SOTER) beside the PIN */
    fingerprint: { type: Boolean, value: false },
    /** the action's word: 签署 / Sign, 登录 / Log in */
    action: { type: String, value: '确认签署 / Sign' },
    busy: { type: Boolean, value: false },
  },
  data: { pin: '', order: '' },
  observers: {
    summary(s) {
      const order = s && s.signers ? `${Number(s.signer_index) + 1} / ${s.signers}` : '';
      this.setData({ order });
    },
  },
  methods: {
    onPin(e) {
      this.setData({ pin: String(e.detail.value || '').replace(/\D/g, '').slice(0, 12) });
    },
    confirm() {
      if (!this.data.matches || this.data.busy) return;
      if (!/^\d{6,12}$/.test(this.data.pin)) {
        this.triggerEvent('invalid', { reason: '请输入 6–12 位 PIN / enter your 6–12 digit PIN' });
        return;
      }
      const pin = this.data.pin;
      this.setData({ pin: '' });
      this.triggerEvent('confirm', { pin });
    },
    useFingerprint() {
      if (!this.data.matches || this.data.busy || !this.data.fingerprint) return;
      this.triggerEvent('confirm', { fingerprint: true });
    },
    cancel() {
      this.triggerEvent('cancel', {});
    },
  },
});
