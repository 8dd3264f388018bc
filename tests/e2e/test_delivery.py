"""End to end: the delivery engine (ingest, fan-out, signatures, outcomes, crash safety)."""
import base64
import hashlib
import hmac
import json
import os
import signal
import threading
import time

from hookd_test import ADMIN_KEY, run, Server, wait_until
from receiver import Receiver, TestCA

LOOPBACK = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32,::1/128"}
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def create_webhook(s, url, events, secret=SECRET, state="Active", name="hook", **extra):
    body = {"Name": name, "Events": events, "TargetUrl": url, "Secret": secret, "State": state,
            "Type": "webhook"}
    body.update(extra)
    r = s.request("POST", "/api/v1/Webhook", body)
    assert r.status == 200, r
    return r.json()["WebhookId"]


def signal_event(s, name, pk=1, data=None, headers=None, conn=None):
    return s.request("POST", "/api/v1/Agents/Webhook/SignalEvent",
                     {"EventName": name, "PrimaryKey": pk, "Data": data if data is not None else {}},
                     headers=headers, conn=conn)


def get_webhook(s, wid):
    r = s.request("GET", "/api/v1/Webhook/%d" % wid)
    assert r.status == 200, r
    return r.json()


def last_error(s, wid):
    r = s.request("GET", "/api/v1/Webhook/%d/LastError" % wid)
    assert r.status == 200, r
    return r.json()


def verify_standard(secret, headers, body):
    """Verifies a Standard Webhooks signature the way the public libraries do."""
    msg_id = headers["webhook-id"]
    ts = headers["webhook-timestamp"]
    assert abs(int(ts) - time.time()) < 300, ts
    key = base64.b64decode(secret[len("whsec_"):]) if secret.startswith("whsec_") else secret.encode()
    expected = base64.b64encode(hmac.new(key, ("%s.%s." % (msg_id, ts)).encode() + body,
                                         hashlib.sha256).digest()).decode()
    sigs = [p.split(",", 1)[1] for p in headers["webhook-signature"].split(" ") if p.startswith("v1,")]
    return expected in sigs


def test_fan_out_to_three_receivers_with_signatures():
    ca = TestCA()
    env = dict(LOOPBACK, HOOKD_DELIVERY_CA_FILE=ca.ca_file)
    with Server(env=env) as s, Receiver() as r1, Receiver() as r2, Receiver(tls=True, ca=ca) as r3, \
            Receiver() as other, Receiver() as stopped:
        ids = [create_webhook(s, r.url + "/hook", ["contact.created", "sale.changed"], name="hook%d" % i,
                              Properties={"tenant": "acme", "n": 5}, Headers={"X-Custom": "yes"})
               for i, r in enumerate((r1, r2, r3))]
        create_webhook(s, other.url + "/hook", ["person.deleted"])
        create_webhook(s, stopped.url + "/hook", ["contact.created"], state="Stopped")
        res = signal_event(s, "contact.created", pk=42, data={"name": "Ada", "email": "ada@example.com"})
        assert res.status == 204, res
        for i, r in enumerate((r1, r2, r3)):
            req = r.wait_for(1)[0]
            h = {k.lower(): v for k, v in req.headers}
            body = json.loads(req.body)
            assert body["Event"] == "contact.created"
            assert body["PrimaryKey"] == 42
            assert body["Entity"] == "contact"
            assert body["Data"] == {"name": "Ada", "email": "ada@example.com"}
            assert body["Changes"] == ["name", "email"]
            assert body["WebhookName"] == "hook%d" % i
            assert body["tenant"] == "acme" and body["n"] == 5, body
            assert body["ContextIdentifier"] and body["EventId"] and body["Timestamp"].endswith("Z")
            assert h["content-type"].startswith("application/json")
            assert h["user-agent"].startswith("hookd/")
            assert h["x-superoffice-event"] == "contact.created"
            assert h["x-superoffice-eventid"] == body["EventId"]
            assert h["x-superoffice-retry"] == "0"
            assert h["x-custom"] == "yes"
            so = base64.b64encode(hmac.new(SECRET.encode(), req.body, hashlib.sha256).digest()).decode()
            assert h["x-superoffice-signature"] == so
            assert verify_standard(SECRET, h, req.body), h
        time.sleep(0.5)
        assert other.requests == [] and stopped.requests == []
        assert r3.requests[0].tls, "HTTPS receiver was reached over TLS"
        # One event id for all three deliveries, distinct message ids per webhook.
        assert len({json.loads(r.requests[0].body)["EventId"] for r in (r1, r2, r3)}) == 1
        assert len({r.requests[0].header("webhook-id") for r in (r1, r2, r3)}) == 3


def test_rest_signal_form_and_bad_input():
    with Server(env=LOOPBACK) as s, Receiver() as r:
        create_webhook(s, r.url, ["sale.changed"])
        res = s.request("POST", "/api/v1/Webhook/sale.changed/77", {"amount": 10})
        assert res.status == 204, res
        body = json.loads(r.wait_for(1)[0].body)
        assert body["PrimaryKey"] == 77 and body["Data"] == {"amount": 10}
        for bad in ({"PrimaryKey": 1}, {"EventName": "", "PrimaryKey": 1},
                    {"EventName": "a.b", "PrimaryKey": "x"}, {"EventName": "a.b", "PrimaryKey": 1.5},
                    {"EventName": "a.b", "PrimaryKey": 1, "Data": [1]}, {"EventName": 5, "PrimaryKey": 1}):
            res = s.request("POST", "/api/v1/Agents/Webhook/SignalEvent", bad)
            assert res.status == 400, (bad, res)
        assert s.request("POST", "/api/v1/Agents/Webhook/SignalEvent", "{not json").status == 400
        assert s.request("POST", "/api/v1/Webhook/sale.changed/abc", {}).status == 400
        assert s.request("POST", "/api/v1/Webhook/sale.changed/1", "[1,2]").status == 400
        # A body over the limit is refused from its Content-Length, before it is read.
        head = ("POST /api/v1/Agents/Webhook/SignalEvent HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (ADMIN_KEY, 2 * 1024 * 1024))
        raw = s.raw(head.encode() + b'{"EventName":"sale.changed","PrimaryKey":1,"Data":{"x":"', timeout=5)
        assert raw.startswith(b"HTTP/1.1 413"), raw[:200]
        time.sleep(0.3)
        assert len(r.requests) == 1, "bad input stored nothing"


def test_signal_needs_permission():
    with Server() as s:
        s.cli("user", "add", "--code", "viewer", "--perm", "ApplicationSettings:View")
        key = s.cli("key", "create", "--user", "viewer").stdout.strip()
        res = s.request("POST", "/api/v1/Agents/Webhook/SignalEvent",
                        {"EventName": "a.b", "PrimaryKey": 1, "Data": {}}, key=key)
        assert res.status == 403, res
        res = s.request("POST", "/api/v1/Agents/Webhook/SignalEvent", {"EventName": "a.b", "PrimaryKey": 1},
                        key=None)
        assert res.status == 401, res


def test_ten_failures_disable_and_locked_stays_active():
    env = dict(LOOPBACK, HOOKD_DELIVERY_RETRY_SCHEDULE="0s", HOOKD_DELIVERY_RETRY_JITTER="0")
    with Server(env=env) as s, Receiver() as bad, Receiver() as locked_bad:
        bad.reply(status=500, body=b"boom")
        locked_bad.reply(status=500, body=b"boom")
        wid = create_webhook(s, bad.url, ["x.failed"])
        lid = create_webhook(s, locked_bad.url, ["x.failed"])
        s.cli("webhook", "lock", str(lid))
        for i in range(10):
            assert signal_event(s, "x.failed", pk=i).status == 204
        bad.wait_for(10)
        locked_bad.wait_for(10)
        wait_until(lambda: get_webhook(s, wid)["State"] == "TooManyErrors", what="TooManyErrors")
        assert get_webhook(s, lid)["State"] == "Active"
        assert "500" in last_error(s, wid)
        # Disabled: new events are not queued for it.
        assert signal_event(s, "x.failed", pk=99).status == 204
        locked_bad.wait_for(11)
        time.sleep(0.5)
        assert len(bad.requests) == 10
        # Active again resets the count: one more failure does not disable it.
        r = s.request("PATCH", "/api/v1/Webhook/%d" % wid, [{"op": "replace", "path": "/State", "value": "Active"}],
                      headers={"Content-Type": "application/json-patch+json"})
        assert r.status == 200, r
        assert signal_event(s, "x.failed", pk=100).status == 204
        bad.wait_for(11)
        time.sleep(0.3)
        assert get_webhook(s, wid)["State"] == "Active"


def test_outcome_rules():
    env = dict(LOOPBACK, HOOKD_DELIVERY_RETRY_SCHEDULE="0s,1s,1s", HOOKD_DELIVERY_RETRY_JITTER="0",
               HOOKD_DELIVERY_FIRST_BYTE_TIMEOUT="500ms", HOOKD_DELIVERY_TOTAL_TIMEOUT="2s")
    with Server(env=env) as s, Receiver() as redirect, Receiver() as gone, Receiver() as limited, \
            Receiver() as slow:
        redirect.reply(status=302, headers={"Location": limited.url})
        gone.reply(status=410)
        limited.reply(status=429, headers={"Retry-After": "2"})
        slow.reply(status=200, delay=1.5)
        ids = {}
        for name, r in (("redirect", redirect), ("gone", gone), ("limited", limited), ("slow", slow)):
            ids[name] = create_webhook(s, r.url, ["o." + name])
            assert signal_event(s, "o." + name).status == 204
        # 3xx is a failure and is never followed: the Location target sees nothing from it.
        redirect.wait_for(1)
        # 410 disables at once, with no retry.
        gone.wait_for(1)
        wait_until(lambda: get_webhook(s, ids["gone"])["State"] == "TooManyErrors", what="410 disables")
        # Retry-After: the second attempt comes no sooner than 2 s after the first.
        reqs = limited.wait_for(2, timeout=10)
        gap = reqs[1].time - reqs[0].time
        assert gap >= 1.9, gap
        assert reqs[1].header("X-SuperOffice-Retry") == "1"
        assert reqs[0].header("webhook-id") == reqs[1].header("webhook-id")
        assert json.loads(reqs[0].body)["EventId"] == json.loads(reqs[1].body)["EventId"]
        # The first-byte timeout fires with its own text.
        slow.wait_for(1)
        wait_until(lambda: "no response" in last_error(s, ids["slow"]), what="timeout error")
        redirect.wait_for(2, timeout=10)
        assert "302" in last_error(s, ids["redirect"])


def test_bad_certificate_and_ssrf_guard():
    ca = TestCA()
    wrong = TestCA()
    with Server(env={"HOOKD_DELIVERY_CA_FILE": ca.ca_file, **LOOPBACK}) as s, \
            Receiver(tls=True, ca=wrong) as tls_wrong:
        wid = create_webhook(s, tls_wrong.url, ["t.cert"])
        assert signal_event(s, "t.cert").status == 204
        err = wait_until(lambda: last_error(s, wid), what="certificate error")
        assert "certificate" in err.lower(), err
        assert tls_wrong.requests == []
    with Server() as s, Receiver() as r:
        # Without the allowlist, a target resolving to 127.0.0.1 is refused.
        wid = create_webhook(s, "http://localhost:%d/hook" % r.port, ["t.ssrf"])
        assert signal_event(s, "t.ssrf").status == 204
        err = wait_until(lambda: last_error(s, wid), what="SSRF refusal")
        assert "SSRF" in err or "loopback" in err, err
        assert r.requests == []


def test_idempotency_key_dedupes_across_restart():
    with Server(env=LOOPBACK) as s, Receiver() as r:
        create_webhook(s, r.url, ["i.once"])
        h = {"Idempotency-Key": "order-17"}
        assert signal_event(s, "i.once", headers=h).status == 204
        assert signal_event(s, "i.once", headers=h).status == 204
        r.wait_for(1)
        # Let the delivery's outcome commit, so the restart does not send it again.
        wait_until(lambda: s.request("GET", "/api/v3/webhook/1/log").header("TotalNumberOfRecords") == "1",
                   what="the outcome to be logged")
        s.restart()
        assert signal_event(s, "i.once", headers=h).status == 204
        assert signal_event(s, "i.once", headers={"Idempotency-Key": "order-18"}).status == 204
        r.wait_for(2)
        time.sleep(0.5)
        assert len(r.requests) == 2, [q.body for q in r.requests]


def test_state_events_reach_subscribers_but_not_the_webhook_itself():
    env = dict(LOOPBACK, HOOKD_DELIVERY_RETRY_SCHEDULE="0s", HOOKD_DELIVERY_DISABLE_AFTER="2")
    with Server(env=env) as s, Receiver() as failing, Receiver() as watcher:
        failing.reply(status=500)
        wid = create_webhook(s, failing.url, ["f.fail"])
        kinds = ["webhook%d.%s" % (wid, k) for k in ("errors", "stopped", "started")]
        create_webhook(s, watcher.url, kinds, name="watcher")
        # The failing webhook also listens to its own state events: they must not reach it.
        r = s.request("PATCH", "/api/v1/Webhook/%d" % wid, {"Events": ["f.fail"] + kinds},
                      headers={"Content-Type": "application/merge-patch+json"})
        assert r.status == 200, r
        patch = {"Content-Type": "application/json-patch+json"}
        r = s.request("PATCH", "/api/v1/Webhook/%d" % wid, [{"op": "replace", "path": "State", "value": "Stopped"}],
                      headers=patch)
        assert r.status == 200, r
        r = s.request("PATCH", "/api/v1/Webhook/%d" % wid, [{"op": "replace", "path": "State", "value": "Active"}],
                      headers=patch)
        assert r.status == 200, r
        for i in range(2):
            assert signal_event(s, "f.fail", pk=i).status == 204
        got = watcher.wait_for(3, timeout=15)
        events = [q.json() for q in got]
        assert [e["Event"] for e in events] == ["webhook.stopped", "webhook.started", "webhook.errors"], events
        assert all(e["PrimaryKey"] == wid and e["Entity"] == "webhook" for e in events)
        assert events[2]["Data"]["WebhookId"] == wid and "500" in events[2]["Data"]["Reason"]
        assert get_webhook(s, wid)["State"] == "TooManyErrors"
        time.sleep(0.3)
        assert [q.json()["Event"] for q in failing.requests] == ["f.fail", "f.fail"]


def test_kill9_loses_no_acknowledged_event():
    with Server(env=LOOPBACK) as s, Receiver() as r:
        r.reply(status=200, delay=0.02)
        create_webhook(s, r.url, ["k.stream"])
        acked = []
        stop = threading.Event()

        def signaller():
            conn = s.connection(timeout=5)
            i = 0
            while not stop.is_set():
                try:
                    res = signal_event(s, "k.stream", pk=i, conn=conn)
                except Exception:
                    return
                if res.status == 204:
                    acked.append(i)
                i += 1

        t = threading.Thread(target=signaller)
        t.start()
        wait_until(lambda: len(acked) >= 200, what="200 acknowledged signals")
        s.kill9()
        stop.set()
        t.join(10)
        s.start()
        expected = set(acked)
        wait_until(lambda: expected <= {json.loads(q.body)["PrimaryKey"] for q in list(r.requests)},
                   timeout=60, what="every acknowledged event delivered")


if __name__ == "__main__":
    run(globals())
