"""A real PostgreSQL for the tests, in a temporary directory, gone afterwards.

    from pg_fixture import Postgres, shared

    with Postgres() as pg:                 # initdb + pg_ctl start
        pg.create_db("t1")
        pg.sql("SELECT 1", db="t1")        # psql, output as text
        env = {"HOOKD_CLUSTER_POSTGRES": pg.conninfo("t1")}
        pg.restart()                       # pg_ctl restart, same port
    pg = shared()                          # one server per test file, stopped at exit

From the command line (how ctest runs a C unit test against it):

    pg_fixture.py run [--db NAME] -- COMMAND [ARGS...]

starts a server, creates database NAME (default "hookd"), runs COMMAND with
HOOKD_TEST_PG set to its connection string and HOOKD_TEST_PG_CTL set to a
command line that takes `stop`, `start` or `restart` (what a test runs to
take the server away and bring it back), and exits with COMMAND's status
after the server is stopped and removed. `pg_fixture.py ctl DIR
stop|start|restart` is that command.

The server: `initdb` and `pg_ctl` of HOOKD_PG_BIN (default: the newest
/usr/lib/postgresql/*/bin) in a fresh directory under /tmp, listening only
on 127.0.0.1 on a free port, its unix socket in that directory, trust
authentication for the user `postgres`. PostgreSQL refuses to run as root,
so as root the directory is given to the `postgres` system user and the
server runs as it (`runuser -u postgres`). Settings are small and quick
(16MB of shared buffers, wal_level minimal) but fsync and synchronous_commit
stay on: what a commit promises is what the tests check.

However the test ends, the server is stopped and its directory removed: by
the context manager or atexit, and when this process is killed (SIGKILL, a
ctest timeout) by a watcher process, detached from this one, that waits for
this process's end on a pipe and then stops the server (`pg_ctl stop -m
immediate`) and deletes the directory.
"""
import atexit
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.abspath(__file__)
START_TIMEOUT = 60  # seconds pg_ctl may take to start or stop the server
USER = "postgres"


def pg_bin():
    """The directory of initdb, pg_ctl and psql."""
    d = os.environ.get("HOOKD_PG_BIN")
    if d:
        return d
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin: run deps/install.sh "
                           "(postgresql-15) or set HOOKD_PG_BIN")
    return os.path.dirname(found[-1])


def as_server_user(argv):
    """argv run as the postgres user when we are root (the server refuses root), else as ourselves."""
    if os.geteuid() == 0:
        return ["runuser", "-u", USER, "--"] + argv
    return argv


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _pg_ctl(tmp, action, check=True, extra=()):
    """Runs pg_ctl ACTION on the server of directory tmp; returns the CompletedProcess."""
    argv = [os.path.join(pg_bin(), "pg_ctl"), "-D", os.path.join(tmp, "data"), "-l", os.path.join(tmp, "postgres.log"),
            "-w", "-t", str(START_TIMEOUT), "-s"] + list(extra) + [action]
    p = subprocess.run(as_server_user(argv), capture_output=True, text=True, timeout=START_TIMEOUT + 30,
                       stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise RuntimeError("pg_ctl %s failed (%d): %s%s\n---- postgres.log (tail) ----\n%s" %
                           (action, p.returncode, p.stdout, p.stderr, _tail(tmp)))
    return p


def _tail(tmp, n=4000):
    try:
        with open(os.path.join(tmp, "postgres.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-n:]
    except OSError:
        return "(no log)"


def _running(tmp):
    return os.path.exists(os.path.join(tmp, "data", "postmaster.pid"))


def _teardown(tmp):
    """Stops the server of tmp at once if it runs, then deletes tmp. Never raises."""
    try:
        if _running(tmp):
            _pg_ctl(tmp, "stop", check=False, extra=["-m", "immediate"])
    except Exception:
        pass
    shutil.rmtree(tmp, ignore_errors=True)


class Postgres:
    """One PostgreSQL server in its own temporary directory."""

    def __init__(self, db=None):
        self.tmp = None
        self.port = None
        self.db = db  # created at start when given
        self._watch = None  # the write end of the watcher's pipe

    # -- life cycle ----------------------------------------------------------
    def start(self):
        """initdb, configure, start; returns self. Raises with the server's log on failure."""
        if self.tmp is not None:
            raise RuntimeError("already started")
        self.tmp = tempfile.mkdtemp(prefix="hookd-pg-")
        self._start_watcher()
        try:
            os.chmod(self.tmp, 0o700)
            if os.geteuid() == 0:
                pw = pwd.getpwnam(USER)
                os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
            p = subprocess.run(as_server_user([os.path.join(pg_bin(), "initdb"), "-D", os.path.join(self.tmp, "data"),
                                               "-U", USER, "-A", "trust", "-E", "UTF8", "--locale=C", "-N"]),
                               capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
            if p.returncode != 0:
                raise RuntimeError("initdb failed (%d): %s%s" % (p.returncode, p.stdout, p.stderr))
            # A port another process takes between our probe and the server's
            # bind fails the start: try a few.
            for attempt in range(5):
                self.port = free_port()
                self._configure()
                p = _pg_ctl(self.tmp, "start", check=False)
                if p.returncode == 0:
                    break
                if "could not bind" not in _tail(self.tmp) or attempt == 4:
                    raise RuntimeError("pg_ctl start failed (%d): %s%s\n---- postgres.log (tail) ----\n%s" %
                                       (p.returncode, p.stdout, p.stderr, _tail(self.tmp)))
            if self.db:
                self.create_db(self.db)
        except BaseException:
            self.remove()
            raise
        return self

    def _configure(self):
        conf = os.path.join(self.tmp, "data", "postgresql.conf")
        with open(conf, "a") as f:
            f.write("\n# tests/e2e/pg_fixture.py (a later line wins)\n"
                    "listen_addresses = '127.0.0.1'\n"
                    "port = %d\n"
                    "unix_socket_directories = '%s'\n"
                    "fsync = on\n"
                    "synchronous_commit = on\n"
                    "full_page_writes = on\n"
                    "shared_buffers = 16MB\n"
                    "max_connections = 50\n"
                    "wal_level = minimal\n"
                    "max_wal_senders = 0\n"
                    "max_wal_size = 256MB\n"
                    "huge_pages = off\n"
                    "log_min_messages = warning\n"
                    "log_line_prefix = '%%m [%%p] '\n" % (self.port, self.tmp))

    def _start_watcher(self):
        """A detached process that tears the server down once this process is gone."""
        p = subprocess.Popen([sys.executable, HERE, "watch", self.tmp], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self._watch = p.stdin
        p.wait(30)  # the watcher's first process exits once its detached child runs

    def stop(self, mode="fast"):
        """pg_ctl stop: the server goes away (connections see it close); start_again brings it back."""
        _pg_ctl(self.tmp, "stop", extra=["-m", mode])

    def start_again(self):
        """pg_ctl start of a stopped server, on the same port and data."""
        _pg_ctl(self.tmp, "start")

    def restart(self, mode="fast"):
        """pg_ctl restart: every connection is closed, the server is back on the same port."""
        _pg_ctl(self.tmp, "restart", extra=["-m", mode])

    def remove(self):
        """Stops the server (immediately) and deletes its directory. Safe to call twice."""
        if self.tmp is None:
            return
        _teardown(self.tmp)
        self.tmp = None
        if self._watch is not None:
            try:
                self._watch.close()  # the watcher finds nothing left and exits
            except OSError:
                pass
            self._watch = None

    def log(self):
        """The server's log so far."""
        return _tail(self.tmp, 1 << 20) if self.tmp else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if exc[0] is not None and self.tmp is not None:
            sys.stderr.write("---- postgres.log (tail) ----\n%s\n" % _tail(self.tmp))
        self.remove()
        return False

    # -- using it ------------------------------------------------------------
    def conninfo(self, db=None):
        """A libpq connection string for database db (default: the one given at construction, else postgres)."""
        return "host=127.0.0.1 port=%d user=%s dbname=%s connect_timeout=10" % (self.port, USER,
                                                                                 db or self.db or "postgres")

    def url(self, db=None):
        """The same as a postgresql:// URI."""
        return "postgresql://%s@127.0.0.1:%d/%s?connect_timeout=10" % (USER, self.port, db or self.db or "postgres")

    def sql(self, text, db=None, check=True):
        """Runs SQL through psql (stops at the first error); returns its output, unaligned, tuples only."""
        p = subprocess.run([os.path.join(pg_bin(), "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-d", self.conninfo(db), "-c", text], capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError("psql failed (%d) on %r: %s" % (p.returncode, text[:200], p.stderr))
        return p.stdout if check else p

    def create_db(self, name):
        """Creates an empty database (names are letters, digits and _)."""
        if not name.replace("_", "").isalnum():
            raise ValueError("database name %r" % name)
        self.sql('CREATE DATABASE "%s"' % name, db="postgres")
        return name


_shared = None


def shared():
    """One server for the whole test file: started on first use, removed when the process exits."""
    global _shared
    if _shared is None:
        _shared = Postgres().start()
        atexit.register(_shared.remove)
    return _shared


_db_seq = [0]
_db_seq_lock = threading.Lock()


def fresh_db(prefix="t"):
    """A new empty database on the shared server; returns its name."""
    with _db_seq_lock:
        _db_seq[0] += 1
        n = _db_seq[0]
    return shared().create_db("%s_%d_%d" % (prefix, os.getpid(), n))


class _Spares:
    """Empty databases made ahead on the shared server by a background thread (CREATE DATABASE takes
    about half a second with fsync on), so that a test that needs many gets each at once."""

    AHEAD = 1

    def __init__(self):
        self.cond = threading.Condition()
        self.ready = []
        self.error = None
        threading.Thread(target=self._fill, daemon=True).start()

    def _fill(self):
        while True:
            with self.cond:
                while len(self.ready) >= self.AHEAD:
                    self.cond.wait()
            try:
                name = fresh_db("hk")
            except Exception as e:  # the server went away (the process is ending): stop making them
                with self.cond:
                    self.error = e
                    self.cond.notify_all()
                return
            with self.cond:
                self.ready.append(name)
                self.cond.notify_all()

    def take(self):
        with self.cond:
            while not self.ready:
                if self.error is not None:
                    raise self.error
                self.cond.wait()
            name = self.ready.pop(0)
            self.cond.notify_all()
            return name


_spares = None


def spare_db():
    """An empty database on the shared server, made ahead (see _Spares); returns its name."""
    global _spares
    shared()
    if _spares is None:
        _spares = _Spares()
    return _spares.take()


# -- the command line -------------------------------------------------------------
def _watch_main(tmp):
    """Detaches, then waits for EOF on stdin (our creator has ended) and tears tmp's server down."""
    if os.fork() != 0:
        os._exit(0)
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    if os.path.isdir(tmp):
        _teardown(tmp)
    os._exit(0)


def _run_main(argv):
    db = "hookd"
    if argv[:1] == ["--db"]:
        db, argv = argv[1], argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: pg_fixture.py run [--db NAME] -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    pg = Postgres(db=db)
    try:
        pg.start()
    except Exception as e:
        print("pg_fixture: cannot start PostgreSQL: %s" % e, file=sys.stderr)
        pg.remove()
        return 1
    env = dict(os.environ)
    env["HOOKD_TEST_PG"] = pg.conninfo()
    env["HOOKD_TEST_PG_CTL"] = "%s %s ctl %s" % (sys.executable, HERE, pg.tmp)
    # ctest stops a test that runs too long with a signal: tear down first.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, f: (pg.remove(), os._exit(128 + s)))
    try:
        rc = subprocess.run(argv, env=env).returncode
        if rc != 0:
            sys.stdout.write("---- postgres.log (tail) ----\n%s\n" % _tail(pg.tmp))
    finally:
        pg.remove()
    return rc if rc >= 0 else 128 - rc


def main(argv):
    if len(argv) >= 1 and argv[0] == "run":
        return _run_main(argv[1:])
    if len(argv) == 3 and argv[0] == "ctl" and argv[2] in ("stop", "start", "restart"):
        extra = ["-m", "fast"] if argv[2] != "start" else []
        p = _pg_ctl(argv[1], argv[2], check=False, extra=extra)
        if p.returncode != 0:
            sys.stderr.write("pg_ctl %s failed: %s%s\n%s\n" % (argv[2], p.stdout, p.stderr, _tail(argv[1])))
        return p.returncode
    if len(argv) == 2 and argv[0] == "watch":
        _watch_main(argv[1])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
