// medsign mini program — the phone: core.js (the same code as the H5 app's) over WeChat's platform.
import { WASM } from './globals.js';
import config from '../config.js';
import { createPhone, scanned } from '../lib/core.js';
import * as halves from '../lib/medsign-phone.js';
import { wxStore, wxRequest, entropy } from './wx-platform.js';

export const store = wxStore(wx);
export const phone = createPhone({ base: `${config.server.replace(/\/+$/, '')}/mobile/v1/`, request: wxRequest(wx), store });
export { scanned, halves };

let loaded = null;

/**
 * The phone, ready: its stored values read, the WebAssembly module loaded, randomness in the pool.
 * Every page awaits this before it calls anything.
 */
export async function ready() {
  if (!loaded) loaded = Promise.all([store.ready(), halves.load({ wasm: WASM })]).catch((e) => { loaded = null; throw e; });
  await loaded;
  store.check();
  await entropy(wx);
  return phone;
}
