"""End to end: the README's walk-through, run as written. Its shell blocks (between
the walkthrough markers) are run in order by one bash, in a fresh directory, with only
what a reader would change on a busy machine: the binary's path and the two ports."""
import os
import re
import signal
import socket
import subprocess
import tempfile

from hookd_test import engine_env, run, sanitizer_report

SOURCE = os.environ.get("HOOKD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def walkthrough_script():
    text = open(os.path.join(SOURCE, "README.md"), encoding="utf-8").read()
    m = re.search(r"<!-- walkthrough:begin -->(.*?)<!-- walkthrough:end -->", text, re.S)
    assert m, "README.md has no walk-through between its markers"
    blocks = re.findall(r"```sh\n(.*?)```", m.group(1), re.S)
    assert len(blocks) >= 6, blocks
    return blocks


def test_the_walkthrough_runs_as_written():
    blocks = walkthrough_script()
    port, rport = free_port(), free_port()
    script = "\n".join(blocks)
    assert "build/release/hookd" in script and "8080" in script and "9000" in script
    script = (script.replace("build/release/hookd", os.environ["HOOKD_BIN"])
              .replace("8080", str(port)).replace("9000", str(rport)))
    with tempfile.TemporaryDirectory(prefix="hookd-walk-") as tmp:
        # Under HOOKD_TEST_ENGINE=pg the walk-through's hookd keeps its state in a database of its own.
        env = dict(os.environ, **engine_env(os.path.join(tmp, "walk-data")))
        p = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", script], cwd=tmp, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
        try:
            out, _ = p.communicate(timeout=120)
        finally:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out = out.decode("utf-8", "replace")
        log = open(os.path.join(tmp, "hookd.log"), encoding="utf-8", errors="replace").read()
        deliveries = open(os.path.join(tmp, "deliveries.txt"), encoding="utf-8").read()
        assert p.returncode == 0, "the walk-through failed (%s):\n%s\n---- hookd.log ----\n%s" % (
            p.returncode, out[-3000:], log[-3000:])
        assert sanitizer_report(log) is None, log
        # What the reader is told to look at.
        assert re.search(r"(?i)hookd-event-id: [0-9a-f-]{36}", out), out
        assert '"WebhookId":1' in out.replace(" ", ""), out
        assert re.search(r'"EventId":"[0-9a-f-]{36}"', deliveries) and '"order.paid"' in deliveries, deliveries
        assert '"order.refunded"' in deliveries and '"order.cancelled"' in deliveries, deliveries
        assert deliveries.count('"order.cancelled"') == 1 and deliveries.count('"order.refunded"') == 1, deliveries
        assert re.search(r'"recovered": ?1\b', out), out
        assert "delivery failed webhook_id=1 " in out, out
        assert re.search(r"^\d+ order\.refunded ", out, re.M), out


if __name__ == "__main__":
    run(globals())
