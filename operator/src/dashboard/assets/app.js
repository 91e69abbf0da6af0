// Vedette's dashboard: one page, every view a URL. Each view fetches its JSON from /ui/api/…
// (filtered, sorted and paged by the server) and draws it; server-sent events from
// /ui/api/events make the current view fetch again, at most a few times a second.
'use strict';

const STATES = ['CRITICAL', 'UNKNOWN', 'WARNING', 'OK', 'PENDING'];
const view = document.getElementById('view');
let current = null; // { name, load, draw }
let refreshing = false;
let again = false;
let timer = null;

// ---------------------------------------------------------------- helpers

function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function stateName(state) { return state || 'PENDING'; }

function badge(state, soft) {
  const name = stateName(state);
  return `<span class="state ${esc(name)}${soft ? ' soft' : ''}" title="${soft ? 'soft: not yet confirmed' : ''}">${esc(name)}</span>`;
}

function ago(ms) {
  if (!ms) return '—';
  let s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + 's';
  const m = Math.floor(s / 60); s %= 60;
  if (m < 60) return m + 'm ' + s + 's';
  const h = Math.floor(m / 60);
  if (h < 48) return h + 'h ' + (m % 60) + 'm';
  return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
}

function when(ms) { return ms ? new Date(ms).toLocaleString() : '—'; }

function params() { return new URLSearchParams(location.search); }

function url(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const text = q.toString();
  return text ? `${path}?${text}` : path;
}

function checkLink(row) {
  return `<a href="${esc(url('/ui/check', { host: row.host, check: `${row.namespace}/${row.ruleSet}/${row.rule}` }))}" data-nav>${esc(row.ruleSet)}/${esc(row.rule)}</a>`;
}

function hostLink(host) { return `<a href="${esc(url('/ui/host', { name: host }))}" data-nav>${esc(host)}</a>`; }

class Unauthenticated extends Error {}

async function api(path, options) {
  const response = await fetch(path, Object.assign({ credentials: 'same-origin', headers: { accept: 'application/json' } }, options));
  let body = {};
  try { body = await response.json(); } catch (_) { /* an empty body */ }
  if (response.status === 401) throw new Unauthenticated(body.error || 'login needed');
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function counts(counts) {
  return `<div class="counts">${STATES.map(s => `<span class="state ${s}" data-count="${s}">${s} ${counts[s] ?? 0}</span>`).join('')}</div>`;
}

function rowsTable(rows, options) {
  const sort = options && options.sort;
  const header = (label, column) => {
    if (!sort) return `<th>${label}</th>`;
    const on = sort.column === column;
    return `<th data-sort="${column}" class="${on ? 'sorted' + (sort.order === 'asc' ? ' asc' : '') : ''}">${label}</th>`;
  };
  const head = `<tr>${header('State', 'state')}${header('Host', 'host')}${header('Check', 'check')}${header('Application', 'namespace')}${header('Zone', 'zone')}${header('Duration', 'duration')}${header('Last check', 'lastCheck')}${header('Output', 'output')}</tr>`;
  const body = rows.map(r => `<tr class="${r.stale ? 'stale' : ''}" data-host="${esc(r.host)}" data-check="${esc(r.namespace + '/' + r.ruleSet + '/' + r.rule)}" data-state="${esc(stateName(r.state))}">
    <td>${badge(r.state, r.state && !r.hard)}</td><td>${hostLink(r.host)}${r.stale ? ' <span class="badge bad" title="the agent missed its keepalives">stale</span>' : ''}</td>
    <td>${checkLink(r)}</td><td>${esc(r.namespace)}</td><td>${esc(r.zone)}</td>
    <td>${r.sinceMs ? ago(r.sinceMs) : '—'}</td><td>${r.atMs ? ago(r.atMs) + ' ago' : '—'}</td><td class="output">${esc(r.output)}</td></tr>`).join('');
  return `<table class="checks"><thead>${head}</thead><tbody>${body || `<tr><td colspan="8" class="muted">Nothing here.</td></tr>`}</tbody></table>`;
}

// ---------------------------------------------------------------- views

const views = {};

views.problems = {
  live: true,
  load: () => api('/ui/api/problems'),
  draw(data) {
    const more = (shown, total) => total > shown.length
      ? `<p class="muted">The worst ${shown.length} of ${total}; <a href="${esc(url('/ui/checks', { state: 'CRITICAL,UNKNOWN,WARNING' }))}" data-nav>every check that is not OK</a>.</p>` : '';
    let html = `<h1>Problems</h1>${counts(data.counts)}`;
    html += `<h2>Hard problems (${data.hardTotal})</h2>${rowsTable(data.hard)}${more(data.hard, data.hardTotal)}`;
    if (data.staleAgents.length) {
      html += `<h2>Agents not reporting (${data.staleAgents.length})</h2><table><tr><th>Host</th><th>Zone</th><th>Last seen</th></tr>`;
      html += data.staleAgents.map(a => `<tr><td>${hostLink(a.host)}</td><td>${esc(a.zone)}</td><td>${ago(a.seenMs)} ago</td></tr>`).join('') + '</table>';
    }
    html += `<h2>Soft problems, not yet confirmed (${data.softTotal})</h2>${rowsTable(data.soft)}${more(data.soft, data.softTotal)}`;
    html += `<p class="muted">Acknowledgements and maintenance windows are not part of Vedette yet; every problem is listed.</p>`;
    view.innerHTML = html;
  },
};

const CHECK_FILTERS = ['namespace', 'zone', 'host', 'ruleSet', 'state', 'q', 'sort', 'order', 'offset'];

views.checks = {
  live: true,
  load() {
    const p = params();
    const query = {};
    for (const key of CHECK_FILTERS) if (p.get(key)) query[key] = p.get(key);
    query.limit = 200;
    return api(url('/ui/api/checks', query));
  },
  draw(data) {
    const p = params();
    const option = (values, selected, label) => `<option value="">${label}</option>` +
      [...values].map(v => `<option ${v === selected ? 'selected' : ''}>${esc(v)}</option>`).join('');
    const states = (p.get('state') || '').split(',').filter(Boolean);
    const sort = { column: p.get('sort') || 'state', order: p.get('order') || 'desc' };
    const offset = Number(p.get('offset') || 0);
    const focused = document.activeElement && document.activeElement.id;
    let html = `<h1>Checks <span class="muted">${data.total}</span></h1>${counts(data.counts)}
      <div class="filters">
        <select id="f-namespace" data-filter="namespace">${option(data.facets.namespaces, p.get('namespace'), 'every application')}</select>
        <select id="f-zone" data-filter="zone">${option(data.facets.zones, p.get('zone'), 'every zone')}</select>
        <select id="f-ruleSet" data-filter="ruleSet">${option(data.facets.ruleSets, p.get('ruleSet'), 'every rule set')}</select>
        <input id="f-host" data-filter="host" placeholder="host" value="${esc(p.get('host') || '')}">
        <input id="f-q" data-filter="q" placeholder="search host, check, output" size="28" value="${esc(p.get('q') || '')}">
        ${STATES.map(s => `<label><input type="checkbox" data-state="${s}" ${states.includes(s) ? 'checked' : ''}>${s}</label>`).join('')}
      </div>`;
    html += rowsTable(data.rows, { sort });
    const last = Math.min(offset + data.rows.length, data.total);
    html += `<div class="pager"><button id="prev" ${offset <= 0 ? 'disabled' : ''}>Previous</button>
      <span>${data.total ? offset + 1 : 0}–${last} of ${data.total}</span>
      <button id="next" ${last >= data.total ? 'disabled' : ''}>Next</button></div>`;
    view.innerHTML = html;
    if (focused) {
      const again = document.getElementById(focused);
      if (again) { again.focus(); if (again.setSelectionRange) again.setSelectionRange(again.value.length, again.value.length); }
    }
    const set = (changes) => {
      const q = params();
      for (const [k, v] of Object.entries(changes)) { if (v) q.set(k, v); else q.delete(k); }
      if (!('offset' in changes)) q.delete('offset');
      history.replaceState(null, '', url('/ui/checks', Object.fromEntries(q)));
      refresh();
    };
    view.querySelectorAll('select[data-filter]').forEach(el => el.addEventListener('change', () => set({ [el.dataset.filter]: el.value })));
    view.querySelectorAll('input[data-filter]').forEach(el => {
      let wait = null;
      el.addEventListener('input', () => { clearTimeout(wait); wait = setTimeout(() => set({ [el.dataset.filter]: el.value.trim() }), 40); });
    });
    view.querySelectorAll('input[data-state]').forEach(el => el.addEventListener('change', () => {
      const chosen = [...view.querySelectorAll('input[data-state]:checked')].map(e => e.dataset.state);
      set({ state: chosen.join(',') });
    }));
    view.querySelectorAll('th[data-sort]').forEach(th => th.addEventListener('click', () => {
      const column = th.dataset.sort;
      const order = sort.column === column && sort.order === 'desc' ? 'asc' : 'desc';
      set({ sort: column, order });
    }));
    document.getElementById('prev').onclick = () => set({ offset: String(Math.max(0, offset - 200)) });
    document.getElementById('next').onclick = () => set({ offset: String(offset + 200) });
  },
};

function timeline(records) {
  const changes = records.filter(r => r.kind === 'state_change' && r.state).sort((a, b) => a.atMs - b.atMs);
  if (!changes.length) return '<p class="muted">No state changes recorded.</p>';
  const start = changes[0].atMs;
  const span = Math.max(1, Date.now() - start);
  const parts = changes.map((r, i) => {
    const end = i + 1 < changes.length ? changes[i + 1].atMs : Date.now();
    const width = Math.max(0.3, (100 * (end - r.atMs)) / span);
    return `<span class="${esc(r.state)}" style="width:${width}%" title="${esc(r.state)} from ${esc(when(r.atMs))}"></span>`;
  }).join('');
  return `<div class="timeline">${parts}</div><div class="muted">${esc(when(start))} — now</div>`;
}

views.check = {
  live: true,
  load: () => { const p = params(); return api(url('/ui/api/check', { host: p.get('host'), check: p.get('check') })); },
  draw(c) {
    const d = c.definition;
    let html = `<h1>${badge(c.state, c.state && !c.hard)} ${esc(c.check)} on ${hostLink(c.host)}</h1>
      <div class="cards"><div class="card"><h2>Now</h2><dl class="facts">
        <dt>State</dt><dd>${esc(stateName(c.state))}${c.state && !c.hard ? ' (soft)' : ''}${c.stale ? ' — the agent is not reporting' : ''}</dd>
        <dt>Since</dt><dd>${c.sinceMs ? esc(when(c.sinceMs)) + ' (' + ago(c.sinceMs) + ')' : '—'}</dd>
        <dt>Last check</dt><dd>${c.atMs ? esc(when(c.atMs)) : 'never'}</dd>
        <dt>Application</dt><dd>${esc(c.namespace)}</dd><dt>Rule set</dt><dd><a href="${esc(url('/ui/matrix', { ruleSet: c.namespace + '/' + c.ruleSet }))}" data-nav>${esc(c.ruleSet)}</a></dd>
        <dt>Zone</dt><dd>${esc(c.zone)}</dd></dl>
        <h2>Output</h2><pre class="output">${esc(c.output || '(none yet)')}</pre></div>`;
    if (d) {
      html += `<div class="card"><h2>Definition</h2><dl class="facts">
        <dt>Template</dt><dd>${esc(d.template)}</dd>
        <dt>Warning</dt><dd>${esc(d.warning || '—')}</dd><dt>Critical</dt><dd>${esc(d.critical || '—')}</dd>
        ${d.condition ? `<dt>Condition</dt><dd><code>${esc(d.condition)}</code></dd>` : ''}
        <dt>Interval</dt><dd>${d.intervalSeconds}s, retry ${d.retryIntervalSeconds}s, ${d.maxAttempts} attempts</dd>
        <dt>Timeout</dt><dd>${d.timeoutSeconds}s</dd></dl>
        <h2>Check and parameters</h2><pre>${esc(JSON.stringify(d.check, null, 2))}</pre></div>`;
    } else {
      html += `<div class="card"><h2>Definition</h2><p class="muted">No longer planned: its rule set or template changed.</p></div>`;
    }
    html += '</div>';
    if (c.history === null) {
      html += `<h2>History</h2><p class="muted">These masters keep no history (no --data-dir).</p>`;
    } else {
      html += `<h2>History</h2>${timeline(c.history)}<table><tr><th>When</th><th>Change</th><th>Output</th></tr>` +
        c.history.map(r => `<tr><td>${esc(when(r.atMs))}</td><td>${r.previous ? badge(r.previous) + ' → ' : ''}${badge(r.state, r.hard === false)}</td><td class="output">${esc(r.message)}</td></tr>`).join('') + '</table>';
    }
    view.innerHTML = html;
  },
};

views.host = {
  live: true,
  load: () => api(url('/ui/api/host', { name: params().get('name') })),
  draw(h) {
    let html = `<h1>${esc(h.name)}</h1>`;
    if (h.agent) {
      const a = h.agent;
      html += `<div class="card"><dl class="facts"><dt>Zone</dt><dd>${esc(a.zone)}</dd>
        <dt>Agent</dt><dd>${a.stale ? '<span class="badge bad">stale</span>' : 'connected'}, last seen ${ago(a.seenMs)} ago</dd>
        <dt>Plan</dt><dd>${a.planHeld ? `<span class="badge bad">held</span> ${esc(a.planReason)}` : 'current'}</dd></dl></div>`;
    } else if (h.remote) {
      html += `<p class="muted">Checked remotely by its zone's satellites.</p>`;
    }
    html += `<h2>Checks (${h.checks.length})</h2>${rowsTable(h.checks)}`;
    view.innerHTML = html;
  },
};

views.zones = {
  live: true,
  load: () => api('/ui/api/zones'),
  draw(zones) {
    let html = '<h1>Zones</h1><div class="cards">';
    for (const z of zones) {
      const ready = z.satellites.filter(s => s.ready).length;
      const wanted = z.replicas ?? z.satellites.length;
      html += `<div class="card" data-zone="${esc(z.name)}"><h2>${esc(z.name)}${z.parent ? ` <span class="muted">→ ${esc(z.parent)}</span>` : ''}</h2><dl class="facts">
        <dt>Satellites ready</dt><dd>${ready} of ${wanted}</dd>
        <dt>Agents</dt><dd>${z.connected} connected, ${z.stale} stale, ${z.planHeld} on a held plan</dd>
        <dt>Machines</dt><dd>${z.machines}${z.remoteTargets ? `, ${z.remoteTargets} remote targets` : ''}</dd></dl>`;
      if (z.satellites.length) {
        html += '<table><tr><th>Replica</th><th>Ready</th><th>Agents</th><th>Remote checks</th><th>Summary</th></tr>' +
          z.satellites.map(s => `<tr><td>${esc(s.replica)}</td><td>${s.ready ? 'yes' : '<span class="badge bad">no</span>'}</td><td>${s.connected}/${s.agents}</td><td>${s.remoteChecksOwned}</td><td>${ago(s.atMs)} ago</td></tr>`).join('') + '</table>';
      }
      const worst = z.agents.filter(a => a.stale || a.planHeld).concat(z.agents.filter(a => !a.stale && !a.planHeld)).slice(0, 50);
      if (worst.length) {
        html += '<table><tr><th>Agent</th><th>State</th><th>Seen</th></tr>' + worst.map(a => `<tr><td>${hostLink(a.host)}</td><td>${a.stale ? '<span class="badge bad">stale</span>' : 'connected'}${a.planHeld ? ' <span class="badge bad" title="' + esc(a.planReason) + '">plan held</span>' : ''}</td><td>${ago(a.seenMs)} ago</td></tr>`).join('') + '</table>';
        if (z.agents.length > worst.length) html += `<p class="muted">and ${z.agents.length - worst.length} more</p>`;
      }
      html += '</div>';
    }
    view.innerHTML = html + '</div>';
  },
};

// Elements in dependency order: a layer is one more than its deepest dependency.
function layers(elements) {
  const byName = new Map(elements.map(e => [e.name, e]));
  const depth = new Map();
  const visit = (name, seen) => {
    if (depth.has(name)) return depth.get(name);
    if (seen.has(name)) return 0;
    seen.add(name);
    const e = byName.get(name);
    const d = e ? Math.max(-1, ...(e.dependencies || []).map(dep => visit(dep.name, seen))) + 1 : 0;
    depth.set(name, d);
    return d;
  };
  elements.forEach(e => visit(e.name, new Set()));
  return depth;
}

function graph(process) {
  const elements = process.elements;
  const depth = layers(elements);
  const columns = [];
  elements.forEach(e => { const d = depth.get(e.name); (columns[d] = columns[d] || []).push(e); });
  const W = 170, H = 44, GX = 60, GY = 18;
  const position = new Map();
  columns.forEach((column, x) => column.forEach((e, y) => position.set(e.name, { x: 10 + x * (W + GX), y: 10 + y * (H + GY) })));
  const width = 20 + columns.length * (W + GX) - GX;
  const height = 20 + Math.max(...columns.map(c => c.length)) * (H + GY) - GY;
  const late = new Set((process.currentViolations || []).map(v => v.element));
  let svg = `<svg class="graph" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" data-process="${esc(process.process)}">
    <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#90a4ae"/></marker></defs>`;
  for (const e of elements) {
    for (const dep of e.dependencies || []) {
      const from = position.get(dep.name), to = position.get(e.name);
      if (!from || !to) continue;
      svg += `<path class="edge" d="M${from.x + W},${from.y + H / 2} C${from.x + W + GX / 2},${from.y + H / 2} ${to.x - GX / 2},${to.y + H / 2} ${to.x},${to.y + H / 2}"/>`;
    }
  }
  for (const e of elements) {
    const p = position.get(e.name);
    const title = `${e.name}: ${e.state}${e.message ? ' — ' + e.message : ''}${e.blockedBy ? ' (blocked by ' + e.blockedBy + ')' : ''}`;
    svg += `<g data-element="${esc(e.name)}" data-state="${esc(e.state)}"><title>${esc(title)}</title>
      <rect class="${esc(e.state)}${late.has(e.name) ? ' late' : ''}" x="${p.x}" y="${p.y}" width="${W}" height="${H}" rx="6"/>
      <text x="${p.x + 10}" y="${p.y + 18}">${esc(e.name.slice(0, 22))}</text>
      <text x="${p.x + 10}" y="${p.y + 34}" opacity=".85">${esc(e.state)}${late.has(e.name) ? ' · violation' : ''}</text></g>`;
  }
  return svg + '</svg>';
}

views.processes = {
  live: true,
  load: () => api('/ui/api/processes'),
  draw(processes) {
    const only = params().get('name');
    const shown = only ? processes.filter(p => p.process === only) : processes;
    let html = '<h1>Business processes</h1>';
    if (!shown.length) html += '<p class="muted">No business process you may see.</p>';
    for (const p of shown) {
      html += `<section class="process"><h2><a href="${esc(url('/ui/processes', { name: p.process }))}" data-nav>${esc(p.process)}</a>
        <span class="muted">${p.running} running, ${p.completed} completed, ${p.failed} failed, ${p.violations} violations</span></h2>`;
      if (p.notEvaluating) html += `<p class="error">Not evaluated: ${esc(p.notEvaluating.reason)} — ${esc(p.notEvaluating.message)}</p>`;
      html += graph(p);
      html += '<table><tr><th>Element</th><th>State</th><th>Since</th><th>Message</th><th>Machine</th><th>Last run</th><th>Median</th></tr>' +
        p.elements.map(e => `<tr><td>${esc(e.name)}</td><td>${badge(e.state)}</td><td>${esc(e.since || '—')}</td><td>${esc(e.message || (e.blockedBy ? 'blocked by ' + e.blockedBy : ''))}</td><td>${e.machine ? hostLink(e.machine) : '—'}</td>
          <td>${e.lastRun ? `${badge(e.lastRun.outcome)} ${esc(e.lastRun.started)} (${e.lastRun.seconds}s)` : '—'}</td><td>${e.medianRunSeconds != null ? e.medianRunSeconds + 's' : '—'}</td></tr>`).join('') + '</table>';
      if ((p.currentViolations || []).length) {
        html += '<h2>Violations in this run</h2><table><tr><th>When</th><th>Element</th><th>Kind</th><th>Message</th></tr>' +
          p.currentViolations.map(v => `<tr><td>${esc(v.at)}</td><td>${esc(v.element)}</td><td>${esc(v.kind)}</td><td>${esc(v.message)}</td></tr>`).join('') + '</table>';
      }
      html += '</section>';
    }
    view.innerHTML = html;
  },
};

views.matrix = {
  live: true,
  async load() {
    const ruleSet = params().get('ruleSet');
    const facets = (await api('/ui/api/checks?limit=1')).facets;
    const matrix = ruleSet ? await api(url('/ui/api/matrix', { ruleSet })) : null;
    return { facets, matrix, ruleSet };
  },
  draw({ facets, matrix, ruleSet }) {
    let html = `<h1>Rule sets × machines</h1><div class="filters"><select id="ruleset">
      <option value="">choose a rule set</option>${[...facets.ruleSets].map(r => `<option ${r === ruleSet ? 'selected' : ''}>${esc(r)}</option>`).join('')}</select></div>`;
    if (matrix) {
      html += `<table class="matrix"><tr><th>Machine</th>${matrix.rules.map(r => `<th>${esc(r)}</th>`).join('')}</tr>` +
        matrix.machines.map(([host, cells]) => `<tr><td>${hostLink(host)}</td>${cells.map((s, i) => `<td class="cell">${s ? `<a href="${esc(url('/ui/check', { host, check: matrix.ruleSet + '/' + matrix.rules[i] }))}" data-nav><span class="${esc(s)}">${esc(s)}</span></a>` : ''}</td>`).join('')}</tr>`).join('') + '</table>';
      if (!matrix.machines.length) html += '<p class="muted">No machine runs this rule set.</p>';
    }
    view.innerHTML = html;
    document.getElementById('ruleset').onchange = (e) => go(url('/ui/matrix', { ruleSet: e.target.value }));
  },
};

views.login = {
  live: false,
  load: async () => ({}),
  draw() {
    view.innerHTML = `<div class="login"><h1>Log in</h1>
      <p>Paste a Kubernetes bearer token: a ServiceAccount's (<code>kubectl create token &lt;name&gt; -n &lt;namespace&gt;</code>) or your OIDC id token.
      You will see the applications (namespaces) whose rule sets you may <code>get</code>, and zones and agents if you may get monitorzones.</p>
      <textarea id="token" placeholder="eyJhbGciOi…" autofocus></textarea>
      <p><button id="login">Log in</button> <span id="login-error" class="error" hidden></span></p></div>`;
    document.getElementById('login').onclick = async () => {
      const token = document.getElementById('token').value.trim();
      const problem = document.getElementById('login-error');
      try {
        await api('/ui/api/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) });
        await whoami();
        go(params().get('next') || '/ui/');
      } catch (e) {
        problem.hidden = false;
        problem.textContent = e.message;
      }
    };
  },
};

// ---------------------------------------------------------------- routing and refresh

function route() {
  const path = location.pathname.replace(/\/+$/, '');
  const name = { '/ui': 'problems', '/ui/checks': 'checks', '/ui/check': 'check', '/ui/host': 'host', '/ui/zones': 'zones', '/ui/processes': 'processes', '/ui/matrix': 'matrix', '/ui/login': 'login' }[path];
  return name || 'problems';
}

async function refresh() {
  if (refreshing) { again = true; return; }
  refreshing = true;
  const shown = current;
  try {
    const data = await shown.load();
    if (current === shown) {
      shown.draw(data);
      document.body.dataset.loaded = String(Date.now());
    }
  } catch (e) {
    if (e instanceof Unauthenticated) {
      if (route() !== 'login') go(url('/ui/login', { next: location.pathname + location.search }));
    } else if (current === shown) {
      view.innerHTML = `<p class="error">${esc(e.message)}</p>`;
    }
  } finally {
    refreshing = false;
    if (again) { again = false; schedule(300); }
  }
}

function schedule(delay) {
  if (timer) return;
  timer = setTimeout(() => { timer = null; refresh(); }, delay);
}

function render() {
  const name = route();
  current = Object.assign({ name }, views[name]);
  document.querySelectorAll('header nav a').forEach(a => a.classList.toggle('active', a.dataset.view === name));
  refresh();
}

function go(target) {
  history.pushState(null, '', target);
  render();
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-nav]');
  if (!a || e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  go(a.getAttribute('href'));
});
window.addEventListener('popstate', render);

let source = null;
function connect() {
  if (source) source.close();
  const live = document.getElementById('live');
  source = new EventSource('/ui/api/events');
  source.onopen = () => { live.className = 'live on'; live.title = 'live updates: connected'; };
  source.onerror = () => { live.className = 'live off'; live.title = 'live updates: reconnecting'; };
  const changed = () => { if (current && current.live) schedule(50); };
  source.addEventListener('changes', changed);
  source.addEventListener('resync', changed);
}

async function whoami() {
  try {
    const me = await api('/ui/api/me');
    document.getElementById('user').textContent = me.login ? me.user : '';
    const logout = document.getElementById('logout');
    logout.hidden = !me.login;
    logout.onclick = async () => { await api('/ui/api/logout', { method: 'POST' }); if (source) source.close(); go('/ui/login'); };
    document.querySelector('[data-view=zones]').hidden = !me.cluster;
    connect();
  } catch (e) {
    if (!(e instanceof Unauthenticated)) throw e;
  }
}

setInterval(() => { if (current && current.live && !document.hidden) schedule(0); }, 30000);
render();
whoami();
