// @ts-check
// medsign H5 — the mobile API: its base URL, the phone's local store and the fetch wrapper
// (every call end-to-end encrypted to the hospital's servers).
import { openChannel } from './medsign-phone.js';

/** The mobile API's base URL (…/mobile/v1/, beside /m/). */
export const API = new URL('../mobile/v1/', location.href).href;
/**
 * localStorage under `medsign.<key>`; setting null (or undefined) removes the key.
 * @type {{ get(k: string): string | null, set(k: string, v: string | null | undefined): void }}
 */
export const store = {
  get: (k) => localStorage.getItem(`medsign.${k}`),
  set: (k, v) => (v == null ? localStorage.removeItem(`medsign.${k}`) : localStorage.setItem(`medsign.${k}`, v)),
};

/** An API error: the server's message, the HTTP status and the JSON envelope. @typedef {Error & { status: number, body: any }} ApiError */

/** @param {Response} res */
async function envelopeOf(res) {
  const data = await res.json().catch(() => ({}));
  return Object.assign(new Error(data.message || `HTTP ${res.status}`), { status: res.status, body: data });
}

/** The end-to-end channel (its key checked against the pin) and the server's clock offset. */
let channel = null;

async function channelOf() {
  if (channel) return channel;
  const res = await fetch(API + 'channel');
  if (!res.ok) throw await envelopeOf(res);
  const c = await res.json();
  const ch = await openChannel(c, store.get('channel') || '');
  // the first key seen is pinned unless the activation link brought the pin (#/activate?k=…)
  if (!store.get('channel')) store.set('channel', ch.fingerprint);
  channel = { ch, offset: c.server_time_ms - Date.now() };
  return channel;
}

/**
 * Call the mobile API, end-to-end encrypted (issue #17): the call is sealed to the hospital
 * servers' pinned channel key and POSTed to `sealed`, so a DMZ gateway forwards what it cannot
 * read; the answer opens only here. Errors carry the server's message (the JSON envelope) and
 * status. Throws an {@link ApiError}; a `session_invalid` answer also drops the stored token.
 * @param {string} method
 * @param {string} path relative to {@link API}
 * @param {unknown} [body] sent as JSON when given
 * @returns {Promise<any>} the parsed JSON, or null for 204
 */
export async function api(method, path, body) {
  for (let attempt = 0; ; attempt++) {
    const ch = await channelOf();
    const call = ch.ch.seal(JSON.stringify({
      ts: Date.now() + ch.offset, method, path: `/mobile/v1/${path}`, auth: store.get('token') || null, body: body === undefined ? null : body,
    }));
    let answer;
    try {
      const res = await fetch(API + 'sealed', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: call.body });
      // a refusal in the clear (busy, no tunnel, replay, a key the server does not have) is never
      // retried here: it may come from anyone on the way, and a replayed call may have been done
      if (!res.ok) throw await envelopeOf(res);
      answer = JSON.parse(call.open(await res.text()));
    } finally { call.free(); }
    const { status, body: data, time_ms: serverTime } = answer;
    // the server's clock, sealed: only this corrects the phone's once calls flow
    if (typeof serverTime === 'number') ch.offset = serverTime - Date.now();
    if (status >= 200 && status < 300) return data ?? null;
    if (data?.code === 'e2e_stale' && attempt === 0) continue;
    if (data?.code === 'session_invalid') store.set('token', null);
    throw Object.assign(new Error(data?.message || `HTTP ${status}`), { status, body: data || {} });
  }
}

/**
 * medsign-phone.js transport over the mobile API (pin, unlock, sign with open rounds).
 * @param {{ round_id: string }[]} [rounds] the open sign rounds, in the order of the digests
 * @returns {(what: string, body: any) => Promise<any>}
 */
export function transport(rounds = []) {
  return async (what, body) => {
    if (what === 'sign') {
      const answers = body.map((request, i) => ({ round_id: rounds[i].round_id, request }));
      return (await api('POST', 'sign-rounds/answers', { answers })).responses;
    }
    return api('POST', what, body);
  };
}
