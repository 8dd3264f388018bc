"""Shared harness of the end-to-end tests.

Each test starts the real hookd binary (HOOKD_BIN) on a free loopback port
with a fresh data directory, talks HTTP to it over sockets, and fails when
the server's stderr holds a sanitizer report or the server does not exit 0
on SIGTERM.

The harness cannot pass by accident:
- every stderr log of every hookd a test started (each generation of a
  restarted server, a server killed with SIGKILL, one the test forgot to
  stop) is scanned for sanitizer reports, whether the test passed or failed,
  and a report fails the test that owned the server;
- a run that selects no test fails;
- `python3 hookd_test.py test_x.py` (how ctest runs each file) imports the
  file and runs its tests, so a file that forgets to call run() still runs.
tests/e2e/test_harness.py proves each of these checks fires.

Engines: HOOKD_TEST_ENGINE=pg (ctest's `e2e-pg.*` entries) runs every
hookd a test starts, and every CLI command on its data directory, on
PostgreSQL instead of the embedded LMDB store: one server per test file
(pg_fixture.shared()), a fresh database per data directory (a second Server
on the same directory gets the same database, as a restart finds its
state), through HOOKD_CLUSTER_POSTGRES. Each start then checks that the
server did keep its state there (its admin user is in the database's users
table), so a pg run cannot pass on the embedded engine by mistake.
A test that cannot run on PostgreSQL by nature says why with
@lmdb_only("reason"), a whole file with LMDB_ONLY = "reason" (ctest
registers no pg entry for it); @pg_expected_failure("reason") marks a test
known to fail on PostgreSQL, and fails the run when it passes;
@pg_known_defect("reason") one that fails there intermittently because of
an open defect: not run on PostgreSQL, and said so.
"""
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BIN = os.path.abspath(os.environ.get("HOOKD_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "debug", "hookd"))
ADMIN_KEY = "hk_test_admin_key_0123456789abcdefghijklmnop"
# Any of these in hookd's stderr is a sanitizer report: ASan and LSan errors,
# UBSan's "runtime error:" lines and its summary.
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "ThreadSanitizer",
                     "runtime error:")

# The engine every started hookd uses: "lmdb" (embedded, the default) or "pg".
ENGINE = os.environ.get("HOOKD_TEST_ENGINE") or "lmdb"
if ENGINE not in ("lmdb", "pg"):
    raise SystemExit("HOOKD_TEST_ENGINE=%s: lmdb or pg" % ENGINE)
# Under pg: the database of each data directory (real path -> name).
_pg_dbs = {}

# Every Server created since the runner started the current test, so that the
# runner can scan their logs whatever the test did with them.
_servers = []


def sanitizer_report(text):
    """Returns the part of a log from the first sanitizer report on, or None when it holds none."""
    first = min((i for i in (text.find(m) for m in SANITIZER_MARKERS) if i >= 0), default=-1)
    if first < 0:
        return None
    start = text.rfind("\n", 0, max(0, first - 2000)) + 1
    return text[start:start + 8000]


def engine_env(data_dir):
    """What to add to a hookd's environment so that it runs on data_dir with the engine under test.

    Nothing for lmdb. Under pg, HOOKD_CLUSTER_POSTGRES naming the database of
    data_dir on the file's PostgreSQL server, created empty on first use, and
    HOOKD_CLUSTER_NODE naming the node after it."""
    if ENGINE != "pg":
        return {}
    import pg_fixture
    key = os.path.realpath(data_dir)
    if key not in _pg_dbs:
        _pg_dbs[key] = pg_fixture.spare_db()
    # One node per data directory, named after its database: a hookd started
    # again on the same directory is the same node, and gives back at start
    # what its killed predecessor had claimed (as an embedded restart reloads
    # its queue), instead of waiting for the leases to end.
    return {"HOOKD_CLUSTER_POSTGRES": pg_fixture.shared().conninfo(_pg_dbs[key]),
            "HOOKD_CLUSTER_NODE": "node-%s" % _pg_dbs[key]}


def pg_database(data_dir):
    """Under pg, the name of data_dir's database (None when it has none or the engine is lmdb)."""
    return _pg_dbs.get(os.path.realpath(data_dir))


def lmdb_only(reason):
    """Marks a test that cannot run on PostgreSQL by nature (LMDB's files, its log, its disk); says why."""
    def mark(fn):
        fn.lmdb_only = reason
        return fn
    return mark


def pg_known_defect(reason):
    """Marks a test that does not pass reliably on PostgreSQL because of an open defect of
    the cluster engine (intermittent, so it cannot be an expected failure): it is not run
    there, and the run says so in capitals. Each one is an open defect, not a choice."""
    def mark(fn):
        fn.pg_known_defect = reason
        return fn
    return mark


def pg_expected_failure(reason):
    """Marks a test that fails on PostgreSQL for a known reason; under pg, its passing fails the run."""
    def mark(fn):
        fn.pg_expected_failure = reason
        return fn
    return mark


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-cased name -> value (last wins)
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return "<%d %s %r>" % (self.status, self.reason, self.body[:300])


class Server:
    """A hookd process with its own data directory."""

    def __init__(self, env=None, config_text=None, data_dir=None, listen="127.0.0.1:0", bin=None):
        self.bin = bin or BIN
        self.tmp = tempfile.mkdtemp(prefix="hookd-e2e-")
        self.data = data_dir or os.path.join(self.tmp, "data")
        self.env = dict(os.environ)
        self.env["HOOKD_ADMIN_KEY"] = ADMIN_KEY
        self.env.setdefault("HOOKD_LOG_LEVEL", "debug")
        self.env.update(engine_env(self.data))
        self.env.update(env or {})
        self.config = None
        if config_text is not None:
            self.config = os.path.join(self.tmp, "hookd.conf")
            with open(self.config, "w") as f:
                f.write(config_text)
        self.listen = listen
        self.proc = None
        self.port = None
        self.host = "127.0.0.1"
        self.log_path = os.path.join(self.tmp, "stderr.log")
        self.generation = 0
        self.logs = []      # the stderr file of every generation started, oldest first
        self.reports = []   # sanitizer reports found so far: (log file, excerpt)
        self.cleaned = False
        _servers.append(self)

    # -- process control ---------------------------------------------------
    def args(self, *rest):
        a = [self.bin]
        a += list(rest)
        if self.config:
            a += ["--config", self.config]
        a += ["--data", self.data]
        return a

    def start(self, timeout=20):
        self.generation += 1
        self.log_path = os.path.join(self.tmp, "stderr.%d.log" % self.generation)
        self.logs.append(self.log_path)
        logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args("serve", "--listen", self.listen), env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=logf, stdin=subprocess.DEVNULL,
                                     cwd=self.tmp)
        logf.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.log()
            m = re.search(r"listening on http://(\[[^\]]+\]|[0-9.]+):(\d+)", text)
            if m and "ready" in text:
                self.host = m.group(1).strip("[]")
                self.port = int(m.group(2))
                self.check_engine()
                return self
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                self.check_log()
                raise AssertionError("hookd exited with %s at start:\n%s" % (rc, text))
            time.sleep(0.02)
        self.kill_quietly()
        self.check_log()
        raise AssertionError("hookd did not become ready:\n" + self.log())

    def check_engine(self):
        """Under pg: the server, now ready, keeps its state in its database (the admin user is there)."""
        db = pg_database(self.data)
        if db is None or self.env.get("HOOKD_CLUSTER_POSTGRES") != engine_env(self.data)["HOOKD_CLUSTER_POSTGRES"]:
            return
        import pg_fixture
        pg = pg_fixture.shared()
        out = "-1"
        if pg.sql("SELECT to_regclass('users') IS NOT NULL", db=db).strip() == "t":
            out = pg.sql("SELECT count(*) FROM users", db=db).strip()
        if out in ("-1", "0"):
            self.kill_quietly()
            raise AssertionError("hookd is ready but did not use PostgreSQL (database %s: %s): "
                                 "HOOKD_TEST_ENGINE=pg needs a hookd that keeps its state in "
                                 "[cluster] postgres\n%s" % (db, "no schema" if out == "-1" else "no user",
                                                              self.log()[-2000:]))

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def scan(self):
        """Scans the log of every generation (also of killed ones) and records each report once."""
        seen = {path for path, _ in self.reports}
        for path in self.logs:
            if path in seen:
                continue
            try:
                with open(path, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except FileNotFoundError:
                continue
            report = sanitizer_report(text)
            if report is not None:
                self.reports.append((path, report))
        return self.reports

    def check_log(self):
        """Raises AssertionError when any log of this server so far holds a sanitizer report."""
        if self.scan():
            path, report = self.reports[0]
            raise AssertionError("sanitizer report in hookd's stderr (%s):\n%s" % (os.path.basename(path), report))

    def kill_quietly(self):
        """SIGKILL and reap the process, if one runs; never raises."""
        if self.proc is None:
            return
        try:
            self.proc.kill()
            self.proc.wait(30)
        except Exception:
            pass
        self.proc = None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stops the server; SIGTERM must drain and exit 0 with a clean log."""
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_quietly()
            self.check_log()
            raise AssertionError("hookd did not stop within %ss:\n%s" % (timeout, self.log()[-4000:]))
        self.proc = None
        self.check_log()
        if sig in (signal.SIGTERM, signal.SIGINT) and rc != 0:
            raise AssertionError("hookd exited %d after SIGTERM:\n%s" % (rc, self.log()[-4000:]))
        return rc

    def kill9(self):
        """SIGKILL, as a crash would; what the log holds so far is still scanned."""
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.check_log()

    def restart(self):
        self.stop()
        return self.start()

    def remove(self):
        """Scans every log, then deletes the temporary directory (logs and data)."""
        if not self.cleaned:
            self.scan()
            self.cleaned = True
            shutil.rmtree(self.tmp, ignore_errors=True)

    def cleanup(self):
        """Stops the server (SIGTERM, exit 0, clean log) and removes its files; raises on a report."""
        try:
            if self.proc is not None:
                self.stop()
            self.check_log()
        finally:
            self.kill_quietly()
            self.remove()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if exc[0] is not None:
            # The test failed: show what the server said, kill it, and still
            # report a sanitizer finding (chained to the test's own error).
            if self.proc is not None:
                sys.stderr.write("---- hookd stderr (tail) ----\n%s\n" % self.log()[-3000:])
            self.kill_quietly()
            try:
                self.check_log()
            finally:
                self.remove()
            return False
        self.cleanup()
        return False

    # -- CLI ---------------------------------------------------------------
    def cli(self, *args, check=True):
        p = subprocess.run(self.args(*args), env=self.env, capture_output=True, text=True, timeout=60,
                           cwd=self.tmp)
        assert sanitizer_report(p.stderr) is None, p.stderr
        if check and p.returncode != 0:
            raise AssertionError("hookd %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
        return p

    # -- HTTP --------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, key=ADMIN_KEY, auth="bearer", timeout=30,
                conn=None):
        """Sends one request on a new connection (or conn) and returns a Response."""
        hdrs = {}
        if key is not None:
            if auth == "bearer":
                hdrs["Authorization"] = "Bearer " + key
            elif auth == "eci":
                hdrs["ECI-ApiKey"] = key
            elif auth == "rest":
                hdrs["Authorization"] = "rest_api_key=" + key
            elif auth.startswith("basic:"):
                hdrs["Authorization"] = "Basic " + base64.b64encode(
                    (auth[6:] + ":" + key).encode()).decode()
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            hdrs["Content-Type"] = "application/json"
        if isinstance(body, str):
            body = body.encode("utf-8")
        hdrs.update(headers or {})
        own = conn is None
        if own:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, r.reason, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            if own:
                conn.close()

    def connection(self, timeout=30):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def raw(self, data, timeout=5, shut=False):
        """Sends raw bytes on a new socket; returns all bytes read until close or timeout."""
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
            out = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                out += chunk
            return out
        finally:
            s.close()


def wait_until(cond, timeout=60, what="condition"):
    """Calls cond every 50 ms until it returns something true, and returns that; fails the test after
    timeout seconds (checking once more at the deadline)."""
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() >= deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(0.05)


def kill9_under_load(s, event, first, at_least, conns=4, fresh_connections=False, timeout=60):
    """Signals event under load, kills s with SIGKILL mid-stream; returns the acknowledged PrimaryKeys.

    conns threads each POST /api/v1/Agents/Webhook/SignalEvent with
    {"EventName": event, "PrimaryKey": pk, "Data": {"n": pk}}, thread k
    with pk = first + k, first + k + conns, ... (so every signal has its
    own key), on one keep-alive connection per thread, or on a new
    connection per signal with fresh_connections (so that the kernel
    spreads them over several listeners). Once at least at_least were
    answered 204 (AssertionError when not within timeout seconds), s.kill9()
    kills the server while signals are in flight; the threads stop at their
    first failed request. The set of keys answered 204 is what the server
    promised to keep: the caller starts the server again and checks that
    each of them was delivered."""
    acked = []  # list.append is atomic: the threads share it without a lock
    stop = threading.Event()

    def worker(k):
        conn = None if fresh_connections else s.connection(timeout=5)
        pk = first + k
        while not stop.is_set():
            body = {"EventName": event, "PrimaryKey": pk, "Data": {"n": pk}}
            try:
                res = s.request("POST", "/api/v1/Agents/Webhook/SignalEvent", body,
                                conn=s.connection(timeout=5) if fresh_connections else conn)
            except Exception:
                return
            if res.status == 204:
                acked.append(pk)
            pk += conns

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for t in threads:
        t.start()
    try:
        deadline = time.time() + timeout
        while len(acked) < at_least:
            if time.time() >= deadline:
                raise AssertionError("timed out waiting for %d acknowledged signals (got %d)" % (at_least, len(acked)))
            time.sleep(0.05)
        s.kill9()
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    return set(acked)


def parse_responses(raw):
    """Splits raw bytes of pipelined HTTP/1.1 responses into (status, headers, body) tuples."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:n]))
        raw = rest[n:]
    return out


def finish_servers(servers):
    """After a test: stops what still runs and returns every sanitizer report of the servers' logs."""
    problems = []
    for srv in servers:
        if srv.proc is not None:
            try:
                srv.stop()
            except Exception as e:
                problems.append("a server left running by the test did not stop cleanly: %s" % e)
        srv.kill_quietly()
        srv.remove()
        for path, report in srv.reports:
            problems.append("sanitizer report in hookd's stderr (%s):\n%s" % (os.path.basename(path), report))
    return problems


def run_tests(tests):
    """Runs the (name, function) pairs in order; returns (passed, failed).

    A test fails when it raises, and also when any hookd it started left a
    sanitizer report in its stderr, even if the test caught the error."""
    passed = failed = 0
    for name, fn in tests:
        if ENGINE == "pg" and getattr(fn, "lmdb_only", None):
            print("skip %s (LMDB only: %s)" % (name, fn.lmdb_only), flush=True)
            continue
        if ENGINE == "pg" and getattr(fn, "pg_known_defect", None):
            print("NOT RUN %s: KNOWN DEFECT of the cluster engine: %s" % (name, fn.pg_known_defect), flush=True)
            continue
        xfail = getattr(fn, "pg_expected_failure", None) if ENGINE == "pg" else None
        t0 = time.time()
        first = len(_servers)
        ok = True
        try:
            fn()
        except Exception:
            ok = False
            if xfail:
                print("expected failure %s on PostgreSQL (%s):" % (name, xfail), flush=True)
            else:
                print("FAIL %s (%.2fs)" % (name, time.time() - t0), flush=True)
            traceback.print_exc()
            sys.stdout.flush()
        problems = finish_servers(_servers[first:])
        del _servers[first:]
        if problems and (ok or xfail):
            ok = False
            xfail = None  # a sanitizer report is never expected
            print("FAIL %s (%.2fs)" % (name, time.time() - t0), flush=True)
        for p in problems:
            print(p, flush=True)
        if xfail:
            if ok:
                failed += 1
                print("FAIL %s (%.2fs): passed on PostgreSQL although marked as an expected failure (%s): "
                      "remove the mark" % (name, time.time() - t0, xfail), flush=True)
            else:
                passed += 1
                print("xfail %s (%.2fs)" % (name, time.time() - t0), flush=True)
        elif ok:
            passed += 1
            print("ok   %s (%.2fs)" % (name, time.time() - t0), flush=True)
        else:
            failed += 1
    return passed, failed


def select(tests_globals):
    """The module's test_* functions, sorted, narrowed by HOOKD_TEST_ONLY (a substring)."""
    names = [n for n in sorted(tests_globals) if n.startswith("test_") and callable(tests_globals[n])]
    only = os.environ.get("HOOKD_TEST_ONLY")
    if only:
        names = [n for n in names if only in n]
    return [(n, tests_globals[n]) for n in names]


def run(tests_globals):
    """Runs every selected test_* function of the module; prints the closing line and exits.

    Exits 1 when a test failed or when no test was selected."""
    if ENGINE == "pg" and tests_globals.get("LMDB_ONLY"):
        print("this file runs on LMDB only (%s): failing, it has no PostgreSQL run" % tests_globals["LMDB_ONLY"])
        sys.exit(1)
    tests = select(tests_globals)
    if ENGINE == "pg":
        tests_pg = [(n, f) for n, f in tests if not getattr(f, "lmdb_only", None)]
        if tests and not tests_pg:
            for n, f in tests:
                print("skip %s (LMDB only: %s)" % (n, f.lmdb_only))
            print("no tests selected that run on PostgreSQL: failing, a run that tests nothing must not pass")
            sys.exit(1)
    if not tests:
        print("no tests selected%s: failing, a run that tests nothing must not pass" %
              (" (HOOKD_TEST_ONLY=%s)" % os.environ["HOOKD_TEST_ONLY"] if os.environ.get("HOOKD_TEST_ONLY") else ""))
        sys.exit(1)
    passed, failed = run_tests(tests)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


def main(argv):
    """`hookd_test.py FILE.py`: imports the test file as a module and runs its tests."""
    import importlib.util
    if len(argv) != 1:
        print("usage: hookd_test.py TEST_FILE.py", file=sys.stderr)
        sys.exit(2)
    path = os.path.abspath(argv[0])
    sys.path.insert(0, os.path.dirname(path))
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    run(vars(module))


if __name__ == "__main__":
    # The test files import this file as the module hookd_test; run through
    # that module, not this __main__ copy, so both share one server registry.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import hookd_test
    hookd_test.main(sys.argv[1:])
