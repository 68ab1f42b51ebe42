// <sign-handoff link="…" app-id="wx…">: a scanned medsign code, and the button that continues in
// the medsign mini program (emits `open` with { appId, path, kind, ticket } for the host to pass to
// wx.navigateToMiniProgram). Another code shows why it is refused and emits nothing.
const { target } = require('../../index.js');

Component({
  properties: {
    link: { type: String, value: '' },
    appId: { type: String, value: '' },
  },
  data: { kind: '', error: '' },
  observers: {
    'link, appId'(link, appId) {
      if (!link) return this.setData({ kind: '', error: '' });
      try {
        this.target = target(link, appId || undefined);
        this.setData({ kind: this.target.kind, error: '' });
      } catch (e) {
        this.target = null;
        this.setData({ kind: '', error: e.message });
      }
    },
  },
  methods: {
    open() {
      if (this.target) this.triggerEvent('open', { ...this.target });
    },
  },
});
