// @ts-check
// medsign H5 — what the signing pages share: document kinds, signing open rounds with one PIN.
import { core } from '../api.js';

/** Document kinds as shown. @type {Record<string, string>} */
export const KIND = { data: '数据 / data', file: 'PDF 文件 / PDF' };

/**
 * Sign open rounds with one PIN entry; returns per-document results.
 * @param {{ round_id: string, e: string }[]} rounds
 * @param {string} pin
 * @returns {Promise<any[]>}
 */
export function signRounds(rounds, pin) {
  return core.signRounds(rounds, { pin });
}
