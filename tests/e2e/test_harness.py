"""Self-test of the e2e harness: each of its checks fires.

Nothing here crashes hookd. A stand-in server (a small script that prints
hookd's "listening"/"ready" lines and then, on request, a sanitizer report)
plays the part of a broken build, so the checks are proved on every path: a
passing test, a failing test, a SIGKILL, a report written at exit, a server
the test forgot to stop, a test that swallows the error, and a run that
selects no test at all.
"""
LMDB_ONLY = "the harness's own checks, whatever the engine; the pg ones are proved here with HOOKD_TEST_ENGINE=pg"

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import hookd_test
from hookd_test import Server, run, run_tests, sanitizer_report

FAKE = r'''
import os, signal, sys, time
report = os.environ.get("FAKE_REPORT", "")
when = os.environ.get("FAKE_WHEN", "start")
def on_term(signum, frame):
    if when == "exit":
        sys.stderr.write(report + "\n")
        sys.stderr.flush()
    sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
signal.signal(signal.SIGTERM, on_term)
# A report "at start" is written before the ready line, so that it is in the
# log by the time the harness sees the server ready (no race with SIGTERM).
sys.stderr.write("info listening on http://127.0.0.1:9\n" + (report + "\n" if when == "start" else "") +
                 "info hookd ready\n")
sys.stderr.flush()
while True:
    time.sleep(0.1)
'''

ASAN = ("=================================================================\n"
        "==4242==ERROR: AddressSanitizer: heap-use-after-free on address 0x602000000010\n"
        "    #0 0x55 in account_action src/api/api_sync.c:812\n"
        "SUMMARY: AddressSanitizer: heap-use-after-free src/api/api_sync.c:812 in account_action")
LSAN = ("==4242==ERROR: LeakSanitizer: detected memory leaks\n"
        "Direct leak of 24 byte(s) in 1 object(s) allocated from:\n"
        "SUMMARY: AddressSanitizer: 24 byte(s) leaked in 1 allocation(s).")
UBSAN = "src/net/http_server.c:301:17: runtime error: signed integer overflow: 2147483647 + 1 cannot be represented"
UBSAN_SUMMARY = "SUMMARY: UndefinedBehaviorSanitizer: undefined-behavior src/util/date.c:40:9 in"

_tmp = tempfile.mkdtemp(prefix="hookd-harness-")
atexit.register(shutil.rmtree, _tmp, True)
FAKE_BIN = os.path.join(_tmp, "fake-hookd")
with open(FAKE_BIN, "w") as f:
    f.write("#!%s\n%s" % (sys.executable, FAKE))
os.chmod(FAKE_BIN, 0o755)


def fake(report="", when="start", exit_code=0):
    return Server(bin=FAKE_BIN, env={"FAKE_REPORT": report, "FAKE_WHEN": when, "FAKE_EXIT": str(exit_code)})


def raises(fn, needle):
    """Runs fn, which must raise AssertionError whose text holds needle; returns the exception."""
    try:
        fn()
    except AssertionError as e:
        assert needle in str(e), "wrong failure: %s" % e
        return e
    raise AssertionError("expected a failure mentioning %r, got none" % needle)


def wait_for_log(s, text):
    deadline = time.time() + 10
    while text not in s.log():
        assert time.time() < deadline, "fake server never wrote %r" % text
        time.sleep(0.02)


def nested(tests):
    """Runs tests with the harness's runner, as ctest would, keeping the output out of this test's."""
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = open(os.devnull, "w")
    try:
        return run_tests(tests)
    finally:
        sys.stdout.close()
        sys.stdout, sys.stderr = saved


def expect_report(body):
    """Runs body as a test of its own under the harness's runner.

    body must reach its end (its own checks pass: the harness raised where it
    should) and the runner must still count that test as failed, because a
    server it started left a sanitizer report."""
    reached = []

    def test():
        body()
        reached.append(True)

    result = nested([("inner", test)])
    assert reached == [True], "the harness did not raise where it should (see the inner test)"
    assert result == (0, 1), "the runner did not fail the test that owned the server: %r" % (result,)


def test_every_marker_is_recognised():
    for text in (ASAN, LSAN, UBSAN, UBSAN_SUMMARY):
        assert sanitizer_report("info hookd ready\n" + text + "\ninfo stopped\n") is not None, text
    assert sanitizer_report("info hookd ready\ninfo received SIGTERM: draining\ninfo stopped\n") is None
    assert sanitizer_report("") is None


def test_clean_server_passes():
    # The checks do not fire on a clean log: they are not failing everything.
    with fake() as s:
        assert s.port == 9
    assert s.reports == []
    assert nested([("t", lambda: fake().start())]) == (1, 0)


def test_report_fails_a_passing_test():
    def body():
        def passing():
            with fake(ASAN):
                pass
        raises(passing, "heap-use-after-free")
    expect_report(body)


def test_report_fails_a_failing_test_and_keeps_its_error():
    def body():
        def failing():
            with fake(UBSAN):
                raise ValueError("the test's own failure")
        e = raises(failing, "runtime error:")
        assert isinstance(e.__context__, ValueError), repr(e.__context__)
    expect_report(body)


def test_report_before_sigkill_is_found():
    def body():
        s = fake(ASAN).start()
        wait_for_log(s, "heap-use-after-free")
        raises(s.kill9, "heap-use-after-free")
    expect_report(body)


def test_report_written_at_exit_is_found():
    # LeakSanitizer reports when the process exits, after SIGTERM.
    def body():
        s = fake(LSAN, when="exit").start()
        raises(s.stop, "LeakSanitizer")
    expect_report(body)


def test_report_of_an_earlier_generation_is_found():
    def body():
        s = fake(UBSAN_SUMMARY, when="exit").start()
        s.proc.send_signal(signal.SIGTERM)
        s.proc.wait(10)
        s.proc = None
        # A new generation writes a new log; the old one is still scanned.
        s.env["FAKE_REPORT"] = ""
        s.start()
        raises(s.cleanup, "UndefinedBehaviorSanitizer")
    expect_report(body)


def test_nonzero_exit_after_sigterm_fails():
    raises(lambda: fake(exit_code=3).start().stop(), "exited 3 after SIGTERM")


def test_runner_fails_a_test_that_swallows_the_report():
    def swallow_kill9():
        s = fake(ASAN).start()
        wait_for_log(s, "heap-use-after-free")
        try:
            s.kill9()
        except AssertionError:
            pass

    def swallow_exit():
        try:
            with fake(LSAN, when="exit"):
                pass
        except AssertionError:
            pass

    def forgets_to_stop():
        s = fake(LSAN, when="exit").start()
        assert s.proc is not None

    def forgets_a_killed_server():
        s = fake(UBSAN).start()
        wait_for_log(s, "runtime error:")
        s.proc.kill()
        s.proc.wait()
        s.proc = None

    tests = [("swallow_kill9", swallow_kill9), ("swallow_exit", swallow_exit),
             ("forgets_to_stop", forgets_to_stop), ("forgets_a_killed_server", forgets_a_killed_server)]
    for name, fn in tests:
        expect_report(fn)
    # The runner stopped the forgotten servers and counted only the test's own servers.
    assert hookd_test._servers == [], hookd_test._servers


def run_file(text, env=None):
    """Runs a test file through the harness's driver, as ctest does; returns (exit code, output)."""
    with tempfile.TemporaryDirectory(prefix="hookd-harness-") as d:
        path = os.path.join(d, "test_sample.py")
        with open(path, "w") as f:
            f.write(text)
        e = dict(os.environ)
        e.pop("HOOKD_TEST_ONLY", None)
        e.pop("HOOKD_TEST_ENGINE", None)
        e.update(env or {})
        driver = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hookd_test.py")
        p = subprocess.run([sys.executable, driver, path], env=e, capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout + p.stderr


def test_a_run_selecting_no_test_fails():
    rc, out = run_file("X = 1\n")
    assert rc == 1 and "no tests selected" in out, (rc, out)
    rc, out = run_file("def test_one():\n    pass\n", env={"HOOKD_TEST_ONLY": "nothing_matches_this"})
    assert rc == 1 and "no tests selected" in out and "nothing_matches_this" in out, (rc, out)


def test_the_driver_runs_a_file_without_run_call():
    # No `run(globals())` at the bottom: the tests still run, and a failing one fails the file.
    rc, out = run_file("def test_ok():\n    pass\n\ndef test_bad():\n    assert 1 == 2\n")
    assert rc == 1 and "1 passed, 1 failed" in out and "FAIL test_bad" in out, (rc, out)
    rc, out = run_file("def test_ok():\n    pass\n")
    assert rc == 0 and "1 passed, 0 failed" in out, (rc, out)


def test_a_sanitizer_report_fails_the_file():
    text = ("import sys\nsys.path.insert(0, %r)\nimport test_harness\n"
            "def test_passes_but_server_reported():\n"
            "    with test_harness.fake(test_harness.ASAN):\n"
            "        pass\n") % os.path.dirname(os.path.abspath(__file__))
    rc, out = run_file(text)
    assert rc == 1 and "0 passed, 1 failed" in out and "heap-use-after-free" in out, (rc, out)


PG = {"HOOKD_TEST_ENGINE": "pg"}
HARNESS_PATH = "import sys\nsys.path.insert(0, %r)\n" % os.path.dirname(os.path.abspath(__file__))


def test_lmdb_only_tests_are_skipped_on_postgresql_with_their_reason():
    text = ("from hookd_test import lmdb_only\n"
            "@lmdb_only('the LMDB file itself')\n"
            "def test_file():\n    assert 1 == 2\n"
            "def test_api():\n    pass\n")
    rc, out = run_file(text, env=PG)
    assert rc == 0 and "skip test_file (LMDB only: the LMDB file itself)" in out and "1 passed, 0 failed" in out, out
    rc, out = run_file(text)  # the embedded engine runs it (and here it fails)
    assert rc == 1 and "FAIL test_file" in out and "1 passed, 1 failed" in out, (rc, out)
    # Nothing left to run on PostgreSQL: a run that tests nothing fails, and so does a file marked LMDB_ONLY.
    rc, out = run_file("from hookd_test import lmdb_only\n@lmdb_only('why')\ndef test_file():\n    pass\n", env=PG)
    assert rc == 1 and "no tests selected that run on PostgreSQL" in out, (rc, out)
    rc, out = run_file("LMDB_ONLY = 'the log'\ndef test_x():\n    pass\n", env=PG)
    assert rc == 1 and "runs on LMDB only (the log)" in out, (rc, out)
    rc, out = run_file("LMDB_ONLY = 'the log'\ndef test_x():\n    pass\n")
    assert rc == 0 and "1 passed, 0 failed" in out, (rc, out)


def test_an_expected_failure_on_postgresql_that_passes_fails_the_run():
    mark = "from hookd_test import pg_expected_failure\n@pg_expected_failure('no recover op yet')\n"
    rc, out = run_file(mark + "def test_x():\n    assert 1 == 2\n", env=PG)
    assert rc == 0 and "xfail test_x" in out and "no recover op yet" in out, (rc, out)
    rc, out = run_file(mark + "def test_x():\n    pass\n", env=PG)
    assert rc == 1 and "remove the mark" in out and "0 passed, 1 failed" in out, (rc, out)
    rc, out = run_file(mark + "def test_x():\n    assert 1 == 2\n")  # the embedded engine expects it to pass
    assert rc == 1 and "FAIL test_x" in out, (rc, out)


def test_on_postgresql_each_data_directory_gets_a_database_and_a_server_that_ignores_it_fails():
    text = HARNESS_PATH + (
        "import os, hookd_test, test_harness\n"
        "from hookd_test import Server, engine_env\n"
        "def test_databases():\n"
        "    a, b = Server(), Server()\n"
        "    c = Server(data_dir=a.data)\n"
        "    pa = a.env['HOOKD_CLUSTER_POSTGRES']\n"
        "    assert 'dbname=' in pa and pa != b.env['HOOKD_CLUSTER_POSTGRES'], (pa, b.env)\n"
        "    assert c.env['HOOKD_CLUSTER_POSTGRES'] == pa\n"
        "    assert engine_env(a.data)['HOOKD_CLUSTER_POSTGRES'] == pa\n"
        "    na = a.env['HOOKD_CLUSTER_NODE']\n"
        "    assert c.env['HOOKD_CLUSTER_NODE'] == na != b.env['HOOKD_CLUSTER_NODE'], (na, b.env, c.env)\n"
        "    print('DATABASES OK')\n"
        "def test_ignores_the_database():\n"
        "    with test_harness.fake():\n"
        "        pass\n")
    rc, out = run_file(text, env=PG)
    assert rc == 1 and "DATABASES OK" in out and "1 passed, 1 failed" in out, (rc, out)
    assert "FAIL test_ignores_the_database" in out and "did not use PostgreSQL" in out, out
    # The embedded engine's run adds nothing to the environment.
    rc, out = run_file(HARNESS_PATH + "from hookd_test import Server\n"
                       "def test_x():\n    assert 'HOOKD_CLUSTER_POSTGRES' not in Server().env\n")
    assert rc == 0, (rc, out)


if __name__ == "__main__":
    run(globals())
