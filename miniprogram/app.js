// medsign — the doctor's phone as a WeChat (and WeCom) mini program. The phone half of two-party
// SM2 runs in WebAssembly (the H5 app's module and core.js, copied by scripts/build-miniprogram);
// pages under pages/, WeChat's platform in utils/wx-platform.js.
import './utils/globals.js';
import { inWeCom } from './utils/wx-platform.js';

App({
  globalData: { wecom: false },
  onLaunch() {
    this.globalData.wecom = inWeCom(wx);
  },
});
