"""End to end: Prometheus metrics at GET /metrics.

A real server gets known traffic (signals to a receiver answering 200, to
one answering 500 until its webhook is disabled, to a target the SSRF guard
refuses, requests without a key, a request head too large) and its
exposition is parsed with Debian's python3-prometheus-client, the parser
Prometheus's own Python client ships: counters equal the traffic, histogram
counts match their counters, every family has HELP and TYPE and is listed
in the README. And who may read it: 401 without a key, 403 without
Metrics:Read, 200 with it (or with `all`), 200 without a key when
[metrics] public is on.

Runs under /usr/bin/python3 (tests/CMakeLists.txt), which sees Debian's
python3-prometheus-client.
"""
import os
import re
import time

from prometheus_client.parser import text_string_to_metric_families

from hookd_test import ADMIN_KEY, run, Server, wait_until
from receiver import Receiver
from smtp_sink import SmtpSink

SOURCE_DIR = os.environ.get("HOOKD_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
N_OK, M_FAIL = 5, 3
ENV = {
    # ::1 is allowed while the webhooks are saved, and refused once the server restarts without it.
    "HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32,::1/128",
    # A failed attempt is retried an hour later: not during the test.
    "HOOKD_DELIVERY_RETRY_SCHEDULE": "0s,1h",
    "HOOKD_DELIVERY_DISABLE_AFTER": str(M_FAIL),
    "HOOKD_METRICS_WEBHOOK_SERIES": "2",
}


class Scrape:
    """A parsed exposition: samples by name and labels, families by name."""

    def __init__(self, text):
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = {}
        for f in self.families.values():
            for s in f.samples:
                key = (s.name, frozenset(s.labels.items()))
                assert key not in self.samples, "sample %s%s twice" % (s.name, s.labels)
                self.samples[key] = s.value

    def get(self, name, **labels):
        key = (name, frozenset(labels.items()))
        assert key in self.samples, "no sample %s%s in:\n%s" % (name, labels, self.text[:3000])
        return self.samples[key]

    def has(self, name, **labels):
        return (name, frozenset(labels.items())) in self.samples

    def series(self, name):
        """Label dicts of every sample called name."""
        return [dict(k[1]) for k in self.samples if k[0] == name]


def scrape(s, key=ADMIN_KEY):
    r = s.request("GET", "/metrics", key=key)
    assert r.status == 200, r
    assert r.header("content-type") == CONTENT_TYPE, r.headers
    return Scrape(r.body.decode("utf-8"))


def create_webhook(s, url, events, state="Active", **extra):
    body = {"Name": "m", "Events": events, "TargetUrl": url, "State": state, "Type": "webhook"}
    body.update(extra)
    r = s.request("POST", "/api/v1/Webhook", body)
    assert r.status == 200, r
    return r.json()["WebhookId"]


def signal(s, name, headers=None):
    r = s.request("POST", "/api/v1/Agents/Webhook/SignalEvent", {"EventName": name, "PrimaryKey": 1, "Data": {}},
                  headers=headers)
    assert r.status == 204, r


def check_histograms(m):
    """Every histogram: cumulative buckets that never fall, +Inf equal to _count."""
    for name, fam in m.families.items():
        if fam.type != "histogram":
            continue
        groups = {}
        for smp in fam.samples:
            base = frozenset((k, v) for k, v in smp.labels.items() if k != "le")
            groups.setdefault(base, []).append(smp)
        assert groups, name
        for base, smps in groups.items():
            buckets = [(float(x.labels["le"]), x.value) for x in smps if x.name == name + "_bucket"]
            assert buckets and buckets[-1][0] == float("inf"), (name, base)
            assert [b[0] for b in buckets] == sorted(b[0] for b in buckets), (name, base)
            values = [b[1] for b in buckets]
            assert values == sorted(values), (name, base, values)
            count = [x.value for x in smps if x.name == name + "_count"]
            assert count == [values[-1]], (name, base, count, values[-1])


def readme_metrics_section():
    with open(os.path.join(SOURCE_DIR, "README.md"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^## Metrics\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README.md has no Metrics section"
    return m.group(1)


def test_counters_and_histograms_equal_known_traffic():
    with Receiver() as ok, Receiver() as bad, SmtpSink() as sink, \
            Server(env=dict(ENV, HOOKD_SMTP_HOST="127.0.0.1", HOOKD_SMTP_PORT=str(sink.port))) as s:
        bad.reply(status=500, body=b"no")
        w_ok = create_webhook(s, ok.url + "/ok", ["m.ok"])
        # Its disabling is mailed.
        w_fail = create_webhook(s, bad.url + "/fail", ["m.fail"], ErrorsEmail="ops@example.com")
        w_ssrf = create_webhook(s, "http://[::1]:9/ssrf", ["m.ssrf"])
        create_webhook(s, ok.url + "/stopped", ["m.ok"], state="Stopped")
        assert (w_ok, w_fail, w_ssrf) == (1, 2, 3)
        s.env["HOOKD_DELIVERY_ALLOW_TARGETS"] = "127.0.0.1/32"
        s.restart()

        # A fresh process: nothing counted yet; the store's gauges are there from the start.
        m = scrape(s)
        for d in ("superoffice", "energycap", "ivanti", "other"):
            for c in ("2xx", "4xx", "5xx"):
                assert m.get("hookd_http_requests_total", dialect=d, status_class=c) == 0
        assert m.get("hookd_signals_accepted_total") == 0
        assert m.get("hookd_webhooks", state="Active") == 3
        assert m.get("hookd_webhooks", state="Stopped") == 1
        assert m.get("hookd_webhooks", state="TooManyErrors") == 0
        assert m.get("hookd_deliveries_pending") == 0

        for _ in range(N_OK):
            signal(s, "m.ok")
        for _ in range(M_FAIL):
            signal(s, "m.fail")
        signal(s, "m.ssrf")
        signal(s, "m.nobody", headers={"Idempotency-Key": "once"})
        signal(s, "m.nobody", headers={"Idempotency-Key": "once"})
        ok.wait_for(N_OK)
        bad.wait_for(M_FAIL)

        def settled():
            m = scrape(s)
            done = (m.get("hookd_delivery_attempts_total", outcome="2xx") == N_OK and
                    m.get("hookd_delivery_attempts_total", outcome="5xx") == M_FAIL and
                    m.get("hookd_delivery_attempts_total", outcome="ssrf") == 1 and
                    m.get("hookd_webhooks", state="TooManyErrors") == 1 and
                    m.get("hookd_deliveries_parked") == M_FAIL)
            return done and m

        wait_until(settled, what="every attempt to be counted")
        sink.wait_for(1)

        def mailed():
            m = settled()
            return m and m.get("hookd_mails_sent_total") == 1 and m

        m = wait_until(mailed, what="the mail about the disabled webhook to be counted")
        assert m.get("hookd_signals_accepted_total") == N_OK + M_FAIL + 2
        assert m.get("hookd_signals_duplicate_total") == 1
        assert m.get("hookd_deliveries_queued_total") == N_OK + M_FAIL + 1  # the Stopped webhook gets none
        outcomes = {d["outcome"]: m.get("hookd_delivery_attempts_total", **d)
                    for d in m.series("hookd_delivery_attempts_total")}
        assert outcomes == {"2xx": N_OK, "3xx": 0, "4xx": 0, "5xx": M_FAIL, "timeout": 0, "refused": 0, "reset": 0,
                            "tls": 0, "ssrf": 1, "dns": 0, "error": 0}, outcomes
        assert m.get("hookd_delivery_signal_to_2xx_seconds_count") == N_OK
        assert m.get("hookd_webhook_auto_disables_total") == 1
        assert m.get("hookd_webhooks", state="Active") == 2
        assert m.get("hookd_webhooks", state="Stopped") == 1
        # Left in the queue: the failed webhook's retries (parked: it is TooManyErrors) and the SSRF
        # target's retry, an hour away.
        assert m.get("hookd_deliveries_pending") == M_FAIL + 1
        assert m.get("hookd_deliveries_due") == 0
        assert m.get("hookd_deliveries_counts_capped") == 0
        assert 0 < m.get("hookd_deliveries_oldest_pending_age_seconds") < 300
        # The group commit: one observation per commit, every op in one.
        assert m.get("hookd_store_commit_batch_ops_count") == m.get("hookd_store_commits_total") > 0
        assert m.get("hookd_store_commit_batch_ops_sum") == m.get("hookd_store_ops_total") > 0
        assert m.get("hookd_store_commit_duration_seconds_count") == m.get("hookd_store_commits_total")
        assert m.get("hookd_store_used_bytes") > 0
        assert m.get("hookd_store_failed_commits_total") == 0
        assert m.get("hookd_http_connections") >= 1
        assert m.get("hookd_http_client_connections_opened_total") >= 2
        assert m.get("hookd_mails_sent_total") == 1 and m.get("hookd_mails_failed_total") == 0
        assert m.get("hookd_process_resident_memory_bytes") > 1 << 20
        assert 3 <= m.get("hookd_process_open_fds") <= m.get("hookd_process_max_fds")
        # Per-webhook series for the two lowest ids only ([metrics] webhook_series = 2).
        assert sorted(d["webhook"] for d in m.series("hookd_webhook_attempts_total")) == ["1", "2"]
        assert m.get("hookd_webhook_attempts_total", webhook="1") == N_OK
        assert m.get("hookd_webhook_failed_attempts_total", webhook="1") == 0
        assert m.get("hookd_webhook_attempts_total", webhook="2") == M_FAIL
        assert m.get("hookd_webhook_failed_attempts_total", webhook="2") == M_FAIL
        assert m.get("hookd_webhook_consecutive_failures", webhook="2") == M_FAIL
        assert m.get("hookd_webhook_state", webhook="2", state="TooManyErrors") == 1
        assert m.get("hookd_webhook_state", webhook="2", state="Active") == 0
        assert not m.has("hookd_webhook_state", webhook="3", state="Active")
        check_histograms(m)

        # Inbound answers: what one scrape and the next tell apart is exactly the traffic between them.
        before = scrape(s)
        for path in ("/api/v1/Webhook", "/api/v1/Webhook/1", "/API/V1/Webhook"):
            assert s.request("GET", path, key=None).status == 401
        for _ in range(2):
            assert s.request("GET", "/api/v3/webhook", key="hk_wrong", auth="eci").status == 401
        assert s.request("POST", "/api/rest/Webhooks/Execute?extension=x", {"a": 1}, key=None).status == 401
        assert s.request("GET", "/api/v1/Webhook").status == 200
        assert s.request("GET", "/nowhere", key=None).status == 404
        # An answer the server gives by itself (the head is too large): counted by the path's dialect.
        raw = s.raw(b"GET /api/v1/Webhook HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 431"), raw[:80]
        after = scrape(s)
        expected = {("superoffice", "4xx"): 4, ("superoffice", "2xx"): 1, ("energycap", "4xx"): 2,
                    ("ivanti", "4xx"): 1, ("other", "4xx"): 1, ("other", "2xx"): 1}  # the first scrape
        for d in ("superoffice", "energycap", "ivanti", "other"):
            total = 0
            for c in ("1xx", "2xx", "3xx", "4xx", "5xx"):
                delta = (after.get("hookd_http_requests_total", dialect=d, status_class=c) -
                         before.get("hookd_http_requests_total", dialect=d, status_class=c))
                assert delta == expected.get((d, c), 0), (d, c, delta)
                total += after.get("hookd_http_requests_total", dialect=d, status_class=c)
            # Every answer is one latency observation.
            assert after.get("hookd_http_request_duration_seconds_count", dialect=d) == total, d
        check_histograms(after)

        # Every family is named hookd_*, has its HELP and TYPE, and is in the README's Metrics section.
        section = readme_metrics_section()
        for name, fam in after.families.items():
            assert name.startswith("hookd_"), name
            assert fam.type in ("counter", "gauge", "histogram"), (name, fam.type)
            assert fam.documentation, name
            shown = name + "_total" if fam.type == "counter" else name
            assert "`%s`" % shown in section, "README's Metrics section does not list %s" % shown


def test_who_may_read_the_metrics():
    with Server() as s:
        r = s.request("GET", "/metrics", key=None)
        assert r.status == 401, r
        assert s.request("GET", "/metrics", key="hk_not_a_key").status == 401
        s.cli("user", "add", "--code", "signaller", "--name", "S", "--perm", "Events:Signal,ApplicationSettings:Manage")
        signaller = s.cli("key", "create", "--user", "signaller").stdout.strip()
        r = s.request("GET", "/metrics", key=signaller)
        assert r.status == 403 and "Metrics:Read" in r.json()["error"], r
        s.cli("user", "add", "--code", "prom", "--name", "Prometheus", "--perm", "Metrics:Read")
        prom = s.cli("key", "create", "--user", "prom").stdout.strip()
        m = scrape(s, key=prom)
        assert m.get("hookd_build_info", version=m.series("hookd_build_info")[0]["version"]) == 1
        # Every credential form works, as on any route.
        assert s.request("GET", "/metrics", key=prom, auth="eci").status == 200
        assert s.request("GET", "/metrics", key=prom, auth="basic:prom").status == 200
        # `all` includes it; so does every permission a user held before Metrics:Read existed.
        s.cli("user", "add", "--code", "old", "--name", "Old admin", "--perm",
              "ApplicationSettings:View,ApplicationSettings:Manage,Accounts:Edit,Events:Signal,Webhooks:Execute")
        old = s.cli("key", "create", "--user", "old").stdout.strip()
        assert s.request("GET", "/metrics", key=old).status == 200
        assert s.request("GET", "/metrics").status == 200  # the admin: all
        # The permission's name is known to the CLI.
        assert "Metrics:Read" in s.cli("user", "--help").stdout
        assert "Metrics:Read" in s.cli("user", "list").stdout
        # A key is not a key to anything else.
        assert s.request("GET", "/api/v1/Webhook", key=prom).status == 403


def test_public_metrics_need_no_key():
    with Server(env={"HOOKD_METRICS_PUBLIC": "on", "HOOKD_METRICS_WEBHOOK_SERIES": "0"}) as s:
        create_webhook(s, "http://example.com/x", ["m.x"])  # never signalled: nothing is sent
        m = scrape(s, key=None)
        assert m.get("hookd_webhooks", state="Active") == 1
        # webhook_series = 0: no per-webhook series at all.
        assert not any(name.startswith("hookd_webhook_") and name != "hookd_webhook_auto_disables"
                       for name in m.families), sorted(m.families)
        # Only the metrics are public.
        assert s.request("GET", "/api/v1/Webhook", key=None).status == 401
    # A value that is not a boolean stops the process, naming the variable.
    p = Server(env={"HOOKD_METRICS_PUBLIC": "maybe"}).cli("user", "list", check=False)
    assert p.returncode == 2 and "HOOKD_METRICS_PUBLIC" in p.stderr, p


if __name__ == "__main__":
    run(globals())
