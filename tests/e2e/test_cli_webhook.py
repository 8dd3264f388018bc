"""End to end: the command line's webhook commands (list, show, log, resend, recover) and backup, on a data
directory and beside a running server."""
import base64
import datetime
import glob
import json
import os
import threading
import time

import hookd_test
from hookd_test import ENGINE, Server, lmdb_only, run
from receiver import Receiver, Reply
from test_cli import Dir, assert_nothing_stored_yet, hookd, one_line

ENV = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32", "HOOKD_DELIVERY_RETRY_JITTER": "0",
       "HOOKD_DELIVERY_RETRY_SCHEDULE": "0s,0s", "HOOKD_DELIVERY_DISABLE_AFTER": "1000"}
SECRET = "whsec_" + base64.b64encode(b"c" * 32).decode()
TOKEN = "tok-4f9a8b7c6d5e"
NEW = [("webhook", "list"), ("webhook", "show"), ("webhook", "log"), ("webhook", "resend"), ("webhook", "recover"),
       ("backup", None)]


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def create_webhook(s, url, events, name, state="Active"):
    r = s.request("POST", "/api/v1/Webhook", {"Name": name, "Events": events, "TargetUrl": url, "Secret": SECRET,
                                              "State": state, "Type": "webhook", "Headers": {"X-Token": TOKEN}})
    assert r.status == 200, r
    return r.json()["WebhookId"]


def signal(s, name, pk):
    r = s.request("POST", "/api/v1/Webhook/%s/%d" % (name, pk), {"n": pk})
    assert r.status == 204, r
    return r.header("Hookd-Event-Id")


def wait_until(cond, what, timeout=30):
    return hookd_test.wait_until(cond, timeout, what)


def log_lines(s, wid, *extra):
    p = s.cli("webhook", "log", str(wid), *extra)
    return [line.split("\t") for line in p.stdout.splitlines()]


def test_help_usage_errors_and_no_data_directory():
    with Dir() as d:
        for noun, verb in NEW:
            words = [noun] + ([verb] if verb else [])
            p = hookd(*(words + ["--help", "--data", d.data]), cwd=d.tmp)
            assert p.returncode == 0 and p.stderr == "", (words, p)
            assert "hookd " + " ".join(words) in p.stdout, (words, p.stdout)
        p = hookd("--help", cwd=d.tmp)
        assert "hookd webhook recover ID --since T [--until T]" in p.stdout and "hookd backup FILE" in p.stdout, p
        cases = [
            (["webhook", "show"], "webhook show needs ID"),
            (["webhook", "show", "x"], "\"x\""),
            (["webhook", "list", "7"], "unexpected argument \"7\""),
            (["webhook", "log", "1", "--limit"], "--limit needs a value"),
            (["webhook", "log", "1", "--limit", "0"], "--limit"),
            (["webhook", "log", "1", "--limit", "many"], "--limit"),
            (["webhook", "log", "1", "--since", "2026-01-01"], "unknown option --since"),
            (["webhook", "resend"], "webhook resend needs LOG-ID"),
            (["webhook", "resend", "12x"], "\"12x\""),
            (["webhook", "recover", "1"], "webhook recover needs --since T"),
            (["webhook", "recover", "--since", "2026-01-01"], "webhook recover needs ID"),
            (["webhook", "recover", "1", "--since", "last week"], "--since must be a date"),
            (["webhook", "recover", "1", "--since", iso(time.time() - 60), "--until", "soon"], "--until"),
            (["webhook", "recover", "1", "--since", iso(time.time() - 60), "--until", iso(time.time() - 120)],
             "--since must not be after --until"),
            (["webhook", "recover", "1", "--since", "2001-01-01"], "log_retention"),
            (["backup"], "backup needs FILE"),
            (["backup", "a", "b"], "unexpected argument \"b\""),
        ]
        for args, needle in cases:
            p = hookd(*(args + ["--data", d.data]), cwd=d.tmp)
            assert p.returncode == 2, (args, p)
            line = one_line(p.stderr)
            assert line.startswith("hookd: ") and needle in line, (args, line)
            assert p.stdout == "", (args, p.stdout)
        # On a data directory that is not there, each says so and creates nothing.
        for args in (["webhook", "list"], ["webhook", "show", "1"], ["webhook", "log", "1"], ["webhook", "resend", "1"],
                     ["webhook", "recover", "1", "--since", iso(time.time() - 60)], ["backup", d.tmp + "/b"]):
            if ENGINE == "pg" and args[0] == "backup":
                continue  # refused in cluster mode whatever is stored (the database's backup is PostgreSQL's)
            p = hookd(*(args + ["--data", d.data]), cwd=d.tmp)
            assert p.returncode == 1, (args, p)
            assert_nothing_stored_yet(d, p, args)
        assert os.listdir(d.tmp) == [], os.listdir(d.tmp)


def test_webhook_commands_on_the_data_directory_beside_a_running_server():
    with Receiver() as rx, Server(env=ENV) as s:
        wid = create_webhook(s, rx.url + "/in", ["invoice.paid"], "Invoices\tEU")
        other = create_webhook(s, rx.url + "/other", ["x.y", "x.z"], "Other", state="Stopped")

        lines = [line.split("\t") for line in s.cli("webhook", "list").stdout.splitlines()]
        assert lines == [[str(wid), "Active", "Invoices?EU", rx.url + "/in", "invoice.paid"],
                         [str(other), "Stopped", "Other", rx.url + "/other", "x.y,x.z"]], lines

        shown = json.loads(s.cli("webhook", "show", str(wid)).stdout)
        assert shown["id"] == wid and shown["state"] == "Active" and shown["events"] == ["invoice.paid"], shown
        assert shown["url"] == rx.url + "/in" and shown["locked"] is False, shown
        # Secrets and header values: their first characters only.
        assert shown["secret"] == SECRET[:10] + "...", shown["secret"]
        assert shown["headers"] == {"X-Token": TOKEN[:4] + "..."}, shown["headers"]
        text = s.cli("webhook", "show", str(wid)).stdout
        assert SECRET not in text and SECRET[6:20] not in text and TOKEN not in text
        assert shown["statistics"]["calls"] == 0 and shown["queue"] == {"pending": 0, "due": 0}, shown

        # The receiver is down: two events fail on both their attempts.
        rx.reply(500)
        since = time.time()
        time.sleep(0.02)
        first = signal(s, "invoice.paid", 1)
        second = signal(s, "invoice.paid", 2)
        wait_until(lambda: len(log_lines(s, wid)) == 4, "four attempt records")
        records = log_lines(s, wid)
        ids = [int(r[0]) for r in records]
        assert ids == sorted(ids, reverse=True), ids  # newest first
        assert sorted(r[3] for r in records) == sorted([first, first, second, second]), records
        for r in records:
            assert len(r) == 6 and r[2] == "invoice.paid" and r[4] == "500" and "500" in r[5], r
            assert datetime.datetime.strptime(r[1], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert log_lines(s, wid, "--limit", "1") == records[:1]
        failed = {}  # EventId -> the webhook-id its failed attempts carried
        for q in rx.requests:
            failed.setdefault(q.json()["EventId"], q.header("webhook-id"))

        # Back up: the first event again by its record, then everything else that failed.
        rx.reply(200)
        rx.clear()
        p = s.cli("webhook", "resend", [r[0] for r in records if r[3] == first][0])
        assert first in p.stdout and "webhook %d" % wid in p.stdout, p.stdout
        got = rx.wait_for(1)
        assert got[0].json()["EventId"] == first and got[0].header("webhook-id") == failed[first]
        wait_until(lambda: len(log_lines(s, wid)) == 5, "the resend's record")
        p = s.cli("webhook", "recover", str(wid), "--since", iso(since))
        assert p.stdout == "recovered 1\n", p.stdout
        got = rx.wait_for(2)
        assert got[1].json()["EventId"] == second and got[1].header("webhook-id") == failed[second]
        wait_until(lambda: len(log_lines(s, wid)) == 6, "the recovery's record")
        assert s.cli("webhook", "recover", str(wid), "--since", iso(since), "--until", iso(time.time())
                     ).stdout == "recovered 0\n"
        time.sleep(0.5)
        assert len(rx.requests) == 2
        shown = json.loads(s.cli("webhook", "show", str(wid)).stdout)
        assert shown["statistics"]["calls"] == 6 and shown["statistics"]["errors"] == 4, shown

        # What does not exist.
        for args, needle in ((["webhook", "show", "999"], "no such webhook"),
                             (["webhook", "log", "999"], "no such webhook"),
                             (["webhook", "resend", "999999"], "no attempt record 999999"),
                             (["webhook", "recover", "999", "--since", iso(since)], "no such webhook")):
            p = s.cli(*args, check=False)
            assert p.returncode == 1 and needle in one_line(p.stderr), (args, p)


@lmdb_only("hookd backup copies the LMDB file; a cluster's backup is PostgreSQL's (pg_basebackup, a standby)")
def test_backup_of_a_live_store_opens_as_a_data_directory():
    down = threading.Event()
    down.set()

    def answer(req):
        return Reply(500) if req.path == "/parked" and down.is_set() else None

    # A failed first attempt is retried 3 s later; the webhook is stopped before that, so its retries wait.
    env = dict(ENV, HOOKD_DELIVERY_RETRY_SCHEDULE="0s,3s")
    with Receiver(handler=answer) as rx, Server(env=env) as s:
        live = create_webhook(s, rx.url + "/live", ["t.a"], "Live")
        parked = create_webhook(s, rx.url + "/parked", ["t.b"], "Parked")
        held = [signal(s, "t.b", pk) for pk in range(5)]
        rx.wait_for(5)
        r = s.request("PATCH", "/api/v1/Webhook/%d" % parked, {"State": "Stopped"})
        assert r.status == 200, r
        shown = json.loads(s.cli("webhook", "show", str(parked)).stdout)
        assert shown["state"] == "Stopped" and shown["queue"]["pending"] == 5, shown
        # Signals keep being answered while the backup is made.
        answered, stop = [], threading.Event()

        def traffic():
            pk = 100
            while not stop.is_set():
                answered.append(s.request("POST", "/api/v1/Webhook/t.a/%d" % pk, {"n": pk}).status)
                pk += 1

        t = threading.Thread(target=traffic)
        t.start()
        try:
            time.sleep(0.1)
            target = os.path.join(s.tmp, "backup-1")
            p = s.cli("backup", target)
            time.sleep(0.1)
        finally:
            stop.set()
            t.join()
        assert answered and set(answered) == {204}, answered
        assert target in p.stdout and os.path.isfile(os.path.join(target, "data.mdb")), (p.stdout, target)
        assert glob.glob(target + ".partial-*") == []
        # Never over anything.
        p = s.cli("backup", target, check=False)
        assert p.returncode == 1 and "exists" in one_line(p.stderr), p

        # The backup is a data directory: the CLI reads it, and a server runs on it with the queue as it was.
        lines = hookd("webhook", "list", "--data", target).stdout.splitlines()
        assert [line.split("\t")[:3] for line in lines] == [[str(live), "Active", "Live"],
                                                            [str(parked), "Stopped", "Parked"]], lines
        shown = json.loads(hookd("webhook", "show", str(parked), "--data", target).stdout)
        assert shown["queue"]["pending"] == 5, shown
        s.stop()
        down.clear()
        with Server(env=env, data_dir=target) as b:
            r = b.request("GET", "/api/v1/Webhook")
            assert r.status == 200 and sorted(w["Name"] for w in r.json()) == ["Live", "Parked"], r
            rx.clear()
            r = b.request("PATCH", "/api/v1/Webhook/%d" % parked, {"State": "Active"})
            assert r.status == 200, r
            got = wait_until(lambda: len([q for q in rx.requests if q.path == "/parked"]) >= 5 and rx.requests,
                             "the five held deliveries")
            assert sorted(q.json()["EventId"] for q in got if q.path == "/parked") == sorted(held)
            for q in got:
                if q.path == "/parked":
                    assert q.header("X-SuperOffice-Retry") == "1", q


if __name__ == "__main__":
    run(globals())
