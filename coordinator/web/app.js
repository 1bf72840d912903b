// The musafarm dashboard. Everything the farm says (names, log lines, test
// names) is put in the page as text (textContent), never parsed as HTML.
'use strict';

let session = null;
let live = [];  // open EventSources, closed on navigation

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
function stateOf(s) { return String(s || '').replace(/^(TASK|JOB|AGENT)_STATE_/, '').toLowerCase(); }
function chip(state, text, href) {
  const c = el(href ? 'a' : 'span', { class: 'chip st-' + stateOf(state) }, text);
  if (href) c.href = href;
  return c;
}
async function api(path, options) {
  const r = await fetch(path, Object.assign({ credentials: 'same-origin' }, options || {}));
  if (r.status === 401) { showLogin(await r.text()); throw new Error('login'); }
  if (!r.ok) throw new Error(await r.text());
  return r.json();
}
function main(...children) {
  for (const s of live) s.close();
  live = [];
  const m = document.getElementById('main');
  m.replaceChildren(...children);
  return m;
}

function showLogin(why) {
  const input = el('input', { type: 'password', name: 'token', id: 'token', placeholder: 'mfu1.…',
                              autocomplete: 'off' });
  const msg = el('p', { class: 'error', id: 'login-error' }, why && why.trim() !== 'no API token' ? why : '');
  const form = el('form', { id: 'login', onsubmit: async (ev) => {
    ev.preventDefault();
    const r = await fetch('/login', { method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: input.value }) });
    if (!r.ok) { msg.textContent = await r.text(); return; }
    input.value = '';
    start();
  } }, el('label', { for: 'token' }, 'API token '), input, ' ', el('button', { type: 'submit' }, 'Sign in'));
  main(el('section', {}, el('h1', {}, 'Sign in'), form, msg));
}

// ANSI SGR colours: the text between escape codes becomes spans with classes.
function ansi(text, into) {
  const re = /\x1b\[([0-9;]*)m/g;
  let cls = [], last = 0, m;
  const put = (s) => {
    if (!s) return;
    into.append(cls.length ? el('span', { class: cls.join(' ') }, s) : document.createTextNode(s));
  };
  while ((m = re.exec(text)) !== null) {
    put(text.slice(last, m.index));
    last = re.lastIndex;
    for (const p of (m[1] || '0').split(';')) {
      const n = Number(p || 0);
      if (n === 0) cls = [];
      else if (n === 1) cls.push('ansi-bold');
      else if (n >= 30 && n <= 37) cls = cls.filter(c => !/^ansi-3/.test(c)).concat('ansi-' + n);
      else if (n >= 90 && n <= 97) cls = cls.filter(c => !/^ansi-3/.test(c)).concat('ansi-' + (n - 60));
      else if (n === 39) cls = cls.filter(c => !/^ansi-3/.test(c));
    }
  }
  put(text.slice(last).replace(/\x1b\[[0-9;]*[A-Za-z]/g, ''));
}

async function jobsPage() {
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  const state = el('select', { name: 'state', id: 'f-state' },
    ...['', 'running', 'succeeded', 'failed', 'cancelled'].map(s => el('option', { value: s }, s || 'any state')));
  state.value = q.get('state') || '';
  const name = el('input', { name: 'name', id: 'f-name', placeholder: 'name', value: q.get('name') || '' });
  const sub = el('input', { name: 'submitter', id: 'f-submitter', placeholder: 'submitter',
                            value: q.get('submitter') || '' });
  const filters = el('form', { class: 'filters', onsubmit: (ev) => {
    ev.preventDefault();
    location.hash = '#/?' + new URLSearchParams({ state: state.value, name: name.value, submitter: sub.value });
  } }, state, name, sub, el('button', { type: 'submit' }, 'Filter'));
  const jobsBody = el('tbody', {});
  const agentsBody = el('tbody', {});
  const coordinatorsBody = el('tbody', {});
  main(el('section', {}, el('h1', {}, 'Jobs'), filters,
          el('table', { id: 'jobs' }, el('thead', {}, el('tr', {}, el('th', {}, 'job'), el('th', {}, 'name'),
            el('th', {}, 'state'), el('th', { class: 'wide' }, 'submitter'), el('th', { class: 'wide' }, 'tasks'))), jobsBody)),
       el('section', {}, el('h1', {}, 'Agents'),
          el('table', { id: 'agents' }, el('thead', {}, el('tr', {}, el('th', {}, 'agent'), el('th', {}, 'state'),
            el('th', {}, 'GPUs in use'), el('th', { class: 'wide' }, 'labels'), el('th', { class: 'wide' }, 'running'),
            el('th', { class: 'wide' }, 'free disk'), el('th', {}, 'unavailable'))), agentsBody)),
       el('section', {}, el('h1', {}, 'Coordinators'),
          el('table', { id: 'coordinators' }, el('thead', {}, el('tr', {}, el('th', {}, 'address'),
            el('th', {}, 'role'), el('th', {}, 'epoch'), el('th', { class: 'wide' }, 'active since'),
            el('th', { class: 'wide' }, 'last seen'))), coordinatorsBody)));
  // Who is active (issue 20), as `musafarm coordinators`; the rest of the page
  // does not wait for it nor fail with it.
  api('/api/coordinators').then((list) => {
    const when = (t) => t ? new Date(t).toLocaleString() : '–';
    for (const c of list.coordinators || []) {
      const role = String(c.role || '').replace(/^COORDINATOR_ROLE_/, '').toLowerCase();
      coordinatorsBody.append(el('tr', {}, el('td', {}, c.address || c.id), el('td', {}, chip(role, role)),
        el('td', {}, role === 'active' ? String(c.epoch || 0) : '–'),
        el('td', { class: 'wide' }, when(c.active_since)), el('td', { class: 'wide' }, when(c.last_seen))));
    }
  }).catch(() => {});
  const params = new URLSearchParams({ state: q.get('state') || '', name: q.get('name') || '',
                                       user: q.get('submitter') || '' });
  const [jobs, agents] = await Promise.all([api('/api/jobs?' + params), api('/api/agents')]);
  for (const j of jobs) {
    jobsBody.append(el('tr', {}, el('td', {}, el('a', { href: '#/job/' + encodeURIComponent(j.id) }, j.id)),
      el('td', {}, j.name || ''), el('td', {}, chip(j.state, stateOf(j.state))),
      el('td', { class: 'wide' }, j.submitter || ''), el('td', { class: 'wide' }, String((j.tasks || []).length || ''))));
  }
  for (const a of agents) {
    const gpus = a.gpus ? (a.gpus - (a.free_gpus || 0)) + ' / ' + a.gpus : '–';
    const disk = a.free_disk_bytes ? (Number(a.free_disk_bytes) / 2 ** 30).toFixed(1) + ' GiB' : '';
    const st = a.draining ? 'draining' : stateOf(a.state);
    agentsBody.append(el('tr', {}, el('td', {}, a.name), el('td', {}, chip(st, st)), el('td', {}, gpus),
      el('td', { class: 'wide' }, (a.labels || []).join(', ')), el('td', { class: 'wide' }, (a.running_tasks || []).join(', ')),
      el('td', { class: 'wide' }, disk), el('td', {}, a.unavailable_reason || '')));
  }
}

function cellKey(task, skip) {
  return (task.spec.cell || []).filter((v, i) => i !== skip).map(v => v.value).join(' ') || '–';
}

// A queued task says why it waits (Task.wait_reason): shown on hover.
function chipTitle(t) {
  return stateOf(t.state) + (stateOf(t.state) === 'queued' && t.wait_reason ? ': ' + t.wait_reason : '');
}

// What the job was built from (issue 17), as `musafarm status` says it:
// name, source, commit and tree digest (short), files and bytes.
function jobInputs(inputs) {
  if (!inputs || !inputs.length) return '';
  const bytes = (n) => { n = Number(n || 0); return n < 1024 ? n + ' B' : (n / 2 ** 20).toFixed(1) + ' MiB'; };
  return el('section', {}, el('h2', {}, 'Inputs'), el('ul', { id: 'inputs' }, ...inputs.map(i => el('li', {},
    el('strong', {}, i.name), ': ', i.source || '', i.commit ? ' at ' + i.commit.slice(0, 12) : '',
    ', tree ', el('code', {}, ((i.tree && i.tree.sha256) || '').slice(0, 12)),
    ', ' + Number(i.files || 0) + ' files, ' + bytes(i.bytes)))));
}

// A schedule's run against its previous run (issue 14): per cell and test,
// what newly fails, what was fixed, what still fails. Test names are text.
function nightlyDiff(diff) {
  if (!diff) return '';
  const kinds = [['newly_failing', 'Newly failing'], ['fixed', 'Fixed'], ['still_failing', 'Still failing']];
  return el('section', { id: 'nightly-diff' },
    el('h2', {}, 'Since the previous run (',
       el('a', { href: '#/job/' + encodeURIComponent(diff.previous_job_id) }, 'job ' + diff.previous_job_id), ')'),
    ...kinds.map(([key, label]) => {
      const changes = diff[key] || [];
      return el('div', { class: 'diff-kind' }, el('h3', {}, label + ' (' + changes.length + ')'),
        el('ul', { id: 'diff-' + key }, ...changes.map(c => el('li', {},
          c.cell ? el('span', { class: 'diff-cell' }, c.cell + ': ') : '', el('code', {}, c.test)))));
    }));
}

async function jobPage(id) {
  const job = await api('/api/job?id=' + encodeURIComponent(id));
  const axes = job.axes || [];
  const py = axes.indexOf('python');
  const cols = [...new Set(job.tasks.map(t => py >= 0 ? t.spec.cell[py].value : ''))];
  const rows = [...new Set(job.tasks.map(t => cellKey(t, py)))];
  const chips = {};
  const grid = el('table', { class: 'grid', id: 'grid' },
    el('thead', {}, el('tr', {}, el('th', {}, axes.filter((a, i) => i !== py).join(' × ')),
      ...cols.map(c => el('th', {}, py >= 0 ? 'python ' + c : '')))));
  const body = el('tbody', {});
  grid.append(body);
  for (const r of rows) {
    const tr = el('tr', {}, el('th', {}, r));
    for (const c of cols) {
      const cell = el('div', { class: 'cell' });
      for (const t of job.tasks) {
        if (cellKey(t, py) !== r || (py >= 0 && t.spec.cell[py].value !== c)) continue;
        const ch = chip(t.state, t.spec.stage, '#/task/' + encodeURIComponent(t.id));
        ch.dataset.task = t.id;
        ch.title = chipTitle(t);
        chips[t.id] = ch;
        cell.append(ch);
      }
      tr.append(el('td', {}, cell));
    }
    body.append(tr);
  }
  const stages = [];
  for (const t of job.tasks) if (!stages.some(s => s.name === t.spec.stage)) stages.push({ name: t.spec.stage, needs: t.spec.needs || [] });
  const dag = el('ul', { class: 'dag' }, ...stages.map(s => el('li', {}, s.name,
    s.needs.length ? ' ← ' + [...new Set(s.needs.map(n => n.split('/').pop()))].join(', ') : '')));
  const state = chip(job.state, stateOf(job.state));
  state.id = 'job-state';
  const actions = el('div', {});
  const actionError = el('p', { class: 'error', id: 'action-error' });
  // A new job from this one (POST /api/rerun), then its page.
  const rerun = async (failed) => {
    try {
      const next = await api('/api/rerun?id=' + encodeURIComponent(job.id) + (failed ? '&failed=1' : ''),
        { method: 'POST', headers: { 'X-CSRF-Token': session.csrf } });
      location.hash = '#/job/' + encodeURIComponent(next.id);
    } catch (e) {
      if (e.message !== 'login') actionError.textContent = e.message;
    }
  };
  const showActions = (ended, tasks) => {
    actions.replaceChildren();
    if (!ended && session.may_cancel) {
      actions.append(el('button', { id: 'cancel', onclick: async () => {
        await api('/api/cancel?id=' + encodeURIComponent(job.id), { method: 'POST', headers: { 'X-CSRF-Token': session.csrf } });
      } }, 'Cancel job'));
    }
    if (ended && job.may_rerun) {
      actions.append(el('button', { id: 'rerun', onclick: () => rerun(false) }, 'Rerun'));
      const bad = ['failed', 'timed_out', 'cancelled', 'skipped'];
      if (tasks.some(t => bad.includes(stateOf(t.state)))) {
        actions.append(' ', el('button', { id: 'rerun-failed', onclick: () => rerun(true) }, 'Rerun failed'));
      }
    }
  };
  let ended = stateOf(job.state) !== 'running';
  showActions(ended, job.tasks);
  const title = el('h1', { id: 'job-name' }, 'Job ' + job.id + ': ', job.name || '');
  const about = el('p', {}, state, ' ', job.pipeline_file || '');
  if (job.rerun_of) {
    about.append(' ', el('a', { id: 'rerun-of', href: '#/job/' + encodeURIComponent(job.rerun_of) },
                         'rerun of #' + job.rerun_of));
  }
  main(el('section', {}, title, about, actions, actionError),
       el('section', {}, el('h2', {}, 'Matrix'), grid),
       el('section', {}, el('h2', {}, 'Stages'), dag),
       jobInputs(job.inputs),
       nightlyDiff(job.nightly_diff));
  const es = new EventSource('/api/job-events?id=' + encodeURIComponent(job.id));
  live.push(es);
  const update = (t) => {
    const ch = chips[t.id];
    if (ch) { ch.className = 'chip st-' + stateOf(t.state); ch.title = chipTitle(t); }
  };
  es.addEventListener('snapshot', (e) => { for (const t of JSON.parse(e.data).tasks || []) update(t); });
  es.addEventListener('task', (e) => update(JSON.parse(e.data)));
  es.addEventListener('finished', (e) => {
    const j = JSON.parse(e.data);
    state.className = 'chip st-' + stateOf(j.state);
    state.textContent = stateOf(j.state);
    for (const t of j.tasks || []) update(t);
    // An ended job's stream ends at once: its buttons are drawn already.
    if (!ended) showActions(true, j.tasks || []);
    ended = true;
    es.close();
  });
}

async function taskPage(id) {
  const jobId = id.split('/')[0];
  const job = await api('/api/job?id=' + encodeURIComponent(jobId));
  const task = job.tasks.find(t => t.id === id);
  if (!task) throw new Error('no task ' + id);
  const head = await api('/api/log?limit=1&task=' + encodeURIComponent(id));
  const size = Number(head.size || 0);
  const tail = 256 * 1024;
  let first = Math.max(0, size - tail);
  const pre = el('pre', { class: 'log', id: 'log' });
  const more = el('button', { id: 'more', onclick: async () => {
    const from = Math.max(0, first - tail);
    const part = await api('/api/log?task=' + encodeURIComponent(id) + '&offset=' + from + '&limit=' + (first - from));
    const frag = document.createDocumentFragment();
    ansi(part.data, frag);
    pre.prepend(frag);
    first = from;
    if (first === 0) more.remove();
  } }, 'Show earlier output');
  const state = chip(task.state, stateOf(task.state));
  state.id = 'task-state';
  const waits = el('span', { id: 'wait-reason' });
  const setWaits = (t) => { waits.textContent = stateOf(t.state) === 'queued' && t.wait_reason ? 'waits: ' + t.wait_reason : ''; };
  setWaits(task);
  const tests = task.tests ? el('p', { id: 'tests' }, 'tests: ', (task.tests.passed || 0) + ' passed, ',
    (task.tests.failed || 0) + ' failed, ', (task.tests.skipped || 0) + ' skipped, ', (task.tests.errors || 0) + ' errors') : '';
  const failed = el('ul', {}, ...((task.tests && task.tests.failed_tests) || []).map(n => el('li', {}, n)));
  const arts = el('ul', { id: 'artifacts' }, ...(task.artifacts || []).map(a => el('li', {},
    el('a', { href: '/api/artifact?task=' + encodeURIComponent(id) + '&name=' + encodeURIComponent(a.name), download: a.name },
      a.name), ' (' + a.size + ' bytes)')));
  main(el('section', {}, el('h1', {}, el('a', { href: '#/job/' + encodeURIComponent(jobId) }, 'Job ' + jobId), ' / ',
         task.spec.display_name || task.id), el('p', {}, state, ' ', task.agent ? 'on ' + task.agent : '', waits), tests, failed),
       el('section', {}, el('h2', {}, 'Artifacts'), arts),
       el('section', {}, el('h2', {}, 'Log'), first > 0 ? more : '', pre));
  const es = new EventSource('/api/log-events?task=' + encodeURIComponent(id) + '&from=' + first);
  live.push(es);
  es.addEventListener('log', (e) => {
    const d = JSON.parse(e.data);
    const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    ansi(d.data, pre);
    if (stick) pre.scrollTop = pre.scrollHeight;
  });
  const setState = (t) => { if (t.id === id) { state.className = 'chip st-' + stateOf(t.state); state.textContent = stateOf(t.state); setWaits(t); } };
  es.addEventListener('task', (e) => setState(JSON.parse(e.data)));
  es.addEventListener('finished', (e) => { for (const t of JSON.parse(e.data).tasks || []) setState(t); es.close(); });
}

async function route() {
  const h = decodeURIComponent(location.hash.replace(/^#/, '').split('?')[0]);
  try {
    if (h.startsWith('/job/')) await jobPage(h.slice(5));
    else if (h.startsWith('/task/')) await taskPage(h.slice(6));
    else await jobsPage();
  } catch (e) {
    if (e.message !== 'login') main(el('section', {}, el('p', { class: 'error' }, e.message)));
  }
}

async function start() {
  try {
    session = await api('/api/session');
  } catch (e) {
    return;
  }
  document.getElementById('who').textContent = session.user + ' (' + session.role + ')';
  route();
}
window.addEventListener('hashchange', () => { if (session) route(); });
start();
