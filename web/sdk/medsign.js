/*
 * medsign PC page SDK (issue #7; R2.1, R2.5, R2.6) — show a login or sign QR code and wait for the
 * doctor's phone. No dependencies; a classic script defining `window.MedSign`.
 *
 * Your server (which holds the app token) creates the ticket — POST /api/v1/login-tickets, or a
 * scan-mode POST /api/v1/sign-flows whose answer carries `ticket` — and hands that object to the
 * page. The SDK draws the QR and follows the ticket by server-sent events
 * (GET /api/v1/{login,sign}-tickets/{id}/events; no token needed, the ticket id is the capability),
 * falling back to polling the same endpoint. Your server then reads the result with its token.
 *
 *   MedSign.qrLogin(el, { base, ticket, onState }) → Promise<{ ticket_id, state: 'confirmed' }>
 *   MedSign.qrSign(el, { base, ticket, onState })  → Promise<{ ticket_id, state: 'signed', flow_state }>
 * A refused, expired or superseded ticket rejects with an Error whose `.state` says which.
 */
(function (global) {
  'use strict';
  var TEXT = {
    login: { title: '请使用医签扫码登录', en: 'Scan with medsign to log in', done: '已确认登录 / Confirmed' },
    sign: { title: '请使用医签扫码签署', en: 'Scan with medsign to sign', done: '已签署 / Signed' },
    waiting: '等待扫码… / waiting for the phone…',
    scanned: '已扫码，请在手机上确认 / scanned — confirm on the phone',
    refused: '已在手机上拒绝 / refused on the phone',
    expired: '二维码已过期，请刷新 / the QR code expired — refresh',
    superseded: '二维码已更新 / a newer QR code replaced this one',
    revoked: '流程已撤销 / the flow was revoked',
    failed: '签署失败 / signing failed',
  };

  function el(tag, style, text) {
    var e = document.createElement(tag);
    if (style) e.setAttribute('style', style);
    if (text != null) e.textContent = text;
    return e;
  }

  /** Follow `url` (SSE `state` events); calls onEvent(data) until it returns true. */
  function follow(url, onEvent) {
    var stopped = false;
    var source = null;
    function poll() {
      // fallback: read the first event of a fresh stream every 2 s
      if (stopped) return;
      fetch(url, { headers: { Accept: 'text/event-stream' } }).then(function (res) {
        var reader = res.body.getReader();
        var buf = '';
        function read() {
          return reader.read().then(function (r) {
            buf += new TextDecoder().decode(r.value || new Uint8Array());
            var m = /data: (.*)\n/.exec(buf);
            if (m) { reader.cancel(); if (!onEvent(JSON.parse(m[1]))) setTimeout(poll, 2000); return; }
            if (!r.done) return read();
            setTimeout(poll, 2000);
          });
        }
        return read();
      }).catch(function () { setTimeout(poll, 2000); });
    }
    if (global.EventSource) {
      source = new EventSource(url);
      source.addEventListener('state', function (e) {
        if (onEvent(JSON.parse(e.data))) { stopped = true; source.close(); }
      });
    } else {
      poll();
    }
    return function () { stopped = true; if (source) source.close(); };
  }

  function show(kind, target, opts) {
    var base = (opts.base || '').replace(/\/$/, '');
    var t = opts.ticket;
    if (!t || !t.ticket_id || !t.qr_png_base64) return Promise.reject(new Error('MedSign: opts.ticket 须为服务器返回的票据 / must be the ticket object from the server'));
    var box = el('div', 'display:inline-block;padding:16px;border:1px solid #d0d5db;border-radius:10px;text-align:center;font:14px/1.5 -apple-system,"PingFang SC","Microsoft YaHei",sans-serif;background:#fff');
    box.className = 'medsign-qr';
    box.appendChild(el('div', 'font-size:16px;font-weight:600', TEXT[kind].title));
    box.appendChild(el('div', 'color:#6b7480', TEXT[kind].en));
    var img = el('img', 'display:block;width:200px;height:200px;margin:10px auto');
    img.alt = 'QR';
    img.src = 'data:image/png;base64,' + t.qr_png_base64;
    box.appendChild(img);
    var status = el('div', 'color:#0b5cad', TEXT.waiting);
    status.className = 'medsign-status';
    box.appendChild(status);
    target.replaceChildren(box);
    var path = kind === 'login' ? '/api/v1/login-tickets/' : '/api/v1/sign-tickets/';
    return new Promise(function (resolve, reject) {
      follow(base + path + encodeURIComponent(t.ticket_id) + '/events', function (d) {
        if (opts.onState) opts.onState(d.state, d);
        var good = kind === 'login' ? d.state === 'confirmed' : d.state === 'signed';
        if (good) {
          status.textContent = TEXT[kind].done;
          status.style.color = '#2e7d32';
          img.style.opacity = '0.25';
          resolve({ ticket_id: t.ticket_id, state: d.state, flow_state: d.flow_state });
          return true;
        }
        if (d.state === 'waiting' || d.state === 'scanned') {
          status.textContent = TEXT[d.state];
          return false;
        }
        status.textContent = TEXT[d.state] || d.state;
        status.style.color = '#c62828';
        img.style.opacity = '0.25';
        var e = new Error(TEXT[d.state] || d.state);
        e.state = d.state;
        reject(e);
        return true;
      });
    });
  }

  global.MedSign = {
    qrLogin: function (target, opts) { return show('login', target, opts || {}); },
    qrSign: function (target, opts) { return show('sign', target, opts || {}); },
  };
})(typeof window !== 'undefined' ? window : this);
