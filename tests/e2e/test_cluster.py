"""End to end: a cluster of hookd nodes on one PostgreSQL behind haproxy acts as one hookd.

Three nodes (each its own data directory, all with the same [cluster]
postgres) on fixed loopback ports, haproxy running conf/haproxy.cfg with
those ports put in, one PostgreSQL server for the file (pg_fixture.shared())
and a database per test. What is checked is what a user of the balancer
sees: a webhook created through one node delivers what another accepted;
with a node killed (SIGKILL) and restarted while several connections signal,
every acknowledged event (a 204) is delivered, duplicates counted and
allowed, never a gap; ten failures in a row disable a webhook once for the
whole cluster (one state event, one mail) and the attempt log reads the same
through every node; PostgreSQL stopped and started while signalling gives
503s with Retry-After, /readyz 503, and loses nothing acknowledged.
"""
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pg_fixture
from hookd_test import ADMIN_KEY, run, Server, wait_until
from receiver import Receiver, Reply
from smtp_sink import SmtpSink

SOURCE = os.environ.get("HOOKD_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
HAPROXY_CFG = os.path.join(SOURCE, "conf", "haproxy.cfg")
HAPROXY = "/usr/sbin/haproxy"
LOOPBACK = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32", "HOOKD_DELIVERY_RETRY_JITTER": "0",
            "HOOKD_LOG_LEVEL": "info"}
SIGNAL_SECONDS = 8  # how long the connections signal while a node is killed and restarted
# A killed node's claims are anybody's once their leases end ([cluster]
# lease, by default 4 x [delivery] total_timeout + 60 s): the kill test makes
# attempts short (the receiver is local and answers at once) and the lease
# ten seconds. The nodes have no [cluster] node name, so the restarted node
# is a new member and the old claims come back only through their leases.
SHORT_LEASES = {"HOOKD_DELIVERY_CONNECT_TIMEOUT": "1s", "HOOKD_DELIVERY_FIRST_BYTE_TIMEOUT": "1s",
                "HOOKD_DELIVERY_TOTAL_TIMEOUT": "1s", "HOOKD_CLUSTER_LEASE": "10s"}
DELIVERED_WITHIN = 120  # seconds for every acknowledged event to arrive


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class Endpoint:
    """An HTTP address with Server's request() and connection(): the balancer's."""
    request = Server.request
    connection = Server.connection

    def __init__(self, host, port):
        self.host, self.port = host, port


class Cluster:
    """n hookd nodes on one fresh database of the file's PostgreSQL, optionally behind haproxy."""

    def __init__(self, n=3, env=None, balancer=True):
        self.pg = pg_fixture.shared()
        self.db = pg_fixture.fresh_db("cluster")
        self.env = dict(LOOPBACK)
        self.env["HOOKD_CLUSTER_POSTGRES"] = self.pg.conninfo(self.db)
        self.env.update(env or {})
        self.nodes = [Server(env=self.env, listen="127.0.0.1:%d" % free_port()) for _ in range(n)]
        self.balancer = balancer
        self.haproxy = None
        self.front = None  # a Server-like handle on the balancer's port, for its request()
        self.tmp = tempfile.mkdtemp(prefix="hookd-haproxy-")

    def __enter__(self):
        try:
            # One at a time: the first creates the schema and the admin user, the others find them.
            for node in self.nodes:
                node.start()
            assert self.pg.sql("SELECT count(*) FROM users", db=self.db).strip() == "1", "one admin for the cluster"
            if self.balancer:
                self.start_haproxy()
        except BaseException:
            self.__exit__(*([None] * 3))
            raise
        return self

    def __exit__(self, *exc):
        if self.haproxy is not None:
            self.haproxy.kill()
            self.haproxy.wait(10)
            self.haproxy = None
        ok = exc[0] is None
        for node in self.nodes:
            if ok:
                node.cleanup()  # SIGTERM, exit 0, clean log
            else:
                if node.proc is not None:
                    print("---- node %d stderr (tail) ----\n%s" % (node.port, node.log()[-2000:]))
                node.kill_quietly()
        subprocess.run(["rm", "-rf", self.tmp])
        return False

    def start_haproxy(self):
        """haproxy on conf/haproxy.cfg: the frontend and the three servers' ports replaced by ours."""
        text = open(HAPROXY_CFG).read()
        port = free_port()
        text, n = re.subn(r"bind 127\.0\.0\.1:8080\b", "bind 127.0.0.1:%d" % port, text)
        assert n == 1, "conf/haproxy.cfg binds 127.0.0.1:8080"
        servers = re.findall(r"^\s*server (\S+) 127\.0\.0\.1:(\d+) check$", text, re.M)
        assert len(servers) == len(self.nodes), servers
        for (name, old), node in zip(servers, self.nodes):
            text = text.replace("server %s 127.0.0.1:%s check" % (name, old),
                                "server %s 127.0.0.1:%d check" % (name, node.port))
        cfg = os.path.join(self.tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(text)
        self.haproxy_log = open(os.path.join(self.tmp, "haproxy.log"), "wb")
        self.haproxy = subprocess.Popen([HAPROXY, "-db", "-f", cfg], stdin=subprocess.DEVNULL,
                                        stdout=self.haproxy_log, stderr=subprocess.STDOUT)
        self.front = Endpoint("127.0.0.1", port)
        wait_until(lambda: self._front_ready(), 15, "haproxy to answer /readyz")

    def _front_ready(self):
        if self.haproxy.poll() is not None:
            raise AssertionError("haproxy exited: %s" % open(self.haproxy_log.name).read())
        try:
            return self.front.request("GET", "/readyz", key=None, timeout=2).status == 200
        except OSError:
            return False

    def all_ready(self):
        """Waits until haproxy sees every node up again (its checks run every second)."""
        def up():
            return all(self.front.request("GET", "/healthz", key=None).status == 200 for _ in range(6))
        wait_until(up, 20, "haproxy to route to every node")


def create_webhook(srv, url, events, name="cluster hook", **extra):
    body = {"Name": name, "Events": events, "TargetUrl": url, "Secret": "s3cret", "State": "Active",
            "Type": "webhook"}
    body.update(extra)
    r = srv.request("POST", "/api/v1/Webhook", body)
    assert r.status == 200, r
    return r.json()["WebhookId"]


def delivered_keys(rx, event):
    """PrimaryKey -> number of deliveries of `event` the receiver got."""
    counts = {}
    for q in rx.requests:
        try:
            body = q.json()
        except ValueError:
            continue
        if body.get("Event") == event:
            counts[body["PrimaryKey"]] = counts.get(body["PrimaryKey"], 0) + 1
    return counts


class Signallers:
    """k threads, each on its own keep-alive connection to srv, signalling distinct PrimaryKeys until stopped.

    acked holds every PrimaryKey answered 204 (the event was committed);
    other answers (502, 503 from the balancer or a node, a dropped
    connection) are counted by status and were not acknowledged."""

    def __init__(self, srv, event, k=4):
        self.srv, self.event, self.k = srv, event, k
        self.acked = set()
        self.other = {}
        self.retry_after = set()  # Retry-After values seen on 503s
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.loop, args=(i,), daemon=True) for i in range(k)]

    def loop(self, i):
        n = 0
        conn = None
        while not self.stop.is_set():
            n += 1
            pk = (i + 1) * 1000000 + n
            try:
                if conn is None:
                    conn = self.srv.connection(timeout=20)
                r = self.srv.request("POST", "/api/v1/Webhook/%s/%d" % (self.event, pk), {"n": pk}, conn=conn)
                status = r.status
                if r.header("connection") == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # a node killed under the connection: not acknowledged
                status = type(e).__name__
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.02)
            with self.lock:
                if status == 204:
                    self.acked.add(pk)
                else:
                    self.other[status] = self.other.get(status, 0) + 1
                    if status == 503 and r.header("retry-after"):
                        self.retry_after.add(r.header("retry-after"))
                    time.sleep(0.05)
        if conn is not None:
            conn.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        return False


def wait_all_delivered(rx, event, acked, timeout=DELIVERED_WITHIN):
    def done():
        got = delivered_keys(rx, event)
        return all(pk in got for pk in acked)
    try:
        wait_until(done, timeout, "every acknowledged event to be delivered")
    except AssertionError:
        got = delivered_keys(rx, event)
        missing = sorted(pk for pk in acked if pk not in got)
        raise AssertionError("%d of %d acknowledged events never delivered, e.g. %s" %
                             (len(missing), len(acked), missing[:10]))
    return delivered_keys(rx, event)


# ---- tests ------------------------------------------------------------------------------------

def test_a_webhook_created_through_one_node_delivers_what_another_accepted():
    with Receiver() as rx, Cluster(n=3, balancer=False) as c:
        a, b, third = c.nodes
        wid = create_webhook(a, rx.url + "/in", ["order.*"])
        # The node that made the change uses it at once; the others within a second (LISTEN/NOTIFY).
        wait_until(lambda: b.request("GET", "/api/v1/Webhook/%d" % wid).status == 200, 5, "webhook on node b")
        wait_until(lambda: third.request("GET", "/api/v1/Webhook/%d" % wid).status == 200, 5, "webhook on node c")
        r = b.request("POST", "/api/v1/Webhook/order.paid/7", {"total": 1})
        assert r.status == 204, r
        got = rx.wait_for(1, timeout=20)
        body = got[0].json()
        assert body["Event"] == "order.paid" and body["PrimaryKey"] == 7, body
        assert body["EventId"] == r.header("hookd-event-id"), (body, r.headers)
        # Ids come from the database: a webhook made through another node never reuses one.
        wid2 = create_webhook(third, rx.url + "/in2", ["invoice.*"], name="second")
        assert wid2 != wid, (wid, wid2)
        # An Idempotency-Key repeated through another node is the same event, stored once.
        h = {"Idempotency-Key": "cluster-key-1"}
        r1 = a.request("POST", "/api/v1/Webhook/order.sent/8", {"x": 1}, headers=h)
        r2 = third.request("POST", "/api/v1/Webhook/order.sent/8", {"x": 1}, headers=h)
        assert r1.status == 204 and r2.status == 204, (r1, r2)
        assert r1.header("hookd-event-id") == r2.header("hookd-event-id"), (r1.headers, r2.headers)
        wait_until(lambda: delivered_keys(rx, "order.sent").get(8), 20, "order.sent")
        time.sleep(1)
        assert delivered_keys(rx, "order.sent") == {8: 1}, delivered_keys(rx, "order.sent")
        # A change through one node (here a delete) reaches the others within a second.
        assert c.nodes[1].request("DELETE", "/api/v1/Webhook/%d" % wid2).status in (200, 204)
        wait_until(lambda: a.request("GET", "/api/v1/Webhook/%d" % wid2).status == 404, 3, "delete seen by node a")


def test_a_node_killed_while_signalling_loses_nothing_acknowledged():
    with Receiver() as rx, Cluster(n=3, env=SHORT_LEASES) as c:
        create_webhook(c.front, rx.url + "/in", ["load.*"])
        c.all_ready()
        with Signallers(c.front, "load.e", k=4) as sig:
            time.sleep(SIGNAL_SECONDS / 4)
            victim = c.nodes[1]
            victim.kill9()
            time.sleep(SIGNAL_SECONDS / 4)
            victim.start()
            time.sleep(SIGNAL_SECONDS / 2)
        acked = set(sig.acked)
        assert len(acked) > 50, (len(acked), sig.other)
        got = wait_all_delivered(rx, "load.e", acked)
        dups = sum(n - 1 for n in got.values() if n > 1)
        unacked = len(set(got) - acked)  # committed but the answer was lost with the node: delivered, fine
        print("cluster kill: %d acknowledged, %d delivered, %d duplicates, %d delivered without a 204, other "
              "answers %s" % (len(acked), len(got), dups, unacked, sig.other))
        # Every node serves again after the restart and agrees on the queue's state.
        c.all_ready()


def test_ten_failures_disable_once_for_the_whole_cluster_and_the_log_reads_the_same_everywhere():
    ten = ",".join(["0s"] + ["100ms"] * 9)
    with SmtpSink() as sink, Receiver() as rx, Receiver() as watcher:
        rx.reply(status=500, body=b"no")
        env = {"HOOKD_DELIVERY_RETRY_SCHEDULE": ten, "HOOKD_DELIVERY_DISABLE_AFTER": "10",
               "HOOKD_SMTP_HOST": "127.0.0.1", "HOOKD_SMTP_PORT": str(sink.port),
               "HOOKD_SMTP_FROM": "hookd@test.example", "HOOKD_SMTP_MIN_INTERVAL": "1h"}
        with Cluster(n=3, env=env) as c:
            wid = create_webhook(c.front, rx.url + "/fail", ["bill.*"], name="failing", ErrorsEmail="ops@example.com")
            create_webhook(c.front, watcher.url + "/state", ["webhook%d.errors" % wid], name="watcher")
            c.all_ready()
            # Events signalled through the balancer reach different nodes; their attempts are claimed by any.
            for pk in range(1, 7):
                r = c.front.request("POST", "/api/v1/Webhook/bill.due/%d" % pk, {"n": pk})
                assert r.status == 204, r
            for node in c.nodes:
                wait_until(lambda: node.request("GET", "/api/v1/Webhook/%d" % wid).json()["State"] == "TooManyErrors",
                           30, "TooManyErrors through node %d" % node.port)
            watcher.wait_for(1, timeout=20)
            sink.wait_for(1)
            time.sleep(2)  # what a second node would have sent by now
            states = [q.json() for q in watcher.requests]
            assert [(s["Event"], s["PrimaryKey"]) for s in states] == [("webhook.errors", wid)], states
            assert len(sink.mails) == 1 and "disabled" in sink.mails[0].subject, sink.mails
            # The attempt log, through every node: the same records in the same order.
            pages = []
            for node in c.nodes:
                r = node.request("GET", "/api/v3/webhook/%d/log?pageSize=200" % wid, auth="eci")
                assert r.status == 200, r
                pages.append((r.header("TotalNumberOfRecords"), r.json()))
            assert pages[0] == pages[1] == pages[2], pages
            total = int(pages[0][0])
            assert total >= 10 and total == len(rx.requests), (total, len(rx.requests))
            assert all(it["result"] == "500" for it in pages[0][1]), pages[0][1]
            # A tenth failure in a row, and no more attempts once disabled.
            n = len(rx.requests)
            time.sleep(1)
            assert len(rx.requests) == n, (n, len(rx.requests))


def test_postgres_stopped_and_started_while_signalling_gives_503_and_loses_nothing():
    with Receiver() as rx, Cluster(n=2, balancer=False) as c:
        a, b = c.nodes
        create_webhook(a, rx.url + "/in", ["pg.*"])
        wait_until(lambda: b.request("GET", "/api/v1/Webhook/1").status == 200, 5, "webhook on node b")
        with Signallers(a, "pg.e", k=2) as sa, Signallers(b, "pg.e", k=2) as sb:
            time.sleep(1.5)
            c.pg.stop()
            try:
                # While the database is away: writes are refused with 503 and Retry-After, not ready.
                wait_until(lambda: sa.other.get(503) and sb.other.get(503), 30, "503s from both nodes")
                for node in c.nodes:
                    wait_until(lambda: node.request("GET", "/readyz", key=None).status == 503, 20,
                               "/readyz 503 on node %d" % node.port)
                r = a.request("POST", "/api/v1/Webhook", {"Name": "x", "Events": ["x"],
                                                          "TargetUrl": rx.url + "/x"})
                assert r.status == 503 and r.header("retry-after"), r
                time.sleep(1)
            finally:
                c.pg.start_again()
            # Back by themselves.
            for node in c.nodes:
                wait_until(lambda: node.request("GET", "/readyz", key=None).status == 200, 60,
                           "/readyz 200 on node %d" % node.port)
            n = len(sa.acked) + len(sb.acked)
            wait_until(lambda: len(sa.acked) + len(sb.acked) > n + 20, 30, "signals acknowledged again")
        assert sa.retry_after or sb.retry_after, (sa.other, sb.other)
        acked = sa.acked | sb.acked
        got = wait_all_delivered(rx, "pg.e", acked)
        print("database outage: %d acknowledged, %d delivered, %d duplicates, other answers %s %s" %
              (len(acked), len(got), sum(n - 1 for n in got.values()), sa.other, sb.other))


if __name__ == "__main__":
    run(globals())
