// 设置 PIN 与签名密钥 / the PIN and the split key: the PIN is checked on the phone; when the
// hospital requires the real-name check first, WeChat's face verification runs (R3.2).
import { ready, phone, halves, store } from '../../utils/phone.js';
import { inputs, replace, busy, toast, confirmName } from '../../utils/ui.js';
import { loginCode, face } from '../../utils/wx-platform.js';

/** The real-name check: a login code for the server, then WeChat's face verification. */
async function realname() {
  const r = await phone.realname({ wxCode: await loginCode(wx), face: face(wx) });
  toast(r.demo ? '实名认证（演示，不用于生产）已通过 / DEMO real-name check passed' : '实名认证已通过 / real-name check passed');
}

Page({
  data: { pin1: '', pin2: '' },
  ...inputs,
  async create() {
    const { pin1, pin2 } = this.data;
    if (pin1 !== pin2) return toast('两次输入的 PIN 不一致 / the PINs differ');
    const problem = await halves.pinProblem(pin1, store.get('employee') || '');
    if (problem) return toast(problem);
    await busy('正在生成密钥… / creating the key…', async () => {
      await ready();
      const out = await phone.createKey(pin1, confirmName).catch(async (e) => {
        if (e.body?.code !== 'realname_required') throw e;
        await realname();
        await ready();
        return phone.createKey(pin1, confirmName);
      });
      if (out.certifyError) toast(`密钥已生成，证书尚未签发 / key created, no certificate yet: ${out.certifyError.message}`);
      replace('/pages/handwriting/index');
    });
  },
});
