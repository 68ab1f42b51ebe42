// TypeScript types of the PC page SDK (web/sdk/medsign.js, served at /sdk/medsign.js): a classic
// script that defines `window.MedSign`. Add `/// <reference path="medsign.d.ts" />` (or list this
// file in tsconfig "files") to type-check a page that uses it.

/** A ticket object as your server received it from medsign (pass it to the page unchanged). */
interface MedSignTicket {
  /** `lt_…` (login) or `tk_…` (sign) */
  ticket_id: string;
  /** the QR code, PNG, base64 */
  qr_png_base64: string;
  /** what the QR code holds */
  deep_link?: string;
  /** RFC 3339 */
  expires_at?: string;
  [more: string]: unknown;
}

/** A ticket's state as the events report it. */
type MedSignState = 'waiting' | 'scanned' | 'confirmed' | 'signed' | 'refused' | 'expired' | 'superseded' | 'revoked' | 'failed';

interface MedSignOptions {
  /** medsign's address as the browser reaches it, e.g. `https://sign.hospital.example` (default: this page's origin) */
  base?: string;
  /** the ticket from `POST /api/v1/login-tickets`, or the `ticket` of a scan-mode `POST /api/v1/sign-flows` */
  ticket: MedSignTicket;
  /** every state change, with the event's data */
  onState?: (state: MedSignState, data: { state: MedSignState; flow_state?: string; [more: string]: unknown }) => void;
}

/** Rejects with this when the ticket is refused, expires, is superseded, or its flow is revoked or fails
 * (`state` says which); an `opts.ticket` that is not a ticket object rejects at once, without `state`. */
interface MedSignError extends Error {
  state?: MedSignState;
}

interface MedSignSdk {
  /** Show a login QR code in `target` and resolve when the phone confirmed (then your server reads the signed assertion with its token). */
  qrLogin(target: Element, opts: MedSignOptions): Promise<{ ticket_id: string; state: 'confirmed'; flow_state?: string }>;
  /** Show a sign QR code in `target` and resolve when the phone signed (`flow_state`: the flow's state then). */
  qrSign(target: Element, opts: MedSignOptions): Promise<{ ticket_id: string; state: 'signed'; flow_state?: string }>;
}

declare var MedSign: MedSignSdk;

interface Window {
  MedSign: MedSignSdk;
}
