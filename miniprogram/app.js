// medsign — the doctor's phone as a WeChat (and WeCom) mini program. The phone half of two-party
// SM2 runs in WebAssembly (the H5 app's module and core.js, copied by scripts/build-miniprogram);
// pages under pages/, WeChat's platform in utils/wx-platform.js.
import './utils/globals.js';
import { inWeCom } from './utils/wx-platform.js';

App({
  /** wecom: inside WeCom; caller: the AppID of the mini program that opened a signing here (the plugin's host) */
  globalData: { wecom: false, caller: null },
  onLaunch() {
    this.globalData.wecom = inWeCom(wx);
  },
  onShow(options = {}) {
    // opened by another mini program (scene 1037: its plugin handed a scanned code over) on a
    // signing or login page: go back there with that ticket's outcome, and only that one
    const from = options.scene === 1037 && options.referrerInfo && options.referrerInfo.appId;
    const ticket = options.query && options.query.t;
    this.globalData.caller = from && ticket ? { appId: from, ticket: String(ticket), page: options.path } : null;
  },
});
