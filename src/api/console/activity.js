/*
 * activity.js: the activity chart (attempts per minute by outcome over the
 * last hour, stacked bars drawn as SVG, and the pending backlog) from
 * GET /console/api/activity, for every webhook or one; and the form that
 * signals a test event (POST /api/v1/Agents/Webhook/SignalEvent), offered
 * to a key with Events:Signal.
 */
'use strict';

(function () {
  const HK = window.HK;
  const h = HK.h;
  const SVG = 'http://www.w3.org/2000/svg';
  const OUTCOMES = ['delivered', 'retrying', 'failed'];
  const W = 600;
  const H = 150;

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const c of children) el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    return el;
  }

  function hhmm(iso) {
    const d = new Date(iso);
    return String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0');
  }

  /*
   * Draws data (an activity answer: minutes and backlog) into box: the
   * totals of the hour, the pending backlog, and a bar per minute.
   */
  HK.chart = function (box, data, caption) {
    const minutes = data.minutes || [];
    const totals = { delivered: 0, retrying: 0, failed: 0 };
    let max = 1;
    for (const m of minutes) {
      let sum = 0;
      for (const o of OUTCOMES) {
        totals[o] += m[o];
        sum += m[o];
      }
      max = Math.max(max, sum);
    }
    const summary = 'Last hour: ' + totals.delivered + ' delivered, ' + totals.retrying + ' retrying, ' +
      totals.failed + ' failed';
    /* The bars stretch with the page; the labels are text beside them, so they never do. */
    const barW = W / Math.max(minutes.length, 1);
    const svg = s('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': caption + '. ' + summary,
      class: 'chart', preserveAspectRatio: 'none' });
    svg.appendChild(s('line', { x1: 0, y1: H, x2: W, y2: H, class: 'axis' }));
    const ticks = [];
    minutes.forEach((m, i) => {
      const x = i * barW;
      let y = H;
      const g = s('g', { class: 'minute' });
      g.appendChild(s('title', null, hhmm(m.start) + ': ' + OUTCOMES.map((o) => m[o] + ' ' + o).join(', ')));
      for (const o of OUTCOMES) {
        if (!m[o]) continue;
        const hgt = (m[o] / max) * (H - 2);
        y -= hgt;
        g.appendChild(s('rect', { x: x + 0.15 * barW, y, width: 0.7 * barW, height: hgt, class: 'bar ' + o }));
      }
      /* A transparent column so that the whole minute shows its title. */
      g.appendChild(s('rect', { x, y: 0, width: barW, height: H, class: 'hit' }));
      svg.appendChild(g);
      if (i % 15 === 0 || i === minutes.length - 1) ticks.push(h('span', { text: hhmm(m.start) }));
    });
    const b = data.backlog || {};
    const backlog = 'Pending ' + (b.pending || 0) + ' (due ' + (b.due || 0) +
      (b.parked !== undefined ? ', parked ' + b.parked : '') + ')' + (b.capped ? ', counts capped' : '');
    HK.clear(box);
    HK.append(box, [
      h('div.legend', null,
        h('h2', { text: caption }),
        OUTCOMES.map((o) => h('span.key.' + o, null, h('span.swatch.' + o), ' ' + o + ' ',
          h('strong.total-' + o, { text: totals[o] }))),
        h('span.key.backlog', null, h('strong.backlog', { text: backlog }))),
      h('div.plot', null, h('div.ymax', { text: max + '/min' }), svg),
      h('div.ticks', null, ticks),
      h('p.visually-hidden', { text: summary + '. ' + backlog + '.' }),
    ]);
  };

  /* ---- the activity page ----------------------------------------------------- */

  function activityPage(view) {
    const seq = HK.current();
    const errBox = HK.errorBox('activity-error');
    const chartBox = h('div.chart-box#activity-chart');
    const pick = h('select', null, h('option', { value: '', text: 'All webhooks' }));
    const body = h('tbody');
    const names = new Map();

    async function loadNames() {
      try {
        const r = await HK.api('GET', '/api/v1/Webhook');
        if (!HK.stillOn(seq)) return;
        for (const w of r.data || []) {
          names.set(w.WebhookId, w.Name);
          pick.appendChild(h('option', { value: w.WebhookId, text: w.WebhookId + ': ' + (w.Name || '(no name)') }));
        }
      } catch (e) {
        if (HK.stillOn(seq)) HK.showError(errBox, e);
      }
    }

    async function load() {
      try {
        const r = await HK.api('GET', '/console/api/activity', { query: { webhookId: pick.value } });
        if (!HK.stillOn(seq)) return;
        HK.showError(errBox, null);
        const label = pick.value ? 'Webhook ' + pick.value + ', last hour' : 'All webhooks, last hour';
        HK.chart(chartBox, r.data, label);
        HK.clear(body);
        for (const w of r.data.webhooks) {
          body.appendChild(h('tr', null,
            h('td', null, h('a', { href: '#/webhooks/' + w.webhookId, text: w.webhookId + ': ' +
              (names.get(w.webhookId) || '') })),
            h('td', null, HK.stateBadge(w.state), w.locked ? h('span.badge.locked', { text: 'locked' }) : null),
            h('td.num', { text: w.attempts ? w.successRate.toFixed(1) + ' %' : '–' }),
            h('td.num', { text: w.consecutiveFailures }),
            h('td.num', { text: w.pending + (w.pendingCapped ? '+' : '') }),
            h('td', { text: w.lastError })));
        }
      } catch (e) {
        if (HK.stillOn(seq)) HK.showError(errBox, e);
      }
    }

    pick.addEventListener('change', load);
    HK.append(view, [
      h('div.page-head', null, h('h1', { text: 'Activity' })),
      h('form.filters', { onsubmit: (ev) => { ev.preventDefault(); load(); } },
        HK.field('activity-webhook', 'Show', pick),
        h('div.field.buttons', null, h('button#activity-refresh', { type: 'submit', text: 'Refresh' }))),
      errBox, chartBox,
      h('p.hint', { text: 'Counted in memory by the node that answers, since it started; the backlog is the ' +
        'shared pending queue.' }),
      h('div.table-wrap', null, h('table', null,
        h('thead', null, h('tr', null, ['Webhook', 'State', 'Success rate', 'Consecutive failures', 'Pending',
          'Last error'].map((t) => h('th', { scope: 'col', text: t })))),
        body)),
    ]);
    loadNames().then(load);
    const timer = setInterval(load, 5000);
    HK.onLeave(() => clearInterval(timer));
  }

  /* ---- signal a test event ---------------------------------------------------- */

  function signalPage(view) {
    const errBox = HK.errorBox('signal-error');
    const out = h('p.signal-result#signal-result', { 'aria-live': 'polite' });
    const name = h('input', { type: 'text', required: true, placeholder: 'order.paid', spellcheck: 'false' });
    const pk = h('input', { type: 'number', step: 1, value: '1', required: true });
    const data = h('textarea', { rows: 6, spellcheck: 'false', value: '{}' });
    const send = h('button.primary#signal-send', { type: 'submit', text: 'Signal' });
    if (!HK.can('signal')) {
      errBox.hidden = false;
      errBox.textContent = 'This key may not signal events (Events:Signal is needed).';
      HK.append(view, [h('div.page-head', null, h('h1', { text: 'Signal a test event' })), errBox]);
      return;
    }
    const form = h('form.editor#signal-form', {
      onsubmit: async (ev) => {
        ev.preventDefault();
        HK.showError(errBox, null);
        out.textContent = '';
        let payload;
        try {
          payload = data.value.trim() === '' ? {} : JSON.parse(data.value);
        } catch (e) {
          HK.showError(errBox, new Error('Data is not JSON: ' + e.message));
          return;
        }
        send.disabled = true;
        try {
          const r = await HK.api('POST', '/api/v1/Agents/Webhook/SignalEvent', {
            json: { EventName: name.value.trim(), PrimaryKey: Number(pk.value), Data: payload },
          });
          out.textContent = 'Signalled ' + name.value.trim() + ': event ' +
            (r.headers.get('Hookd-Event-Id') || '(no id)') + '.';
        } catch (e) {
          HK.showError(errBox, e);
        } finally {
          send.disabled = false;
        }
      },
    },
      HK.field('signal-name', 'Event name', name),
      HK.field('signal-pk', 'Primary key', pk),
      HK.field('signal-data', 'Data (JSON)', data, 'Becomes the delivery\'s Data; its keys are its Changes.'),
      h('div.buttons', null, send));
    HK.append(view, [h('div.page-head', null, h('h1', { text: 'Signal a test event' })), errBox, form, out]);
  }

  HK.pages.activity = activityPage;
  HK.pages.signal = signalPage;
})();
