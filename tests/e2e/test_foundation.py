"""End to end: the foundation's promises (health, auth, keys across restarts)."""
import signal
import time

from hookd_test import ADMIN_KEY, Server, run


def test_health_and_ready_without_auth():
    with Server() as s:
        r = s.request("GET", "/healthz", key=None)
        assert r.status == 200, r
        assert r.json() == {"status": "ok"}
        assert r.header("content-type").startswith("application/json")
        assert r.header("date")
        r = s.request("GET", "/readyz", key=None)
        assert r.status == 200 and r.json()["status"] == "ready", r


def test_webhook_list_needs_key():
    with Server() as s:
        r = s.request("GET", "/api/v1/Webhook", key=None)
        assert r.status == 401, r
        assert "Error" in r.json()
        r = s.request("GET", "/api/v1/Webhook", key="hk_wrong")
        assert r.status == 401, r
        r = s.request("GET", "/api/v1/Webhook")
        assert r.status == 200, r
        assert r.json() == []


def test_all_four_credential_forms():
    with Server() as s:
        for auth in ("bearer", "eci", "rest", "basic:admin", "basic:ADMIN"):
            r = s.request("GET", "/api/v1/Webhook", auth=auth)
            assert r.status == 200, (auth, r)
        r = s.request("GET", "/api/v1/Webhook", auth="basic:someoneelse")
        assert r.status == 401, r


def test_generated_admin_key_is_printed_once():
    with Server(env={"HOOKD_ADMIN_KEY": ""}) as s:
        log = s.log()
        keys = [w for w in log.split() if w.startswith("hk_")]
        assert len(keys) == 1, log
        key = keys[0]
        assert s.request("GET", "/api/v1/Webhook", key=key).status == 200
        s.restart()
        assert not [w for w in s.log().split() if w.startswith("hk_")], "key printed again"
        assert s.request("GET", "/api/v1/Webhook", key=key).status == 200


def test_users_and_keys_survive_restart_and_revoke():
    with Server() as s:
        s.cli("user", "add", "--code", "viewer", "--name", "View Only", "--perm", "ApplicationSettings:View")
        p = s.cli("key", "create", "--user", "viewer")
        key = p.stdout.strip()
        assert key.startswith("hk_"), p.stdout
        assert s.request("GET", "/api/v1/Webhook", key=key).status == 200
        s.restart()
        assert s.request("GET", "/api/v1/Webhook", key=key).status == 200
        assert s.request("GET", "/api/v1/Webhook", key=ADMIN_KEY).status == 200
        s.cli("key", "revoke", key)
        assert s.request("GET", "/api/v1/Webhook", key=key).status == 401
        s.restart()
        assert s.request("GET", "/api/v1/Webhook", key=key).status == 401


def test_revoke_by_key_id():
    with Server() as s:
        s.cli("user", "add", "--code", "u2", "--perm", "all")
        p = s.cli("key", "create", "--user", "u2")
        key = p.stdout.strip()
        kid = p.stderr.split("key id ")[1].split()[0]
        assert s.request("GET", "/api/v1/Webhook", key=key).status == 200
        s.cli("key", "revoke", kid)
        assert s.request("GET", "/api/v1/Webhook", key=key).status == 401
        listing = s.cli("key", "list").stdout
        assert kid in listing and "revoked" in listing, listing


def test_missing_permission_is_403():
    with Server() as s:
        s.cli("user", "add", "--code", "signaller", "--perm", "Events:Signal")
        key = s.cli("key", "create", "--user", "signaller").stdout.strip()
        r = s.request("GET", "/api/v1/Webhook", key=key)
        assert r.status == 403, r
        assert "ApplicationSettings:View" in r.json()["Message"]


def test_user_set_changes_a_running_servers_view():
    with Server() as s:
        s.cli("user", "add", "--code", "ops", "--name", "Ops", "--perm", "Events:Signal")
        key = s.cli("key", "create", "--user", "ops").stdout.strip()
        assert s.request("GET", "/api/v1/Webhook", key=key).status == 403
        s.cli("user", "set", "--code", "ops", "--perm", "ApplicationSettings:View", "--top-node", "7")
        assert s.request("GET", "/api/v1/Webhook", key=key).status == 200
        listing = s.cli("user", "list").stdout
        assert "ops\tOps\tApplicationSettings:View\ttop-node=7" in listing, listing
        p = s.cli("user", "set", "--code", "ghost", "--name", "x", check=False)
        assert p.returncode == 1 and "no such user" in p.stderr, p


def test_cli_rejects_bad_input():
    with Server() as s:
        p = s.cli("user", "add", "--code", "x", "--perm", "Nope:Nope", check=False)
        assert p.returncode == 2 and "Nope:Nope" in p.stderr, p
        p = s.cli("key", "create", "--user", "ghost", check=False)
        assert p.returncode == 1 and "no such user" in p.stderr, p
        p = s.cli("user", "add", "--code", "admin", "--perm", "all", check=False)
        assert p.returncode == 1, p


def test_sigterm_marks_not_ready_and_exits_zero():
    with Server() as s:
        conn = s.connection()
        assert s.request("GET", "/healthz", conn=conn, key=None).status == 200
        s.proc.send_signal(signal.SIGTERM)
        rc = s.proc.wait(20)
        assert rc == 0, s.log()
        s.proc = None
        s.check_log()
        assert "draining" in s.log()


if __name__ == "__main__":
    run(globals())
