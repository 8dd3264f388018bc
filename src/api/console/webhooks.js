/*
 * webhooks.js: the webhook list (GET /api/v1/Webhook with its name, event
 * and state filters, joined with each webhook's health from GET
 * /console/api/activity), the editor (POST /api/v1/Webhook to create,
 * PATCH /api/v1/Webhook/{id} with a JSON Patch of the changed members to
 * edit) and the Test call (POST /api/v1/Webhook/Test). Editing is offered
 * only to a key with ApplicationSettings:Manage.
 */
'use strict';

(function () {
  const HK = window.HK;
  const h = HK.h;
  const STATES = ['Active', 'Stopped', 'TooManyErrors'];

  /* A Test answer in box: success or not, and what came back. */
  function showTest(box, title, result) {
    HK.clear(box);
    box.hidden = false;
    box.className = 'test-result ' + (result.Success ? 'ok' : 'failed');
    HK.append(box, [
      h('h2', { text: title + ': ' + (result.Success ? 'success' : 'failed') }),
      h('pre.answer', { text: result.Message || '' }),
    ]);
  }

  /* Sends webhook (a SuperOffice Webhook object) "test" now and shows the answer in box. */
  async function runTest(box, errBox, title, webhook) {
    HK.showError(errBox, null);
    HK.clear(box);
    box.hidden = false;
    box.className = 'test-result';
    box.appendChild(h('p', { text: title + ': sending…' }));
    try {
      const r = await HK.api('POST', '/api/v1/Webhook/Test', { json: webhook });
      showTest(box, title, r.data);
    } catch (e) {
      box.hidden = true;
      HK.showError(errBox, e);
    }
  }

  /* ---- the list ------------------------------------------------------------ */

  const filters = { name: '', event: '', state: '' };

  function listPage(view) {
    const seq = HK.current();
    const manage = HK.can('manage');
    const errBox = HK.errorBox('list-error');
    const testBox = h('section.test-result#test-result', { 'aria-live': 'polite' });
    testBox.hidden = true;
    const name = h('input', { type: 'search', value: filters.name, placeholder: 'part of a name' });
    const event = h('input', { type: 'search', value: filters.event, placeholder: 'order.paid or order.*' });
    const state = h('select', null, h('option', { value: '', text: 'Any' }),
      STATES.map((s) => h('option', { value: s, text: s })));
    state.value = filters.state;
    const body = h('tbody');
    const count = h('p.count', { 'aria-live': 'polite' });

    async function load() {
      HK.showError(errBox, null);
      try {
        const [list, act] = await Promise.all([
          HK.api('GET', '/api/v1/Webhook', {
            query: { nameFilter: filters.name, eventFilter: filters.event, statusFilter: filters.state },
          }),
          HK.api('GET', '/console/api/activity'),
        ]);
        if (!HK.stillOn(seq)) return;
        const health = new Map(act.data.webhooks.map((w) => [w.webhookId, w]));
        render(list.data || [], health);
      } catch (e) {
        if (HK.stillOn(seq)) HK.showError(errBox, e);
      }
    }

    let shown = null;
    function render(list, health) {
      /* The same rows are left alone, so a refresh does not move what the user is about to click. */
      const sig = JSON.stringify([list, [...health.values()]]);
      if (sig === shown) return;
      shown = sig;
      HK.clear(body);
      count.textContent = list.length === 1 ? '1 webhook' : list.length + ' webhooks';
      for (const w of list) {
        const st = health.get(w.WebhookId) || {};
        const rate = st.attempts ? st.successRate.toFixed(1) + ' %' : '–';
        const actions = h('td.actions', null,
          h('a.button', { href: '#/webhooks/' + w.WebhookId, text: 'Deliveries' }),
          manage ? h('a.button', { href: '#/webhooks/' + w.WebhookId + '/edit', text: 'Edit' }) : null,
          manage ? h('button', {
            type: 'button',
            text: 'Test',
            'aria-label': 'Test webhook ' + w.Name,
            onclick: () => runTest(testBox, errBox, 'Test of ' + (w.Name || 'webhook ' + w.WebhookId), w),
          }) : null);
        body.appendChild(h('tr', { 'data-webhook-id': w.WebhookId },
          h('td', { text: w.WebhookId }),
          h('td', null, h('a', { href: '#/webhooks/' + w.WebhookId, text: w.Name || '(no name)' }),
            h('div.sub', { text: w.TargetUrl })),
          h('td', null, HK.stateBadge(w.State), st.locked ? h('span.badge.locked', { text: 'locked' }) : null),
          h('td.events', { text: (w.Events || []).join(', ') }),
          h('td.num.rate', { text: rate }),
          h('td.num.consecutive', { text: st.consecutiveFailures ?? '' }),
          h('td.num.pending', { text: st.pending ?? '' }),
          h('td.last-error', { text: st.lastError || '', title: st.lastErrorDate ? HK.fmtDate(st.lastErrorDate) : null }),
          actions));
      }
      if (list.length === 0) {
        body.appendChild(h('tr', null, h('td.empty', { colspan: 9, text: 'No webhook matches.' })));
      }
    }

    const form = h('form.filters', {
      onsubmit: (ev) => {
        ev.preventDefault();
        filters.name = name.value.trim();
        filters.event = event.value.trim();
        filters.state = state.value;
        load();
      },
    },
      HK.field('filter-name', 'Name', name),
      HK.field('filter-event', 'Event', event),
      HK.field('filter-state', 'State', state),
      h('div.field.buttons', null, h('button#filters-submit', { type: 'submit', text: 'Filter' })));

    HK.append(view, [
      h('div.page-head', null, h('h1', { text: 'Webhooks' }),
        manage ? h('a.button.primary#new-webhook', { href: '#/webhooks/new', text: 'New webhook' }) : null),
      form, errBox, testBox, count,
      h('div.table-wrap', null, h('table.webhooks', null,
        h('thead', null, h('tr', null, ['ID', 'Name and URL', 'State', 'Events', 'Success rate',
          'Consecutive failures', 'Pending', 'Last error', ''].map((t) => h('th', { scope: 'col', text: t })))),
        body)),
    ]);
    load();
    const timer = setInterval(load, 5000);
    HK.onLeave(() => clearInterval(timer));
  }

  /* ---- the editor ---------------------------------------------------------- */

  /* whsec_ and 24 random bytes in standard base64, as receivers expect. */
  function newSecret() {
    const b = new Uint8Array(24);
    crypto.getRandomValues(b);
    return 'whsec_' + btoa(String.fromCharCode(...b));
  }

  function splitEvents(text) {
    return text.split(/[\s,]+/).map((s) => s.trim()).filter((s) => s !== '');
  }

  /* "Name: value" lines to an object; throws on a line without a colon. */
  function parseHeaders(text) {
    const out = {};
    text.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      const at = line.indexOf(':');
      if (at <= 0) throw new Error('Headers, line ' + (i + 1) + ': write it as "Name: value"');
      out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    });
    return out;
  }

  function headersText(obj) {
    return Object.entries(obj || {}).map(([k, v]) => k + ': ' + v).join('\n');
  }

  function same(a, b) {
    return JSON.stringify(a) === JSON.stringify(b);
  }

  function editPage(view, params) {
    const seq = HK.current();
    const manage = HK.can('manage');
    const id = params.id ? Number(params.id) : 0;
    const errBox = HK.errorBox('edit-error');
    const testBox = h('section.test-result#test-result', { 'aria-live': 'polite' });
    testBox.hidden = true;
    const title = h('h1', { text: id ? 'Webhook ' + id : 'New webhook' });
    const lockNote = h('p.locked-note#lock-status');
    lockNote.hidden = true;
    const name = h('input', { type: 'text', maxlength: 64, required: true });
    const url = h('input', { type: 'url', required: true, placeholder: 'https://example.com/hooks', spellcheck: 'false' });
    const events = h('textarea', { rows: 3, spellcheck: 'false', placeholder: 'order.paid\norder.*' });
    const headers = h('textarea', { rows: 3, spellcheck: 'false', placeholder: 'X-Team: billing' });
    const secret = h('input', { type: 'text', spellcheck: 'false', autocomplete: 'off' });
    const generate = h('button#generate-secret', {
      type: 'button', text: 'Generate', onclick: () => { secret.value = newSecret(); },
    });
    const state = h('select', null, h('option', { value: 'Active', text: 'Active' }),
      h('option', { value: 'Stopped', text: 'Stopped' }));
    const save = h('button.primary#save', { type: 'submit', text: id ? 'Save' : 'Create' });
    const test = h('button#test', { type: 'button', text: 'Test' });
    let loaded = null;

    function current() {
      return {
        Name: name.value.trim(),
        TargetUrl: url.value.trim(),
        Events: splitEvents(events.value),
        Headers: parseHeaders(headers.value),
        Secret: secret.value.trim(),
        State: state.value,
        Type: 'webhook',
      };
    }

    function fill(w) {
      loaded = w;
      title.textContent = 'Webhook ' + w.WebhookId + ': ' + (w.Name || '(no name)');
      name.value = w.Name || '';
      url.value = w.TargetUrl || '';
      events.value = (w.Events || []).join('\n');
      headers.value = headersText(w.Headers);
      secret.value = w.Secret || '';
      if (w.State === 'TooManyErrors') {
        state.appendChild(h('option', { value: 'TooManyErrors', text: 'TooManyErrors (disabled by failures)' }));
      }
      state.value = w.State;
    }

    function setLocked(locked) {
      lockNote.hidden = !locked;
      lockNote.textContent = locked
        ? 'Locked by an operator (hookd webhook unlock ' + id + '): it cannot be changed through the API.'
        : '';
      for (const el of [name, url, events, headers, secret, generate, state, save]) el.disabled = locked || !manage;
    }

    async function load() {
      try {
        const [w, act] = await Promise.all([
          HK.api('GET', '/api/v1/Webhook/' + id),
          HK.api('GET', '/console/api/activity', { query: { webhookId: id } }),
        ]);
        if (!HK.stillOn(seq)) return;
        fill(w.data);
        setLocked(!!(act.data.webhooks[0] && act.data.webhooks[0].locked));
      } catch (e) {
        if (HK.stillOn(seq)) HK.showError(errBox, e);
      }
    }

    async function submit(ev) {
      ev.preventDefault();
      HK.showError(errBox, null);
      let body;
      try {
        body = current();
      } catch (e) {
        HK.showError(errBox, e);
        return;
      }
      save.disabled = true;
      try {
        if (!id) {
          const r = await HK.api('POST', '/api/v1/Webhook', { json: body });
          HK.flash('Created webhook ' + r.data.WebhookId + '.');
          location.hash = '#/webhooks/' + r.data.WebhookId;
          return;
        }
        /* Only what was changed, so that members the form does not show keep their values. */
        const ops = [];
        for (const k of ['Name', 'TargetUrl', 'Events', 'Headers', 'Secret', 'State']) {
          const before = k === 'Headers' ? loaded.Headers || {} : loaded[k];
          if (!same(body[k], before)) ops.push({ op: 'replace', path: '/' + k, value: body[k] });
        }
        if (ops.length === 0) {
          HK.notice('Nothing changed.');
          return;
        }
        const r = await HK.api('PATCH', '/api/v1/Webhook/' + id, { json: ops, type: 'application/json-patch+json' });
        if (!HK.stillOn(seq)) return;
        fill(r.data);
        HK.notice('Saved webhook ' + id + '.');
      } catch (e) {
        HK.showError(errBox, e);
      } finally {
        save.disabled = !manage || !lockNote.hidden;
      }
    }

    test.addEventListener('click', () => {
      let body;
      try {
        body = current();
      } catch (e) {
        HK.showError(errBox, e);
        return;
      }
      runTest(testBox, errBox, 'Test of ' + (body.Name || 'this webhook'), body);
    });

    const form = h('form.editor#webhook-form', { onsubmit: submit },
      HK.field('wh-name', 'Name', name),
      HK.field('wh-url', 'URL', url, 'Where deliveries are POSTed: absolute http(s).'),
      HK.field('wh-events', 'Events', events, 'One per line or comma-separated; prefix.* and * match many.'),
      HK.field('wh-headers', 'Headers', headers, 'Sent with every delivery, one "Name: value" per line.'),
      h('div.field', null, h('label', { for: 'wh-secret', text: 'Secret' }),
        h('div.inline', null, secret, generate),
        h('small.hint', { text: 'Signs each delivery (webhook-signature); a whsec_ secret is base64.' })),
      HK.field('wh-state', 'State', state),
      h('div.buttons', null, manage ? save : null, manage ? test : null,
        h('a.button', { href: id ? '#/webhooks/' + id : '#/webhooks', text: id ? 'Deliveries' : 'Cancel' })));
    secret.id = 'wh-secret';

    HK.append(view, [h('div.page-head', null, title), lockNote, errBox, form, testBox]);
    if (!manage) {
      setLocked(false);
      errBox.hidden = false;
      errBox.textContent = 'This key may only view webhooks (ApplicationSettings:Manage is needed to edit).';
    }
    if (id) load();
    else if (manage) secret.value = newSecret();
  }

  HK.pages.webhooks = listPage;
  HK.pages.edit = editPage;
  HK.runTest = runTest;
})();
