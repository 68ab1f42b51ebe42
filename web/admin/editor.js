// @ts-check
// medsign console — the template editor (R1.8): the page drawn from the definition (decorations,
// fields and signature boxes) as SVG in PDF points; a field is placed by dragging it or, from the
// keyboard, with the arrow keys (Shift: 10 pt) once it has focus; its properties are edited in the
// form beside. "Preview" renders the edited definition with sample data on the server — the same
// code that renders documents — without saving; "Save" stores it as the next version (old
// versions stay, every signed document names the version it was rendered from).
import { h, en, api, toast, busy, page, me } from './console.js';
import { when, svg } from './ui.js';

const s = svg;
const KINDS = [['text', '单行文本', 'text'], ['multiline', '多行文本', 'multi-line'], ['date', '日期', 'date'], ['checkbox', '勾选框', 'checkbox'],
  ['image', '图片', 'image'], ['table', '表格', 'table'], ['signature', '签名框', 'signature box']];
const round = (/** @type {number} */ n) => Math.round(n * 10) / 10;

/** Sample data for a definition's fields (what the preview fills in). @param {any} def */
export function sampleData(def) {
  /** @type {Record<string, any>} */
  const data = {};
  for (const f of def.fields || []) {
    if (f.type === 'signature' || f.type === 'image') continue;
    if (f.type === 'date') data[f.name] = new Date().toISOString().slice(0, 10);
    else if (f.type === 'checkbox') data[f.name] = true;
    else if (f.type === 'table') data[f.name] = [0, 1].map((i) => Object.fromEntries((f.columns || []).map((/** @type {any} */ c) => [c.key, `${c.title}${i + 1}`])));
    else data[f.name] = `示例 ${f.name}`;
  }
  return data;
}

/** #/template?id=[&version=][&new=1]: edit a template. @param {URLSearchParams} q */
export async function template(q) {
  const id = q.get('id') || '';
  const all = await api('GET', '/admin/v1/templates');
  const latest = all.find((/** @type {any} */ t) => t.id === id);
  /** @type {any} */
  let def;
  /** @type {any} */
  let info = null;
  if (latest) {
    const v = q.get('version') || String(latest.version);
    ({ info, definition: def } = await api('GET', `/admin/v1/templates/${encodeURIComponent(id)}?version=${encodeURIComponent(v)}`));
  } else if (q.get('new')) {
    def = { name: id, page: { width: 595, height: 842 }, decorations: [], fields: [] };
  } else {
    throw new Error(`模板 ${id} 不存在 / no template ${id}`);
  }
  def = structuredClone(def);
  def.decorations ||= [];
  const W = def.page?.width ?? 595;
  const H = def.page?.height ?? 842;
  const pages = Math.max(1, ...def.fields.map((/** @type {any} */ f) => f.page || 1), ...def.decorations.map((/** @type {any} */ d) => d.page || 1));
  let current = 1;
  let selected = def.fields.length ? 0 : -1;
  const canWrite = me?.role !== 'auditor';

  const svg = /** @type {SVGSVGElement} */ (/** @type {unknown} */ (s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'sheet', id: 'sheet', role: 'group', 'aria-label': '模板页面 / template page' })));
  const form = h('div', { class: 'card props', id: 'props' });
  const pdfBox = h('div', { id: 'previewOut' });
  const sample = /** @type {HTMLTextAreaElement} */ (h('textarea', { id: 'sample', rows: 8, spellcheck: 'false' }));
  sample.value = JSON.stringify(sampleData(def), null, 2);

  /** Points per CSS pixel of the drawn page. */
  const ptPerPx = () => W / (svg.getBoundingClientRect().width || W);
  /** Keep a rect on the page. @param {number[]} r */
  const clamp = (r) => {
    const w = Math.min(r[2] - r[0], W);
    const hh = Math.min(r[3] - r[1], H);
    const x = Math.min(Math.max(r[0], 0), W - w);
    const y = Math.min(Math.max(r[1], 0), H - hh);
    return [round(x), round(y), round(x + w), round(y + hh)];
  };
  /** Move field i by (dx, dy) points. @param {number} i @param {number} dx @param {number} dy */
  const move = (i, dx, dy) => {
    const r = def.fields[i].rect;
    def.fields[i].rect = clamp([r[0] + dx, r[1] + dy, r[2] + dx, r[3] + dy]);
  };

  function draw() {
    let data = {};
    try { data = JSON.parse(sample.value); } catch { /* shown on preview */ }
    svg.replaceChildren(s('rect', { x: 0, y: 0, width: W, height: H, class: 'paper' }));
    if (def.base_pdf) svg.append(s('text', { x: W / 2, y: 20, 'text-anchor': 'middle', class: 'note' }, '底稿 PDF 的内容请用“预览”查看 / the base PDF shows in the preview'));
    for (const d of def.decorations.filter((/** @type {any} */ d) => (d.page || 1) === current)) {
      if (d.type === 'text') svg.append(s('text', { x: d.x, y: H - d.y, 'font-size': d.size || 10.5, 'text-anchor': { center: 'middle', right: 'end' }[/** @type {string} */ (d.align)] || 'start', class: 'deco' }, d.text));
      else if (d.type === 'line') svg.append(s('line', { x1: d.points[0], y1: H - d.points[1], x2: d.points[2], y2: H - d.points[3], 'stroke-width': d.width || 0.8, class: 'deco' }));
      else if (d.type === 'rect') svg.append(s('rect', { x: d.rect[0], y: H - d.rect[3], width: d.rect[2] - d.rect[0], height: d.rect[3] - d.rect[1], 'stroke-width': d.width || 0.8, class: 'deco box' }));
    }
    def.fields.forEach((/** @type {any} */ f, /** @type {number} */ i) => {
      if ((f.page || 1) !== current) return;
      const [x1, y1, x2, y2] = f.rect;
      const value = /** @type {any} */ (data)[f.name];
      const label = f.type === 'signature' ? `✍ ${f.name}` : value != null && typeof value !== 'object' ? String(value) : f.name;
      const g = s('g', { class: `field ${f.type}${i === selected ? ' selected' : ''}`, tabindex: canWrite ? 0 : -1, role: 'button', id: `field-${f.name}`,
        'aria-label': `${f.name}（${f.type}）x=${x1} y=${y1}，方向键移动 / arrow keys move it`, 'aria-pressed': String(i === selected) },
      s('rect', { x: x1, y: H - y2, width: x2 - x1, height: y2 - y1 }),
      s('text', { x: x1 + 2, y: H - y1 - 3, 'font-size': Math.min(f.size || 10.5, Math.max(6, (y2 - y1) - 4)) }, label));
      if (canWrite) drag(g, i);
      svg.append(g);
    });
    properties();
  }

  /** Drag a field with the pointer; arrows move it from the keyboard. @param {Element} g @param {number} i */
  function drag(g, i) {
    /** @type {{ x: number, y: number, rect: number[] } | null} */
    let from = null;
    g.addEventListener('pointerdown', (ev) => {
      const e = /** @type {PointerEvent} */ (ev);
      selected = i;
      from = { x: e.clientX, y: e.clientY, rect: [...def.fields[i].rect] };
      /** @type {Element} */ (g).setPointerCapture(e.pointerId);
      svg.querySelectorAll('.field').forEach((n) => n.classList.toggle('selected', n === g));
      properties();
    });
    g.addEventListener('pointermove', (ev) => {
      if (!from) return;
      const e = /** @type {PointerEvent} */ (ev);
      const k = ptPerPx();
      const [dx, dy] = [(e.clientX - from.x) * k, -(e.clientY - from.y) * k];
      def.fields[i].rect = clamp([from.rect[0] + dx, from.rect[1] + dy, from.rect[2] + dx, from.rect[3] + dy]);
      const [x1, y1, x2, y2] = def.fields[i].rect;
      const [r, t] = /** @type {any} */ (g).children;
      r.setAttribute('x', x1); r.setAttribute('y', H - y2);
      t.setAttribute('x', x1 + 2); t.setAttribute('y', H - y1 - 3);
      void x2;
    });
    const end = () => { if (from) { from = null; draw(); focusField(i); } };
    g.addEventListener('pointerup', end);
    g.addEventListener('pointercancel', end);
    g.addEventListener('keydown', (ev) => {
      const e = /** @type {KeyboardEvent} */ (ev);
      const step = e.shiftKey ? 10 : 1;
      const d = /** @type {Record<string, number[]>} */ ({ ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] })[e.key];
      if (d) { e.preventDefault(); selected = i; move(i, d[0], d[1]); draw(); focusField(i); } else if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); selected = i; draw(); focusField(i); }
    });
  }
  const focusField = (/** @type {number} */ i) => /** @type {HTMLElement | null} */ (svg.querySelector(`#field-${CSS.escape(def.fields[i]?.name || '')}`))?.focus();

  /** The selected field's properties. */
  function properties() {
    const f = def.fields[selected];
    if (!f) { form.replaceChildren(h('p', { class: 'muted' }, '点击页面上的字段以编辑', en('Pick a field on the page'))); return; }
    const input = (/** @type {string} */ key, /** @type {string} */ zh, /** @type {string} */ english, /** @type {any} */ value, /** @type {Record<string, any>} */ attrs, /** @type {(v: string) => void} */ set) => {
      const el = /** @type {HTMLInputElement} */ (h('input', { id: `p-${key}`, value, ...attrs }));
      el.addEventListener('change', () => { set(attrs.type === 'checkbox' ? String(el.checked) : el.value); draw(); });
      return h('label', { for: `p-${key}` }, h('span', {}, zh, en(english)), el);
    };
    const num = (/** @type {number} */ k) => (/** @type {string} */ v) => { const r = [...f.rect]; r[k] = Number(v); if (r[2] > r[0] && r[3] > r[1]) f.rect = clamp(r); else toast('右/上边须大于左/下边 / x2 > x1 and y2 > y1', true); };
    const kind = /** @type {HTMLSelectElement} */ (h('select', { id: 'p-type' }, ...KINDS.map(([v, zh, english]) => h('option', { value: v, selected: f.type === v }, `${zh} / ${english}`))));
    kind.addEventListener('change', () => {
      f.type = kind.value;
      // a table needs columns (and only a table has them): one to start with, the box's width
      if (f.type === 'table') f.columns ||= [{ key: 'col1', title: '列 1', width: round(f.rect[2] - f.rect[0]) }];
      else delete f.columns;
      draw();
    });
    form.replaceChildren(h('b', {}, '字段', en('Field')),
      input('name', '名称（数据键）', 'name (data key)', f.name, { pattern: '[A-Za-z0-9_\\-]+' }, (v) => { f.name = v.trim(); }),
      h('label', { for: 'p-type' }, h('span', {}, '类型', en('Type')), kind),
      input('page', '页', 'page', f.page || 1, { type: 'number', min: 1, max: def.base_pdf ? null : 1 }, (v) => { f.page = Math.max(1, Number(v) || 1); }),
      input('x1', '左 x1', 'x1', f.rect[0], { type: 'number', step: '0.1' }, num(0)), input('y1', '下 y1', 'y1', f.rect[1], { type: 'number', step: '0.1' }, num(1)),
      input('x2', '右 x2', 'x2', f.rect[2], { type: 'number', step: '0.1' }, num(2)), input('y2', '上 y2', 'y2', f.rect[3], { type: 'number', step: '0.1' }, num(3)),
      input('required', '必填', 'required', '', { type: 'checkbox', checked: f.required ? true : null }, (v) => { f.required = v === 'true'; }),
      canWrite ? h('button', { class: 'secondary', id: 'removeField', onclick: () => { def.fields.splice(selected, 1); selected = Math.min(selected, def.fields.length - 1); draw(); } }, '删除字段', en('Remove the field')) : null);
  }

  const addField = h('button', { class: 'secondary', id: 'addField', onclick: () => {
    let n = def.fields.length + 1;
    while (def.fields.some((/** @type {any} */ f) => f.name === `field_${n}`)) n += 1;
    def.fields.push({ name: `field_${n}`, type: 'text', page: current, rect: clamp([W / 2 - 60, H / 2 - 10, W / 2 + 60, H / 2 + 10]) });
    selected = def.fields.length - 1;
    draw();
    focusField(selected);
  } }, '添加字段', en('Add a field'));
  const name = /** @type {HTMLInputElement} */ (h('input', { id: 'tplName', value: def.name, required: true }));
  name.addEventListener('change', () => { def.name = name.value.trim(); });
  const save = h('button', { class: 'primary', id: 'saveTemplate' }, '保存为新版本', en('Save as a new version'));
  save.onclick = () => busy(save, async () => {
    const t = await api('PUT', `/admin/v1/templates/${encodeURIComponent(id)}`, def);
    toast(`已保存为第 ${t.version} 版 / saved as version ${t.version}`);
    location.hash = `#/template?id=${encodeURIComponent(id)}&version=${t.version}`;
  });
  const preview = h('button', { class: 'secondary', id: 'preview' }, '预览（示例数据）', en('Preview with sample data'));
  preview.onclick = () => busy(preview, async () => {
    let data;
    try { data = JSON.parse(sample.value); } catch (e) { throw new Error(`示例数据不是合法 JSON / the sample data is not JSON: ${/** @type {Error} */ (e).message}`); }
    const res = await fetch('/admin/v1/templates/preview', { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json', 'X-Medsign-Console': '1' }, body: JSON.stringify({ definition: def, data }) });
    if (!res.ok) { const b = await res.json().catch(() => ({})); throw new Error(b.message || `HTTP ${res.status}`); }
    const blob = await res.blob();
    if (await blob.slice(0, 5).text() !== '%PDF-') throw new Error('服务器返回的不是 PDF / the server did not answer with a PDF');
    const url = URL.createObjectURL(new Blob([blob], { type: 'application/pdf' }));
    pdfBox.replaceChildren(h('p', {}, h('a', { href: url, id: 'previewPdf', target: '_blank', download: `${id}-preview.pdf` }, '打开预览 PDF', en('Open the preview PDF')),
      ' ', h('span', { class: 'muted', id: 'previewSize' }, `${(blob.size / 1024).toFixed(1)} KB`)),
      h('iframe', { src: url, title: '预览 / preview', class: 'pdf' }));
    draw();
  });
  const pager = pages > 1 || def.fields.some((/** @type {any} */ f) => (f.page || 1) > 1)
    ? h('p', {}, ...Array.from({ length: pages }, (_, i) => h('button', { class: 'link', onclick: () => { current = i + 1; draw(); } }, `第 ${i + 1} 页 / page ${i + 1}`)))
    : null;
  const versions = latest ? h('p', { class: 'muted' }, `第 ${info.version} 版（共 ${latest.version} 版），${info.created_by} 保存于 ${when(info.created_at)} / version ${info.version} of ${latest.version} `,
    ...Array.from({ length: latest.version }, (_, i) => h('a', { href: `#/template?id=${encodeURIComponent(id)}&version=${i + 1}`, 'aria-current': i + 1 === info.version ? 'page' : null }, ` v${i + 1}`)))
    : h('p', { class: 'muted' }, '新模板，保存后为第 1 版 / a new template: saving makes version 1');
  page(`模板 ${id}`, 'Template', versions,
    h('div', { class: 'card inline' }, h('label', { for: 'tplName' }, h('span', {}, '显示名称', en('Display name')), name),
      canWrite ? addField : null, canWrite ? save : null, preview),
    pager,
    h('div', { class: 'editor' }, h('div', { class: 'sheetWrap' }, svg), form),
    h('div', { class: 'card' }, h('label', { for: 'sample' }, h('span', {}, '示例数据（JSON）', en('Sample data (JSON)')), sample)),
    pdfBox);
  draw();
}
