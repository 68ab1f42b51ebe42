// @ts-check
// medsign H5 — the mobile API: its base URL, the phone's local store and the fetch wrapper.

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

/**
 * Call the mobile API; errors carry the server's message (the JSON envelope) and status.
 * Throws an {@link ApiError}; a `session_invalid` answer also drops the stored token.
 * @param {string} method
 * @param {string} path relative to {@link API}
 * @param {unknown} [body] sent as JSON when given
 * @returns {Promise<any>} the parsed JSON, or null for 204
 */
export async function api(method, path, body) {
  const token = store.get('token');
  const res = await fetch(API + path, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    if (data.code === 'session_invalid') {
      store.set('token', null);
    }
    throw Object.assign(new Error(data.message || `HTTP ${res.status}`), { status: res.status, body: data });
  }
  return data;
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
