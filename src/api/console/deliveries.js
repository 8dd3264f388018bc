/*
 * deliveries.js: one webhook's deliveries. Its activity chart
 * (GET /console/api/activity?webhookId=), the attempt log paged and
 * filtered by result and date range (GET /api/v3/webhook/{id}/log with the
 * EnergyCAP filter grammar), an attempt's request and response
 * (GET .../log/{logId}/detail), resend (POST .../log/{logId}/resend) and
 * recover since/until (POST /api/v3/webhook/{id}/recover). Resend and
 * recover are offered only to a key with ApplicationSettings:Manage.
 */
'use strict';

(function () {
  const HK = window.HK;
  const h = HK.h;
  const PAGE_SIZES = [20, 50, 100, 5];

  /* Result choices and the filter condition each stands for. */
  const RESULTS = [
    ['', 'Any result', null],
    ['2xx', 'Delivered (2xx)', 'result between 200 and 299'],
    ['4xx', 'Refused (4xx)', 'result between 400 and 499'],
    ['5xx', 'Server error (5xx)', 'result between 500 and 599'],
    ['0', 'No answer (timeout, refused…)', 'result equals 0'],
  ];

  function filterText(result, from, to) {
    const conds = [];
    const r = RESULTS.find((x) => x[0] === result);
    if (r && r[2]) conds.push(r[2]);
    if (from) conds.push('logDate greater than or equal "' + from + '"');
    if (to) conds.push('logDate less than or equal "' + to + '"');
    return conds.join(' and ');
  }

  function deliveriesPage(view, params) {
    const seq = HK.current();
    const id = Number(params.id);
    const manage = HK.can('manage');
    const base = '/api/v3/webhook/' + id;
    const state = { page: 1, size: PAGE_SIZES[0], result: '', from: '', to: '', pages: 0 };
    const errBox = HK.errorBox('log-error');
    const title = h('h1', { text: 'Webhook ' + id });
    const info = h('p.webhook-info');
    const chartBox = h('div.chart-box#webhook-chart');
    const body = h('tbody');
    const pageInfo = h('span.page-info', { 'aria-live': 'polite' });
    const prev = h('button#prev-page', { type: 'button', text: 'Previous', onclick: () => go(state.page - 1) });
    const next = h('button#next-page', { type: 'button', text: 'Next', onclick: () => go(state.page + 1) });
    const detail = h('section.detail#attempt-detail', { tabindex: '-1' });
    detail.hidden = true;

    async function loadHead() {
      try {
        const [w, act] = await Promise.all([
          HK.api('GET', '/api/v1/Webhook/' + id),
          HK.api('GET', '/console/api/activity', { query: { webhookId: id } }),
        ]);
        if (!HK.stillOn(seq)) return;
        const st = act.data.webhooks[0] || {};
        title.textContent = 'Deliveries of ' + (w.data.Name || 'webhook ' + id);
        HK.clear(info);
        HK.append(info, [
          HK.stateBadge(w.data.State), st.locked ? h('span.badge.locked', { text: 'locked' }) : null, ' ',
          h('span', { text: w.data.TargetUrl }), ' · ',
          h('span#consecutive', { text: (st.consecutiveFailures || 0) + ' consecutive failures' }), ' · ',
          h('span#pending', { text: (st.pending || 0) + ' pending' }),
          st.lastError ? h('span.last-error', { text: ' · last error: ' + st.lastError }) : null,
        ]);
        HK.chart(chartBox, act.data, 'Webhook ' + id + ', last hour');
      } catch (e) {
        if (HK.stillOn(seq)) HK.showError(errBox, e);
      }
    }

    async function loadLog() {
      try {
        const r = await HK.api('GET', base + '/log', {
          query: { pageSize: state.size, pageNumber: state.page, filter: filterText(state.result, state.from, state.to) },
        });
        if (!HK.stillOn(seq)) return;
        HK.showError(errBox, null);
        const total = Number(r.headers.get('TotalNumberOfRecords') || 0);
        state.pages = Number(r.headers.get('TotalPages') || 0);
        pageInfo.textContent = 'Page ' + (state.pages ? state.page : 0) + ' of ' + state.pages + ' (' + total +
          (total === 1 ? ' attempt)' : ' attempts)');
        prev.disabled = state.page <= 1;
        next.disabled = state.page >= state.pages;
        renderLog(r.data || []);
      } catch (e) {
        if (HK.stillOn(seq)) HK.showError(errBox, e);
      }
    }

    let shown = null;
    function renderLog(rows) {
      /* The same rows are left alone, so a refresh does not move what the user is about to click. */
      const sig = JSON.stringify(rows);
      if (sig === shown) return;
      shown = sig;
      HK.clear(body);
      for (const a of rows) {
        const ok = /^2\d\d$/.test(a.result);
        body.appendChild(h('tr', { 'data-log-id': a.webhookLogId, class: ok ? 'ok' : 'failed' },
          h('td', { text: a.webhookLogId }),
          h('td', { text: HK.fmtDate(a.logDate) }),
          h('td', { text: a.eventName }),
          h('td.num', { text: a.attempt }),
          h('td.result', null, h('span.badge.' + (ok ? 'good' : 'bad'), { text: a.result === '0' ? 'no answer' : a.result })),
          h('td.num', { text: a.durationMs + ' ms' }),
          h('td.error-text', { text: a.error + (a.exhausted && !ok ? ' (no retry left)' : '') }),
          h('td.actions', null,
            h('button.detail-button', {
              type: 'button', text: 'Detail', 'aria-label': 'Detail of attempt ' + a.webhookLogId,
              onclick: () => showDetail(a),
            }),
            manage ? h('button.resend-button', {
              type: 'button', text: 'Resend', 'aria-label': 'Resend the event of attempt ' + a.webhookLogId,
              onclick: () => resend(a),
            }) : null)));
      }
      if (rows.length === 0) body.appendChild(h('tr', null, h('td.empty', { colspan: 8, text: 'No attempt matches.' })));
    }

    function go(page) {
      if (page < 1 || (state.pages && page > state.pages)) return;
      state.page = page;
      loadLog();
    }

    async function showDetail(a) {
      HK.clear(detail);
      detail.hidden = false;
      detail.appendChild(h('h2', { text: 'Attempt ' + a.webhookLogId + ': ' + a.eventName + ', try ' + a.attempt }));
      try {
        const r = await HK.api('GET', base + '/log/' + a.webhookLogId + '/detail');
        if (!HK.stillOn(seq)) return;
        HK.append(detail, [
          h('p', { text: 'Result ' + r.data.result + ' from ' + r.data.url + (a.error ? ' · ' + a.error : '') }),
          h('div.exchange', null,
            h('div', null, h('h3', { text: 'Request as sent' }), h('pre.request#detail-request', { text: r.data.request })),
            h('div', null, h('h3', { text: 'Response as received' }),
              h('pre.response#detail-response', { text: r.data.response || '(nothing came back)' }))),
          h('button', { type: 'button', text: 'Close', onclick: () => { detail.hidden = true; } }),
        ]);
        detail.focus();
      } catch (e) {
        detail.appendChild(h('p.error', { role: 'alert', text: HK.errorText(e) }));
      }
    }

    async function resend(a) {
      HK.showError(errBox, null);
      try {
        const r = await HK.api('POST', base + '/log/' + a.webhookLogId + '/resend');
        HK.notice('Queued again: event ' + r.data.eventId + ' (' + a.eventName + ') from attempt ' + a.webhookLogId + '.');
        setTimeout(() => { if (HK.stillOn(seq)) refresh(); }, 700);
      } catch (e) {
        HK.showError(errBox, e);
      }
    }

    function refresh() {
      loadHead();
      loadLog();
    }

    const result = h('select', null, RESULTS.map((r) => h('option', { value: r[0], text: r[1] })));
    const from = h('input', { type: 'datetime-local', step: 1 });
    const to = h('input', { type: 'datetime-local', step: 1 });
    const size = h('select', null, PAGE_SIZES.map((n) => h('option', { value: n, text: n + ' a page' })));
    const filterForm = h('form.filters#log-filters', {
      onsubmit: (ev) => {
        ev.preventDefault();
        state.result = result.value;
        state.from = HK.localToIso(from.value);
        state.to = HK.localToIso(to.value);
        state.size = Number(size.value);
        state.page = 1;
        loadLog();
      },
    },
      HK.field('log-result', 'Result', result),
      HK.field('log-from', 'From', from),
      HK.field('log-to', 'To', to),
      HK.field('log-size', 'Page size', size),
      h('div.field.buttons', null, h('button', { type: 'submit', text: 'Filter' })));

    HK.append(view, [
      h('div.page-head', null, title,
        h('div.buttons', null,
          manage ? h('a.button', { href: '#/webhooks/' + id + '/edit', text: 'Edit' }) : null,
          h('button#refresh', { type: 'button', text: 'Refresh', onclick: refresh }))),
      info, errBox, chartBox,
      h('h2', { text: 'Attempt log' }), filterForm,
      h('div.table-wrap', null, h('table.log', null,
        h('thead', null, h('tr', null, ['Log id', 'Time', 'Event', 'Try', 'Result', 'Duration', 'Error', '']
          .map((t) => h('th', { scope: 'col', text: t })))),
        body)),
      h('div.pager', null, prev, pageInfo, next),
      detail,
      manage ? recoverForm(id) : null,
    ]);
    refresh();
    const timer = setInterval(refresh, 5000);
    HK.onLeave(() => clearInterval(timer));
  }

  /* Recover since/until: every event whose delivery failed for good in the window is queued again, once. */
  function recoverForm(id) {
    const since = h('input', { type: 'datetime-local', step: 1, required: true });
    const until = h('input', { type: 'datetime-local', step: 1 });
    const out = h('p.recover-result#recover-result', { 'aria-live': 'polite' });
    const errBox = HK.errorBox('recover-error');
    since.value = HK.isoToLocal(new Date(Date.now() - 3600 * 1000));
    const button = h('button#recover', { type: 'submit', text: 'Recover' });
    return h('section.recover', null,
      h('h2', { text: 'Recover after an outage' }),
      h('p.hint', { text: 'Queues again, once each, every event whose delivery failed for good in the window and ' +
        'has not been delivered since.' }),
      h('form.filters#recover-form', {
        onsubmit: async (ev) => {
          ev.preventDefault();
          HK.showError(errBox, null);
          out.textContent = '';
          const body = { since: HK.localToIso(since.value) };
          if (until.value) body.until = HK.localToIso(until.value);
          button.disabled = true;
          try {
            const r = await HK.api('POST', '/api/v3/webhook/' + id + '/recover', { json: body });
            out.textContent = 'Recovered ' + r.data.recovered + (r.data.recovered === 1 ? ' event' : ' events') +
              ' failed between ' + HK.fmtDate(r.data.since) + ' and ' + HK.fmtDate(r.data.until) + '.';
          } catch (e) {
            HK.showError(errBox, e);
          } finally {
            button.disabled = false;
          }
        },
      },
        HK.field('recover-since', 'Since', since),
        HK.field('recover-until', 'Until (empty: now)', until),
        h('div.field.buttons', null, button)),
      errBox, out);
  }

  HK.pages.deliveries = deliveriesPage;
})();
