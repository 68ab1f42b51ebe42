// The page a verification link of an evidence report opens (`/verify?sm3=…&doc=…`): the holder of
// a file picks it, the page computes its SM3 in the browser (the same WebAssembly module as the
// H5 app) and compares it with the digest in the link. Nothing is uploaded and nothing is looked
// up: the link alone carries what the report says, so the page tells no one anything new.
import { load, sm3 } from '/m/medsign-phone.js';

/** Files larger than this are not read (a browser on a phone holds them in memory). */
const MAX_BYTES = 256 * 1024 * 1024;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const expected = (params.get('sm3') || '').toLowerCase();
const valid = /^[0-9a-f]{64}$/.test(expected);
const doc = (params.get('doc') || '').replace(/[^A-Za-z0-9-]/g, '').slice(0, 64);

$('doc').textContent = doc || '—';
$('expected').textContent = valid ? expected : '链接中没有有效的 SM3 摘要 / the link carries no valid SM3 digest';

function show(kind, text) {
  const r = $('result');
  r.className = kind;
  r.textContent = text;
}

$('file').addEventListener('change', async (ev) => {
  const f = ev.target.files && ev.target.files[0];
  if (!f) return;
  if (f.size > MAX_BYTES) {
    show('bad', `文件过大（${f.size} 字节，上限 ${MAX_BYTES}）/ file too large (${f.size} bytes, limit ${MAX_BYTES})`);
    return;
  }
  show('warn', '正在计算… / computing…');
  try {
    await load();
    const digest = sm3(new Uint8Array(await f.arrayBuffer())).toLowerCase();
    if (!valid) {
      show('warn', `此文件的 SM3 / SM3 of this file: ${digest}`);
    } else if (digest === expected) {
      show('ok', `一致：这正是证据报告所述的文件。/ Matches: this is the file the evidence report describes.\nSM3 ${digest}`);
    } else {
      show('bad', `不一致：这不是证据报告所述的文件（或已被修改）。/ Does not match: this is not the file the report describes (or it was changed).\nSM3 ${digest}`);
    }
  } catch (e) {
    show('bad', `无法读取文件 / cannot read the file: ${e && e.message ? e.message : e}`);
  }
});
