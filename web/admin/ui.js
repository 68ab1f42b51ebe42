// @ts-check
// medsign console — small pieces the pages share: labelled inputs, tables, times.
import { h, en } from './console.js';

/** A labelled input. @param {string} id @param {string} zh @param {string} english @param {Record<string, any>} [attrs] */
export const field = (id, zh, english, attrs = {}) => h('label', { for: id }, h('span', {}, zh, en(english)), h('input', { id, name: id, ...attrs }));
/** @param {string} id */
export const val = (id) => /** @type {HTMLInputElement} */ (document.getElementById(id)).value.trim();
/** A table from rows. @param {string[][]} head @param {any[][]} rows */
export const table = (head, rows) => h('table', {},
  h('thead', {}, h('tr', {}, ...head.map(([zh, english]) => h('th', { scope: 'col' }, zh, en(english))))),
  h('tbody', {}, ...(rows.length ? rows : [[h('span', { class: 'muted' }, '没有记录', en('nothing yet'))]]).map((r) => h('tr', {}, ...r.map((c) => h('td', {}, c ?? '—'))))));
/** A local time. @param {string | null | undefined} t */
export const when = (t) => (t ? new Date(t).toLocaleString('zh-CN', { hour12: false }) : '—');

