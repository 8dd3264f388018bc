"""End to end: recovery after an outage (POST .../recover in the EnergyCAP and SuperOffice dialects, and for
every webhook)."""
import base64
import datetime
import time

import hookd_test
from hookd_test import Server, run
from receiver import Receiver, Reply

# Two attempts, both at once: a delivery to a receiver that is down is exhausted within moments. No webhook is
# disabled by the failures of these tests.
ENV = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32", "HOOKD_DELIVERY_RETRY_JITTER": "0",
       "HOOKD_DELIVERY_RETRY_SCHEDULE": "0s,0s", "HOOKD_DELIVERY_DISABLE_AFTER": "1000"}
SECRET = "whsec_" + base64.b64encode(b"r" * 32).decode()


def iso(t):
    """An epoch time as ISO 8601 with milliseconds, in UTC."""
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def so_date(t):
    """An epoch time as SuperOffice writes dates (seven fraction digits)."""
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def create_webhook(s, url, events, name="Recovered hook"):
    r = s.request("POST", "/api/v1/Webhook", {"Name": name, "Events": events, "TargetUrl": url, "Secret": SECRET,
                                              "State": "Active", "Type": "webhook"})
    assert r.status == 200, r
    return r.json()["WebhookId"]


def signal(s, name, pk):
    r = s.request("POST", "/api/v1/Webhook/%s/%d" % (name, pk), {"n": pk})
    assert r.status == 204, r
    return r.header("Hookd-Event-Id")


def log_total(s, wid):
    r = s.request("GET", "/api/v3/webhook/%d/log?pageSize=1" % wid, auth="eci")
    assert r.status == 200, r
    return int(r.header("TotalNumberOfRecords"))


def wait_until(cond, what, timeout=30):
    return hookd_test.wait_until(cond, timeout, what)


def wait_log(s, wid, n):
    wait_until(lambda: log_total(s, wid) >= n, "%d log records of webhook %d" % (n, wid))


def recover(s, path, body, auth="eci", key=None):
    kw = {"auth": auth}
    if key is not None:
        kw["key"] = key
    return s.request("POST", path, body, **kw)


def by_event(requests):
    """EventId -> the requests that carried it, in arrival order."""
    out = {}
    for q in requests:
        out.setdefault(q.json()["EventId"], []).append(q)
    return out


def settle(rx, n):
    """Waits for n requests, then a moment more: nothing else may arrive."""
    rx.wait_for(n)
    time.sleep(0.5)
    return rx.requests


def test_recover_redelivers_each_failed_event_once_with_the_same_webhook_id():
    with Receiver() as rx, Server(env=ENV) as s:
        wid = create_webhook(s, rx.url + "/in", ["order.paid"])
        rx.reply(500)
        # Before the window: exhausted.
        early = signal(s, "order.paid", 1)
        wait_log(s, wid, 2)
        time.sleep(0.05)
        since = time.time()
        time.sleep(0.05)
        # The outage: three exhausted; one that succeeded; one that failed once and then succeeded.
        failed = [signal(s, "order.paid", pk) for pk in (2, 3, 4)]
        wait_log(s, wid, 8)
        rx.reply(200)
        ok = signal(s, "order.paid", 5)
        wait_log(s, wid, 9)
        rx.queue(Reply(500))
        retried = signal(s, "order.paid", 6)
        wait_log(s, wid, 11)
        time.sleep(0.05)
        until = time.time()
        time.sleep(0.05)
        # After the window: exhausted too.
        rx.reply(500)
        late = signal(s, "order.paid", 7)
        wait_log(s, wid, 13)
        before = by_event(rx.requests)
        assert len(before[retried]) == 2 and len(before[ok]) == 1 and all(len(before[e]) == 2 for e in failed)

        # The receiver is back: recover the window.
        rx.reply(200)
        rx.clear()
        r = recover(s, "/api/v3/webhook/%d/recover" % wid, {"since": iso(since), "until": iso(until)})
        assert r.status == 202, r
        assert r.json()["recovered"] == 3, r
        got = by_event(settle(rx, 3))
        assert sorted(got) == sorted(failed), (sorted(got), failed)
        for e in failed:
            assert len(got[e]) == 1
            assert got[e][0].header("webhook-id") == before[e][0].header("webhook-id")
            assert got[e][0].header("webhook-id") == "msg_%s_%d" % (e.replace("-", ""), wid)
            assert got[e][0].json()["PrimaryKey"] == before[e][0].json()["PrimaryKey"]

        # They succeeded now: the same window again recovers nothing.
        r = recover(s, "/api/v3/webhook/%d/recover" % wid, {"since": iso(since), "until": iso(until)})
        assert r.status == 202 and r.json()["recovered"] == 0, r
        # until left out is now: the one before and the one after the first window are all that is left.
        rx.clear()
        r = recover(s, "/api/v3/webhook/%d/recover" % wid, {"since": iso(since - 3600)})
        assert r.status == 202 and r.json()["recovered"] == 2, r
        assert sorted(by_event(settle(rx, 2))) == sorted([early, late])


def test_recover_refuses_bad_windows_in_each_dialect():
    with Server(env=ENV) as s:
        wid = create_webhook(s, "http://127.0.0.1:9/x", ["order.paid"])
        now = time.time()
        ecap = "/api/v3/webhook/%d/recover" % wid
        so = "/api/v1/Webhook/%d/Recover" % wid
        bad = [
            ({}, "since"),
            ({"until": iso(now)}, "since"),
            ({"since": "yesterday"}, "since"),
            ({"since": 12}, "since"),
            ({"since": iso(now - 60), "until": True}, "until"),
            ({"since": iso(now - 60), "until": iso(now - 120)}, "since"),
            ({"since": iso(now - 30 * 86400)}, "since"),  # before what the attempt log keeps (7 days)
        ]
        for body, field in bad:
            r = recover(s, ecap, body)
            assert r.status == 400, (body, r)
            j = r.json()
            assert j["status"] == 400 and field in j["errors"], (body, j)
            so_body = {k.capitalize(): v for k, v in body.items()}
            r = recover(s, so, so_body, auth="bearer")
            assert r.status == 400, (so_body, r)
            j = r.json()
            assert set(j) == {"Error", "ErrorType", "Message"} and field.capitalize() in j["Message"], (so_body, j)
        for path, body in ((ecap, "[1]"), (ecap, "{"), (so, "[]")):
            r = s.request("POST", path, body, headers={"Content-Type": "application/json"})
            assert r.status == 400, (path, body, r)
        # SuperOffice members in any case, and its own date format; the answer in its casing.
        r = recover(s, so, {"sINCE": so_date(now - 60), "until": so_date(now)}, auth="bearer")
        assert r.status == 202, r
        assert r.json()["Recovered"] == 0 and r.json()["Until"].endswith("0Z"), r
        # A webhook that does not exist.
        for path in ("/api/v3/webhook/999/recover", "/api/v3/webhook/abc/recover"):
            r = recover(s, path, {"since": iso(now - 60)})
            assert r.status == 404 and r.json()["status"] == 404, r
        r = recover(s, "/api/v1/Webhook/999/Recover", {"Since": iso(now - 60)}, auth="bearer")
        assert r.status == 404 and "Error" in r.json(), r
        # ApplicationSettings:Manage is needed.
        s.cli("user", "add", "--code", "viewer", "--perm", "ApplicationSettings:View,Events:Signal")
        viewer = s.cli("key", "create", "--user", "viewer").stdout.strip()
        for path in (ecap, "/api/v3/webhook/recover", so):
            r = recover(s, path, {"since": iso(now - 60)}, key=viewer)
            assert r.status == 403, (path, r)
        # Signalling an event named like a webhook id with the key word as its primary key is not a recovery.
        r = s.request("POST", "/api/v1/Webhook/%d/7" % wid, {"n": 1}, key=viewer)
        assert r.status == 204, r


def test_recover_every_webhook_and_a_stopped_one():
    with Receiver() as a, Receiver() as b, Receiver() as c, Server(env=ENV) as s:
        wa = create_webhook(s, a.url, ["job.done"], name="A")
        wb = create_webhook(s, b.url, ["job.done", "job.failed"], name="B")
        wc = create_webhook(s, c.url, ["job.done"], name="C")
        since = time.time()
        time.sleep(0.05)
        a.reply(503)
        b.reply(500)
        c.reply(200)
        e1 = signal(s, "job.done", 1)
        e2 = signal(s, "job.failed", 2)
        for w, n in ((wa, 2), (wb, 4), (wc, 1)):
            wait_log(s, w, n)
        # B is stopped by a client meanwhile: what is recovered for it waits until it is Active again.
        r = s.request("PATCH", "/api/v1/Webhook/%d" % wb, {"State": "Stopped"})
        assert r.status == 200, r
        a.reply(200)
        b.reply(200)
        for rx in (a, b, c):
            rx.clear()
        r = recover(s, "/api/v3/webhook/recover", {"since": iso(since)})
        assert r.status == 202, r
        assert r.json()["recovered"] == 3, r
        assert sorted(by_event(settle(a, 1))) == [e1]
        assert b.requests == [] and c.requests == []
        r = s.request("PATCH", "/api/v1/Webhook/%d" % wb, {"State": "Active"})
        assert r.status == 200, r
        assert sorted(by_event(settle(b, 2))) == sorted([e1, e2])
        assert c.requests == []
        # Nothing is left to recover anywhere.
        r = recover(s, "/api/v3/webhook/recover", {"since": iso(since)})
        assert r.status == 202 and r.json()["recovered"] == 0, r


if __name__ == "__main__":
    run(globals())
