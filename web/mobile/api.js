// @ts-check
// medsign H5 — the browser's platform for the phone core (core.js, shared with the WeChat mini
// program): the mobile API's base URL, localStorage and fetch.
import { createPhone } from './core.js';

/**
 * The mobile API's base URL: beside /m/ when the app is served by the server or a gateway; the
 * gateway named by `<meta name="medsign-api">` when the app has an origin of its own
 * (`medsign h5 export --api …`, docs/gateway.md), so no gateway ever delivers its code.
 */
const configured = document.querySelector('meta[name="medsign-api"]')?.getAttribute('content');
export const API = configured ? new URL('mobile/v1/', configured).href : new URL('../mobile/v1/', location.href).href;
/**
 * localStorage under `medsign.<key>`; setting null (or undefined) removes the key.
 * @type {{ get(k: string): string | null, set(k: string, v: string | null | undefined): void }}
 */
export const store = {
  get: (k) => localStorage.getItem(`medsign.${k}`),
  set: (k, v) => (v == null ? localStorage.removeItem(`medsign.${k}`) : localStorage.setItem(`medsign.${k}`, v)),
};

/** The phone: the sealed mobile API and the flows (core.js). */
export const core = createPhone({
  base: API,
  store,
  request: async ({ method, url, headers, body }) => {
    const res = await fetch(url, { method, headers, body });
    return { status: res.status, text: await res.text() };
  },
});

export const { api, transport } = core;
