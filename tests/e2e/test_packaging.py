"""End to end: conf/hookd.service, the systemd unit.

- `systemd-analyze verify` (Debian's systemd) accepts the unit with no
  message, and reports a broken copy, so the check can fail. It needs the
  ExecStart binary to exist, so it reads a temporary copy naming the built
  binary and a copy of conf/hookd.conf.
- That same copy's command line and environment run the real server: the
  store lands in the state directory (not in the working directory's ./data),
  SIGTERM (the unit's KillSignal) drains and exits 0 well within
  TimeoutStopSec, also with a request in flight to a target that never
  answers in time, and a restart finds what was stored.
- The unit holds what an operator expects: a dedicated user, StateDirectory,
  LimitNOFILE above [server] max_connections, Restart=on-failure, a stop
  timeout longer than [server] shutdown_timeout, and the hardening options,
  which `systemd-analyze security` rates "OK" (and a copy without them not).
"""
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time

from hookd_test import ADMIN_KEY, BIN, ENGINE, Server, run
from receiver import Receiver

SOURCE_DIR = os.environ.get("HOOKD_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
UNIT = os.path.join(SOURCE_DIR, "conf", "hookd.service")
CONF = os.path.join(SOURCE_DIR, "conf", "hookd.conf")


def parse_unit(text):
    """{section: {key: [values]}} of a unit file (comments and blank lines skipped)."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = out.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and section is not None, "not a unit line: %r" % line
        section.setdefault(key.strip(), []).append(value.strip())
    return out


def one(unit, section, key):
    values = unit.get(section, {}).get(key)
    assert values and len(values) == 1, "%s= in [%s]: %r" % (key, section, values)
    return values[0]


def environment(unit):
    env = {}
    for v in unit["Service"].get("Environment", []):
        for item in shlex.split(v):
            k, _, val = item.partition("=")
            env[k] = val
    return env


def seconds(text, bare_unit):
    """A duration as systemd ("30s", "1min 30s"; bare: seconds) or hookd's config ("10s"; bare: ms) write it."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text.strip()):
        total += float(num) * units[unit or bare_unit]
    return total


def config_value(section, key):
    cur = None
    with open(CONF) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                cur = line.strip("[]")
            elif cur == section and re.match(r"%s\s*=" % key, line):
                return line.split("=", 1)[1].strip()
    raise AssertionError("[%s] %s not in %s" % (section, key, CONF))


class UnitServer(Server):
    """hookd started with a unit's command line and environment, its state directory mapped into a temp dir."""

    def __init__(self, unit, env=None):
        super().__init__(env=env)
        svc = unit["Service"]
        self.state_dir = "/var/lib/" + one(unit, "Service", "StateDirectory")
        self.mapped_state = os.path.join(self.tmp, "state")
        os.makedirs(self.mapped_state)
        self.config = os.path.join(self.tmp, "hookd.conf")
        shutil.copy(CONF, self.config)
        # The copy systemd-analyze verifies and the server runs from: the built binary, the copied config.
        exec_start = one(unit, "Service", "ExecStart")
        argv = shlex.split(exec_start)
        self.installed_bin, self.installed_conf = argv[0], argv[argv.index("--config") + 1]
        argv[0], argv[argv.index("--config") + 1] = self.bin, self.config
        self.argv = argv
        self.unit_path = os.path.join(self.tmp, "hookd.service")
        with open(UNIT) as f:
            text = f.read()
        with open(self.unit_path, "w") as f:
            f.write(text.replace(exec_start, shlex.join(argv)))
        for k, v in environment(unit).items():
            self.env[k] = v.replace(self.state_dir, self.mapped_state)
        self.env["HOOKD_SERVER_LISTEN"] = "127.0.0.1:0"
        assert "Environment" in svc

    def args(self, *rest):
        if rest[:1] == ("serve",):
            return list(self.argv)
        return [self.bin] + list(rest) + ["--config", self.config]


def exposure(path):
    """systemd-analyze security's overall exposure level of a unit file (0 safest, 10 least safe)."""
    p = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", path], capture_output=True,
                       text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", p.stdout + p.stderr)
    assert m, "no exposure level from systemd-analyze security (%d):\n%s%s" % (p.returncode, p.stdout, p.stderr)
    return float(m.group(1))


def verify(path):
    p = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True, timeout=60)
    return p.returncode, (p.stdout + p.stderr).strip()


def test_systemd_analyze_verifies_the_unit_and_its_command_line_serves_and_drains():
    unit = parse_unit(open(UNIT).read())
    s = UnitServer(unit)
    assert s.installed_bin.startswith("/") and s.installed_conf == "/etc/hookd/hookd.conf", s.argv
    rc, out = verify(s.unit_path)
    assert rc == 0 and out == "", "systemd-analyze verify: %d\n%s" % (rc, out)
    # The check bites: typos in a copy are reported (and a missing binary fails it).
    with open(s.unit_path) as f:
        text = f.read()
    broken = os.path.join(s.tmp, "broken.service")
    with open(broken, "w") as f:
        f.write(text.replace("Restart=on-failure", "Restart=on-failur").replace("ProtectSystem=", "ProtectSytem="))
    rc, out = verify(broken)
    assert "on-failur" in out and "ProtectSytem" in out, out
    with open(broken, "w") as f:
        f.write(text.replace(s.bin, "/nonexistent/hookd"))
    rc, out = verify(broken)
    assert rc != 0 and "/nonexistent/hookd" in out, (rc, out)

    stop_timeout = seconds(one(unit, "Service", "TimeoutStopSec"), "s")
    with s:
        assert s.request("GET", "/readyz", key=None).status == 200
        r = s.request("POST", "/api/v1/Webhook", {"Name": "kept", "TargetUrl": "https://example.com/hook"})
        assert r.status == 200, r
        wid = r.json()["WebhookId"]
        # The store is in the state directory, whatever the config file says (the embedded engine's).
        if ENGINE == "lmdb":
            assert os.path.exists(os.path.join(s.mapped_state, "data.mdb")), os.listdir(s.mapped_state)
        assert not os.path.exists(os.path.join(s.tmp, "data")), os.listdir(s.tmp)
        t0 = time.time()
        assert s.stop(timeout=stop_timeout) == 0
        assert time.time() - t0 < stop_timeout / 2, time.time() - t0
        # A restart (Restart=on-failure only restarts after a failure; this is systemctl restart) keeps it.
        s.start()
        r = s.request("GET", "/api/v1/Webhook/%d" % wid)
        assert r.status == 200 and r.json()["Name"] == "kept", r


def test_the_unit_has_what_operators_expect_and_stops_in_time_with_work_in_flight():
    unit = parse_unit(open(UNIT).read())
    svc = unit["Service"]
    user = one(unit, "Service", "User")
    assert user == "hookd" and one(unit, "Service", "Group") == "hookd", user
    state = "/var/lib/" + one(unit, "Service", "StateDirectory")
    assert state == "/var/lib/hookd"
    assert environment(unit)["HOOKD_STORE_DATA_DIR"] == state
    assert one(unit, "Service", "WorkingDirectory") == state
    assert state in " ".join(svc["ReadWritePaths"]).split()
    assert one(unit, "Service", "KillSignal") == "SIGTERM"
    assert one(unit, "Service", "Restart") == "on-failure"
    max_connections = int(config_value("server", "max_connections"))
    assert int(one(unit, "Service", "LimitNOFILE")) >= max_connections + 1024, max_connections
    shutdown = seconds(config_value("server", "shutdown_timeout"), "ms")
    stop_timeout = seconds(one(unit, "Service", "TimeoutStopSec"), "s")
    assert stop_timeout >= shutdown + 10, (stop_timeout, shutdown)
    for key, want in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                      ("ProtectHome", "yes"), ("CapabilityBoundingSet", "")):
        assert one(unit, "Service", key) == want, (key, svc.get(key))
    assert one(unit, "Install", "WantedBy") == "multi-user.target"

    # systemd's own rating of the sandbox: "OK" (below 2.0); without the hardening lines it is far worse.
    s = UnitServer(unit)
    assert exposure(s.unit_path) < 2.0, exposure(s.unit_path)
    bare = os.path.join(s.tmp, "bare.service")
    with open(s.unit_path) as f, open(bare, "w") as out:
        out.write(f.read().split("# Hardening:")[0] + "\n[Install]\nWantedBy=multi-user.target\n")
    assert exposure(bare) > 5.0, exposure(bare)
    s.remove()

    # SIGTERM with an Execute call in flight to a target that answers after the drain would end: hookd stops
    # by itself within shutdown_timeout (and exits 0), before systemd's TimeoutStopSec would SIGKILL it.
    with Receiver() as rx:
        rx.reply(status=200, delay=shutdown + 10)
        s = UnitServer(unit, env={"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32"})
        with s:
            r = s.request("POST", "/api/v1/Webhook", {"Name": "slow", "TargetUrl": rx.url + "/slow",
                                                      "Extension": "slow"})
            assert r.status == 200, r
            answers = []

            def call():
                try:
                    answers.append(s.request("POST", "/api/rest/Webhooks/Execute?extension=slow", {"a": 1},
                                             auth="rest", timeout=stop_timeout + 30))
                except Exception as e:  # the connection may close without an answer
                    answers.append(e)

            t = threading.Thread(target=call, daemon=True)
            t.start()
            rx.wait_for(1, timeout=15)
            t0 = time.time()
            assert s.stop(timeout=stop_timeout) == 0
            took = time.time() - t0
            assert took <= shutdown + 3 and took < stop_timeout, (took, shutdown, stop_timeout)
            t.join(30)
            assert answers, "the Execute call never returned"


if __name__ == "__main__":
    run(globals())
