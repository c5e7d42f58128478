/*
 * gpugate operator console: plain JavaScript, no build step, no library.
 *
 * Everything it shows comes from the admin API (/admin/v1/) and from the
 * console's copies of /status and /metrics (/console/status,
 * /console/metrics: nginx lets a request through when the admin API's
 * GET whoami accepts its credential).  The admin credential is kept in
 * sessionStorage (this tab only) and sent as "Authorization: Bearer" on
 * every fetch(); no cookie is used, so another site cannot make the
 * browser act with it (CSRF).  Every string from the server is inserted
 * with textContent or createTextNode, never as markup: agent, model,
 * tenant and key names are chosen by whoever creates them.
 */

'use strict';

(function () {

  var API = '/admin/v1/';
  var STATUS = '/console/status';
  var METRICS = '/console/metrics';
  var STORE = 'gpugate-admin-credential';
  var POLL_MS = 2000;
  var USAGE_EVERY = 5;           /* polls between usage queries */
  var POINTS = 90;               /* chart history: 3 minutes */
  var COLORS = ['#2f7ed8', '#e4572e', '#29a36a', '#a05cd6', '#f0a202',
                '#17a2b8', '#8d6e63', '#d63384'];

  var state = {
    cred: null,
    role: null,
    tenant: null,                /* whoami's tenant: a tenant admin */
    timer: null,
    polls: 0,
    prev: null,                  /* last metrics sample {t, m} */
    series: { rps: {}, err: {}, ttft: {}, tps: {} },
    models: [],                  /* every model seen, for colours */
    usageKey: {},
    usageTenant: {},
    editing: null,               /* {kind: 'keys' or 'tenants', id} whose
                                    priority and region the form edits */
    errorOf: null                /* who set dash-error: 'action' (kept
                                    until the next action) or 'poll' */
  };

  function $(id) { return document.getElementById(id); }

  /* an element with attributes and children (strings become text) */
  function el(tag, attrs) {
    var e = document.createElement(tag), i, c, k;
    for (k in attrs || {}) {
      if (k === 'class') { e.className = attrs[k]; }
      else if (k === 'text') { e.textContent = attrs[k]; }
      else { e.setAttribute(k, attrs[k]); }
    }
    for (i = 2; i < arguments.length; i++) {
      c = arguments[i];
      if (c === null || c === undefined) { continue; }
      e.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function clear(node) {
    while (node.firstChild) { node.removeChild(node.firstChild); }
  }

  function fill(tbody, rows, empty, cols) {
    clear(tbody);
    if (!rows.length) {
      tbody.appendChild(el('tr', null,
        el('td', { colspan: String(cols), class: 'muted', text: empty })));
      return;
    }
    rows.forEach(function (r) { tbody.appendChild(r); });
  }

  function num(v) {
    if (v === null || v === undefined) { return '\u2013'; }
    if (v >= 1e9) { return (v / 1e9).toFixed(1) + 'G'; }
    if (v >= 1e6) { return (v / 1e6).toFixed(1) + 'M'; }
    if (v >= 1e4) { return (v / 1e3).toFixed(1) + 'k'; }
    return String(Math.round(v * 100) / 100);
  }

  /* --- HTTP ------------------------------------------------------------ */

  function request(method, url, body) {
    var opts = {
      method: method,
      headers: { 'Authorization': 'Bearer ' + state.cred },
      credentials: 'omit',
      cache: 'no-store',
      redirect: 'error'
    };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (res) {
      if (res.status === 401) {
        logout('The credential was refused (revoked or unknown).');
        throw new Error('401');
      }
      return res.text().then(function (text) {
        var doc = null;
        try { doc = JSON.parse(text); } catch (e) { doc = null; }
        if (!res.ok) {
          var msg = doc && doc.error && doc.error.message
                    ? doc.error.message : res.status + ' ' + res.statusText;
          throw new Error(method + ' ' + url + ': ' + msg);
        }
        return doc === null ? text : doc;
      });
    });
  }

  function api(method, path, body) { return request(method, API + path, body); }

  /* an action's refusal stays until the next action: a poll in flight
     when it came must not wipe it a moment later (t/099 under load) */
  function showError(e) {
    if (e && e.message !== '401') {
      $('dash-error').textContent = e.message;
      state.errorOf = 'action';
    }
  }

  function showPollError(e) {
    if (e && e.message !== '401') {
      $('dash-error').textContent = e.message;
      state.errorOf = 'poll';
    }
  }

  /* clears dash-error when "of" set it, or whoever did when none given */
  function clearError(of) {
    if (!of || state.errorOf === of) {
      $('dash-error').textContent = '';
      state.errorOf = null;
    }
  }

  /* --- login ----------------------------------------------------------- */

  function login(cred) {
    state.cred = cred;
    return api('GET', 'whoami').then(function (me) {
      sessionStorage.setItem(STORE, cred);
      state.role = me.role;
      /* a tenant admin (sql/011): its tenant's keys and usage only */
      state.tenant = me.tenant || null;
      $('who-name').textContent = me.name + ' (' + me.role
        + (state.tenant ? ', tenant ' + state.tenant : '') + ')';
      $('login').hidden = true;
      $('dash').hidden = false;
      $('who').hidden = false;
      document.body.classList.toggle('read-only', me.role !== 'admin');
      poll();
    });
  }

  function logout(why) {
    sessionStorage.removeItem(STORE);
    state.cred = null;
    if (state.timer) { clearTimeout(state.timer); state.timer = null; }
    clearError();
    $('dash').hidden = true;
    $('who').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = why || '';
    $('cred').value = '';
    $('cred').focus();
  }

  /* --- Prometheus text ------------------------------------------------- */

  function parseMetrics(text) {
    var out = [], lines = text.split('\n'), i, m, labels, lm, re;
    for (i = 0; i < lines.length; i++) {
      m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(lines[i]);
      if (!m) { continue; }
      labels = {};
      re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      while ((lm = re.exec(m[3] || '')) !== null) {
        labels[lm[1]] = lm[2].replace(/\\(.)/g, function (s, c) {
          return c === 'n' ? '\n' : c;
        });
      }
      out.push({ name: m[1], labels: labels, value: parseFloat(m[4]) });
    }
    return out;
  }

  /* per model: requests, errors, tokens, ttft sum/count, streams */
  function byModel(samples) {
    var r = {};
    samples.forEach(function (s) {
      var model = s.labels.model, x;
      if (model === undefined) { return; }
      x = r[model] || (r[model] = { req: 0, err: 0, pt: 0, ct: 0,
                                    ttftSum: 0, ttftCount: 0, streams: 0 });
      switch (s.name) {
      case 'gpugate_requests_total':
        x.req += s.value;
        if (/^[45]/.test(s.labels.status || '')) { x.err += s.value; }
        break;
      case 'gpugate_prompt_tokens_total': x.pt += s.value; break;
      case 'gpugate_completion_tokens_total': x.ct += s.value; break;
      case 'gpugate_time_to_first_token_seconds_sum': x.ttftSum += s.value; break;
      case 'gpugate_time_to_first_token_seconds_count': x.ttftCount += s.value; break;
      case 'gpugate_active_streams': x.streams += s.value; break;
      }
    });
    return r;
  }

  function push(series, model, t, v) {
    var s = series[model] || (series[model] = []);
    s.push({ t: t, v: v });
    while (s.length > POINTS) { s.shift(); }
  }

  function onMetrics(text) {
    var t = Date.now() / 1000, cur = byModel(parseMetrics(text)),
        prev = state.prev, rows = [], model, c, p, dt, dn;
    Object.keys(cur).sort().forEach(function (model) {
      var c = cur[model];
      if (state.models.indexOf(model) < 0) { state.models.push(model); }
      rows.push(el('tr', null, el('td', { text: model }),
        el('td', { text: num(c.req) }), el('td', { text: num(c.err) }),
        el('td', { text: num(c.pt) }), el('td', { text: num(c.ct) }),
        el('td', { text: num(c.streams) })));
    });
    fill($('models').tBodies[0], rows, 'No request counted yet.', 6);

    if (prev) {
      dt = t - prev.t;
      for (model in cur) {
        c = cur[model];
        p = prev.m[model] || { req: 0, err: 0, ct: 0, ttftSum: 0, ttftCount: 0 };
        if (dt <= 0 || c.req < p.req) { continue; }   /* restart: reset */
        push(state.series.rps, model, t, (c.req - p.req) / dt);
        push(state.series.err, model, t, (c.err - p.err) / dt);
        push(state.series.tps, model, t, (c.ct - p.ct) / dt);
        dn = c.ttftCount - p.ttftCount;
        push(state.series.ttft, model, t,
             dn > 0 ? 1000 * (c.ttftSum - p.ttftSum) / dn : null);
      }
    }
    state.prev = { t: t, m: cur };
    drawCharts();
  }

  /* --- charts (canvas, own code) --------------------------------------- */

  function color(model) {
    return COLORS[state.models.indexOf(model) % COLORS.length];
  }

  function drawChart(canvas, series) {
    var ctx = canvas.getContext('2d'), ratio = window.devicePixelRatio || 1,
        w = canvas.clientWidth || canvas.width,
        h = canvas.clientHeight || canvas.height,
        pad = { l: 44, r: 8, t: 8, b: 18 }, now = Date.now() / 1000,
        span = 0, max = 0, i, y, label;

    if (canvas.width !== Math.round(w * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);

    /* the time axis grows with the history, up to POINTS polls */
    Object.keys(series).forEach(function (m) {
      series[m].forEach(function (p) {
        if (p.v !== null && p.v > max) { max = p.v; }
        if (now - p.t > span) { span = now - p.t; }
      });
    });
    max = max > 0 ? niceMax(max) : 1;
    span = Math.min(POINTS * POLL_MS / 1000, Math.max(20, Math.ceil(span / 10) * 10));

    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = '#667';
    ctx.strokeStyle = '#e3e6ea';
    ctx.lineWidth = 1;
    for (i = 0; i <= 4; i++) {
      y = pad.t + (h - pad.t - pad.b) * i / 4;
      ctx.beginPath();
      ctx.moveTo(pad.l, Math.round(y) + 0.5);
      ctx.lineTo(w - pad.r, Math.round(y) + 0.5);
      ctx.stroke();
      label = num(max * (4 - i) / 4);
      ctx.fillText(label, 4, y + 4);
    }
    ctx.fillText('-' + span + ' s', pad.l, h - 4);
    ctx.fillText('now', w - pad.r - 22, h - 4);

    Object.keys(series).forEach(function (m) {
      var started = false;
      ctx.strokeStyle = color(m);
      ctx.lineWidth = 2;
      ctx.beginPath();
      series[m].forEach(function (p) {
        var x, yy;
        if (p.v === null) { started = false; return; }
        x = pad.l + (w - pad.l - pad.r) * (1 - (now - p.t) / span);
        yy = pad.t + (h - pad.t - pad.b) * (1 - p.v / max);
        if (x < pad.l) { return; }
        if (started) { ctx.lineTo(x, yy); } else { ctx.moveTo(x, yy); }
        started = true;
      });
      ctx.stroke();
    });
  }

  function niceMax(v) {
    var e = Math.pow(10, Math.floor(Math.log10(v))), f = v / e;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * e;
  }

  function drawCharts() {
    drawChart($('chart-rps'), state.series.rps);
    drawChart($('chart-err'), state.series.err);
    drawChart($('chart-ttft'), state.series.ttft);
    drawChart($('chart-tps'), state.series.tps);

    var legend = $('legend');
    clear(legend);
    state.models.forEach(function (m) {
      var sw = el('span', { class: 'swatch' });
      sw.style.backgroundColor = color(m);
      legend.appendChild(el('li', null, sw, m));
    });
  }

  /* --- agents and GPUs -------------------------------------------------- */

  function stateCell(a) {
    var td = el('td');
    if (a.revoked_at) {
      td.appendChild(el('span', { class: 'badge bad', text: 'revoked' }));
    } else if (a.connected) {
      td.appendChild(el('span', { class: 'badge ok', text: 'connected' }));
    } else {
      td.appendChild(el('span', { class: 'badge', text: 'offline' }));
    }
    if (a.drained_at) {
      td.appendChild(el('span', { class: 'badge warn', text: 'drained' }));
    }
    return td;
  }

  function actionButton(label, cls, onclick) {
    var b = el('button', { type: 'button', class: 'admin-only ' + cls,
                           text: label });
    b.addEventListener('click', onclick);
    return b;
  }

  function onAgents(list) {
    var rows = [], gpus = [];
    (list.data || []).forEach(function (a) {
      var live = a.live || [], inflight = 0, capacity = 0, requests = 0,
          models = [], act;
      live.forEach(function (e) {
        inflight += e.inflight || 0;
        capacity += e.capacity || 0;
        requests += e.requests || 0;
        (e.models || []).forEach(function (m) {
          if (models.indexOf(m) < 0) { models.push(m); }
        });
        gpuRows(gpus, a.name, e.telemetry);
      });
      if (!models.length && a.models) { models = a.models; }

      act = el('td');
      if (!a.revoked_at) {
        act.appendChild(a.drained_at
          ? actionButton('Undrain', '', function () { drain(a, false); })
          : actionButton('Drain', 'warn', function () { drain(a, true); }));
      }
      rows.push(el('tr', { 'data-agent': String(a.id) },
        el('td', { class: 'name', text: a.name }), stateCell(a),
        el('td', { text: live.length ? inflight + ' / ' + capacity : '\u2013' }),
        el('td', { text: live.length ? num(requests) : '\u2013' }),
        el('td', { text: models.length ? models.join(', ') : 'any' }),
        el('td', { text: a.region || '\u2013' }), act));
    });
    fill($('agents').tBodies[0], rows, 'No agent yet.', 7);
    fill($('gpus').tBodies[0], gpus,
         'No GPU telemetry (agents without NVML report the host only).', 6);
  }

  function bar(pct) {
    var outer = el('span', { class: 'bar' }), inner = el('span');
    inner.style.width = Math.max(0, Math.min(100, pct)) + '%';
    outer.appendChild(inner);
    return outer;
  }

  function gpuRows(rows, agent, t) {
    if (!t) { return; }
    (t.gpus || []).forEach(function (g) {
      var mem = g.mem_total_mb
        ? el('td', null, bar(100 * (g.mem_used_mb || 0) / g.mem_total_mb),
             num((g.mem_used_mb || 0) / 1024) + ' / '
             + num(g.mem_total_mb / 1024) + ' GiB')
        : el('td', { text: '\u2013' });
      rows.push(el('tr', null, el('td', { text: agent }),
        el('td', { text: g.index + ': ' + g.name }),
        g.util_pct !== undefined
          ? el('td', null, bar(g.util_pct), g.util_pct + ' %')
          : el('td', { text: '\u2013' }),
        mem,
        el('td', { text: g.temp_c !== undefined ? g.temp_c + ' \u00b0C' : '\u2013' }),
        el('td', { text: g.power_w !== undefined ? g.power_w + ' W' : '\u2013' })));
    });
  }

  function drain(a, on) {
    if (on && !window.confirm('Drain agent "' + a.name + '"? It finishes '
                              + 'its requests and gets no new one.')) {
      return;
    }
    clearError();
    api(on ? 'POST' : 'DELETE', 'agents/' + a.id + '/drain')
      .then(refresh, showError);
  }

  /* --- pools ------------------------------------------------------------ */

  function onStatus(st) {
    var tun = st.tunnel || {}, rows = [];
    (tun.pools || []).forEach(function (p) {
      rows.push(el('tr', null, el('td', { text: p.upstream }),
        el('td', { text: num(tun.waiting || 0) }),
        el('td', { text: num(p.queue) }),
        el('td', { text: (p.queue_timeout_ms / 1000) + ' s' })));
    });
    fill($('pools').tBodies[0], rows, 'No tunnel pool on this node.', 4);
    $('gateway').textContent = 'Node: ' + (st.gateway || st.host || '?')
      + (tun.agents_connected !== undefined
         ? ', ' + tun.agents_connected + ' agent runtimes connected' : '');
  }

  /* --- keys and tenants ------------------------------------------------- */

  function limits(x) {
    var parts = [];
    if (x.rpm) { parts.push(x.rpm + ' rpm'); }
    if (x.tpm) { parts.push(x.tpm + ' tpm'); }
    if (x.parallel) { parts.push(x.parallel + ' parallel'); }
    if (x.tokens_per_day) { parts.push(num(x.tokens_per_day) + ' tokens/day'); }
    if (x.budget_micros) {
      parts.push('budget ' + (x.budget_micros / 1e6) + '/' + (x.budget_period || ''));
    }
    return parts.length ? parts.join(', ') : 'none';
  }

  function given(v) { return v !== null && v !== undefined; }

  /* priority, maximum and region pin of a key or tenant; unset: inherited */
  function prioText(x) {
    var parts = [];
    if (given(x.priority)) { parts.push('priority ' + x.priority); }
    if (given(x.max_priority)) { parts.push('max ' + x.max_priority); }
    if (x.region) { parts.push('region ' + x.region); }
    return parts.length ? parts.join(', ') : 'inherited';
  }

  /*
   * A priority field as the API takes it: empty is null (inherit), a
   * whole number a number; anything else goes as typed, so that the
   * API's own message says what is wrong with it.
   */
  function prioField(s) {
    s = s.trim();
    if (s === '') { return null; }
    return /^-?[0-9]+$/.test(s) ? parseInt(s, 10) : s;
  }

  function openEdit(kind, x, label) {
    state.editing = { kind: kind, id: x.id };
    $('prio-edit-title').textContent = 'Priority and region of ' + label;
    $('prio-priority').value = given(x.priority) ? String(x.priority) : '';
    $('prio-max').value = given(x.max_priority) ? String(x.max_priority) : '';
    $('prio-region').value = x.region || '';
    $('prio-error').textContent = '';
    $('prio-edit').hidden = false;
    $('prio-edit').scrollIntoView();
    $('prio-priority').focus();
  }

  function closeEdit() {
    state.editing = null;
    $('prio-edit').hidden = true;
    $('prio-error').textContent = '';
  }

  function saveEdit(ev) {
    var e = state.editing, region = $('prio-region').value.trim();
    ev.preventDefault();
    if (!e) { return; }
    api('PATCH', e.kind + '/' + e.id, {
      priority: prioField($('prio-priority').value),
      max_priority: prioField($('prio-max').value),
      region: region === '' ? null : region
    }).then(function () {
      closeEdit();
      return refresh();
    }, function (err) {
      if (err.message !== '401') { $('prio-error').textContent = err.message; }
    });
  }

  function usageText(u) {
    return u ? num(u.requests) + ' req, '
               + num(u.prompt_tokens + u.completion_tokens) + ' tokens'
             : '\u2013';
  }

  function onKeys(list) {
    var rows = [];
    (list.data || []).forEach(function (k) {
      var revoked = !!k.revoked_at,
          expired = k.expires_at && Date.parse(k.expires_at) < Date.now(),
          act = el('td');
      if (!revoked) {
        act.appendChild(actionButton('Revoke', 'bad', function () {
          if (window.confirm('Revoke key ' + k.prefix + '\u2026 ("' + (k.name || '')
                             + '")? Every gateway refuses it at once.')) {
            clearError();
            api('DELETE', 'keys/' + k.id).then(refresh, showError);
          }
        }));
        act.appendChild(actionButton('Edit', 'edit', function () {
          openEdit('keys', k, 'key ' + k.prefix + '\u2026');
        }));
      }
      rows.push(el('tr', { 'data-key': String(k.id) },
        el('td', { text: k.id }), el('td', { text: k.prefix + '\u2026' }),
        el('td', { text: k.tenant || '' }), el('td', { text: k.name || '' }),
        el('td', { text: k.models ? k.models.join(', ') : 'all' }),
        el('td', { text: limits(k) }),
        el('td', { class: 'prio', text: prioText(k) }),
        el('td', { text: usageText(state.usageKey[k.id]) }),
        el('td', null, el('span', {
          class: 'badge ' + (revoked || expired ? 'bad' : 'ok'),
          text: revoked ? 'revoked' : expired ? 'expired' : 'active' })),
        act));
    });
    fill($('keys').tBodies[0], rows, 'No key yet.', 10);
  }

  function onTenants(list) {
    var rows = [];
    (list.data || []).forEach(function (t) {
      rows.push(el('tr', { 'data-tenant': String(t.id) },
        el('td', { text: t.id }),
        el('td', { text: t.name }), el('td', { text: limits(t) }),
        el('td', { class: 'prio', text: prioText(t) }),
        el('td', { text: t.keys }),
        el('td', { text: usageText(state.usageTenant[t.id]) }),
        el('td', null, el('span', { class: 'badge ' + (t.disabled ? 'bad' : 'ok'),
                                    text: t.disabled ? 'disabled' : 'active' })),
        el('td', null, actionButton('Edit', 'edit', function () {
          openEdit('tenants', t, 'tenant "' + t.name + '"');
        }))));
    });
    fill($('tenants').tBodies[0], rows, 'No tenant yet.', 8);
  }

  function onUsage(group, list) {
    var map = {};
    (list.data || []).forEach(function (u) { map[u[group]] = u; });
    if (group === 'key') { state.usageKey = map; } else { state.usageTenant = map; }
  }

  function createKey(ev) {
    var body = { tenant: $('key-tenant').value.trim() },
        name = $('key-name').value.trim(),
        models = $('key-models').value.trim(),
        rpm = $('key-rpm').value.trim(),
        prio = $('key-priority').value.trim(),
        max = $('key-max-priority').value.trim(),
        region = $('key-region').value.trim();
    ev.preventDefault();
    if (name) { body.name = name; }
    if (models) {
      body.models = models.split(',').map(function (m) { return m.trim(); })
                          .filter(function (m) { return m; });
    }
    if (rpm) { body.rpm = parseInt(rpm, 10); }
    /* empty: not sent, the tenant's apply */
    if (prio) { body.priority = prioField(prio); }
    if (max) { body.max_priority = prioField(max); }
    if (region) { body.region = region; }
    clearError();
    api('POST', 'keys', body).then(function (k) {
      $('new-key-value').textContent = k.key;
      $('new-key').hidden = false;
      $('key-form').reset();
      refresh();
    }, showError);
  }

  /* --- the poll --------------------------------------------------------- */

  function refresh() {
    var since = new Date(Date.now() - 86400000).toISOString(), jobs;
    if (!state.cred) { return Promise.resolve(); }
    /* agents, GPUs and pools are the operator's (403 to a tenant admin) */
    jobs = state.tenant ? [] : [
      api('GET', 'agents?limit=500').then(onAgents),
      request('GET', STATUS).then(onStatus),
      request('GET', METRICS).then(onMetrics)
    ];
    if (state.polls % USAGE_EVERY === 0) {
      jobs.push(api('GET', 'usage?group=key&limit=1000&from='
                    + encodeURIComponent(since)).then(function (u) {
        onUsage('key', u);
      }));
      jobs.push(api('GET', 'usage?group=tenant&limit=1000&from='
                    + encodeURIComponent(since)).then(function (u) {
        onUsage('tenant', u);
      }));
    }
    state.polls++;
    return Promise.all(jobs).then(function () {
      return Promise.all([api('GET', 'keys?limit=500').then(onKeys),
                          api('GET', 'tenants?limit=500').then(onTenants)]);
    }).then(function () {
      clearError('poll');
      $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
      document.body.setAttribute('data-polls', String(state.polls));
    });
  }

  function poll() {
    if (state.timer) { clearTimeout(state.timer); }
    refresh().catch(showPollError).then(function () {
      if (state.cred) { state.timer = setTimeout(poll, POLL_MS); }
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    var saved = sessionStorage.getItem(STORE);

    $('login-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      $('login-error').textContent = '';
      login($('cred').value.trim()).catch(function (e) {
        if (e.message !== '401') { $('login-error').textContent = e.message; }
      });
    });
    $('logout').addEventListener('click', function () { logout(''); });
    $('key-form').addEventListener('submit', createKey);
    $('prio-form').addEventListener('submit', saveEdit);
    $('prio-cancel').addEventListener('click', closeEdit);
    $('new-key-close').addEventListener('click', function () {
      $('new-key-value').textContent = '';
      $('new-key').hidden = true;
    });
    window.addEventListener('resize', drawCharts);

    if (saved) {
      login(saved).catch(function () { logout(''); });
    } else {
      logout('');
    }
  });
}());
