"""End to end: one hookd node in cluster mode on a real PostgreSQL.

- A node started with [cluster] postgres on an empty database migrates it,
  takes a webhook, answers SignalEvent with 204 and delivers every event to
  the receiver, signed; the attempt log (list and detail) reads back what
  was delivered; /metrics and the console's activity answer with the
  queue read from the database.
- The CLI works against the cluster's database: a key made there
  authenticates on the node, `webhook lock` locks it for the API, `webhook
  show` and `webhook log` read the database.
- A deleted webhook's queue entries are dropped.
- A restart of the node loses nothing: the webhook, the log and the events
  signalled just before the stop are there and delivered afterwards.
- PostgreSQL stopped while events are signalled: the node answers 503 with
  Retry-After and /readyz 503; started again, the node reconnects by
  itself, answers 204 and /readyz 200, and every event it acknowledged
  (204 with its EventId) is delivered.
"""
import json
import os
import threading
import time

from hookd_test import Server, run
from receiver import Receiver
from test_delivery import LOOPBACK, SECRET, create_webhook, signal_event, verify_standard, wait_until
import pg_fixture


def node(pg, db, **kw):
    env = dict(LOOPBACK)
    env["HOOKD_CLUSTER_POSTGRES"] = pg.conninfo(db)
    env.update(kw.pop("env", {}))
    return Server(env=env, **kw)


def event_ids(rcv):
    return [json.loads(r.body)["EventId"] for r in rcv.requests]


def log_list(s, wid, size=1000):
    r = s.request("GET", "/api/v3/webhook/%d/log?pageSize=%d" % (wid, size))
    assert r.status == 200, r
    return r


def test_node_delivers_signed_logs_and_restarts_without_loss():
    pg = pg_fixture.shared()
    db = pg_fixture.fresh_db("node")
    with Receiver() as rcv:
        s = node(pg, db).start()
        try:
            assert "cluster node" in s.log(), s.log()
            wid = create_webhook(s, rcv.url + "/hook", ["contact.created"])
            acked = []
            for i in range(20):
                r = signal_event(s, "contact.created", pk=i, data={"n": i})
                assert r.status == 204, r
                acked.append(r.header("hookd-event-id"))
            wait_until(lambda: len(rcv.requests) >= 20, what="20 deliveries")
            assert sorted(event_ids(rcv)) == sorted(acked)
            for req in rcv.requests:
                assert verify_standard(SECRET, {k.lower(): v for k, v in req.headers}, req.body)
            # The attempt log, read from the database: 20 successes, newest first, with their detail.
            wait_until(lambda: log_list(s, wid).header("totalnumberofrecords") == "20", what="20 log records")
            items = log_list(s, wid).json()
            assert len(items) == 20 and all(it["result"] == "200" for it in items), items
            assert sorted(it["eventId"] for it in items) == sorted(acked)
            ids = [it["webhookLogId"] for it in items]
            assert ids == sorted(ids, reverse=True), ids
            d = s.request("GET", "/api/v3/webhook/%d/log/%d/detail" % (wid, ids[0]))
            assert d.status == 200, d
            assert d.json()["request"].startswith("POST /hook"), d.json()["request"][:200]
            assert s.request("GET", "/api/v3/webhook/%d/log/%d/detail" % (wid, ids[0] + 1000)).status == 404
            # Pages: the second page of 7 holds records 8..14.
            p2 = s.request("GET", "/api/v3/webhook/%d/log?pageSize=7&pageNumber=2" % wid)
            assert p2.status == 200 and p2.header("totalpages") == "3", p2
            assert [it["webhookLogId"] for it in p2.json()] == ids[7:14]
            m = s.request("GET", "/metrics")
            assert m.status == 200 and b"hookd_" in m.body, m
            # Statistics reach a node's memory within a second of their commit.
            act = wait_until(lambda: (lambda r: r if r.status == 200 and r.json()["webhooks"][0]["attempts"] == 20
                                      else None)(s.request("GET", "/console/api/activity")), what="activity")
            assert act.json()["backlog"]["pending"] == 0, act.json()

            # Signalled just before an orderly stop: delivered after the restart, by this node or its successor.
            more = []
            for i in range(5):
                r = signal_event(s, "contact.created", pk=100 + i)
                assert r.status == 204, r
                more.append(r.header("hookd-event-id"))
            s.stop()
            s.start()
            assert s.request("GET", "/api/v1/Webhook/%d" % wid).status == 200
            wait_until(lambda: set(acked + more) <= set(event_ids(rcv)), what="every acknowledged event delivered")
            wait_until(lambda: int(log_list(s, wid).header("totalnumberofrecords")) >= 25, what="25 log records")

            # A deleted webhook's queue entries go with it (claims never bring them).
            wid2 = create_webhook(s, rcv.url + "/other", ["other.event"], name="other")
            pg.sql("INSERT INTO deliveries (webhook_id, due_ms, event_id) SELECT %d, 4102444800000, id FROM events"
                   % wid2, db=db)
            assert int(pg.sql("SELECT count(*) FROM deliveries WHERE webhook_id = %d" % wid2, db=db)) == 25
            assert s.request("DELETE", "/api/v1/Webhook/%d" % wid2).status in (200, 204)
            wait_until(lambda: pg.sql("SELECT count(*) FROM deliveries WHERE webhook_id = %d" % wid2,
                                      db=db).strip() == "0", what="the deleted webhook's queue dropped")
        finally:
            s.cleanup()


def test_a_killed_node_gives_back_its_claims_when_it_starts_again():
    # Leases of an hour: what the killed run had claimed is delivered at the
    # restart only because the node, named in its config, gives it back.
    pg = pg_fixture.shared()
    db = pg_fixture.fresh_db("kill")
    with Receiver() as rcv:
        rcv.reply(status=200, delay=2.0)
        s = node(pg, db, config_text="[cluster]\nnode = n1\nlease = 1h\n").start()
        try:
            create_webhook(s, rcv.url + "/hook", ["a.b"])
            acked = []
            for i in range(6):
                r = signal_event(s, "a.b", pk=i)
                assert r.status == 204, r
                acked.append(r.header("hookd-event-id"))
            rcv.wait_for(1, timeout=20)  # claimed, and on the wire
            leased = pg.sql("SELECT count(*) FROM deliveries WHERE leased_by = 'n1'", db=db).strip()
            assert int(leased) >= 1, leased
            s.kill9()
            rcv.reply(status=200)
            s.start()
            wait_until(lambda: set(acked) <= set(event_ids(rcv)), timeout=60,
                       what="every acknowledged event delivered after the restart")
        finally:
            s.cleanup()


def test_cli_works_against_the_cluster_database():
    pg = pg_fixture.shared()
    db = pg_fixture.fresh_db("cli")
    s = node(pg, db).start()
    try:
        wid = create_webhook(s, "http://127.0.0.1:9/none", ["x.y"])
        out = s.cli("key", "create", "--user", "admin").stdout
        key = out.strip()
        assert s.request("GET", "/api/v1/Webhook/%d" % wid, key=key).status == 200
        s.cli("webhook", "lock", str(wid))
        r = s.request("PUT", "/api/v1/Webhook/%d" % wid, {"Name": "changed", "Events": ["x.y"],
                                                         "TargetUrl": "http://127.0.0.1:9/none", "State": "Active",
                                                         "Type": "webhook"})
        assert r.status == 400 and b"locked" in r.body, r
        show = s.cli("webhook", "show", str(wid)).stdout
        assert "locked" in show.lower(), show
        s.cli("webhook", "log", str(wid))
        users = s.cli("user", "list").stdout
        assert "admin" in users, users
    finally:
        s.cleanup()


def test_postgres_stopped_while_signalling():
    with pg_fixture.Postgres("down") as pg, Receiver() as rcv:
        s = node(pg, "down").start()
        try:
            wid = create_webhook(s, rcv.url + "/hook", ["order.placed"])
            acked, refused, other = [], [], []
            stop = threading.Event()

            def signaller():
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        r = signal_event(s, "order.placed", pk=i)
                    except OSError as e:
                        other.append(repr(e))
                        continue
                    if r.status == 204:
                        acked.append(r.header("hookd-event-id"))
                    elif r.status == 503 and r.header("retry-after"):
                        refused.append(r)
                    else:
                        other.append(r)
                    time.sleep(0.01)

            t = threading.Thread(target=signaller)
            t.start()
            try:
                wait_until(lambda: len(acked) >= 10, what="events acknowledged before the stop")
                pg.stop()
                wait_until(lambda: len(refused) >= 2, timeout=60, what="503s while the database is down")
                assert wait_until(lambda: s.request("GET", "/readyz").status == 503, what="/readyz 503")
                n_down = len(acked)
                pg.start_again()
                wait_until(lambda: len(acked) > n_down + 5, timeout=60, what="204s after the database is back")
                wait_until(lambda: s.request("GET", "/readyz").status == 200, timeout=30, what="/readyz 200")
            finally:
                stop.set()
                t.join()
            assert not other, other[:5]
            assert all(b"database" in r.body for r in refused), refused[:3]
            wait_until(lambda: set(acked) <= set(event_ids(rcv)), timeout=120,
                       what="every acknowledged event delivered (%d)" % len(acked))
            assert s.request("GET", "/api/v1/Webhook/%d" % wid).status == 200
        finally:
            s.cleanup()


if __name__ == "__main__":
    run(globals())
