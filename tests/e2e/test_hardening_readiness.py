"""End to end: /readyz follows every commit the store makes, not only the API's
writes: when the delivery engine's own commits (the outcomes of deliveries)
fail on a full disk, the server is not ready; once a commit succeeds again, it
is."""
LMDB_ONLY = "a full disk under the LMDB file (a small tmpfs); readiness through a PostgreSQL outage is test_cluster.py's"

import os
import shutil
import subprocess
import tempfile
import threading
import time

from hookd_test import run, Server, wait_until
from receiver import Receiver, Reply

LOOPBACK = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32"}


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path],
                       capture_output=True, text=True)
    return p.returncode == 0, p.stderr.strip()


def test_readyz_follows_the_engines_commits_on_a_full_disk():
    mnt = tempfile.mkdtemp(prefix="hookd-tmpfs-")
    ok, why = mount_tmpfs(mnt, "2m")
    if not ok:
        os.rmdir(mnt)
        print("SKIP test_readyz_follows_the_engines_commits: cannot mount a small tmpfs here (%s)" %
              (why or "mount failed"))
        return
    # The receiver holds every request until the gate opens, then answers 200 with 64 KiB: each outcome
    # stores that much in its attempt record, so the outcomes, not the API's writes, fill the disk.
    gate = threading.Event()
    big = b"r" * 65536

    def answer(req):
        gate.wait(60)
        return Reply(status=200, body=big)

    try:
        data = os.path.join(mnt, "data")
        env = dict(LOOPBACK, HOOKD_STORE_MAP_SIZE="1MiB")
        with Receiver(handler=answer) as rx, Server(data_dir=data, env=env) as s:
            r = s.request("POST", "/api/v1/Webhook", {"Name": "w", "Events": ["big.answer"], "TargetUrl": rx.url,
                                                      "State": "Active"})
            assert r.status == 200, r
            for pk in range(80):
                r = s.request("POST", "/api/v1/Agents/Webhook/SignalEvent",
                              {"EventName": "big.answer", "PrimaryKey": pk, "Data": {}})
                assert r.status == 204, r
            assert s.request("GET", "/readyz", key=None).status == 200
            # No API write from here on: only the engine commits.
            gate.set()
            wait_until(lambda: s.request("GET", "/readyz", key=None).status == 503, timeout=60,
                       what="/readyz 503 once the outcomes' commits fail")
            assert "group commit failed" in s.log()
            r = s.request("GET", "/readyz", key=None)
            assert r.json()["status"] == "not ready", r
            assert s.request("GET", "/healthz", key=None).status == 200
            # Room again: the engine's next commit succeeds and readiness comes back by itself.
            subprocess.run(["mount", "-o", "remount,size=64m", mnt], check=True)
            wait_until(lambda: s.request("GET", "/readyz", key=None).status == 200, timeout=90,
                       what="/readyz 200 after a commit succeeds again")
    finally:
        gate.set()
        subprocess.run(["umount", "-l", mnt])
        shutil.rmtree(mnt, ignore_errors=True)


if __name__ == "__main__":
    run(globals())
