"""End to end: `hookd migrate` and the [cluster] keys, against a real PostgreSQL.

- On an empty database it creates the schema and records each migration; a
  second run says there is nothing to do and changes nothing.
- Several nodes migrating one database at once all succeed, and each
  migration is recorded once.
- A schema newer than the binary knows is refused with exit code 2 and a
  message naming both versions; nothing changes.
- Without [cluster] postgres, with a malformed one (the value is never
  echoed: it may hold a password) or a bad [cluster] migrate: exit 2. A
  database that cannot be reached: exit 1, naming why. A database not in
  UTF8: refused, nothing recorded.
- A command other than migrate on a database without the schema, with an
  older one or that cannot be reached fails with one line saying why (run
  `hookd migrate`, the connection's error), even at the debug log level.
- The connection string may come from the config file, the environment or
  be a postgresql:// URI.
"""
import os
import re
import subprocess
import tempfile

from hookd_test import BIN, run, sanitizer_report
import pg_fixture

SOURCE_DIR = os.environ.get("HOOKD_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
# The migrations built into the binary, as hookd_schema records them: "N|name".
MIGRATIONS = ["%d|%s" % (int(f[:3]), f[4:-4]) for f in
              sorted(os.listdir(os.path.join(SOURCE_DIR, "src", "state", "pg_schema"))) if f.endswith(".sql")]
LAST = len(MIGRATIONS)


def hookd(*args, env=None, config_text=None):
    """Runs the real binary in a scratch directory; fails on a crash or a sanitizer report."""
    tmp = tempfile.mkdtemp(prefix="hookd-pgm-")
    argv = [BIN] + list(args)
    if config_text is not None:
        path = os.path.join(tmp, "hookd.conf")
        with open(path, "w") as f:
            f.write(config_text)
        argv += ["--config", path]
    e = {k: v for k, v in os.environ.items() if not k.startswith("HOOKD_CLUSTER_")}
    e.update(env or {})
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp, env=e)
    assert p.returncode >= 0, "hookd %s died of signal %d:\n%s" % (" ".join(args), -p.returncode, p.stderr)
    assert sanitizer_report(p.stderr) is None, p.stderr
    subprocess.run(["rm", "-rf", tmp])
    return p


def migrate(conninfo, **kw):
    return hookd("migrate", env={"HOOKD_CLUSTER_POSTGRES": conninfo}, **kw)


def schema_rows(pg, db):
    return pg.sql("SELECT version, name FROM hookd_schema ORDER BY version", db=db).split()


def test_migrate_creates_the_schema_once():
    pg = pg_fixture.shared()
    db = pg_fixture.fresh_db()
    p = migrate(pg.conninfo(db))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "schema is at version %d: %d migrations applied" % (LAST, LAST), p.stdout
    assert schema_rows(pg, db) == MIGRATIONS
    assert MIGRATIONS[:2] == ["1|schema", "2|ops"], MIGRATIONS
    tables = set(pg.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", db=db).split())
    for t in ("webhooks", "webhook_subscriptions", "webhook_stats", "event_types", "events", "deliveries",
              "idempotency_keys", "attempts_default", "users", "api_keys", "nodes", "accounts", "cluster_members",
              "failure_mails", "hookd_schema"):
        assert t in tables, (t, tables)
    applied_at = pg.sql("SELECT applied_at FROM hookd_schema", db=db)
    p = migrate(pg.conninfo(db))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "schema is at version %d: nothing to do" % LAST, p.stdout
    assert pg.sql("SELECT applied_at FROM hookd_schema", db=db) == applied_at


def test_nodes_migrating_at_once_record_each_migration_once():
    pg = pg_fixture.shared()
    db = pg_fixture.fresh_db()
    env = dict(os.environ, HOOKD_CLUSTER_POSTGRES=pg.conninfo(db))
    procs = [subprocess.Popen([BIN, "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd="/tmp") for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert sanitizer_report(err) is None, err
    # Each says where the schema is; between them, each migration was applied once.
    applied = 0
    for out, _ in outs:
        m = re.fullmatch(r"schema is at version (\d+): (nothing to do|(\d+) migrations? applied)", out.strip())
        assert m and int(m.group(1)) == LAST, outs
        applied += int(m.group(3) or 0)
    assert applied == LAST, outs
    assert schema_rows(pg, db) == MIGRATIONS


def test_a_newer_schema_is_refused_with_exit_2():
    pg = pg_fixture.shared()
    db = pg_fixture.fresh_db()
    assert migrate(pg.conninfo(db)).returncode == 0
    pg.sql("INSERT INTO hookd_schema (version, name) VALUES (%d, 'from_the_future')" % (LAST + 1), db=db)
    p = migrate(pg.conninfo(db))
    assert p.returncode == 2, (p.returncode, p.stderr)
    line = p.stderr.strip()
    assert "\n" not in line, line
    assert "version %d, newer than this hookd" % (LAST + 1) in line and "knows (%d)" % LAST in line, line
    assert schema_rows(pg, db) == MIGRATIONS + ["%d|from_the_future" % (LAST + 1)]


def test_the_connection_string_from_a_file_or_as_a_uri():
    pg = pg_fixture.shared()
    db = pg_fixture.fresh_db()
    p = hookd("migrate", config_text="[cluster]\npostgres = %s\nmigrate = off\n" % pg.conninfo(db))
    assert p.returncode == 0, p.stderr
    assert schema_rows(pg, db) == MIGRATIONS
    db2 = pg_fixture.fresh_db()
    p = migrate(pg.url(db2))
    assert p.returncode == 0, p.stderr
    assert schema_rows(pg, db2) == MIGRATIONS


def test_configuration_mistakes_exit_2_without_echoing_the_value():
    p = hookd("migrate")
    assert p.returncode == 2 and "needs [cluster] postgres" in p.stderr, p.stderr
    for bad in ("sekrit", "host=x password='sekrit", "host=x sekrit"):
        p = migrate(bad)
        assert p.returncode == 2, (bad, p.returncode, p.stderr)
        assert "HOOKD_CLUSTER_POSTGRES: cluster.postgres:" in p.stderr, p.stderr
        assert "sekrit" not in p.stderr, p.stderr
    p = hookd("migrate", config_text="[cluster]\npostgres = host=127.0.0.1\nmigrate = sometimes\n")
    assert p.returncode == 2 and "hookd.conf:3: cluster.migrate: expected auto or off" in p.stderr, p.stderr
    p = hookd("migrate", env={"HOOKD_CLUSTER_POSTGRES": "host=x", "HOOKD_CLUSTER_MIGRATE": "never"})
    assert p.returncode == 2 and "HOOKD_CLUSTER_MIGRATE: cluster.migrate: expected auto or off" in p.stderr, p.stderr
    p = hookd("migrate", env={"HOOKD_CLUSTER_POSTGRESS": "host=x"})
    assert p.returncode == 2 and "HOOKD_CLUSTER_POSTGRESS" in p.stderr, p.stderr


def test_an_unreachable_database_fails_with_exit_1():
    port = pg_fixture.free_port()
    p = migrate("host=127.0.0.1 port=%d dbname=x password=sekrit connect_timeout=5" % port)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "cannot connect to PostgreSQL" in p.stderr and "sekrit" not in p.stderr, p.stderr


def test_a_command_on_an_older_schema_or_an_unreachable_database_says_why_in_one_line():
    # Even at the debug level: a command's stderr is its one error line, not the engine's log.
    pg = pg_fixture.shared()
    db = pg_fixture.fresh_db()
    env = {"HOOKD_CLUSTER_POSTGRES": pg.conninfo(db), "HOOKD_LOG_LEVEL": "debug"}
    p = hookd("user", "list", env=env)
    assert p.returncode == 1 and p.stdout == "", p
    line = p.stderr.strip()
    assert "\n" not in line and "no hookd schema" in line and "run `hookd migrate`" in line, line
    assert "newer" not in line and "migrate = auto" not in line, line
    assert migrate(pg.conninfo(db)).returncode == 0
    pg.sql("DELETE FROM hookd_schema WHERE version = %d" % LAST, db=db)
    p = hookd("user", "list", env=env)
    assert p.returncode == 1 and p.stdout == "", p
    line = p.stderr.strip()
    assert "\n" not in line and "run `hookd migrate`" in line, line
    assert "version %d, older than this hookd's %d" % (LAST - 1, LAST) in line, line
    port = pg_fixture.free_port()
    p = hookd("user", "list", env={"HOOKD_CLUSTER_POSTGRES": "host=127.0.0.1 port=%d dbname=x connect_timeout=5" % port,
                                   "HOOKD_LOG_LEVEL": "debug"})
    assert p.returncode == 1 and p.stdout == "", p
    line = p.stderr.strip()
    assert "\n" not in line and "cannot connect to PostgreSQL" in line, line


def test_a_database_not_in_utf8_is_refused():
    pg = pg_fixture.shared()
    pg.sql("CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    p = migrate(pg.conninfo("latin"))
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "UTF8" in p.stderr, p.stderr
    # The failed migration's transaction took its record, and the record's table, with it.
    assert pg.sql("SELECT to_regclass('hookd_schema') IS NULL, to_regclass('webhooks') IS NULL",
                  db="latin").strip() == "t|t"


if __name__ == "__main__":
    run(globals())
