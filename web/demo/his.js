// Demo HIS (clearly labelled): what a hospital system's page and server would do, in one page.
// A real HIS keeps the token on its server; this demo keeps it in page memory only.
const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${$('token').value.trim()}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = res.headers.get('content-type')?.includes('json') ? await res.json() : await res.blob();
  if (!res.ok) throw new Error(data.message || `HTTP ${res.status}`);
  return data;
}

function result(el, ok, text) {
  el.className = `result ${ok ? 'ok' : 'bad'}`;
  el.textContent = text;
}

async function b64(blob) {
  const u = new Uint8Array(await blob.arrayBuffer());
  let s = '';
  for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode(...u.subarray(i, i + 0x8000));
  return btoa(s);
}

$('login').onclick = async () => {
  try {
    const ticket = await api('POST', '/api/v1/login-tickets', { system: '演示 HIS 门诊医生站' });
    await MedSign.qrLogin($('loginQr'), { ticket });
    // the "server side": read the signed assertion and check it
    const t = await api('GET', `/api/v1/login-tickets/${ticket.ticket_id}`);
    const v = await api('POST', '/api/v1/verify/data', { signature: t.assertion.signature_base64, data: t.assertion.data_base64 });
    result($('loginResult'), v.indication === 'TOTAL_PASSED', `已登录 / Logged in: ${t.assertion.employee_no} · 验签 / verification ${v.indication}`);
  } catch (e) {
    result($('loginResult'), false, e.message);
  }
};

$('sign').onclick = async () => {
  try {
    const data = { hospital: '某县人民医院（演示）', category: '普通', fee_type: '自费', department: '内科', outpatient_no: `DEMO${Date.now() % 100000}`,
      patient_name: $('patient').value, gender: '男', age: '45岁', diagnosis: '上呼吸道感染', amount: '¥56.80',
      items: [{ drug: '阿莫西林胶囊 0.25g×24粒', dosage: '0.5g', usage: '口服 每日三次', quantity: '2盒' }] };
    const flow = await api('POST', '/api/v1/sign-flows', { kind: 'file', title: `门诊处方笺 ${data.outpatient_no}`, template_id: 'outpatient-prescription', data,
      signers: [{ employee_no: $('doctor').value.trim(), mode: 'scan', field: 'doctor' }, { seal: 'hospital', field: 'hospital_seal' }] });
    const done = await MedSign.qrSign($('signQr'), { ticket: flow.ticket });
    const pdf = await api('GET', `/api/v1/sign-flows/${flow.id}/file`);
    const v = await api('POST', '/api/v1/verify/file', { file: await b64(pdf) });
    result($('signResult'), v.indication === 'TOTAL_PASSED', `已签署 / Signed (${done.flow_state}) · 验签 / verification ${v.indication} · ${v.signatures.length} 个签名 / signatures`);
    const a = document.createElement('a');
    a.href = URL.createObjectURL(pdf);
    a.download = `${flow.doc_no}.pdf`;
    a.textContent = ' 下载 PDF / download';
    a.id = 'download';
    $('signResult').append(a);
  } catch (e) {
    result($('signResult'), false, e.message);
  }
};
