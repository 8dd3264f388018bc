/*
 * console.js: the console's core. The API client (the key from
 * sessionStorage as `Authorization: Bearer`, errors shown as the API wrote
 * them), sign-in and sign-out, the hash router, and DOM helpers that never
 * parse HTML (text goes in as text). The pages (webhooks.js,
 * deliveries.js, activity.js) register themselves in HK.pages.
 */
'use strict';

(function () {
  const KEY_ITEM = 'hookd.console.key';
  const HK = (window.HK = { pages: {}, me: null });
  let leaveHooks = [];
  let routeSeq = 0;

  /* ---- DOM helpers ------------------------------------------------------ */

  /*
   * h('tag.class#id', {attr: value, onclick: fn, text: '...'}, ...children):
   * an element. Children are nodes or strings (as text); null and false are
   * left out; arrays are spread.
   */
  HK.h = function (spec, attrs, ...children) {
    const m = /^([a-z0-9]+)((?:[.#][A-Za-z0-9_-]+)*)$/.exec(spec);
    const el = document.createElement(m ? m[1] : spec);
    if (m && m[2]) {
      for (const part of m[2].match(/[.#][A-Za-z0-9_-]+/g)) {
        if (part[0] === '.') el.classList.add(part.slice(1));
        else el.id = part.slice(1);
      }
    }
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') el.textContent = String(v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = v;
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
    HK.append(el, children);
    return el;
  };

  HK.append = function (el, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) HK.append(el, c);
      else el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return el;
  };

  HK.clear = function (el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  };

  /* A labelled form field: label, control and an optional hint, wrapped. */
  HK.field = function (id, label, control, hint) {
    control.id = id;
    const hintEl = hint ? HK.h('small.hint', { id: id + '-hint', text: hint }) : null;
    if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
    return HK.h('div.field', null, HK.h('label', { for: id, text: label }), control, hintEl);
  };

  /* A webhook state as a badge. */
  HK.stateBadge = function (state) {
    return HK.h('span.badge.state-' + String(state || 'Unknown').replace(/[^A-Za-z]/g, ''), { text: state || '?' });
  };

  /* ---- dates ------------------------------------------------------------ */

  /* An ISO date from the API as the browser's local time, to the second. */
  HK.fmtDate = function (iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    const p = (n) => String(n).padStart(2, '0');
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + p(d.getHours()) + ':' +
      p(d.getMinutes()) + ':' + p(d.getSeconds());
  };

  /* A datetime-local input's value (local time) as ISO 8601 UTC, or '' when empty. */
  HK.localToIso = function (value) {
    if (!value) return '';
    const d = new Date(value);
    return isNaN(d.getTime()) ? '' : d.toISOString();
  };

  /* A Date as a datetime-local value (local time, to the second). */
  HK.isoToLocal = function (date) {
    const p = (n) => String(n).padStart(2, '0');
    return date.getFullYear() + '-' + p(date.getMonth() + 1) + '-' + p(date.getDate()) + 'T' + p(date.getHours()) +
      ':' + p(date.getMinutes()) + ':' + p(date.getSeconds());
  };

  /* ---- the API ------------------------------------------------------------ */

  /* An answer that was not 2xx: status and the API's own message. */
  class ApiError extends Error {
    constructor(status, statusText, message, body) {
      super(message);
      this.status = status;
      this.statusText = statusText;
      this.body = body;
    }
  }
  HK.ApiError = ApiError;

  /* The message of an error body in any of the dialects' shapes, as written. */
  function messageOf(body, text) {
    if (body && typeof body === 'object') {
      for (const k of ['message', 'Message', 'error', 'Error', 'description']) {
        if (typeof body[k] === 'string' && body[k] !== '') return body[k];
      }
    }
    if (typeof body === 'string') return body;
    return text || '';
  }

  HK.key = function () {
    return sessionStorage.getItem(KEY_ITEM);
  };

  /*
   * One request. opts: json (a body, sent as JSON), type (its Content-Type),
   * key (instead of the stored one), query (an object of parameters; empty
   * values are left out). Resolves to {status, data, headers}; rejects with
   * an ApiError. A 401 with the stored key signs out.
   */
  HK.api = async function (method, path, opts) {
    opts = opts || {};
    const headers = { Accept: 'application/json' };
    const key = opts.key || HK.key();
    if (key) headers.Authorization = 'Bearer ' + key;
    let body;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers['Content-Type'] = opts.type || 'application/json';
    }
    if (opts.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(opts.query)) {
        if (v !== '' && v !== null && v !== undefined) q.set(k, String(v));
      }
      const s = q.toString();
      if (s) path += (path.includes('?') ? '&' : '?') + s;
    }
    let res;
    try {
      res = await fetch(path, { method, headers, body, cache: 'no-store', credentials: 'omit', redirect: 'error' });
    } catch (e) {
      throw new ApiError(0, '', 'the server could not be reached (' + e.message + ')', null);
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = null;
      }
    }
    if (!res.ok) {
      const err = new ApiError(res.status, res.statusText, messageOf(data, text), data);
      if (res.status === 401 && !opts.key) signOut('The server refused the key: ' + err.message);
      throw err;
    }
    return { status: res.status, data, headers: res.headers };
  };

  /* An error as the user sees it: the status and the API's message, verbatim. */
  HK.errorText = function (err) {
    if (err instanceof ApiError) {
      if (err.status === 0) return err.message;
      return 'HTTP ' + err.status + (err.statusText ? ' ' + err.statusText : '') + ': ' + err.message;
    }
    return String(err && err.message ? err.message : err);
  };

  /* Shows err in box (an element with role=alert), or clears box when err is null. */
  HK.showError = function (box, err) {
    box.textContent = err ? HK.errorText(err) : '';
    box.hidden = !err;
  };

  /* An empty error box to put in a page. */
  HK.errorBox = function (id) {
    const box = HK.h('p.error', { role: 'alert', id: id || null });
    box.hidden = true;
    return box;
  };

  /* A short message at the top of the page, for what just succeeded. */
  HK.notice = function (text) {
    const n = document.getElementById('notice');
    n.textContent = text || '';
    n.classList.toggle('shown', !!text);
  };

  /* A notice for the page about to be shown (the next route), e.g. after a create. */
  let flash = '';
  HK.flash = function (text) {
    flash = text;
  };

  /* True when the signed-in key may do what: 'view', 'manage' or 'signal'. */
  HK.can = function (what) {
    return !!(HK.me && HK.me.can && HK.me.can[what]);
  };

  /* ---- sign-in ------------------------------------------------------------ */

  function showSignedIn() {
    document.getElementById('signin').hidden = true;
    document.getElementById('nav').hidden = false;
    document.getElementById('who').hidden = false;
    document.getElementById('nav-signal').hidden = !HK.can('signal');
    document.getElementById('who-name').textContent =
      HK.me.fullName + ' (' + HK.me.userCode + '): ' + (HK.me.permissions.join(', ') || 'no permissions');
  }

  function showSignIn(message) {
    leave();
    HK.clear(document.getElementById('view'));
    document.getElementById('nav').hidden = true;
    document.getElementById('who').hidden = true;
    document.getElementById('signin').hidden = false;
    const err = document.getElementById('signin-error');
    err.textContent = message || '';
    document.getElementById('signin-key').focus();
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY_ITEM);
    HK.me = null;
    HK.notice('');
    showSignIn(message);
  }
  HK.signOut = signOut;

  async function signIn(ev) {
    ev.preventDefault();
    const input = document.getElementById('signin-key');
    const key = input.value.trim();
    const err = document.getElementById('signin-error');
    err.textContent = '';
    if (!key) return;
    const button = document.getElementById('signin-submit');
    button.disabled = true;
    try {
      const r = await HK.api('GET', '/console/api/me', { key });
      sessionStorage.setItem(KEY_ITEM, key);
      input.value = '';
      HK.me = r.data;
      showSignedIn();
      if (!location.hash || location.hash === '#' || location.hash === '#/') location.hash = '#/webhooks';
      else route();
    } catch (e) {
      err.textContent = HK.errorText(e);
    } finally {
      button.disabled = false;
    }
  }

  /* ---- routing ------------------------------------------------------------ */

  /* Registers fn to run when the page is left (timers, listeners). */
  HK.onLeave = function (fn) {
    leaveHooks.push(fn);
  };

  function leave() {
    const hooks = leaveHooks;
    leaveHooks = [];
    for (const fn of hooks) fn();
  }

  /* True while the page that asked (its number from HK.current()) is still shown. */
  HK.current = function () {
    return routeSeq;
  };
  HK.stillOn = function (seq) {
    return seq === routeSeq;
  };

  /* Routes: #/webhooks, #/webhooks/new, #/webhooks/ID, #/webhooks/ID/edit, #/activity, #/signal. */
  function route() {
    if (!HK.me) return;
    leave();
    routeSeq++;
    HK.notice(flash);
    flash = '';
    const parts = location.hash.replace(/^#\/?/, '').split('/').filter((p) => p !== '');
    let page = 'webhooks';
    let params = {};
    if (parts[0] === 'webhooks' && parts[1] === 'new') {
      page = 'edit';
    } else if (parts[0] === 'webhooks' && /^\d+$/.test(parts[1] || '')) {
      params.id = parts[1];
      page = parts[2] === 'edit' ? 'edit' : 'deliveries';
    } else if (parts[0] === 'activity' || parts[0] === 'signal') {
      page = parts[0];
    }
    for (const a of document.querySelectorAll('#nav a')) {
      const on = a.dataset.page === (page === 'edit' || page === 'deliveries' ? 'webhooks' : page);
      if (on) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const view = HK.clear(document.getElementById('view'));
    const render = HK.pages[page];
    view.dataset.page = page;
    render(view, params);
  }
  HK.route = route;

  async function start() {
    document.getElementById('signin-form').addEventListener('submit', signIn);
    document.getElementById('signout').addEventListener('click', () => signOut(''));
    window.addEventListener('hashchange', route);
    const key = HK.key();
    if (!key) {
      showSignIn('');
      return;
    }
    try {
      const r = await HK.api('GET', '/console/api/me', { key });
      HK.me = r.data;
      showSignedIn();
      route();
    } catch (e) {
      if (e.status === 401) signOut('The server refused the stored key: ' + e.message);
      else showSignIn(HK.errorText(e));
    }
  }

  document.addEventListener('DOMContentLoaded', start);
})();
