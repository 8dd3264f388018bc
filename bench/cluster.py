"""bench/cluster.py: the figures of `bench/run --cluster` (see bench/README.md, "Cluster").

Durable ingest and end-to-end delivery, each measured on the embedded
engine, on one node on a local PostgreSQL and on two nodes on it, run by run
in turn so that drift hits all three alike. The generator's connections are
split evenly over the nodes (two generators for two nodes, as a balancer
would spread them). Besides each process's CPU (every hookd node, every
PostgreSQL process together, the generators, the receiver) each PostgreSQL
row gives what one event costs the database: its CPU in microseconds, the
WAL it writes, its transactions; README.md's "Running a cluster" derives
from them how far one PostgreSQL goes.

PostgreSQL is tests/e2e/pg_fixture.py's server (a temporary directory, a
free loopback port, removed however the run ends) with settings for
measuring instead of testing: shared_buffers 256MB, the WAL a standby
needs (wal_level replica), fsync and synchronous_commit on, as a primary
without a standby would run; a fresh database per run.
"""
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import benchlib as m  # noqa: E402
import pg_fixture  # noqa: E402

README_BEGIN = "<!-- bench-cluster:begin -->"
README_END = "<!-- bench-cluster:end -->"
ENGINES = (("embedded", 0), ("pg", 1), ("pg", 2))  # (engine, nodes on PostgreSQL)


class BenchPostgres(pg_fixture.Postgres):
    """The fixture's server with settings of a database that is measured (a later line wins)."""

    def _configure(self):
        super()._configure()
        with open(os.path.join(self.tmp, "data", "postgresql.conf"), "a") as f:
            f.write("# bench/cluster.py\n"
                    "shared_buffers = 256MB\n"
                    "wal_level = replica\n"
                    "max_wal_senders = 4\n"
                    "max_wal_size = 2GB\n"
                    "checkpoint_timeout = 15min\n"
                    "max_connections = 100\n")

    def postmaster_pid(self):
        with open(os.path.join(self.tmp, "data", "postmaster.pid")) as f:
            return int(f.readline())


def proc_times(pid):
    """(utime + stime, cutime + cstime) of pid in clock ticks, and its parent; None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14]), int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def pg_cpu_seconds(pg):
    """CPU seconds of the whole PostgreSQL server so far: the postmaster, its live children, and the
    children it has reaped (backends that ended count in its cutime)."""
    root = pg.postmaster_pid()
    own = proc_times(root)
    if own is None:
        return 0.0
    ticks = own[0] + own[1]
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != root:
            t = proc_times(int(name))
            if t is not None and t[2] == root:
                ticks += t[0] + t[1]
    return ticks / os.sysconf("SC_CLK_TCK")


def db_counters(pg, db):
    """(transactions committed in db, WAL bytes written by the server) so far."""
    out = pg.sql("SELECT xact_commit, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint "
                 "FROM pg_stat_database WHERE datname = '%s'" % db, db=db).strip()
    commits, wal = out.split("|")
    return int(commits), int(wal)


class Nodes:
    """The hookd processes of one run: one embedded node, or n nodes on one fresh database of pg."""

    def __init__(self, bench, name, engine, n, pg, extra_env=None):
        self.pg, self.db = pg, None
        env = dict(extra_env or {})
        if engine == "pg":
            self.db = pg_fixture.fresh_db("bench")
            env["HOOKD_CLUSTER_POSTGRES"] = pg.conninfo(self.db)
        self.hks = []
        try:
            for i in range(max(1, n)):
                self.hks.append(m.Hookd(bench, "%s-%d" % (name, i), extra_env=env))
            if self.db is not None:
                users = pg.sql("SELECT count(*) FROM users", db=self.db, check=False)
                if users.returncode != 0 or users.stdout.strip() == "0":
                    raise m.BenchError("hookd did not keep its state in PostgreSQL (database %s has no users): "
                                       "this build does not run [cluster] postgres" % self.db)
            for hk in self.hks:
                hk.check_signal_endpoint()
        except BaseException:
            self.stop()
            raise

    def cpu(self):
        return [hk.cpu() for hk in self.hks]

    def stop(self):
        for hk in self.hks:
            hk.stop()
            hk.remove_data()
        if self.db is not None:
            self.pg.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.db, db="postgres", check=False)
            self.db = None


def loadgens(bench, urls, connections, duration, seq_stride=100000000):
    """One generator per URL, connections split evenly, all at once; returns their results."""
    procs = []
    per = max(1, connections // len(urls))
    for i, url in enumerate(urls):
        out = os.path.join(bench.work, "loadgen.%d.out" % i)
        args = [bench.loadgen_bin, "--url", url, "--key", m.ADMIN_KEY, "--event", m.EVENT,
                "--connections", str(per), "--seq-start", str(i * seq_stride), "--quiet",
                "--duration", str(duration)]
        outf = open(out, "wb")
        procs.append((m.PROCS.start(args, os.path.join(bench.work, "loadgen.%d.log" % i), stdout=outf), out, url))
        outf.close()
    results = []
    for p, out, url in procs:
        try:
            p.wait(duration + 120)
        except subprocess.TimeoutExpired:
            m.PROCS.stop(p)
            raise m.BenchError("the generator did not finish within %.0f s" % (duration + 120))
        m.PROCS.stop(p)
        with open(out) as f:
            lines = [line for line in f.read().splitlines() if line.startswith("{")]
        if not lines:
            raise m.BenchError("the generator printed no result (%s)" % url)
        r = json.loads(lines[-1])
        if r["failed"]:
            raise m.BenchError("POST %s answered %s (statuses %s)" % (url, r["first_error"] or "non-2xx", r["status"]))
        results.append(r)
    return results


def measure(bench, kind, engine, n, pg):
    """One run of kind "ingest" or "e2e" on engine with n nodes; returns its figures."""
    a = bench.args
    name = "cluster-%s-%s%d" % (kind, engine, n)
    nodes = Nodes(bench, name, engine, n, pg)
    rx = None
    try:
        if kind == "e2e":
            rx = m.Receiver(bench, name)
            nodes.hks[0].create_webhook("bench-cluster", rx.url(0))
            # The other node serves it within a second (LISTEN/NOTIFY); wait for it.
            for hk in nodes.hks[1:]:
                deadline = time.time() + 10
                while m.http_request(hk.port, "GET", "/api/v1/Webhook/1")[0] != 200:
                    if time.time() > deadline:
                        raise m.BenchError("node %d never saw the webhook made through node 0" % hk.port)
                    time.sleep(0.05)
        pg0 = pg_cpu_seconds(pg) if engine == "pg" else None
        c0 = db_counters(pg, nodes.db) if engine == "pg" else None
        cpu0 = nodes.cpu()
        rx0 = rx.cpu() if rx else None
        t0 = time.time()
        rs = loadgens(bench, [hk.url() for hk in nodes.hks], a.connections, a.duration)
        signals = sum(r["ok"] for r in rs)
        out = {"signals": signals}
        if kind == "e2e":
            st, drained = bench.wait_drained(rx, signals)
            m.check_signatures(st, name)
            start = min(r["start_ns"] for r in rs)
            span = (st["last_ns"] - start) / 1e9 if st["last_ns"] else 0
            out.update(rate=st["unique"] / span if span > 0 else 0.0, drained=drained, received=st["unique"],
                       duplicates=st["duplicates"], events=st["unique"])
        else:
            out.update(rate=sum(r["rate"] for r in rs), events=signals)
        wall = time.time() - t0
        out["cpu_nodes"] = [100 * (c1 - c0_) / wall for c0_, c1 in zip(cpu0, nodes.cpu())]
        out["cpu_gen"] = sum(r["cpu_ms"] for r in rs) / 10.0 / wall
        out["cpu_rx"] = 100 * (rx.cpu() - rx0) / wall if rx else None
        if engine == "pg":
            out["cpu_pg"] = 100 * (pg_cpu_seconds(pg) - pg0) / wall
            c1 = db_counters(pg, nodes.db)
            ev = max(1, out["events"])
            out["pg_us_per_event"] = (out["cpu_pg"] / 100 * wall) / ev * 1e6
            out["wal_per_event"] = (c1[1] - c0[1]) / ev
            out["xact_per_event"] = (c1[0] - c0[0]) / ev
        return out
    finally:
        if rx is not None:
            rx.stop()
        nodes.stop()


def label(kind, engine, n):
    what = "durable ingest" if kind == "ingest" else "end to end, 1 subscriber"
    where = "embedded (LMDB)" if engine == "embedded" else "%d node%s on PostgreSQL" % (n, "s" if n > 1 else "")
    return "%s: %s" % (what, where)


def run(bench):
    """Every cluster figure, into bench.cluster_rows; a PostgreSQL started and removed here."""
    a = bench.args
    bench.cluster_rows = []
    bench.say("cluster: starting PostgreSQL (%s)" % pg_fixture.pg_bin())
    pg = BenchPostgres()
    try:
        pg.start()
        pg_fixture._shared = pg  # fresh_db() creates its databases here
        bench.pg_version = pg.sql("SHOW server_version").strip()
        for kind in ("ingest", "e2e"):
            bench.say("cluster: %s, %d connections split over the nodes, %g s per run" %
                      (kind, a.connections, a.duration))
            outs = {k: [] for k in ENGINES}
            for i in range(bench.runs_for(len(ENGINES) * (a.duration * (3 if kind == "e2e" else 1) + 4))):
                for engine, n in ENGINES:
                    o = measure(bench, kind, engine, n, pg)
                    outs[(engine, n)].append(o)
                    bench.say("   run %d, %s: %.0f/s; CPU %% nodes %s%s" % (
                        i + 1, label(kind, engine, n), o["rate"], " ".join("%.0f" % c for c in o["cpu_nodes"]),
                        ", postgres %.0f, %.0f us/event, %.0f WAL bytes/event, %.3f transactions/event" % (
                            o["cpu_pg"], o["pg_us_per_event"], o["wal_per_event"], o["xact_per_event"])
                        if engine == "pg" else ""))
            for (engine, n), os_ in outs.items():
                bench.cluster_rows.append({"kind": kind, "engine": engine, "nodes": n, "label": label(kind, engine, n),
                                           "unit": "requests/s" if kind == "ingest" else "events/s", "outs": os_})
    finally:
        pg_fixture._shared = None
        pg.remove()


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def table(bench):
    """The cluster table, in Markdown."""
    a, i = bench.args, bench.info
    lines = ["Run %s on %d cores (%s), %s MiB RAM, Linux %s; data (LMDB and PostgreSQL) on %s, fdatasync of "
             "4 KiB p50 %.3f ms. hookd %s, release build, conf/hookd.conf defaults; PostgreSQL %s on 127.0.0.1 "
             "(shared_buffers 256MB, wal_level replica, fsync and synchronous_commit on, no standby). "
             "Generator: %d connections in all, split over the nodes, %g s per run; runs per figure: n."
             % (i["date"], i["cores"], i["cpu"], "{:,}".format(i["mem_mib"]), i["kernel"], i["fs"],
                i["fsync_p50_ms"], i["commit"], getattr(bench, "pg_version", "?"), a.connections, a.duration),
             "",
             "| scenario | unit | median | min | max | n | CPU % each node | CPU % postgres | CPU % gen / rx "
             "| postgres CPU per event | WAL per event | transactions per event | notes |",
             "|---|---|---:|---:|---:|---:|---|---:|---|---:|---:|---:|---|"]
    for r in bench.cluster_rows:
        outs = r["outs"]
        if not outs:
            continue
        rates = [o["rate"] for o in outs]
        nodes = " + ".join("%.0f" % med([o["cpu_nodes"][k] for o in outs]) for k in range(len(outs[0]["cpu_nodes"])))
        pg = r["engine"] == "pg"
        rx = med([o["cpu_rx"] for o in outs])
        note = ""
        if r["kind"] == "e2e":
            bad = [o for o in outs if not o["drained"]]
            note = "every run drained" if not bad else "NOT drained in %d of %d runs" % (len(bad), len(outs))
            dups = sum(o["duplicates"] for o in outs)
            if dups:
                note += "; %d duplicates" % dups
        lines.append("| %s | %s | %s | %s | %s | %d | %s | %s | %.0f / %s | %s | %s | %s | %s |" % (
            r["label"], r["unit"], "{:,.0f}".format(med(rates)), "{:,.0f}".format(min(rates)),
            "{:,.0f}".format(max(rates)), len(rates), nodes,
            "%.0f" % med([o["cpu_pg"] for o in outs]) if pg else "-",
            med([o["cpu_gen"] for o in outs]), "%.0f" % rx if rx is not None else "-",
            "%.0f µs" % med([o["pg_us_per_event"] for o in outs]) if pg else "-",
            "%.0f B" % med([o["wal_per_event"] for o in outs]) if pg else "-",
            "%.3f" % med([o["xact_per_event"] for o in outs]) if pg else "-", note))
    if bench.failures:
        lines.append("")
        for name, msg in bench.failures:
            lines.append("- %s: FAILED: %s" % (name, msg.splitlines()[0] if msg else ""))
    lines.append("")
    lines.append("CPU: percent of one core over the run (200 = both cores). Per event: the database's CPU, the "
                 "WAL it wrote (pg_current_wal_lsn) and its transactions (pg_stat_database.xact_commit), over "
                 "the run, divided by the events ingested (ingest) or delivered (end to end). Took %.0f s."
                 % (time.time() - bench.t0))
    return "\n".join(lines)
