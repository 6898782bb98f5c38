// The admin window: PIN, people, passes, policy, audit. Every command is
// checked by the backend against an unlocked admin session.
import { invoke } from './ipc.js';
import { use, t, format } from './i18n.js';
import { el, clear, focusHeading } from './dom.js';
import { pinWarning } from './pin.js';

const panel = document.getElementById('panel');
const notice = document.getElementById('notice');
const tabs = document.getElementById('tabs');
const lockButton = document.getElementById('lock');
const quitButton = document.getElementById('quit');
const closeButton = document.getElementById('close');
// Whether the PIN prompt is what the pane shows.
let pinShown = false;
let organisation = '';
// Whether key models can be proven: without, an allow-list trusts what
// each key says it is, and the Policy tab says so.
let attestationRoots = false;
// Whether security keys are on: admins may then sign in with their own.
let keysOn = false;
// Whether the kiosk works on an Entra tenant: the Entra tab.
let entraOn = false;
// Passes in user details come in Microsoft Graph's shape.
const GRAPH_STATES = {
  NotYetValid: 'not_yet_valid', EnabledByPolicy: 'usable', Expired: 'expired',
  OneTimeUsed: 'used', Revoked: 'revoked', DisabledByPolicy: 'disabled_by_policy',
};

function say(text, isError = false) {
  notice.textContent = text;
  notice.classList.toggle('visible', Boolean(text));
  notice.classList.toggle('error', isError);
}

async function call(command, args) {
  try {
    const result = await invoke(command, args);
    return { ok: true, result };
  } catch (error) {
    return failed(error);
  }
}

function failed(error) {
  if (error && error.code === 'admin_locked') return showPin(true);
  const code = error && error.code ? error.code : 'unexpected';
  say(t(`error.${code}`, (error && error.params) || {}), true);
  return { ok: false, code };
}

function input(id, label, attributes = {}) {
  return el('div', { class: 'admin-field' }, el('label', { for: id }, t(label)), el('input', { id, name: id, autocomplete: 'off', ...attributes }));
}

function checkbox(id, label, checked) {
  return el('div', { class: 'admin-check' }, el('input', { id, type: 'checkbox', checked }), el('label', { for: id }, t(label)));
}

function value(id) {
  return document.getElementById(id).value.trim();
}

// A form sends once at a time: a double click on Issue (with Replace
// ticked) would otherwise revoke the pass it had just issued.
function form(onsubmit, ...children) {
  const node = el('form', { class: 'admin-form', novalidate: true }, ...children);
  node.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (node.dataset.busy) return;
    node.dataset.busy = 'true';
    try { await onsubmit(); } finally { delete node.dataset.busy; }
  });
  return node;
}

// Each screen of the pane is a view. An answer that arrives after IT moved
// on to another view is dropped, not drawn over it.
let view = 0;
function moveOn() {
  view += 1;
  return view;
}

// The sign-in screen: each admin signs in with their own name and PIN;
// one added with tapctl first chooses a PIN with their enrolment code.
async function showPin(expired, enrolling = false) {
  moveOn();
  pinShown = true;
  tabs.hidden = true;
  lockButton.hidden = true;
  quitButton.hidden = true;
  clear(panel);
  const pin = { type: 'password', inputmode: 'numeric' };
  const signIn = async () => {
    const done = enrolling
      ? await call('admin_enrol', { name: value('admin-name'), code: value('enrol-code'), pin: value('pin'), again: value('pin-again') })
      : await call('admin_unlock', { name: value('admin-name'), pin: value('pin') });
    if (done.ok) { say(''); showTab('people'); }
  };
  panel.append(el('h1', {}, t(enrolling ? 'admin.enrol_title' : 'admin.pin_title')),
    el('p', {}, t(enrolling ? 'admin.enrol_lead' : 'admin.pin_lead')),
    form(signIn,
      input('admin-name', 'admin.name'),
      enrolling ? input('enrol-code', 'admin.enrol_code') : null,
      input('pin', enrolling ? 'admin.new_pin' : 'admin.pin', pin),
      enrolling ? input('pin-again', 'admin.pin_again', pin) : null,
      el('button', { type: 'submit', class: 'primary', id: enrolling ? 'enrol' : 'unlock' }, t(enrolling ? 'admin.enrol' : 'admin.unlock'))),
    keysOn && !enrolling ? el('button', { type: 'button', class: 'secondary', id: 'key-sign-in', onclick: () => keySignIn(value('admin-name')) }, t('admin.key_sign_in.start')) : '',
    el('div', { id: 'key-sign-in-status' }),
    el('button', { type: 'button', class: 'secondary', id: enrolling ? 'sign-in-instead' : 'enrol-instead', onclick: () => { say(''); showPin(false, !enrolling); } },
      t(enrolling ? 'admin.sign_in_instead' : 'admin.enrol_instead')));
  if (expired) say(t('error.admin_locked'), true);
  focusHeading(panel);
  document.getElementById('admin-name').focus();
  return { ok: false };
}

// Signs `name` in with their security key: the key is asked, its PIN typed
// here, and the pane opens once the backend has checked the answer.
async function keySignIn(name) {
  if (!name) return say(t('admin.key_sign_in.name_first'), true);
  say('');
  const here = moveOn();
  const started = await call('admin_key_sign_in', { name });
  if (!started.ok || here !== view) return;
  let shown = '';
  const poll = async () => {
    if (here !== view) { invoke('admin_key_sign_in_cancel').catch(() => {}); return; }
    let status;
    try {
      status = await invoke('admin_key_sign_in_status');
    } catch (error) {
      if (here === view) { failed(error); drawKeySignIn(name, null); }
      return;
    }
    if (status.signed_in) { say(''); showTab('people'); return; }
    const drawn = JSON.stringify(status.key);
    if (drawn !== shown) { shown = drawn; drawKeySignIn(name, status.key); }
    if (!KEY_DONE.includes(status.key.phase)) setTimeout(poll, 400);
  };
  poll();
}

// Phases after which the key is not asked again without Try again.
const KEY_DONE = ['no_key', 'several_keys', 'not_supported', 'pin_blocked', 'reinsert_key', 'not_registered', 'set_pin', 'timed_out', 'failed'];

function drawKeySignIn(name, key) {
  const root = document.getElementById('key-sign-in-status');
  if (!root) return;
  clear(root);
  document.body.dataset.keySignIn = key ? key.phase : 'refused';
  if (!key) return;
  root.append(el('p', { role: 'status', id: 'key-sign-in-phase' }, t(`admin.key_sign_in.phase.${key.phase}`)));
  if (key.phase === 'enter_pin') {
    const warning = pinWarning(key, 'admin.stage');
    if (warning) root.append(el('p', { class: 'pin-warning' }, warning));
    root.append(form(() => call('admin_key_sign_in_pin', { pin: value('key-pin') }),
      input('key-pin', 'admin.stage.pin', { type: 'password' }),
      el('button', { type: 'submit', class: 'primary', id: 'key-enter-pin' }, t('action.next'))));
    document.getElementById('key-pin').focus();
  } else if (KEY_DONE.includes(key.phase)) {
    root.append(el('button', { type: 'button', class: 'primary', id: 'key-try-again', onclick: () => keySignIn(name) }, t('key.try_again')));
  }
}

// A button that asks to be pressed a second time before it acts: resetting
// or removing an admin is not undone by pressing Back.
function armed(action, label, onconfirm) {
  const button = el('button', { type: 'button', class: 'secondary', 'data-action': action }, label);
  button.addEventListener('click', () => {
    if (button.dataset.armed) return onconfirm();
    button.dataset.armed = 'true';
    button.textContent = t('admin.admins.confirm', { action: label });
    return null;
  });
  return button;
}

// An enrolment code, shown once, for the admin named in it.
function enrolment(result) {
  return el('div', { class: 'letter', id: 'enrolment' },
    el('p', {}, t('admin.admins.code_for', { name: result.name })),
    el('p', { class: 'pass-value', id: 'enrol-code-value' }, result.code),
    el('p', {}, t('admin.admins.code_hint')));
}

const sections = {
  async people(mine) {
    const users = await call('admin_users');
    if (!users.ok || mine !== view) return;
    panel.append(el('h1', {}, t('admin.tabs.people')),
      users.result.length ? el('table', { class: 'admin-table' },
        el('thead', {}, el('tr', {}, ['email', 'name', 'pass', 'methods', ''].map((k) => el('th', { scope: 'col' }, k ? t(`admin.people.${k}`) : '')))),
        el('tbody', {}, users.result.map((user) => el('tr', {},
          el('td', {}, user.email), el('td', {}, user.display_name || ''),
          el('td', {}, user.pass_status ? t(`admin.pass_state.${user.pass_status}`) : t('admin.people.no_pass')),
          el('td', {}, String(user.methods)),
          el('td', {}, el('button', { type: 'button', class: 'secondary', onclick: () => details(user.email) }, t('admin.people.details')))))))
        : el('p', {}, t('admin.people.none')),
      el('h2', {}, t('admin.people.add')),
      form(async () => {
        const groups = value('new-groups').split(';').map((g) => g.trim()).filter(Boolean);
        const email = value('new-email');
        const done = await call('admin_add_user', { email, name: value('new-name') || null, groups });
        if (done.ok) { await showTab('people'); say(t('admin.people.added', { email })); }
      }, input('new-email', 'admin.people.email', { type: 'email' }), input('new-name', 'admin.people.name'), input('new-groups', 'admin.people.groups'),
      el('button', { type: 'submit', class: 'primary', id: 'add-user' }, t('admin.people.add'))),
      el('h2', {}, t('admin.people.import')),
      form(async () => {
        const done = await call('admin_import_users', { csv: document.getElementById('csv').value });
        if (done.ok) { await showTab('people'); say(t('admin.people.imported', { count: done.result })); }
      }, el('textarea', { id: 'csv', rows: 4, 'aria-label': t('admin.people.import') }),
      el('button', { type: 'submit', class: 'secondary', id: 'import-users' }, t('admin.people.import_button'))));
  },
  async issue() {
    panel.append(el('h1', {}, t('admin.tabs.issue')),
      form(issuePass, input('issue-email', 'admin.issue.email', { type: 'email' }),
        input('issue-start', 'admin.issue.start', { type: 'datetime-local' }),
        input('issue-lifetime', 'admin.issue.lifetime'),
        checkbox('issue-one-time', 'admin.issue.one_time', false), checkbox('issue-replace', 'admin.issue.replace', false),
        el('button', { type: 'submit', class: 'primary', id: 'issue' }, t('admin.issue.issue'))),
      el('div', { id: 'letter' }));
  },
  async entra() {
    panel.append(el('h1', {}, t('admin.tabs.entra')), el('p', { class: 'hint' }, t('admin.entra.lead')),
      form(() => showEntraPass(value('entra-user')), input('entra-user', 'admin.entra.user', { type: 'email' }),
        el('button', { type: 'submit', class: 'secondary', id: 'entra-find' }, t('admin.entra.find'))),
      el('div', { id: 'entra-pass', 'aria-live': 'polite' }),
      el('h2', {}, t('admin.entra.issue_title')),
      form(issueEntraPass, input('entra-issue-user', 'admin.entra.user', { type: 'email' }),
        input('entra-start', 'admin.issue.start', { type: 'datetime-local' }),
        input('entra-lifetime', 'admin.issue.lifetime'),
        checkbox('entra-one-time', 'admin.issue.one_time', false), checkbox('entra-replace', 'admin.issue.replace', false),
        el('button', { type: 'submit', class: 'primary', id: 'entra-issue' }, t('admin.issue.issue'))),
      el('div', { id: 'letter' }),
      el('h2', {}, t('admin.entra_batch.title')), el('p', { class: 'hint' }, t('admin.entra_batch.lead')),
      form(runEntraBatch,
        el('div', { class: 'admin-field' }, el('label', { for: 'batch-file' }, t('admin.entra_batch.file')),
          el('textarea', { id: 'batch-file', rows: 4, placeholder: 'email,start,lifetime,one_time', oninput: () => { batchName = null; } })),
        el('div', { class: 'admin-field' }, el('label', { for: 'batch-pick' }, t('admin.entra_batch.pick')),
          el('input', { id: 'batch-pick', type: 'file', accept: '.csv,text/csv,text/plain', onchange: pickBatchFile })),
        el('button', { type: 'submit', class: 'primary', id: 'batch-run' }, t('admin.entra_batch.run'))),
      el('div', { id: 'entra-batch' }),
      el('h2', {}, t('admin.entra_stage.title')), el('p', { class: 'hint' }, t('admin.entra_stage.lead')),
      form(startEntraStaging,
        el('div', { class: 'admin-field' }, el('label', { for: 'staging-file' }, t('admin.entra_stage.people')),
          el('textarea', { id: 'staging-file', rows: 4, placeholder: 'email,label' })),
        el('div', { class: 'admin-field' }, el('label', { for: 'staging-pick' }, t('admin.entra_stage.pick')),
          el('input', { id: 'staging-pick', type: 'file', accept: '.csv,text/csv,text/plain', onchange: pickStagingFile })),
        input('staging-min-pin', 'admin.entra_stage.min_pin', { type: 'number', min: 4, max: 63, value: 6, inputmode: 'numeric' }),
        input('staging-pin', 'admin.entra_stage.pin', { type: 'password' }),
        el('button', { type: 'submit', class: 'primary', id: 'staging-start' }, t('admin.entra_stage.start'))),
      el('div', { id: 'entra-staging' }));
  },
  async policy(mine) {
    const policy = await call('admin_policy');
    if (!policy.ok || mine !== view) return;
    const p = policy.result.policy;
    const f = policy.result.form;
    // What this pane last read or saved: a save from elsewhere since then
    // is not undone.
    let read = p;
    panel.append(el('h1', {}, t('admin.tabs.policy')),
      form(async () => {
        // Sent as typed: the backend reads it, and names what it cannot.
        const typed = {
          enabled: document.getElementById('policy-enabled').checked,
          groups: value('policy-groups'),
          min_lifetime: value('policy-min'), max_lifetime: value('policy-max'), default_lifetime: value('policy-default'),
          length: value('policy-length'),
          one_time: document.getElementById('policy-one-time').checked,
          keys: value('policy-keys'),
        };
        const done = await call('admin_set_policy', { read, form: typed });
        if (done.ok) { read = done.result.policy; say(t('admin.policy.saved')); }
        if (done.code === 'policy_moved') { await showTab('policy'); say(t('error.policy_moved'), true); }
      },
      checkbox('policy-enabled', 'admin.policy.enabled', f.enabled),
      input('policy-groups', 'admin.policy.groups', { value: f.groups }),
      input('policy-min', 'admin.policy.min', { value: f.min_lifetime }),
      input('policy-max', 'admin.policy.max', { value: f.max_lifetime }),
      input('policy-default', 'admin.policy.default', { value: f.default_lifetime }),
      input('policy-length', 'admin.policy.length', { type: 'number', min: 8, max: 48, value: f.length }),
      checkbox('policy-one-time', 'admin.policy.one_time', f.one_time),
      input('policy-keys', 'admin.policy.keys', { value: f.keys }),
      p.keys.kind === 'allow_list' && !attestationRoots ? el('p', { class: 'hint', id: 'keys-unproven' }, t('admin.policy.keys_unproven')) : null,
      el('button', { type: 'submit', class: 'primary', id: 'save-policy' }, t('admin.policy.save'))));
  },
  async audit() {
    panel.append(el('h1', {}, t('admin.tabs.audit')),
      form(() => loadAudit(), input('audit-user', 'admin.audit.user', { type: 'email' }), input('audit-since', 'admin.audit.since'),
        el('button', { type: 'submit', class: 'secondary' }, t('admin.audit.filter'))),
      el('div', { id: 'audit' }));
    await loadAudit();
  },
  async admins(mine, shown = null) {
    const admins = await call('admin_admins');
    if (!admins.ok || mine !== view) return;
    const act = async (command, name) => {
      const done = await call(command, { name });
      if (!done.ok) return;
      const next = moveOn();
      clear(panel);
      await sections.admins(next, done.result || null);
      if (next === view) focusHeading(panel);
    };
    panel.append(el('h1', {}, t('admin.tabs.admins')),
      // Node's append writes null as the text "null".
      shown ? enrolment(shown) : '',
      el('table', { class: 'admin-table' },
        el('thead', {}, el('tr', {}, ['name', 'state', ''].map((k) => el('th', { scope: 'col' }, k ? t(`admin.admins.${k}`) : '')))),
        el('tbody', {}, admins.result.map((admin) => el('tr', { 'data-admin': admin.name },
          el('td', {}, admin.name),
          el('td', {}, t(admin.enrolled ? 'admin.admins.enrolled' : 'admin.admins.waiting') + (admin.keys ? `, ${t('admin.admins.keys', { n: admin.keys })}` : '')),
          el('td', {},
            armed('reset', t('admin.admins.reset'), () => act('admin_reset_admin', admin.name)),
            armed('remove', t('admin.admins.remove'), () => act('admin_remove_admin', admin.name))))))),
      el('h2', {}, t('admin.admins.add')),
      form(() => act('admin_add_admin', value('new-admin')),
        input('new-admin', 'admin.name'),
        el('button', { type: 'submit', class: 'primary', id: 'add-admin' }, t('admin.admins.add'))),
      (keysOn && await myKeys(mine)) || '');
  }
};

// The signed-in admin's own security keys, with which they sign in
// instead of their PIN.
async function myKeys(mine) {
  const keys = await call('admin_my_keys');
  if (!keys.ok || mine !== view) return null;
  const remove = async (id) => {
    const done = await call('admin_remove_my_key', { id });
    if (done.ok) { await showTab('admins'); say(t('admin.own_key.removed')); }
  };
  return el('section', { id: 'my-keys' }, el('h2', {}, t('admin.own_key.heading')),
    el('p', {}, t('admin.own_key.lead')),
    keys.result.length ? el('ul', {}, keys.result.map((key) => el('li', { 'data-key': key.label },
      `${key.label} (${format(key.created_at)}) `,
      armed('remove-key', t('admin.admins.remove'), () => remove(key.id)))))
      : el('p', {}, t('admin.own_key.none')),
    el('button', { type: 'button', class: 'secondary', id: 'add-my-key', onclick: () => stageKey(null) }, t('admin.own_key.add')));
}

// Shows the newest page of the log, or with `before` appends the page of
// events older than that one: a fleet's log has millions.
async function loadAudit(before = null) {
  const shown = document.getElementById('audit');
  const page = await call('admin_audit', { user: value('audit-user') || null, since: value('audit-since') || null, before });
  if (!page.ok || !shown.isConnected) return;
  const rows = page.result.records.map((r) => el('tr', {},
    el('td', {}, format(r.at)), el('td', {}, t(`admin.audit.kind.${r.kind}`)), el('td', {}, r.user || ''), el('td', { class: 'detail' }, JSON.stringify(r.detail))));
  if (before === null) {
    clear(shown).append(el('table', { class: 'admin-table' },
      el('thead', {}, el('tr', {}, ['when', 'what', 'who', 'detail'].map((k) => el('th', { scope: 'col' }, t(`admin.audit.${k}`))))),
      el('tbody', { id: 'audit-rows' }, rows)));
  } else {
    document.getElementById('audit-rows').append(...rows);
  }
  document.getElementById('audit-older')?.remove();
  const older = page.result.older;
  if (older !== null) {
    shown.append(el('button', { type: 'button', class: 'secondary', id: 'audit-older', onclick: () => loadAudit(older) }, t('admin.audit.older')));
  }
}

// The terms typed in the issue form whose fields start with `prefix`.
function passTerms(prefix) {
  const start = value(`${prefix}-start`);
  return {
    start: start ? start.replace('T', ' ') : null,
    lifetime: value(`${prefix}-lifetime`) || null,
    oneTime: document.getElementById(`${prefix}-one-time`).checked ? true : null,
    replace: document.getElementById(`${prefix}-replace`).checked,
  };
}

async function issuePass() {
  const request = { email: value('issue-email'), ...passTerms('issue') };
  const issued = await call('admin_issue_pass', { request });
  if (issued.ok) drawLetter(issued.result);
}

// A person's pass in the Entra tenant: its state, and Revoke.
async function showEntraPass(user) {
  const shown = document.getElementById('entra-pass');
  const pass = await call('admin_entra_pass', { user });
  if (!pass.ok || !shown.isConnected) return;
  say('');
  const p = pass.result;
  clear(shown).append(p
    ? el('p', { id: 'entra-pass-state' }, t('admin.people.pass_line', {
      state: t(`admin.pass_state.${GRAPH_STATES[p.reason] || 'revoked'}`), start: p.start || '', minutes: p.lifetimeMinutes,
      use: t(p.oneTime ? 'admin.people.one_time' : 'admin.people.multi_use'),
    }))
    : el('p', { id: 'entra-pass-state' }, t('admin.entra.no_pass', { user })),
  p ? el('button', { type: 'button', class: 'danger', id: 'entra-revoke', onclick: async () => {
    if ((await call('admin_entra_revoke_pass', { user })).ok) { await showEntraPass(user); say(t('admin.people.revoked', { email: user })); }
  } }, t('admin.people.revoke')) : '');
}

async function issueEntraPass() {
  const request = { user: value('entra-issue-user'), ...passTerms('entra') };
  const issued = await call('admin_entra_issue_pass', { request });
  if (issued.ok) drawLetter(issued.result);
}

// An Entra pass batch. The batch is the backend's (core's entra_batch):
// this sends the file and draws what each row became.
let batchName = null;

async function pickBatchFile(event) {
  const file = event.target.files[0];
  if (!file) return;
  document.getElementById('batch-file').value = await file.text();
  batchName = file.name;
}

async function runEntraBatch() {
  const root = document.getElementById('entra-batch');
  clear(root).append(el('p', { role: 'status', id: 'batch-running' }, t('admin.entra_batch.running')));
  const file = document.getElementById('batch-file').value;
  const ran = await call('admin_entra_batch', { file, name: batchName || 'typed' });
  if (!root.isConnected) return;
  if (ran.ok) drawEntraBatch(ran.result);
  else clear(root);
}

function drawEntraBatch(batch) {
  say('');
  const root = clear(document.getElementById('entra-batch'));
  document.body.dataset.entraBatch = batch.stopped ? 'stopped' : 'done';
  root.append(el('p', { id: 'batch-summary', role: 'status' }, t('admin.entra_batch.summary', batch)));
  if (batch.stopped) {
    const left = batch.rows.filter((row) => row.state === 'not_sent').length;
    root.append(el('p', { class: 'pin-warning', id: 'batch-stopped', role: 'alert' }, t('admin.entra_batch.stopped', { reason: batch.stopped, left })));
  }
  root.append(el('table', { class: 'admin-table no-print', id: 'batch-rows' },
    el('thead', {}, el('tr', {}, ['line', 'person', 'result'].map((k) => el('th', { scope: 'col' }, t(`admin.entra_batch.${k}`))))),
    el('tbody', {}, batch.rows.map((row) => el('tr', { 'data-state': row.state },
      el('td', {}, String(row.line)), el('td', {}, row.email),
      el('td', {}, t(`admin.entra_batch.state.${row.state}`, { reason: row.reason })))))));
  if (batch.letters.length) root.append(batchLetters(batch));
}

// The letters of the passes the batch still holds, printed on their own.
function batchLetters(batch) {
  const forget = armed('forget-letters', t('admin.entra_batch.forget'), async () => {
    const forgotten = await call('admin_entra_batch_forget', { batch: batch.batch });
    if (!forgotten.ok) return;
    document.getElementById('batch-letters').remove();
    say(t('admin.entra_batch.forgotten', { count: forgotten.result }));
  });
  const print = () => {
    document.body.classList.add('printing-batch');
    window.addEventListener('afterprint', () => document.body.classList.remove('printing-batch'), { once: true });
    window.print();
  };
  return el('section', { id: 'batch-letters' },
    el('h3', { class: 'no-print' }, t('admin.entra_batch.letters', { count: batch.letters.length })),
    el('p', { class: 'hint no-print' }, t('admin.entra_batch.letters_lead')),
    el('div', { class: 'admin-buttons no-print' },
      el('button', { type: 'button', class: 'primary', id: 'batch-print', onclick: print }, t('admin.entra_batch.print')), forget),
    batch.letters.map((letter) => letterArticle(letter)));
}

// The staging queue's HR file, read from disk into the form.
async function pickStagingFile(event) {
  const file = event.target.files[0];
  if (file) document.getElementById('staging-file').value = await file.text();
}

// IT staging keys into Entra from a queue. The flow is the backend's: this
// draws its view and polls it while a key is in hand.
let entraPoll = null;

function stopEntraStaging() {
  if (entraPoll) clearTimeout(entraPoll.timer);
  entraPoll = null;
}

async function startEntraStaging() {
  const min = Number(value('staging-min-pin'));
  const started = await call('admin_entra_staging_start', {
    file: document.getElementById('staging-file').value,
    pin: value('staging-pin') || null,
    minPinLength: Number.isInteger(min) && value('staging-min-pin') !== '' ? min : null,
  });
  if (started.ok) { say(''); followEntraStaging(started.result); }
}

async function entraStagingStep(step) {
  const done = await call('admin_entra_staging_step', { step });
  if (done.ok) followEntraStaging(done.result);
}

// Draws `queue`, and polls again while its key is in hand.
function followEntraStaging(queue) {
  stopEntraStaging();
  const mine = { timer: null, shown: '' };
  entraPoll = mine;
  const draw = (q) => {
    const drawn = JSON.stringify(q);
    if (drawn !== mine.shown) { mine.shown = drawn; drawEntraStaging(q); }
  };
  const poll = async () => {
    let next;
    try {
      next = await invoke('admin_entra_staging_status');
    } catch (error) {
      if (entraPoll === mine) { stopEntraStaging(); failed(error); }
      return;
    }
    if (entraPoll !== mine) return;
    draw(next);
    if (next.current && next.current.key) mine.timer = setTimeout(poll, 400);
  };
  draw(queue);
  if (queue && queue.current && queue.current.key) mine.timer = setTimeout(poll, 400);
}

// Phases the staging into Entra words its own way (the kiosk sets the PIN).
const ENTRA_PHASES = ['set_pin', 'enter_pin', 'already_registered'];
const KEY_FAILED = ['no_key', 'several_keys', 'not_supported', 'pin_blocked', 'reinsert_key', 'already_registered', 'timed_out', 'failed'];

function drawEntraStaging(queue) {
  const root = document.getElementById('entra-staging');
  if (!root) return;
  clear(root);
  if (!queue) return;
  const current = queue.current;
  document.body.dataset.entraStage = current ? (current.letter ? 'letter' : current.key.phase) : 'idle';
  if (queue.notice) root.append(el('p', { class: 'pin-warning', id: 'staging-notice', role: 'alert' }, t(`admin.entra_stage.notice.${queue.notice}`)));
  if (current && current.key) root.append(drawKeyInHand(current));
  if (current && current.letter) root.append(drawPinLetter(current.letter));
  const next = queue.more
    ? el('button', { type: 'button', class: current && current.letter ? 'primary no-print' : 'secondary no-print', id: 'staging-next', onclick: () => entraStagingStep('next') },
      t(current && current.letter ? 'admin.entra_stage.next_after_letter' : 'admin.entra_stage.next'))
    : null;
  if (!current || current.letter) root.append(next || el('p', { id: 'staging-finished', class: 'no-print' }, t('admin.entra_stage.finished')));
  root.append(el('h3', { class: 'no-print' }, t('admin.entra_stage.list')),
    el('table', { id: 'staging-rows', class: 'no-print' }, queue.rows.map((row) => el('tr', { 'data-state': row.state.state },
      el('td', {}, row.email), el('td', {}, row.label || ''), el('td', {}, rowWords(row.state))))));
}

function drawKeyInHand(current) {
  const phase = current.key.phase;
  const box = el('div', { id: 'staging-key' },
    el('h3', {}, t('admin.entra_stage.key_for', { name: current.name ? `${current.name} — ${current.email}` : current.email })),
    el('p', { role: 'status', id: 'staging-status' }, t(`${ENTRA_PHASES.includes(phase) ? 'admin.entra_stage' : 'admin.stage'}.phase.${phase}`)));
  if (phase === 'enter_pin') {
    const warning = pinWarning(current.key, 'admin.stage');
    if (warning) box.append(el('p', { class: 'pin-warning', id: 'staging-wrong-pin' }, warning));
    box.append(form(() => call('admin_entra_staging_pin', { pin: value('staging-key-pin') }),
      input('staging-key-pin', 'admin.stage.pin', { type: 'password' }),
      el('button', { type: 'submit', class: 'primary', id: 'staging-enter-pin' }, t('action.next'))));
  }
  if (KEY_FAILED.includes(phase)) {
    box.append(el('button', { type: 'button', class: 'primary', id: 'staging-retry', onclick: () => entraStagingStep('retry') }, t('key.try_again')));
  }
  box.append(el('button', { type: 'button', class: 'secondary', id: 'staging-skip', onclick: () => entraStagingStep('skip') }, t('admin.entra_stage.skip')));
  const first = box.querySelector('input');
  if (first) setTimeout(() => first.focus(), 0);
  return box;
}

function drawPinLetter(letter) {
  const change = letter.pin_change;
  const shown = el('div', {},
    el('article', { class: 'letter', id: 'pin-letter' },
      el('h2', { tabindex: '-1' }, t('admin.entra_stage.letter_title', { organisation })),
      el('p', {}, t('admin.issue.letter_for', { name: letter.name || letter.email })),
      el('p', {}, t('admin.entra_stage.letter_key', { key: letter.key_name })),
      el('p', { class: 'letter-label' }, t('admin.entra_stage.letter_pin')),
      el('p', { class: 'letter-pass', id: 'staged-pin' }, letter.pin),
      el('p', { id: 'letter-pin-change' }, change.outcome === 'required'
        ? t('admin.entra_stage.letter_change', { min: change.min_pin_length })
        : t('admin.entra_stage.letter_no_change')),
      el('p', {}, t('admin.entra_stage.letter_steps')),
      el('p', { class: 'hint' }, t('admin.issue.letter_keep'))),
    change.outcome === 'required' ? null
      : el('p', { class: 'pin-warning no-print', id: 'staging-pin-policy' }, t(`admin.entra_stage.policy_${change.outcome}`, { reason: change.reason || '' })),
    el('p', { class: 'hint no-print' }, t('admin.entra_stage.shown_once')),
    el('button', { type: 'button', class: 'secondary no-print', onclick: () => window.print() }, t('admin.entra_stage.print')));
  setTimeout(() => { const h = document.querySelector('#pin-letter h2'); if (h) h.focus(); }, 0);
  return shown;
}

function rowWords(state) {
  if (state.state === 'staged') {
    return t(state.pin_change.outcome === 'required' ? 'admin.entra_stage.row.staged_change' : 'admin.entra_stage.row.staged', { key: state.key_name });
  }
  if (state.unknown_account) return t('admin.entra_stage.row.unknown_account');
  if (state.state === 'failed') return t('admin.entra_stage.row.failed', { reason: state.reason });
  return t(`admin.entra_stage.row.${state.state}`);
}

// A welcome letter: the pass, when it works, and what to do at the kiosk.
function letterArticle(letter, attributes = {}) {
  return el('article', { class: 'letter', ...attributes },
    el('h2', {}, t('admin.issue.letter_title', { organisation: letter.organisation })),
    el('p', {}, t('admin.issue.letter_for', { name: letter.name || letter.email })),
    el('p', { class: 'letter-label' }, t('admin.issue.letter_pass')),
    el('p', { class: 'letter-pass' }, letter.pass),
    el('p', {}, t('admin.issue.letter_valid', { starts: letter.starts, ends: letter.ends })),
    el('p', {}, t(letter.oneTime ? 'admin.issue.letter_one_time' : 'admin.issue.letter_multi_use')),
    el('p', {}, t(letter.entra ? 'admin.issue.letter_steps_entra' : 'admin.issue.letter_steps')),
    el('p', { class: 'hint' }, t('admin.issue.letter_keep')));
}

function drawLetter(letter) {
  say('');
  const shown = letterArticle(letter, { id: 'welcome-letter' });
  shown.querySelector('.letter-pass').id = 'issued-pass';
  clear(document.getElementById('letter')).append(shown,
    el('p', { class: 'hint no-print' }, t('admin.issue.shown_once')),
    el('button', { type: 'button', class: 'primary no-print', onclick: () => window.print() }, t('admin.issue.print')));
  shown.scrollIntoView({ block: 'start' });
  shown.querySelector('h2').setAttribute('tabindex', '-1');
  shown.querySelector('h2').focus();
}

async function details(email) {
  const mine = moveOn();
  const user = await call('admin_user', { email });
  if (!user.ok || mine !== view) return;
  clear(panel);
  const u = user.result;
  panel.append(el('h1', {}, u.summary.display_name ? `${u.summary.display_name} — ${u.summary.email}` : u.summary.email),
    el('h2', {}, t('admin.people.pass')),
    el('ul', {}, u.passes.map((p) => el('li', {}, t('admin.people.pass_line', {
      state: t(`admin.pass_state.${GRAPH_STATES[p.methodUsabilityReason]}`), start: p.startDateTime, minutes: p.lifetimeInMinutes,
      use: t(p.isUsableOnce ? 'admin.people.one_time' : 'admin.people.multi_use'),
    })))),
    el('button', { type: 'button', class: 'danger', id: 'revoke', onclick: async () => {
      if ((await call('admin_revoke_pass', { email })).ok) { await details(email); say(t('admin.people.revoked', { email })); }
    } }, t('admin.people.revoke')),
    el('button', { type: 'button', class: 'secondary', id: 'lift-lockout', onclick: async () => {
      const done = await call('admin_lift_lockout', { email });
      if (done.ok) say(t(done.result ? 'admin.people.lockout_lifted' : 'admin.people.not_locked', { email }));
    } }, t('admin.people.lift_lockout')),
    el('h2', {}, t('admin.people.methods')),
    u.methods.length ? null : el('p', {}, t('methods.none')),
    el('ul', { class: 'methods' }, u.methods.map((m) => el('li', {}, el('span', { class: 'method-name' }, m.label),
      el('span', { class: 'method-kind' }, t(`methods.kind.${m.kind}`)),
      el('button', { type: 'button', class: 'danger', onclick: async () => {
        if ((await call('admin_remove_method', { email, method: m.id })).ok) { await details(email); say(t('admin.people.method_removed')); }
      } }, t('admin.people.remove_method'))))),
    el('button', { type: 'button', class: 'secondary', id: 'stage-key', onclick: () => stageKey(email) }, t('admin.stage.start')),
    el('button', { type: 'button', class: 'secondary', onclick: () => showTab('people') }, t('action.back')));
  focusHeading(panel);
}

// IT staging: set up a security key (and its PIN) for someone. The key's
// conversation runs in the backend; this polls its phase.
let stagingTimer = null;
// The running poll; an answer for an older one (the pane moved on while it
// was on its way) is dropped.
let stagingPoll = null;

function stopStaging() {
  clearTimeout(stagingTimer);
  stagingTimer = null;
  stagingPoll = null;
}

// Sets up a key for a person (`email`), or for the signed-in admin
// (`email` null): the same steps, then Back to where IT came from.
async function stageKey(email) {
  const here = moveOn();
  const started = email ? await call('admin_stage_key', { email }) : await call('admin_stage_own_key');
  if (!started.ok) return;
  if (here !== view) { invoke('admin_stage_cancel').catch(() => {}); return; }
  const title = email ? t('admin.stage.title', { email }) : t('admin.own_key.title');
  clear(panel).append(el('h1', {}, title), el('div', { id: 'stage' }));
  focusHeading(panel);
  let shown = '';
  stopStaging();
  const mine = {};
  stagingPoll = mine;
  const poll = async () => {
    let status;
    try {
      status = await invoke('admin_stage_status');
    } catch (error) {
      if (stagingPoll === mine) { stopStaging(); failed(error); }
      return;
    }
    if (stagingPoll !== mine) return;
    const drawn = JSON.stringify([status.key, status.suggested, status.done]);
    if (drawn !== shown) { shown = drawn; drawStaging(email, status); }
    if (status.done) stopStaging(); else stagingTimer = setTimeout(poll, 400);
  };
  poll();
}

// Words an admin's own key says differently from a person's.
const OWN_KEY_PHASES = ['set_pin', 'already_registered'];

function drawStaging(email, status) {
  const root = clear(document.getElementById('stage'));
  document.body.dataset.stagePhase = status.done ? 'done' : status.suggested !== null ? 'name' : status.key.phase;
  const back = () => (email ? details(email) : showTab('admins'));
  const cancel = el('button', { type: 'button', class: 'secondary', onclick: async () => { stopStaging(); await call('admin_stage_cancel'); back(); } }, t('admin.stage.cancel'));
  if (status.done) {
    const done = email ? t('admin.stage.done', { label: status.done.label, email }) : t('admin.own_key.done', { label: status.done.label });
    root.append(el('p', { id: 'stage-done' }, done),
      el('button', { type: 'button', class: 'primary', onclick: back }, t('action.back')));
    return;
  }
  if (status.suggested !== null) {
    // The running poll draws the result: drawing it here too drew it twice.
    root.append(form(() => call('admin_stage_name', { label: value('stage-name') }),
      input('stage-name', 'key.name_label', { value: status.suggested || t('methods.kind.fido2') }),
      el('button', { type: 'submit', class: 'primary', id: 'stage-save' }, t('admin.stage.save'))), cancel);
    return;
  }
  const phase = status.key.phase;
  const words = !email && OWN_KEY_PHASES.includes(phase) ? 'admin.own_key.phase' : 'admin.stage.phase';
  root.append(el('p', { role: 'status', id: 'stage-status' }, t(`${words}.${phase}`)));
  if (phase === 'set_pin') {
    root.append(el('p', { class: 'hint' }, t('key.pin_rules', { min: 4 })),
      form(() => call('admin_stage_pin', { pin: value('stage-pin'), again: value('stage-pin-again') }),
        input('stage-pin', 'admin.stage.new_pin', { type: 'password' }), input('stage-pin-again', 'admin.stage.new_pin_again', { type: 'password' }),
        el('button', { type: 'submit', class: 'primary', id: 'stage-set-pin' }, t('action.next'))));
  } else if (phase === 'enter_pin') {
    const warning = pinWarning(status.key, 'admin.stage');
    if (warning) root.append(el('p', { class: 'pin-warning', id: 'stage-wrong-pin' }, warning));
    root.append(form(() => call('admin_stage_pin', { pin: value('stage-pin') }),
      input('stage-pin', 'admin.stage.pin', { type: 'password' }),
      el('button', { type: 'submit', class: 'primary', id: 'stage-enter-pin' }, t('action.next'))));
  } else if (['no_key', 'several_keys', 'not_supported', 'pin_blocked', 'reinsert_key', 'already_registered', 'timed_out', 'failed'].includes(phase)) {
    root.append(el('button', { type: 'button', class: 'primary', onclick: () => call('admin_stage_retry') }, t('key.try_again')));
  }
  root.append(cancel);
  const first = root.querySelector('input');
  if (first) first.focus();
}

async function showTab(name) {
  // Leaving a staging that is still running ends it, so that it does not
  // hold the key from the kiosk.
  if (stagingPoll) invoke('admin_stage_cancel').catch(() => {});
  stopStaging();
  if (entraPoll) invoke('admin_entra_staging_step', { step: 'stop' }).catch(() => {});
  stopEntraStaging();
  pinShown = false;
  tabs.hidden = false;
  lockButton.hidden = false;
  quitButton.hidden = false;
  delete quitButton.dataset.armed;
  quitButton.textContent = t('admin.quit');
  for (const button of tabs.querySelectorAll('button')) button.setAttribute('aria-current', button.dataset.tab === name ? 'page' : 'false');
  clear(panel);
  const mine = moveOn();
  await sections[name](mine);
  if (mine === view) focusHeading(panel);
}

document.addEventListener('contextmenu', (event) => event.preventDefault());
const status = await invoke('admin_status');
await use(status.language);
organisation = status.organisation;
attestationRoots = status.attestation_roots;
keysOn = status.keys;
document.getElementById('admin-title').textContent = `${t('admin.title')} — ${organisation}`;
tabs.setAttribute('aria-label', t('admin.tabs.label'));
entraOn = status.entra;
for (const name of Object.keys(sections)) {
  if (name === 'entra' && !entraOn) continue;
  tabs.append(el('button', { type: 'button', 'data-tab': name, onclick: () => showTab(name) }, t(`admin.tabs.${name}`)));
}
lockButton.textContent = t('admin.lock');
// Quitting is the only way a kiosk's window closes: it asks to be pressed
// twice, as resetting or removing an admin does.
quitButton.textContent = t('admin.quit');
quitButton.addEventListener('click', () => {
  if (!quitButton.dataset.armed) {
    quitButton.dataset.armed = 'true';
    quitButton.textContent = t('admin.admins.confirm', { action: t('admin.quit') });
    return;
  }
  stopStaging();
  call('admin_quit');
});
lockButton.addEventListener('click', async () => { stopStaging(); stopEntraStaging(); await invoke('admin_lock'); showPin(false); });
closeButton.textContent = t('admin.close');
closeButton.addEventListener('click', () => { stopStaging(); call('admin_close'); });
// When the admin session runs out, whatever the pane shows (a welcome
// letter with its pass, a person's methods) goes at once, not at the next
// click. Asking does not extend the session.
setInterval(async () => {
  if (pinShown) return;
  const now = await invoke('admin_status').catch(() => null);
  if (now && !now.admin && !pinShown) { stopStaging(); stopEntraStaging(); showPin(true); }
}, 3000);
if (status.admin) showTab('people'); else showPin(false);
