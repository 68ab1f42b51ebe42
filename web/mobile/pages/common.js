// @ts-check
// medsign H5 — what the signing pages share: document kinds, signing open rounds with one PIN.
import * as phone from '../medsign-phone.js';
import { api, store, transport } from '../api.js';

/** Document kinds as shown. @type {Record<string, string>} */
export const KIND = { data: '数据 / data', file: 'PDF 文件 / PDF' };

/**
 * Sign open rounds with one PIN entry; returns per-document results.
 * @param {{ round_id: string, e: string }[]} rounds
 * @param {string} pin
 * @returns {Promise<any[]>}
 */
export async function signRounds(rounds, pin) {
  const sigs = await phone.signMany({ post: transport(rounds), wrapped: store.get('wrapped'), pin, deviceSecret: store.get('deviceSecret'), digests: rounds.map((r) => r.e) });
  const signatures = sigs.map((signature, i) => ({ round_id: rounds[i].round_id, signature }));
  return (await api('POST', 'sign-rounds/signatures', { signatures })).results;
}
