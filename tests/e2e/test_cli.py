"""End to end: the command line itself (help, usage errors, what commands may create)."""
import os
import shutil
import signal
import subprocess
import tempfile

from hookd_test import BIN, ENGINE, Server, engine_env, run, sanitizer_report

COMMANDS = [("user", "add"), ("user", "set"), ("user", "list"), ("key", "create"), ("key", "revoke"),
            ("key", "list"), ("webhook", "lock"), ("webhook", "unlock"), ("node", "add"), ("node", "import"),
            ("node", "list"), ("account", "add"), ("account", "import"), ("account", "list")]


class Dir:
    """A temporary directory with a data directory path inside it that does not exist yet."""

    def __enter__(self):
        self.tmp = tempfile.mkdtemp(prefix="hookd-cli-")
        self.data = os.path.join(self.tmp, "data")
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.tmp, ignore_errors=True)
        return False


def hookd(*args, cwd=None, env=None):
    """Runs the real binary; fails on a crash or a sanitizer report."""
    e = dict(os.environ)
    e.pop("HOOKD_STORE_DATA_DIR", None)
    if "--data" in args and args.index("--data") + 1 < len(args):
        e.update(engine_env(args[args.index("--data") + 1]))  # the engine under test for that directory
    e.update(env or {})
    p = subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=60, cwd=cwd, env=e)
    assert p.returncode >= 0, "hookd %s died of signal %d:\n%s" % (" ".join(args), -p.returncode, p.stderr)
    assert sanitizer_report(p.stderr) is None, p.stderr
    return p


def assert_nothing_stored_yet(d, p, args):
    """A command that needs stored state, run where there is none, says so in one line: on the embedded
    engine, no data directory at d.data; on PostgreSQL (an empty database), that the schema is missing."""
    line = one_line(p.stderr)
    if ENGINE == "pg":
        assert "hookd migrate" in line and "newer" not in line, (args, p.stderr)
    else:
        assert d.data in line and "no data directory" in line, (args, p.stderr)


def one_line(text):
    lines = text.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0], "expected one line, got %r" % text
    return lines[0]


def test_a_global_option_without_a_command_is_a_usage_error():
    # Used to dereference a missing command: SIGSEGV.
    with Dir() as d:
        for args in (["--data", d.data], ["--config", os.path.join(d.tmp, "none.conf")], ["-d", d.data],
                     ["--data", d.data, "--listen", "127.0.0.1:0"]):
            p = hookd(*args, cwd=d.tmp)
            assert p.returncode == 2, (args, p)
            assert "no command" in one_line(p.stderr), p.stderr
            assert p.stdout == ""
        assert not os.path.exists(d.data)
        p = hookd(cwd=d.tmp)
        assert p.returncode == 2 and "usage: hookd" in p.stderr, p
        p = hookd("--data", cwd=d.tmp)
        assert p.returncode == 2 and "--data needs a value" in one_line(p.stderr), p


def test_every_command_answers_help_without_touching_anything():
    with Dir() as d:
        bad_conf = os.path.join(d.tmp, "bad.conf")
        with open(bad_conf, "w") as f:
            f.write("[delivery]\nretry_schedule = 1s,5x\n")
        forms = [(noun, verb, [noun, verb, "--help"]) for noun, verb in COMMANDS]
        forms += [("user", "add", ["user", "add", "-h"]), ("key", "revoke", ["help", "key", "revoke"]),
                  ("node", "import", ["--help", "node", "import"]),
                  ("user", "set", ["user", "set", "--code", "x", "--help"]),
                  ("webhook", "lock", ["webhook", "lock", "7", "--help"])]
        for noun, verb, form in forms:
            # Help needs neither a good configuration nor a data directory.
            p = hookd(*(form + ["--data", d.data, "--config", bad_conf]), cwd=d.tmp)
            assert p.returncode == 0, (form, p)
            assert "hookd %s %s" % (noun, verb) in p.stdout, (form, p.stdout)
            assert p.stderr == "", (form, p.stderr)
        for noun in ("user", "key", "webhook", "node", "account"):
            p = hookd(noun, "--help", "--data", d.data, cwd=d.tmp)
            assert p.returncode == 0 and p.stdout.count("hookd %s " % noun) >= 2, p
        for form in (["--help"], ["-h"], ["help"], ["serve", "--help"]):
            p = hookd(*(form + ["--data", d.data]), cwd=d.tmp)
            assert p.returncode == 0 and "hookd serve" in p.stdout, (form, p)
        p = hookd("--help", cwd=d.tmp)
        for noun, verb in COMMANDS:
            assert "hookd %s %s" % (noun, verb) in p.stdout, (noun, verb, p.stdout)
        assert not os.path.exists(d.data), os.listdir(d.tmp)
        assert not os.path.exists(os.path.join(d.tmp, "data"))
        p = hookd("frob", "--help", cwd=d.tmp)
        assert p.returncode == 2 and "frob" in one_line(p.stderr), p


def test_a_wrong_or_missing_argument_is_named_in_one_line():
    cases = [
        (["user", "add", "--code", "x"], "user add needs --perm"),
        (["user", "add", "--perm", "all"], "user add needs --code"),
        (["user", "add"], "--code CODE, --perm"),
        (["user", "add", "--code"], "--code needs a value"),
        (["user", "add", "--code", "--perm", "all"], "--code needs a value"),
        (["user", "add", "--code", "a", "--perm", "all", "--code", "b"], "--code given twice"),
        (["user", "add", "--code", "a", "--perm", "all", "--colour", "red"], "unknown option --colour"),
        (["user", "add", "--code", "a", "--perm", "Nope:Nope"], "Nope:Nope"),
        (["user", "add", "--code", "a", "--perm", "all", "--top-node", "x"], "--top-node"),
        (["user", "set", "--code", "x"], "one of --name, --perm, --top-node"),
        (["user", "set", "--name", "x"], "user set needs --code"),
        (["user", "list", "extra"], "unexpected argument \"extra\""),
        (["user", "list", "--code", "x"], "unknown option --code"),
        (["user"], "user needs one of: add, set, list"),
        (["user", "frob"], "unknown command \"user frob\""),
        (["frob"], "unknown command \"frob\""),
        (["key", "create"], "key create needs --user"),
        (["key", "revoke"], "key revoke needs KEY|KEY-ID"),
        (["key", "revoke", "a", "b"], "unexpected argument \"b\""),
        (["webhook", "lock"], "webhook lock needs ID"),
        (["webhook", "unlock", "abc"], "\"abc\""),
        (["webhook", "lock", "0"], "positive"),
        (["node", "add", "--id", "1"], "node add needs --name"),
        (["node", "add", "--id", "x", "--name", "n"], "--id"),
        (["node", "add", "--id", "1", "--name", "n", "--node", "2"], "unknown option --node"),
        (["node", "import"], "node import needs FILE.csv"),
        (["account", "add", "--id", "1", "--name", "x"], "account add needs --node"),
        (["account", "import", "a.csv", "b.csv"], "unexpected argument \"b.csv\""),
        (["serve", "extra"], "unexpected argument \"extra\""),
        (["serve", "--code", "x"], "unknown option --code"),
    ]
    with Dir() as d:
        for args, needle in cases:
            p = hookd(*(args + ["--data", d.data]), cwd=d.tmp)
            assert p.returncode == 2, (args, p)
            line = one_line(p.stderr)
            assert line.startswith("hookd: ") and needle in line, (args, line)
            assert p.stdout == "", (args, p.stdout)
        # None of them created anything.
        assert os.listdir(d.tmp) == [], os.listdir(d.tmp)


def test_commands_that_need_data_do_not_create_the_data_directory():
    with Dir() as d:
        for args in (["user", "list"], ["key", "list"], ["node", "list"], ["account", "list"],
                     ["user", "set", "--code", "x", "--name", "y"], ["key", "create", "--user", "x"],
                     ["key", "revoke", "hk_nokey"], ["webhook", "lock", "1"], ["webhook", "unlock", "1"]):
            p = hookd(*(args + ["--data", d.data]), cwd=d.tmp)
            assert p.returncode == 1, (args, p)
            assert_nothing_stored_yet(d, p, args)
            assert not os.path.exists(d.data), args
        # An import of a file that is not there creates nothing either.
        p = hookd("node", "import", os.path.join(d.tmp, "missing.csv"), "--data", d.data, cwd=d.tmp)
        assert p.returncode == 1 and "missing.csv" in p.stderr and not os.path.exists(d.data), p
        # A command that stores something creates it (on PostgreSQL, once the schema is there); then the
        # others work on it.
        if ENGINE == "pg":
            assert hookd("migrate", "--data", d.data, cwd=d.tmp).returncode == 0
        p = hookd("user", "add", "--code", "ops", "--perm", "all", "--data", d.data, cwd=d.tmp)
        assert p.returncode == 0 and (os.path.isdir(d.data) or ENGINE == "pg"), p
        p = hookd("user", "list", "--data", d.data, cwd=d.tmp)
        assert p.returncode == 0 and "\tops\tops\t" in p.stdout, p
        p = hookd("key", "create", "--user", "ops", "--data", d.data, cwd=d.tmp)
        assert p.returncode == 0 and p.stdout.startswith("hk_"), p
        kid = p.stderr.split("key id ")[1].split()[0]
        p = hookd("key", "list", "--data", d.data, cwd=d.tmp)
        assert p.returncode == 0 and kid in p.stdout, p


def test_global_options_anywhere_and_a_key_id_with_a_dash():
    with Server() as s:
        # Global options before, between and after the command's words.
        p = s.cli("--data", s.data, "user", "add", "--code", "early", "--perm", "Events:Signal")
        assert p.stdout.strip().isdigit(), p
        p = subprocess.run([BIN, "user", "--data", s.data, "list"], capture_output=True, text=True, timeout=60,
                           env=s.env)
        assert p.returncode == 0 and "\tearly\t" in p.stdout, p
        # "--" ends the options: what follows is the argument even when it looks like one.
        p = s.cli("key", "revoke", "--", "--nokey", check=False)
        assert p.returncode == 1 and "no such key" in p.stderr, p


if __name__ == "__main__":
    run(globals())
