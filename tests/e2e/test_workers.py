"""End to end: [server] workers = 2, two event loops over one store.

Both listeners accept; a signal on any connection reaches the webhooks of
either worker exactly once; auto-disable and the attempt log hold; kill -9
under load loses nothing acknowledged; SIGTERM drains both workers.
"""
LMDB_ONLY = "a cluster node runs one event loop: [server] workers above one is refused with [cluster] postgres (more cores, more nodes)"
import collections
import json
import re
import socket
import time

from hookd_test import kill9_under_load, run, Server, wait_until
from receiver import Receiver, Reply

ENV = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32,::1/128", "HOOKD_SERVER_WORKERS": "2"}


def create_webhook(s, url, events, name="w"):
    r = s.request("POST", "/api/v1/Webhook", {"Name": name, "Events": events, "TargetUrl": url,
                                              "State": "Active", "Type": "webhook"})
    assert r.status == 200, r
    return r.json()["WebhookId"]


def signal(s, pk, event="w.e", conn=None):
    return s.request("POST", "/api/v1/Agents/Webhook/SignalEvent",
                     {"EventName": event, "PrimaryKey": pk, "Data": {"n": pk}}, conn=conn)


def metric(s, name, labels=""):
    text = s.request("GET", "/metrics").body.decode()
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    assert m, "%s%s not in /metrics" % (name, labels)
    return float(m.group(1))


def by_path(r):
    """{path: Counter(PrimaryKey)} of what the receiver got."""
    out = collections.defaultdict(collections.Counter)
    for q in r.requests:
        out[q.path][json.loads(q.body)["PrimaryKey"]] += 1
    return out


def test_both_workers_accept_and_every_webhook_gets_each_event_once():
    with Server(env=ENV) as s, Receiver() as r:
        assert "ready with 2 workers" in s.log(), s.log()[-2000:]
        assert s.log().count("listening on http://127.0.0.1:%d" % s.port) == 2, s.log()[-2000:]
        # Four webhooks: ids 1 and 3 belong to worker 1, 2 and 4 to worker 0.
        ids = [create_webhook(s, r.url + "/h%d" % i, ["w.e"]) for i in range(4)]
        assert sorted(i % 2 for i in ids) == [0, 0, 1, 1], ids
        # Each signal on a new connection: the kernel spreads them over both listeners.
        n = 60
        for pk in range(n):
            res = signal(s, pk, conn=s.connection(timeout=10))
            assert res.status == 204, res
        per_worker = [metric(s, "hookd_worker_http_requests_total", '{worker="%d"}' % w) for w in (0, 1)]
        assert all(v > 0 for v in per_worker), per_worker
        want = {"/h%d" % i: set(range(n)) for i in range(4)}
        wait_until(lambda: {p: set(c) for p, c in by_path(r).items()} == want, what="every event at every webhook")
        time.sleep(1.0)  # anything sent twice would arrive by now
        got = by_path(r)
        dups = {p: [k for k, v in c.items() if v > 1] for p, c in got.items()}
        assert all(not v for v in dups.values()), dups
        # The owners sent them: each worker attempted the deliveries of its two webhooks.
        attempts = [metric(s, "hookd_worker_delivery_attempts_total", '{worker="%d"}' % w) for w in (0, 1)]
        assert attempts == [2 * n, 2 * n], attempts
        # Summed over the workers.
        assert metric(s, "hookd_signals_accepted_total") == n
        assert metric(s, "hookd_delivery_attempts_total", '{outcome="2xx"}') == 4 * n
        # Every attempt is in the log of its webhook.
        for wid in ids:
            res = s.request("GET", "/api/v3/webhook/%d/log" % wid, auth="eci")
            assert res.status == 200, res
            assert res.header("TotalNumberOfRecords") == str(n), (wid, res.header("TotalNumberOfRecords"))


def test_auto_disable_on_both_workers():
    env = dict(ENV, HOOKD_DELIVERY_RETRY_SCHEDULE="0s,100ms,100ms,100ms,100ms,100ms",
               HOOKD_DELIVERY_RETRY_JITTER="0", HOOKD_DELIVERY_DISABLE_AFTER="3")
    with Server(env=env) as s, Receiver() as r:
        r.reply(status=500)
        ids = [create_webhook(s, r.url + "/h%d" % i, ["w.e"]) for i in range(2)]
        assert sorted(i % 2 for i in ids) == [0, 1], ids
        assert signal(s, 1).status == 204

        def states():
            return [s.request("GET", "/api/v1/Webhook/%d" % wid).json()["State"] for wid in ids]
        wait_until(lambda: states() == ["TooManyErrors", "TooManyErrors"], what="both webhooks disabled")
        time.sleep(1.0)
        got = collections.Counter(q.path for q in r.requests)
        assert got == {"/h0": 3, "/h1": 3}, got  # disable_after attempts each, none after
        assert metric(s, "hookd_webhook_auto_disables_total") == 2
        for wid in ids:
            res = s.request("GET", "/api/v3/webhook/%d/log" % wid, auth="eci")
            assert res.header("TotalNumberOfRecords") == "3", res


def test_kill9_under_load_loses_no_acknowledged_event():
    with Server(env=ENV) as s, Receiver() as r:
        ids = [create_webhook(s, r.url + "/h%d" % i, ["w.e"]) for i in range(2)]
        acked = set()
        for round_ in range(2):
            acked |= kill9_under_load(s, "w.e", round_ * 1_000_000, 300, conns=6, fresh_connections=True)
            s.start()
        for i in range(len(ids)):
            wait_until(lambda: acked <= set(by_path(r)["/h%d" % i]),
                       what="every acknowledged event at webhook %d" % ids[i])
        print("acknowledged %d events, delivered to both webhooks" % len(acked))


def test_sigterm_drains_both_workers_and_loses_nothing():
    with Server(env=dict(ENV, HOOKD_SERVER_SHUTDOWN_TIMEOUT="20s")) as s, Receiver() as r:
        r.reply(status=200, delay=0.3)
        for i in range(2):
            create_webhook(s, r.url + "/h%d" % i, ["w.e"])
        acked = set()
        for pk in range(20):
            if signal(s, pk, conn=s.connection(timeout=10)).status == 204:
                acked.add(pk)
        assert len(acked) == 20
        # Requests in flight on both workers' connections when the signal comes.
        conns = []
        for pk in range(100, 110):
            c = socket.create_connection((s.host, s.port), timeout=10)
            conns.append(c)
        rc = s.stop()
        assert rc == 0
        log = s.log()
        assert "worker 0 drained" in log and "worker 1 drained" in log, log[-3000:]
        for c in conns:
            c.close()
        s.start()
        for i in range(2):
            wait_until(lambda: acked <= set(by_path(r)["/h%d" % i]), what="every event at /h%d" % i)


def test_workers_values():
    for value, ok in (("auto", True), ("0", False), ("65", False), ("two", False)):
        s = Server(env=dict(ENV, HOOKD_SERVER_WORKERS=value))
        try:
            if ok:
                s.start()
                assert re.search(r"ready( with \d+ workers)? \(", s.log()), s.log()[-2000:]
                assert s.request("GET", "/healthz").status == 200
                s.stop()
            else:
                try:
                    s.start(timeout=10)
                except AssertionError as e:
                    assert "workers" in str(e), str(e)[-2000:]
                else:
                    raise AssertionError("workers = %s was accepted" % value)
        finally:
            s.cleanup()


if __name__ == "__main__":
    run(globals())
