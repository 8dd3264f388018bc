"""End to end: the write-ahead log ([store] sync = log) across kill -9, a switch to lmdb and CLI writes."""
LMDB_ONLY = "the write-ahead log under LMDB: its files in DATA/wal, replay after a crash, [store] sync"

import collections
import json
import os
import time

from hookd_test import kill9_under_load, run, Server, wait_until
from receiver import Receiver

LOG = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32,::1/128", "HOOKD_STORE_SYNC": "log"}


def create_webhook(s, url, events):
    r = s.request("POST", "/api/v1/Webhook", {"Name": "wal", "Events": events, "TargetUrl": url,
                                              "State": "Active", "Type": "webhook"})
    assert r.status == 200, r
    return r.json()["WebhookId"]


def signal(s, pk, conn):
    return s.request("POST", "/api/v1/Agents/Webhook/SignalEvent",
                     {"EventName": "wal.e", "PrimaryKey": pk, "Data": {"n": pk}}, conn=conn)


def delivered(r):
    return collections.Counter(json.loads(q.body)["PrimaryKey"] for q in list(r.requests))


def test_kill9_under_load_loses_no_acknowledged_event():
    with Server(env=LOG) as s, Receiver() as r:
        r.reply(status=200)
        create_webhook(s, r.url, ["wal.e"])
        acked = kill9_under_load(s, "wal.e", 0, 400)
        # The log was in use, and it is what the restart recovers from.
        assert os.path.isdir(os.path.join(s.data, "wal")), os.listdir(s.data)
        s.start()
        assert "log replayed" in s.log(), s.log()[-2000:]
        wait_until(lambda: acked <= set(delivered(r)), what="every acknowledged event delivered")
        # Twice more, so that a restart also starts from a recovered log.
        acked |= kill9_under_load(s, "wal.e", 1_000_000, 200)
        s.start()
        acked |= kill9_under_load(s, "wal.e", 2_000_000, 200)
        s.start()
        wait_until(lambda: acked <= set(delivered(r)), what="every acknowledged event delivered")
        got = delivered(r)
        dups = sum(n - 1 for n in got.values() if n > 1)
        print("acknowledged %d, delivered %d distinct, %d duplicate deliveries" % (len(acked), len(got), dups))
        missing = acked - set(got)
        assert not missing, sorted(missing)[:20]


def test_switch_to_lmdb_replays_the_log_first():
    with Server(env=LOG) as s, Receiver() as r:
        r.reply(status=200, delay=0.05)  # deliveries stay queued across the kill
        create_webhook(s, r.url, ["wal.e"])
        acked = kill9_under_load(s, "wal.e", 0, 200)
        s.env["HOOKD_STORE_SYNC"] = "lmdb"
        s.start()
        assert "was replayed and removed" in s.log(), s.log()[-2000:]
        assert not os.path.exists(os.path.join(s.data, "wal"))
        wait_until(lambda: acked <= set(delivered(r)), what="every acknowledged event delivered")
        # And back: a new log starts where LMDB is.
        s.stop()
        s.env["HOOKD_STORE_SYNC"] = "log"
        s.start()
        conn = s.connection()
        assert signal(s, 5_000_000, conn).status == 204
        wait_until(lambda: 5_000_000 in delivered(r), what="a signal after switching back")


def test_cli_writes_beside_a_log_server_survive_its_crash():
    with Server(env=LOG) as s:
        s.cli("user", "add", "--code", "ops", "--name", "Ops", "--perm", "ApplicationSettings:View")
        key = s.cli("key", "create", "--user", "ops").stdout.strip()
        assert s.request("GET", "/api/v1/Webhook", key=key).status == 200
        # The crashed server's restart returns LMDB to its last checkpoint:
        # the CLI's commits must be in it, not behind it.
        s.kill9()
        s.start()
        assert s.request("GET", "/api/v1/Webhook", key=key).status == 200
        assert "ops" in s.cli("user", "list").stdout


if __name__ == "__main__":
    run(globals())
