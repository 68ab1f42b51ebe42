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


const SVGNS = 'http://www.w3.org/2000/svg';
/** An SVG element. @param {string} tag @param {Record<string, any>} [attrs] @param {...any} kids */
export const svg = (tag, attrs = {}, ...kids) => {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null) el.setAttribute(k, String(v));
  for (const c of kids.flat()) if (c != null) el.append(c.nodeType ? c : String(c));
  return el;
};

/**
 * A small chart: bars (counts per day) or a line with a band (a value ± its bound over time).
 * Points are [label, value, band?]; the table beside it carries the same numbers for screen readers.
 * @param {string} id @param {string} title @param {Array<[string, number | null, number?]>} points @param {'bars' | 'line'} kind
 */
export function chart(id, title, points, kind) {
  const W = 640, H = 160, pad = 28;
  const vals = points.flatMap(([, v, b]) => (v == null ? [] : [v + (b || 0), v - (b || 0)]));
  const max = Math.max(kind === 'bars' ? 1 : 0.001, ...vals.map(Math.abs));
  const lo = kind === 'bars' ? 0 : -max;
  const y = (/** @type {number} */ v) => H - pad - ((v - lo) / (max - lo)) * (H - 2 * pad);
  const x = (/** @type {number} */ i) => pad + (i + 0.5) * ((W - 2 * pad) / Math.max(points.length, 1));
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', id, role: 'img', 'aria-label': title },
    svg('line', { x1: pad, y1: y(0), x2: W - pad, y2: y(0), class: 'axis' }),
    svg('text', { x: 4, y: y(max) + 4, class: 'tick' }, String(Math.round(max * 100) / 100)));
  if (kind === 'bars') {
    const bw = Math.max(2, ((W - 2 * pad) / Math.max(points.length, 1)) * 0.7);
    points.forEach(([label, v], i) => {
      g.append(svg('rect', { x: x(i) - bw / 2, y: y(v || 0), width: bw, height: Math.max(0, y(0) - y(v || 0)), class: 'bar' }, svg('title', {}, `${label}: ${v}`)));
      if (points.length <= 31 && (i % Math.ceil(points.length / 7) === 0 || i === points.length - 1)) g.append(svg('text', { x: x(i), y: H - 8, 'text-anchor': 'middle', class: 'tick' }, label.slice(5)));
    });
  } else {
    const known = points.map((p, i) => [i, p]).filter(([, p]) => /** @type {any} */ (p)[1] != null);
    if (known.length) {
      const band = known.map(([i, p]) => `${x(/** @type {number} */ (i))},${y(/** @type {any} */ (p)[1] + (/** @type {any} */ (p)[2] || 0))}`)
        .concat(known.slice().reverse().map(([i, p]) => `${x(/** @type {number} */ (i))},${y(/** @type {any} */ (p)[1] - (/** @type {any} */ (p)[2] || 0))}`));
      g.append(svg('polygon', { points: band.join(' '), class: 'band' }),
        svg('polyline', { points: known.map(([i, p]) => `${x(/** @type {number} */ (i))},${y(/** @type {any} */ (p)[1])}`).join(' '), class: 'line' }));
    }
  }
  return h('figure', { class: 'card' }, h('figcaption', {}, title), g);
}
