"""End to end: configuration checked whole at load, before anything is created."""
import os
import shutil
import subprocess
import tempfile

from hookd_test import BIN, Server, run, sanitizer_report

SOURCE = os.environ.get("HOOKD_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")


def refused(conf_text=None, env=None, command=("serve", "--listen", "127.0.0.1:0")):
    """Runs hookd with a config that must be refused; returns its stderr's one line.

    Checks what a refusal promises: exit 2, one line naming the problem, no
    data directory created, no admin key printed."""
    tmp = tempfile.mkdtemp(prefix="hookd-conf-")
    try:
        data = os.path.join(tmp, "data")
        args = [BIN] + list(command) + ["--data", data]
        if conf_text is not None:
            path = os.path.join(tmp, "hookd.conf")
            with open(path, "w") as f:
                f.write(conf_text)
            args += ["--config", path]
        e = dict(os.environ)
        e["HOOKD_ADMIN_KEY"] = ""
        e.update(env or {})
        p = subprocess.run(args, env=e, capture_output=True, text=True, timeout=30, cwd=tmp)
        assert sanitizer_report(p.stderr) is None, p.stderr
        assert p.returncode == 2, (conf_text, env, p.returncode, p.stderr)
        assert not os.path.exists(data), "the data directory was created before the config was refused"
        assert "hk_" not in p.stderr and "admin" not in p.stderr, p.stderr
        assert p.stdout == "", p.stdout
        lines = p.stderr.strip("\n").split("\n")
        assert len(lines) == 1, p.stderr
        return lines[0].replace(tmp + "/", "")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_bad_retry_schedule_is_refused_at_load_naming_file_and_line():
    # Used to pass loading, create the data directory, print the admin key and fail without file:line.
    line = refused("[server]\naccess_log = off\n\n[delivery]\nretry_schedule = 1s,5x\n")
    assert "hookd.conf:5: delivery.retry_schedule" in line and "\"5x\"" in line, line
    line = refused(env={"HOOKD_DELIVERY_RETRY_SCHEDULE": "0s,5s,,5m"})
    assert "HOOKD_DELIVERY_RETRY_SCHEDULE: delivery.retry_schedule" in line and "entry 3" in line, line
    # The first entry is the first attempt, made at once: anything but 0 is a mistake said aloud.
    line = refused("[delivery]\nretry_schedule = 5s,1m\n")
    assert "hookd.conf:2: delivery.retry_schedule" in line and "first attempt" in line, line
    # Operator commands load the same configuration and refuse it the same way.
    line = refused("[delivery]\nretry_schedule = 1s,5x\n", command=("user", "add", "--code", "u", "--perm", "all"))
    assert "hookd.conf:2: delivery.retry_schedule" in line, line


def test_connect_timeout_larger_than_total_timeout_is_refused():
    line = refused("[delivery]\ntotal_timeout = 10s\nconnect_timeout = 20s\n")
    assert "hookd.conf:3: delivery.connect_timeout" in line and "total_timeout" in line, line
    assert "hookd.conf:2" in line, line
    line = refused("[delivery]\nfirst_byte_timeout = 1m\n")
    assert "hookd.conf:2: delivery.first_byte_timeout" in line and "total_timeout" in line, line
    line = refused(env={"HOOKD_DELIVERY_CONNECT_TIMEOUT": "16s"})
    assert "HOOKD_DELIVERY_CONNECT_TIMEOUT: delivery.connect_timeout" in line, line
    # A total below the parts' defaults is fine: they yield to it.
    with Server(config_text="[delivery]\ntotal_timeout = 2s\n") as s:
        assert s.request("GET", "/healthz", key=None).status == 200
    with Server(config_text="[delivery]\nconnect_timeout = 2s\ntotal_timeout = 2s\n") as s:
        assert s.request("GET", "/healthz", key=None).status == 200


def test_a_cluster_node_name_is_checked_with_the_configuration():
    # Used to be found only when the node connected to PostgreSQL: exit status 1, after the configuration was
    # accepted. Now refused at load, as any other value, whatever the rest of the file.
    for bad in ("n" * 101, "bad name", "n\u00e9"):
        line = refused(env={"HOOKD_CLUSTER_NODE": bad})
        assert "HOOKD_CLUSTER_NODE: cluster.node: expected up to 100 letters" in line, (bad, line)
    line = refused("[cluster]\nnode = a;b\n")
    assert "hookd.conf:2: cluster.node" in line, line


def test_every_value_is_checked_before_anything_is_created():
    cases = [
        ("[server]\nlisten = localhost:8080\n", "hookd.conf:2: server.listen"),
        ("[server]\nlisten = 127.0.0.1:99999\n", "hookd.conf:2: server.listen"),
        ("[server]\npublic_url = hooks.example.com\n", "hookd.conf:2: server.public_url"),
        ("[store]\ndata_dir =\n", "hookd.conf:2: store.data_dir"),
        ("[delivery]\nallow_targets = 10.0.0.0/33\n", "hookd.conf:2: delivery.allow_targets"),
        ("[delivery]\nallow_targets = 10.0.0.0/8, intranet\n", "\"intranet\""),
        ("[smtp]\nfrom = hookd\n", "hookd.conf:2: smtp.from"),
        ("[smtp]\nhost = mail relay\n", "hookd.conf:2: smtp.host"),
        ("[log]\nlevel = loud\n", "hookd.conf:2: log.level"),
        ("[delivery]\nretry_jitter = 101\n", "hookd.conf:2: delivery.retry_jitter"),
        ("[server]\nmax_connections = 10\n[server]\nlisten = 127.0.0.1:1 127.0.0.1:2 127.0.0.1:3 127.0.0.1:4 "
         "127.0.0.1:5 127.0.0.1:6 127.0.0.1:7 127.0.0.1:8 127.0.0.1:9\n", "hookd.conf:4: server.listen"),
    ]
    for conf, needle in cases:
        line = refused(conf)
        assert needle in line, (conf, line)
    # From the environment, the variable is named.
    line = refused(env={"HOOKD_SMTP_FROM": "hookd@example.com\r\nBcc: victim@example.com"})
    assert "HOOKD_SMTP_FROM: smtp.from" in line and "control" in line, line
    line = refused(env={"HOOKD_DELIVERY_ALLOW_TARGETS": "everything"})
    assert "HOOKD_DELIVERY_ALLOW_TARGETS: delivery.allow_targets" in line, line
    # And on the command line.
    line = refused(command=("serve", "--listen", "nowhere"))
    assert "--listen" in line and "nowhere" in line, line


def test_the_example_config_runs_as_is():
    with open(os.path.join(SOURCE, "conf", "hookd.conf")) as f:
        text = f.read()
    assert "retry_schedule = 0s," in text
    with Server(config_text=text) as s:
        assert s.request("GET", "/healthz", key=None).status == 200
        assert "configuration from" in s.log()


if __name__ == "__main__":
    run(globals())
