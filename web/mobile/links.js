// @ts-check
// medsign — what a scanned code or a link means to the phone. No key, no network: the H5 app, the
// mini program and the signing plugin (which may hold no key) read codes with it.

/**
 * Where a scanned QR code (a deep link: …/m/#/sign?t=… or …/m/#/login?t=…) leads; null when it is
 * not medsign's.
 * @param {string} text
 * @returns {{ kind: 'sign' | 'login', ticket: string } | null}
 */
export function scanned(text) {
  const m = /#\/(sign|login)\?t=([\w-]{1,200})(?:&|$)/.exec(String(text || '').trim());
  return m ? { kind: /** @type {'sign' | 'login'} */ (m[1]), ticket: m[2] } : null;
}
