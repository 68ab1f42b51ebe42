// Imported first (app.js, utils/phone.js): what the WebAssembly glue needs must exist before it
// is evaluated (TextEncoder/TextDecoder at its top level).
import { installGlobals } from './wx-platform.js';

/** Where the package holds the phone half's WebAssembly (scripts/build-miniprogram puts it there). */
export const WASM = '/lib/pkg/medsign_wasm_bg.wasm';

installGlobals(wx, WASM);
