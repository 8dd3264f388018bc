"""End to end: the PostgreSQL fixture every cluster test stands on (tests/e2e/pg_fixture.py).

- The server it starts is the one the tests need: on 127.0.0.1 only, run by
  the postgres user (not root), with fsync and synchronous_commit on.
- A restart closes the connections and comes back on the same port with
  what was committed.
- It leaves nothing behind, also when the process that started it is killed
  with SIGKILL (its watcher stops the server and deletes the directory).
- `pg_fixture.py run` hands a command its connection string and the control
  command, and passes the command's exit status on.
"""
import os
import subprocess
import sys
import time

from hookd_test import run
import pg_fixture

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pg_fixture.py")


def server_pids(tmp):
    """Pids of processes whose command line names tmp (the postmaster's -D, its children by parentage)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                if tmp.encode() in f.read():
                    pids.append(int(d))
        except OSError:
            pass
    return pids


def gone_within(tmp, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not os.path.exists(tmp) and not server_pids(tmp):
            return True
        time.sleep(0.1)
    return False


def test_the_server_listens_on_loopback_as_postgres_with_fsync_on():
    pg = pg_fixture.shared()
    db = pg_fixture.fresh_db()
    out = pg.sql("SHOW listen_addresses; SHOW fsync; SHOW synchronous_commit; SELECT current_database();"
                 "SELECT usename FROM pg_stat_activity WHERE pid = pg_backend_pid()", db=db).split()
    assert out == ["127.0.0.1", "on", "on", db, "postgres"], out
    # The postmaster's owner is the postgres system user, never root.
    with open(os.path.join(pg.tmp, "data", "postmaster.pid")) as f:
        pid = int(f.readline())
    uid = os.stat("/proc/%d" % pid).st_uid
    assert uid != 0, "the server runs as root"
    # Nothing answers on another address of this machine.
    assert pg.conninfo().startswith("host=127.0.0.1 ")
    p = subprocess.run([os.path.join(pg_fixture.pg_bin(), "pg_isready"), "-h", "127.0.0.2", "-p", str(pg.port),
                        "-t", "3"], capture_output=True, text=True)
    assert p.returncode != 0, p.stdout


def test_a_restart_keeps_the_port_and_what_was_committed():
    pg = pg_fixture.shared()
    db = pg_fixture.fresh_db()
    pg.sql("CREATE TABLE t (v int); INSERT INTO t VALUES (41), (1)", db=db)
    port = pg.port
    pg.restart()
    assert pg.port == port
    assert pg.sql("SELECT sum(v) FROM t", db=db).strip() == "42"
    pg.stop()
    p = pg.sql("SELECT 1", db=db, check=False)
    assert p.returncode != 0, "a stopped server answered"
    pg.start_again()
    assert pg.sql("SELECT count(*) FROM t", db=db).strip() == "2"


def test_nothing_is_left_when_the_owner_is_killed():
    code = ("import os, sys; sys.path.insert(0, %r); import pg_fixture; pg = pg_fixture.shared(); "
            "pg.create_db('k'); print(pg.tmp, flush=True); os.kill(os.getpid(), 9)" %
            os.path.dirname(FIXTURE))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == -9, (p.returncode, p.stderr)
    tmp = p.stdout.strip()
    assert tmp.startswith("/tmp/hookd-pg-"), p.stdout
    assert gone_within(tmp), "the server of a killed owner is still there: %s" % tmp


def test_run_hands_the_command_its_server_and_passes_its_status_on():
    script = ('echo "$HOOKD_TEST_PG"; $HOOKD_TEST_PG_CTL restart || exit 9; '
              '%s -X -At -d "$HOOKD_TEST_PG" -c "SELECT current_database()" || exit 8; exit 3' %
              os.path.join(pg_fixture.pg_bin(), "psql"))
    p = subprocess.run([sys.executable, FIXTURE, "run", "--db", "mine", "--", "sh", "-c", script],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    assert lines[0].startswith("host=127.0.0.1 port=") and "dbname=mine" in lines[0], lines
    assert lines[1] == "mine", lines
    # A failing command gets the server's log, and the server is gone.
    assert "postgres.log" in p.stdout
    port = lines[0].split()[1]
    assert not [d for d in os.listdir("/tmp") if d.startswith("hookd-pg-") and
                os.path.exists("/tmp/%s/.s.PGSQL.%s" % (d, port.split("=")[1]))]


if __name__ == "__main__":
    run(globals())
