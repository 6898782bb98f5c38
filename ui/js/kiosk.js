// The kiosk window: draws the screen the backend returns and sends back
// what the person typed. It decides nothing.
import { invoke } from './ipc.js';
import { use, load, t, tIn, language } from './i18n.js';
import { el, clear, focusHeading } from './dom.js';
import { pinWarning } from './pin.js';

const screenRoot = document.getElementById('screen');
const actions = document.getElementById('actions');
const notice = document.getElementById('notice');
const progress = document.getElementById('progress');
const countdown = document.getElementById('countdown');
let current = null;
let busy = false;
// The error on screen came from a failed tick: the next good tick takes
// it away (an error from a command stays until the person acts).
let tickFailed = false;

// Sends a command and draws its answer; one command at a time.
async function send(command, args) {
  if (busy) return;
  busy = true;
  try {
    await show(await invoke(command, args));
  } catch (error) {
    tickFailed = false;
    if (error && error.code === 'out_of_service') await enterOutOfService();
    else showError(error);
  } finally {
    busy = false;
  }
}

function showError(error) {
  const code = error && error.code ? error.code : 'unexpected';
  notice.textContent = t(`error.${code}`, (error && error.params) || {});
  notice.classList.add('visible');
}

async function show(screen) {
  const keyMoved = current && screen.step.key && JSON.stringify(screen.step.key) !== JSON.stringify(current.step.key);
  const stepChanged = !current || keyMoved || current.step.kind !== screen.step.kind || current.language !== screen.language;
  if (screen.language !== language()) await use(screen.language);
  current = screen;
  document.body.dataset.step = screen.step.kind;
  if (stepChanged) {
    clear(screenRoot);
    clear(actions);
    draw[screen.step.kind](screen.step, screen);
    drawProgress(screen);
    focusHeading(screenRoot);
  } else {
    refresh[screen.step.kind]?.(screen.step);
  }
  drawNotice(screen);
  drawCountdown(screen);
}

function drawNotice(screen) {
  if (screen.notice) {
    const { code, ...params } = screen.notice;
    notice.textContent = t(`notice.${code}`, params);
    notice.classList.add('visible');
    notice.dataset.code = code;
  } else {
    notice.textContent = '';
    notice.classList.remove('visible');
    delete notice.dataset.code;
  }
}

function drawProgress(screen) {
  clear(progress);
  progress.setAttribute('aria-label', t('progress.label'));
  if (!screen.progress) return;
  const [step, of] = screen.progress;
  for (let i = 1; i <= of; i += 1) {
    const item = el('li', { class: i < step ? 'done' : i === step ? 'current' : '', 'aria-current': i === step ? 'step' : null },
      el('span', { class: 'visually-hidden' }, t('progress.step', { step: i, of })));
    progress.append(item);
  }
}

function drawCountdown(screen) {
  if (!screen.resets_at || ['done', 'key_check_passed', 'tenant_key_check_passed', 'tenant_key_registered'].includes(screen.step.kind)) {
    countdown.hidden = true;
    return;
  }
  const left = Math.ceil((new Date(screen.resets_at) - new Date(screen.now)) / 1000);
  countdown.hidden = left > 15;
  if (!countdown.hidden) {
    document.getElementById('countdown-text').textContent = t('idle.countdown', { seconds: Math.max(left, 0) });
    document.getElementById('still-here').textContent = t('idle.still_here');
  }
}

function heading(key, params) {
  return el('h1', {}, t(key, params));
}

function primary(key, onclick, extra = {}) {
  return el('button', { type: 'button', class: 'primary', onclick, ...extra }, t(key));
}

function backButton() {
  return current.can_go_back ? el('button', { type: 'button', class: 'secondary', id: 'back', onclick: () => send('back') }, t('action.back')) : null;
}

// A one-field form: label, input, Next. Enter submits.
function field({ id, label, hint, value = '', attributes = {}, submit, action }) {
  const input = el('input', { id, name: id, value, autocomplete: 'off', spellcheck: 'false', 'aria-describedby': hint ? `${id}-hint` : null, ...attributes });
  const form = el('form', { class: 'field', novalidate: true, onsubmit: (event) => { event.preventDefault(); submit(input.value); } },
    el('label', { for: id }, t(label)),
    hint ? el('p', { class: 'hint', id: `${id}-hint` }, t(hint)) : null,
    input);
  screenRoot.append(form);
  actions.append(backButton() || el('span'), primary(action, () => submit(input.value), { id: 'next' }));
  setTimeout(() => input.focus(), 0);
  return input;
}

function methodList(methods, removable) {
  if (!methods.length) return el('p', { class: 'empty' }, t('methods.none'));
  return el('ul', { class: 'methods' }, methods.map((method) => el('li', {},
    el('span', { class: 'method-name' }, method.label),
    el('span', { class: 'method-kind' }, t('methods.added', { date: method.created_at })),
    removable ? el('button', { type: 'button', class: 'danger', 'data-method': method.id,
      'aria-label': t('security.remove_named', { name: method.label }),
      onclick: () => send('remove_method', { method: method.id }) }, t('security.remove')) : null)));
}

// The person's methods in the tenant: only security keys can be removed
// here; the rest is listed so that they know what they have.
function tenantMethodList(methods) {
  if (!methods.length) return el('p', { class: 'empty' }, t('methods.none'));
  return el('ul', { class: 'methods' }, methods.map((method) => {
    const name = method.name || t(`tenant.kind.${method.kind}`);
    const kind = method.name ? t(`tenant.kind.${method.kind}`) : '';
    const added = method.created_at ? t('methods.added', { date: method.created_at }) : '';
    return el('li', {},
      el('span', { class: 'method-name' }, name),
      el('span', { class: 'method-kind' }, [kind, added].filter(Boolean).join(' · ')),
      method.kind === 'security_key' ? el('button', { type: 'button', class: 'danger', 'data-method': method.id,
        'aria-label': t('security.remove_named', { name }),
        onclick: () => send('remove_method', { method: method.id }) }, t('security.remove')) : '');
  }));
}

const draw = {
  welcome(step) {
    screenRoot.append(
      el('h1', {}, t('welcome.title')),
      el('p', { class: 'lead' }, t('welcome.lead', { organisation: step.organisation })),
      el('div', { class: 'languages', role: 'group', 'aria-label': t('welcome.language') },
        step.languages.map((lang) => el('button', { type: 'button', class: 'primary', lang, 'data-language': lang,
          onclick: () => send('start', { language: lang }) }, t(`language.${lang}`)))),
      step.security_keys ? el('button', { type: 'button', class: 'secondary', id: 'test-my-key',
        onclick: () => send('start_key_check', { language: language() }) }, t('key.check_button')) : null);
    actions.append(el('button', { type: 'button', class: 'discreet', id: 'open-admin', 'aria-label': t('admin.open'),
      onclick: () => invoke('open_admin').catch(showError) }, '⚙'));
  },
  email(step) {
    screenRoot.append(heading('email.title'));
    field({ id: 'email', label: 'email.label', hint: 'email.hint', value: step.email,
      attributes: { type: 'email', inputmode: 'email', autocapitalize: 'off' },
      submit: (value) => send('submit_email', { email: value }), action: 'action.next' });
  },
  pass(step) {
    screenRoot.append(heading('pass.title'), el('p', { class: 'lead' }, t('pass.for', { email: step.email })));
    field({ id: 'pass', label: 'pass.label', hint: 'pass.hint',
      attributes: { autocapitalize: 'characters', class: 'code-input' },
      submit: (value) => send('submit_pass', { pass: value }), action: 'action.sign_in' });
  },
  choose(step) {
    screenRoot.append(heading('choose.title', { name: step.name }), el('p', { class: 'lead' }, t('choose.lead')),
      el('div', { class: 'choices' },
        el('button', { type: 'button', class: 'choice', id: 'choose-authenticator', onclick: () => send('add_authenticator') },
          el('strong', {}, t('choose.authenticator')), el('span', {}, t('choose.authenticator_hint'))),
        step.security_keys ? el('button', { type: 'button', class: 'choice', id: 'choose-security-key', onclick: () => send('add_security_key') },
          el('strong', {}, t('choose.security_key')), el('span', {}, t('choose.security_key_hint'))) : null,
        el('button', { type: 'button', class: 'choice', id: 'choose-security-info', onclick: () => send('open_security_info') },
          el('strong', {}, t('choose.security_info')), el('span', {}, t('choose.security_info_hint', { count: step.methods.length })))));
    actions.append(el('span'), el('button', { type: 'button', class: 'secondary', id: 'finish', onclick: () => send('reset') }, t('action.finish')));
  },
  authenticator_setup(step) {
    screenRoot.append(heading('authenticator.title'),
      el('div', { class: 'qr-row' },
        el('img', { class: 'qr', id: 'qr', alt: t('authenticator.qr_alt', { issuer: step.issuer, account: step.account }),
          src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(step.qr_svg)}` }),
        el('div', {},
          el('p', {}, t('authenticator.scan')),
          el('p', { class: 'hint' }, t('authenticator.manual')),
          el('p', { class: 'secret', id: 'secret' }, step.secret),
          el('p', { class: 'hint' }, t('authenticator.account', { issuer: step.issuer, account: step.account })))));
    field({ id: 'code', label: 'authenticator.code_label', attributes: { inputmode: 'numeric', class: 'code-input', maxlength: '7' },
      submit: (value) => send('confirm_authenticator', { code: value }), action: 'action.next' });
  },
  authenticator_test() {
    screenRoot.append(heading('test.title'), el('p', { class: 'lead' }, t('test.lead')));
    field({ id: 'code', label: 'test.code_label', attributes: { inputmode: 'numeric', class: 'code-input', maxlength: '7' },
      submit: (value) => send('test_authenticator', { code: value }), action: 'action.check' });
  },
  security_info(step) {
    screenRoot.append(heading('security.title'), el('p', { class: 'lead' }, t('security.lead')),
      el('div', { id: 'method-list' }, methodList(step.methods, true)),
      el('button', { type: 'button', class: 'choice', id: 'add-authenticator', onclick: () => send('add_authenticator') },
        el('strong', {}, t('security.add_authenticator'))),
      step.security_keys ? el('button', { type: 'button', class: 'choice', id: 'add-security-key', onclick: () => send('add_security_key') },
        el('strong', {}, t('security.add_security_key'))) : null);
    actions.append(backButton() || '', el('button', { type: 'button', class: 'secondary', onclick: () => send('reset') }, t('action.finish')));
  },
  key_setup(step) {
    screenRoot.append(heading('key.setup_title'));
    keyPhase(step, 'setup');
  },
  key_name(step) {
    screenRoot.append(heading('key.name_title'), el('p', { class: 'lead' }, t('key.name_lead')));
    field({ id: 'key-name', label: 'key.name_label', value: step.suggested, attributes: { maxlength: '64' },
      submit: (value) => send('name_key', { label: value }), action: 'action.next' });
  },
  key_test(step) {
    screenRoot.append(heading('key.test_title'));
    keyPhase(step, 'test');
  },
  key_check_email(step) {
    screenRoot.append(heading('key.check_title'), el('p', { class: 'lead' }, t('key.check_lead')));
    field({ id: 'email', label: 'email.label', value: step.email,
      attributes: { type: 'email', inputmode: 'email', autocapitalize: 'off' },
      submit: (value) => send('check_key_email', { email: value }), action: 'action.next' });
  },
  key_check(step) {
    screenRoot.append(heading('key.check_title'));
    keyPhase(step, 'check');
  },
  key_check_passed(step) {
    screenRoot.append(heading('key.check_passed_title'),
      el('p', { class: 'lead', id: 'key-check-passed' }, t('key.check_passed', { label: step.label, email: step.email })),
      el('p', { class: 'hint' }, t('done.reset')));
    actions.append(el('span'), primary('action.finish', () => send('reset'), { id: 'finish' }));
  },
  tenant_key_check_passed(step) {
    screenRoot.append(heading('tenant.key_check_passed_title'),
      el('p', { class: 'lead', id: 'key-check-passed' }, t('tenant.key_check_passed', { email: step.email })),
      el('p', { class: 'hint' }, t('done.reset')));
    actions.append(el('span'), primary('action.finish', () => send('reset'), { id: 'finish' }));
  },
  tenant_sign_in(step) {
    screenRoot.append(heading('tenant.sign_in_title'), el('p', { class: 'lead' }, t('tenant.sign_in_lead', { email: step.email })));
    actions.append(backButton() || el('span'), el('span'));
  },
  tenant_choose(step) {
    screenRoot.append(heading('choose.title', { name: step.name }), el('p', { class: 'lead' }, t('tenant.choose_lead')),
      el('div', { class: 'choices' },
        el('button', { type: 'button', class: 'choice', id: 'choose-security-key', onclick: () => send('add_security_key') },
          el('strong', {}, t('choose.security_key')), el('span', {}, t('choose.security_key_hint'))),
        el('button', { type: 'button', class: 'choice', id: 'choose-security-info', onclick: () => send('open_security_info') },
          el('strong', {}, t('choose.security_info')), el('span', {}, t('choose.security_info_hint', { count: step.methods.length })))));
    actions.append(el('span'), el('button', { type: 'button', class: 'secondary', id: 'finish', onclick: () => send('reset') }, t('action.finish')));
  },
  tenant_security_info(step) {
    screenRoot.append(heading('security.title'), el('p', { class: 'lead' }, t('tenant.security_lead')),
      el('div', { id: 'method-list' }, tenantMethodList(step.methods)),
      el('button', { type: 'button', class: 'choice', id: 'add-security-key', onclick: () => send('add_security_key') },
        el('strong', {}, t('security.add_security_key'))),
      el('button', { type: 'button', class: 'choice', id: 'add-microsoft-authenticator', onclick: () => send('open_tenant_security_page') },
        el('strong', {}, t('tenant.add_authenticator')), el('span', {}, t('tenant.add_authenticator_hint'))));
    actions.append(backButton() || '', el('button', { type: 'button', class: 'secondary', id: 'finish', onclick: () => send('reset') }, t('action.finish')));
  },
  tenant_security_page() {
    screenRoot.append(heading('tenant.security_page_title'), el('p', { class: 'lead' }, t('tenant.security_page_lead')));
  },
  tenant_key_registered(step) {
    screenRoot.append(heading('done.title', { name: step.name }),
      el('p', { class: 'lead', id: 'key-registered' }, t('tenant.key_registered', { key: step.key_name })),
      step.model ? el('p', { id: 'key-model' }, t('tenant.key_model', { model: step.model })) : '',
      el('p', { class: 'hint' }, t('done.reset')));
    actions.append(el('span'), primary('action.finish', () => send('reset'), { id: 'finish' }));
  },
  done(step) {
    screenRoot.append(heading('done.title', { name: step.name }), el('p', { class: 'lead' }, t('done.lead')),
      methodList(step.methods, false), el('p', { class: 'hint' }, t('done.reset')));
    actions.append(el('span'), primary('action.finish', () => send('reset'), { id: 'finish' }));
  },
};

// What the key needs from the person now. Phases that ended without an
// answer offer Try again.
const FAILED_PHASES = ['no_key', 'several_keys', 'not_supported', 'pin_blocked', 'reinsert_key',
  'already_registered', 'not_registered', 'timed_out', 'failed'];

// "Test my key" cannot tell a mistyped email from a key of someone else's
// (on purpose), so it says to check both.
function keyPhaseText(phase, stage, step) {
  if (stage === 'check' && phase === 'not_registered') return t('key.check_not_registered');
  return t(`key.phase.${phase}`, { min: step.pin_min || 4 });
}

function keyPhase(step, stage) {
  const phase = step.key.phase;
  const status = el('div', { class: `key-status key-${phase}`, id: 'key-status', 'data-phase': phase, role: 'status' },
    el('p', { class: 'lead' }, keyPhaseText(phase, stage, step)));
  screenRoot.append(status);
  if (phase === 'set_pin') {
    screenRoot.append(el('p', { class: 'hint' }, t('key.pin_rules', { min: step.pin_min })));
    const form = el('form', { class: 'field', novalidate: true, onsubmit: (event) => { event.preventDefault(); submitNewPin(); } },
      el('label', { for: 'new-pin' }, t('key.new_pin')), el('input', { id: 'new-pin', type: 'password', autocomplete: 'new-password' }),
      el('label', { for: 'new-pin-again' }, t('key.new_pin_again')), el('input', { id: 'new-pin-again', type: 'password', autocomplete: 'new-password' }),
      el('button', { type: 'submit', hidden: true }));
    screenRoot.append(form);
    actions.append(backButton() || el('span'), primary('action.next', submitNewPin, { id: 'next' }));
    setTimeout(() => document.getElementById('new-pin').focus(), 0);
  } else if (phase === 'enter_pin') {
    const warning = pinWarning(step.key);
    if (warning) status.append(el('p', { class: 'pin-warning', id: 'wrong-pin' }, warning));
    field({ id: 'key-pin', label: 'key.pin', attributes: { type: 'password', autocomplete: 'off' },
      submit: (value) => send('key_pin', { pin: value }), action: 'action.next' });
  } else if (FAILED_PHASES.includes(phase)) {
    // The test sign-in has no Back: the key is saved by then, so the person
    // may stop here rather than try again.
    const away = backButton() || (stage === 'test'
      ? el('button', { type: 'button', class: 'secondary', id: 'finish', onclick: () => send('reset') }, t('action.finish'))
      : el('span'));
    actions.append(away, primary('key.try_again', () => send('retry_key'), { id: 'retry-key' }));
  } else {
    status.prepend(el('div', { class: 'key-icon', 'aria-hidden': 'true' }));
    actions.append(backButton() || el('span'), el('span'));
  }
  document.body.dataset.keyPhase = phase;
  document.body.dataset.keyStage = stage;
}

function submitNewPin() {
  send('key_pin', { pin: document.getElementById('new-pin').value, again: document.getElementById('new-pin-again').value });
}

// Redraws what changes within a step without losing focus or typing.
const refresh = {
  security_info(step) {
    const list = document.getElementById('method-list');
    clear(list).append(methodList(step.methods, true));
  },
  tenant_security_info(step) {
    const list = document.getElementById('method-list');
    clear(list).append(tenantMethodList(step.methods));
  },
  email() { document.getElementById('email')?.select(); },
  pass() { const input = document.getElementById('pass'); if (input) { input.value = ''; input.focus(); } },
  authenticator_setup() { const input = document.getElementById('code'); if (input) { input.value = ''; input.focus(); } },
  authenticator_test() { const input = document.getElementById('code'); if (input) { input.value = ''; input.focus(); } },
};

document.getElementById('still-here').addEventListener('click', () => send('keep_alive'));
document.addEventListener('contextmenu', (event) => event.preventDefault());

// The directory does not answer: one screen, in every language, until it
// does; then the person's screen again, where they were (the session is
// the backend's, kept in memory).
const outOfService = document.getElementById('out-of-service');
const HEALTH_EVERY_MS = 2000;

async function enterOutOfService() {
  if (!outOfService.hidden) return;
  const languages = [language(), ...['en', 'fr'].filter((other) => other !== language())];
  await Promise.all(languages.map(load));
  clear(outOfService).append(...languages.map((lang, i) => el('div', { lang, class: i ? 'other-language' : '' },
    el(i ? 'h2' : 'h1', {}, tIn(lang, 'out_of_service.title')),
    el('p', { class: 'lead' }, tIn(lang, 'out_of_service.body')),
    el('p', {}, tIn(lang, 'out_of_service.wait')))));
  document.body.dataset.outOfService = 'true';
  outOfService.hidden = false;
  focusHeading(outOfService);
  setTimeout(checkHealth, HEALTH_EVERY_MS);
}

async function checkHealth() {
  try {
    await invoke('directory_health');
  } catch {
    setTimeout(checkHealth, HEALTH_EVERY_MS);
    return;
  }
  outOfService.hidden = true;
  delete document.body.dataset.outOfService;
  current = null;
  tickFailed = false;
  await start(true);
}

// The person's screen, once the directory answers (down at start, the
// kiosk has no directory, and no screen, until it opens). Only an outage
// shows the out-of-service screen: any other failure is shown as the
// error it is, and tried again. `answered`: the directory just did.
async function start(answered = false) {
  try {
    if (!answered) await invoke('directory_health');
    await show(await invoke('screen'));
  } catch (error) {
    if (error && error.code === 'out_of_service') {
      await enterOutOfService();
    } else {
      showError(error);
      setTimeout(start, HEALTH_EVERY_MS);
    }
  }
}

// The backend owns time: it resets the kiosk when idle or done.
async function tick() {
  if (!busy && current && outOfService.hidden) {
    try {
      const screen = await invoke('tick');
      const keyMoved = screen.step.key && JSON.stringify(screen.step.key) !== JSON.stringify(current.step.key);
      if (keyMoved || screen.step.kind !== current.step.kind || JSON.stringify(screen.notice) !== JSON.stringify(current.notice)) {
        await show(screen);
      } else {
        current = screen;
        if (tickFailed) drawNotice(screen);
        drawCountdown(screen);
      }
      tickFailed = false;
    } catch (error) {
      if (error && error.code === 'out_of_service') {
        await enterOutOfService();
      } else {
        tickFailed = true;
        showError(error);
      }
    }
  }
}

await use('en');
await start();
setInterval(tick, 1000);
