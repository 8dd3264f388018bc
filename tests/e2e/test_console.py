"""End to end: the console at /console/ in a real headless Chromium (Debian's chromium, driven through
chromium-driver by python3-selenium; run by /usr/bin/python3, see tests/CMakeLists.txt), against a real hookd
and a real receiver.

A Manage key signs in, creates a webhook (a bad URL first: the API's error shows as written), tests it,
signals events, sees the deliveries and the chart, makes the receiver fail and sees the failures and the
state change, opens an attempt's request and response, re-activates the webhook, resends and recovers; a
View key sees the same webhook and is offered nothing that edits. The page also fits a phone's width and
its controls are reached with Tab. A screenshot of each page goes to the output directory
($HOOKD_TEST_OUTPUT, else test_console-output/ in the working directory, which ctest puts in the build
tree). Any error on the browser's console from the page (a script error, a CSP violation, a console
file that fails to load) fails the test; only the API's own refusals, which the page shows, may log a
failed request.
"""
import base64
import json
import os
import re
import shutil
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from hookd_test import ADMIN_KEY, Server, run
from receiver import Receiver

# Two attempts at once per delivery; the fourth failure in a row disables the webhook.
ENV = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32", "HOOKD_DELIVERY_RETRY_JITTER": "0",
       "HOOKD_DELIVERY_RETRY_SCHEDULE": "0s,0s", "HOOKD_DELIVERY_DISABLE_AFTER": "4"}
OUT = os.environ.get("HOOKD_TEST_OUTPUT") or os.path.join(os.getcwd(), "test_console-output")
WAIT = 20


class Browser:
    """Headless Chromium with a fresh profile; collects the browser console as it goes."""

    def __init__(self, base, shots):
        self.base = base
        self.shots = shots
        self.profile = tempfile.mkdtemp(prefix="hookd-chromium-")
        o = webdriver.ChromeOptions()
        o.binary_location = "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--user-data-dir=" + self.profile, "--window-size=1280,900", "--no-first-run",
                  "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-default-apps",
                  "--disable-client-side-phishing-detection", "--disable-features=Translate,MediaRouter",
                  # Nothing leaves the machine: every other origin goes to a proxy that is not there.
                  "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1"):
            o.add_argument(a)
        o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
        self.d.set_page_load_timeout(WAIT)
        self.logs = []
        self.t0 = time.time()

    def close(self):
        try:
            self.collect()
            self.d.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def collect(self):
        self.logs += self.d.get_log("browser")

    def errors(self):
        """Console entries that are the page's fault: anything SEVERE but the API's refusals."""
        self.collect()
        bad = []
        for e in self.logs:
            if e["level"] != "SEVERE":
                continue
            msg = e["message"]
            if e["source"] == "network" and re.match(r"^https?://[^/]+/(api/|console/api/)", msg):
                continue  # an API answer of 4xx/5xx, which the page shows as the API wrote it
            bad.append(e)
        return bad

    def open(self, fragment=""):
        self.d.get(self.base + "/console/" + fragment)

    def go(self, fragment):
        self.d.execute_script("location.hash = arguments[0]", fragment)

    def mark(self, name):
        if os.environ.get("CONSOLE_TIMING"):
            print("%.1f %s" % (time.time() - self.t0, name), flush=True)

    def shot(self, name):
        self.mark(name)
        self.d.save_screenshot(os.path.join(self.shots, name + ".png"))

    def find(self, css):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def finds(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def wait(self, cond, what, timeout=WAIT, reload=None):
        """Polls cond until it is true; reload (a css selector) is clicked now and then to fetch again."""
        deadline = time.time() + timeout
        last = None
        n = 0
        while time.time() < deadline:
            try:
                v = cond()
                if v:
                    return v
                n += 1
                if reload and n % 5 == 0:
                    self.shown(reload).click()
            except (StaleElementReferenceException, WebDriverException) as e:
                last = e
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s (%s)\npage text:\n%s" % (
            what, last, self.d.find_element(By.TAG_NAME, "body").text[:3000]))

    def shown(self, css):
        return self.wait(lambda: next((e for e in self.finds(css) if e.is_displayed()), None), css + " shown")

    def text(self, css):
        return self.shown(css).text

    def click(self, css):
        self.wait(lambda: self.shown(css).click() or True, "click " + css)

    def click_text(self, css, text):
        """Clicks the displayed element matching css whose text is text."""
        def go():
            for e in self.finds(css):
                if e.is_displayed() and e.text.strip() == text:
                    e.click()
                    return True
            return False
        self.wait(go, "%s %r" % (css, text))

    def type(self, css, value):
        e = self.shown(css)
        e.clear()
        e.send_keys(value)

    def set_value(self, css, value):
        self.d.execute_script("arguments[0].value = arguments[1]", self.shown(css), value)

    def error_text(self, css):
        return self.wait(lambda: self.find(css).is_displayed() and self.find(css).text, css + " error")


def shots_dir(name):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def assert_clean(b):
    bad = b.errors()
    assert not bad, "errors on the browser console:\n" + "\n".join(json.dumps(e) for e in bad)


def sign_in(b, key):
    b.open()
    b.shown("#signin-key")
    b.type("#signin-key", key)
    b.click("#signin-submit")
    b.shown("#nav")


def rows(b, css):
    return [r for r in b.finds(css) if r.get_attribute("data-log-id") or r.get_attribute("data-webhook-id")]


def test_console_files_carry_a_strict_policy():
    with Server(env=ENV) as s:
        r = s.request("GET", "/console", key=None)
        assert r.status == 301 and r.header("Location") == "/console/", r
        for path, kind in (("/console/", "text/html"), ("/console/console.css", "text/css"),
                           ("/console/console.js", "text/javascript"), ("/console/webhooks.js", "text/javascript"),
                           ("/console/deliveries.js", "text/javascript"),
                           ("/console/activity.js", "text/javascript")):
            r = s.request("GET", path, key=None)
            assert r.status == 200 and r.header("Content-Type").startswith(kind), (path, r)
            csp = r.header("Content-Security-Policy")
            assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
            assert "frame-ancestors 'none'" in csp, csp
            assert r.header("X-Content-Type-Options") == "nosniff", r.headers
        page = s.request("GET", "/console/", key=None).body.decode()
        # No inline script or style, nothing from another origin.
        assert re.search(r"<script(?![^>]*\bsrc=)", page) is None and "<style" not in page and " style=" not in page
        assert "http://" not in page and "https://" not in page
        r = s.request("GET", "/console/api/me", key=None)
        assert r.status == 401 and r.json() == {"error": "authentication required: send an API key"}, r
        r = s.request("GET", "/console/api/me", key="hk_wrong")
        assert r.status == 401, r
        r = s.request("GET", "/console/api/activity", key=None)
        assert r.status == 401, r
        r = s.request("GET", "/console/api/activity?webhookId=12", key=ADMIN_KEY)
        assert r.status == 404 and "12" in r.json()["error"], r
        r = s.request("GET", "/console/api/activity?webhookId=x", key=ADMIN_KEY)
        assert r.status == 400, r


def test_console_manage_key_creates_watches_and_fixes_a_webhook():
    shots = shots_dir("manage")
    with Receiver() as rx, Server(env=ENV) as s:
        b = Browser("http://127.0.0.1:%d" % s.port, shots)
        try:
            manage_flow(b, s, rx)
            assert_clean(b)
        except Exception:
            try:
                b.shot("failure")
            finally:
                raise
        finally:
            b.close()


def manage_flow(b, s, rx):
    # Sign in: a wrong key is refused with the API's own words, the right one kept in this tab only.
    b.open()
    b.shown("#signin-key")
    b.shot("01-signin")
    b.type("#signin-key", "hk_not_a_key")
    b.click("#signin-submit")
    assert b.error_text("#signin-error") == "HTTP 401 Unauthorized: invalid or revoked API key"
    b.type("#signin-key", ADMIN_KEY)
    b.click("#signin-submit")
    b.shown("#nav")
    b.mark("signed in")
    assert ADMIN_KEY not in b.d.current_url
    assert b.d.execute_script("return sessionStorage.getItem('hookd.console.key')") == ADMIN_KEY
    assert b.d.execute_script("return localStorage.length") == 0
    assert "Administrator (admin)" in b.text("#who-name")
    assert "No webhook matches." in b.text("table.webhooks")

    # Create: a URL the API refuses first, its message shown as written.
    b.click("#new-webhook")
    b.shown("#webhook-form")
    assert b.find("#wh-secret").get_attribute("value").startswith("whsec_")
    b.click("#generate-secret")
    secret = b.find("#wh-secret").get_attribute("value")
    assert re.match(r"^whsec_[A-Za-z0-9+/]{32}$", secret), secret
    b.mark("form")
    b.type("#wh-name", "orders")
    b.type("#wh-url", "ftp://127.0.0.1/hooks")
    b.type("#wh-events", "order.*")
    b.type("#wh-headers", "X-Team: billing")
    b.click("#save")
    refused = s.request("POST", "/api/v1/Webhook", {"Name": "orders", "TargetUrl": "ftp://127.0.0.1/hooks",
                                                    "Events": ["order.*"]})
    assert refused.status == 400, refused
    assert b.error_text("#edit-error") == "HTTP 400 Bad Request: " + refused.json()["Message"]
    b.mark("refused")
    b.type("#wh-url", rx.url + "/hooks")
    # Test: sent now, the receiver's answer shown.
    b.click("#test")
    b.wait(lambda: "success" in b.text("#test-result h2"), "the test's answer")
    assert "200" in b.text("#test-result pre")
    test_call = rx.wait_for(1)[0]
    assert test_call.header("X-Team") == "billing"
    b.shot("02-editor")
    b.click("#save")
    b.wait(lambda: b.d.current_url.endswith("#/webhooks/1"), "the new webhook's deliveries")
    assert "Created webhook 1." in b.text("#notice")
    assert "No attempt matches." in b.text("table.log")
    stored = s.request("GET", "/api/v1/Webhook/1").json()
    assert stored["Secret"] == secret and stored["Headers"] == {"X-Team": "billing"} and stored["Events"] == ["order.*"]

    # Signal from the page.
    rx.clear()
    b.go("#/signal")
    b.type("#signal-name", "order.paid")
    b.type("#signal-pk", "42")
    b.type("#signal-data", '{"total": 99.5}')
    b.click("#signal-send")
    first = b.wait(lambda: re.search(r"event ([0-9a-f-]{36})", b.text("#signal-result")), "the event id").group(1)
    b.shot("03-signal")
    b.type("#signal-data", "{not json")
    b.click("#signal-send")
    assert b.error_text("#signal-error").startswith("Data is not JSON")
    b.type("#signal-name", "order.shipped")
    b.type("#signal-data", "{}")
    b.click("#signal-send")
    b.wait(lambda: "order.shipped" in b.text("#signal-result"), "the second signal")
    got = rx.wait_for(2)
    assert json.loads(got[0].body)["EventId"] == first and json.loads(got[0].body)["Data"] == {"total": 99.5}

    # The deliveries appear, in the log and in the chart.
    b.go("#/webhooks/1")
    b.wait(lambda: len(rows(b, "table.log tbody tr")) == 2, "two attempts in the log", reload="#refresh")
    assert [r.find_element(By.CSS_SELECTOR, "td.result").text for r in rows(b, "table.log tbody tr")] == ["200", "200"]
    b.wait(lambda: b.text("#webhook-chart .total-delivered") == "2", "the chart's two deliveries", reload="#refresh")
    assert "Page 1 of 1 (2 attempts)" in b.text(".page-info")
    b.shot("04-deliveries")

    # The receiver fails: two events, two attempts each, the fourth failure disables the webhook.
    rx.reply(500, body=b"receiver down")
    for name in ("order.refunded", "order.cancelled"):
        r = s.request("POST", "/api/v1/Agents/Webhook/SignalEvent", {"EventName": name, "PrimaryKey": 7, "Data": {}})
        assert r.status == 204, r
    b.go("#/webhooks")
    row = '.webhooks tr[data-webhook-id="1"]'
    b.wait(lambda: b.finds(row + " .state-TooManyErrors") and b.text(row + " .consecutive") == "4",
           "the state change and four consecutive failures", reload="#filters-submit")
    assert "500" in b.text(row + " .last-error")
    assert b.text(row + " .rate") == "33.3 %"
    b.shot("05-list-failing")

    # The failures in the log, filtered; an attempt's request and response.
    b.go("#/webhooks/1")
    b.wait(lambda: len(rows(b, "table.log tbody tr")) == 6, "six attempts", reload="#refresh")
    Select(b.shown("#log-result")).select_by_value("5xx")
    b.click("#log-filters button[type=submit]")
    b.wait(lambda: len(rows(b, "table.log tbody tr")) == 4, "four failed attempts")
    assert all(r.find_element(By.CSS_SELECTOR, "td.result").text == "500" for r in rows(b, "table.log tbody tr"))
    b.wait(lambda: b.text("#webhook-chart .total-failed") == "2" and b.text("#webhook-chart .total-retrying") == "2",
           "the chart's failures", reload="#refresh")
    b.find("table.log tbody tr .detail-button").click()
    request = b.text("#detail-request")
    assert request.startswith("POST /hooks HTTP/1.1") and "order." in request and "X-Team: billing" in request
    assert b.text("#detail-response").startswith("HTTP/1.1 500") and "receiver down" in b.text("#detail-response")
    b.shot("06-attempt-detail")
    # A date range that holds nothing.
    b.set_value("#log-from", "2001-01-01T00:00:00")
    b.set_value("#log-to", "2001-01-02T00:00:00")
    b.click("#log-filters button[type=submit]")
    b.wait(lambda: "No attempt matches." in b.text("table.log"), "an empty range")

    # Bring it back: the receiver answers, the webhook is set Active again from the editor.
    rx.reply(200)
    rx.clear()
    b.go("#/webhooks/1/edit")
    b.wait(lambda: b.find("#wh-name").get_attribute("value") == "orders", "the editor filled")
    assert b.find("#lock-status").is_displayed() is False
    Select(b.shown("#wh-state")).select_by_value("Active")
    b.click("#save")
    b.wait(lambda: "Saved webhook 1." in b.text("#notice"), "saved")
    assert s.request("GET", "/api/v1/Webhook/1").json()["State"] == "Active"

    # Resend one failed attempt's event.
    b.go("#/webhooks/1")
    Select(b.shown("#log-result")).select_by_value("5xx")
    b.click("#log-filters button[type=submit]")
    b.wait(lambda: len(rows(b, "table.log tbody tr")) == 4, "the failed attempts")
    target = rows(b, "table.log tbody tr")[0]
    event = target.find_elements(By.CSS_SELECTOR, "td")[2].text
    target.find_element(By.CSS_SELECTOR, ".resend-button").click()
    b.wait(lambda: "Queued again: event" in b.text("#notice"), "the resend's answer")
    got = rx.wait_for(1)
    assert json.loads(got[0].body)["Event"] == event
    # Its success is committed before the recovery looks for what has not been delivered since.
    b.wait(lambda: s.request("GET", "/api/v3/webhook/1/log?pageSize=1&filter=result%20equals%20200",
                             auth="eci").header("TotalNumberOfRecords") == "3", "the resend's success stored")

    # Recover the rest: the other failed event, once.
    b.set_value("#recover-since", time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 600)))
    b.click("#recover")
    b.wait(lambda: "Recovered 1 event" in b.text("#recover-result"), "the recovery's answer")
    got = rx.wait_for(2)
    assert sorted(json.loads(q.body)["Event"] for q in got) == ["order.cancelled", "order.refunded"]
    b.shot("07-resend-recover")

    # Pages of the log: eight attempts, five a page.
    Select(b.shown("#log-result")).select_by_value("")
    Select(b.shown("#log-size")).select_by_value("5")
    b.click("#log-filters button[type=submit]")
    b.wait(lambda: "Page 1 of 2 (8 attempts)" in b.text(".page-info"), "two pages", reload="#refresh")
    assert len(rows(b, "table.log tbody tr")) == 5
    b.click("#next-page")
    b.wait(lambda: "Page 2 of 2" in b.text(".page-info") and len(rows(b, "table.log tbody tr")) == 3, "page two")
    assert rows(b, "table.log tbody tr")[-1].get_attribute("data-log-id") == "1"
    assert not b.find("#next-page").is_enabled()

    # A webhook an operator locked: the editor says so and offers no change.
    s.cli("webhook", "lock", "1")
    b.go("#/webhooks/1/edit")
    assert "Locked by an operator" in b.text("#lock-status")
    b.wait(lambda: not b.find("#save").is_enabled() and not b.find("#wh-name").is_enabled(), "a read-only editor")
    s.cli("webhook", "unlock", "1")

    # Activity for all webhooks.
    b.go("#/activity")
    b.wait(lambda: b.text("#activity-chart .total-delivered") == "4", "four deliveries in the hour",
           reload="#activity-refresh")
    assert b.text("#activity-chart .total-failed") == "2"
    assert b.text("#activity-chart .backlog").startswith("Pending 0")
    b.shot("08-activity")

    # Every control is reached with Tab.
    b.go("#/webhooks")
    b.shown('.webhooks tr[data-webhook-id="1"]')
    b.d.execute_script("""
        document.activeElement && document.activeElement.blur();
        window.focusTrail = [];
        document.addEventListener('focusin', (e) => window.focusTrail.push((e.target.textContent || e.target.id).trim()));
    """)
    ActionChains(b.d).send_keys(Keys.TAB * 45).perform()
    reached = b.d.execute_script("return window.focusTrail")
    for want in ("Webhooks", "Activity", "Signal event", "Sign out", "New webhook", "Filter", "Deliveries", "Edit",
                 "Test"):
        assert want in reached, (want, reached)

    # A phone's width: the page fits, tables scroll inside their frame.
    b.d.set_window_size(390, 844)
    for frag, name in (("#/webhooks", "09-phone-webhooks"), ("#/webhooks/1", "10-phone-deliveries"),
                       ("#/activity", "11-phone-activity")):
        b.go(frag)
        time.sleep(0.5)
        over = b.d.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert over <= 0, (frag, over)
        b.shot(name)
    b.d.set_window_size(1280, 900)

    # Sign out: the key is gone from the tab.
    b.click("#signout")
    b.shown("#signin-key")
    assert b.d.execute_script("return sessionStorage.getItem('hookd.console.key')") is None


def test_console_view_key_sees_but_cannot_edit():
    shots = shots_dir("view")
    with Receiver() as rx, Server(env=ENV) as s:
        s.cli("user", "add", "--code", "viewer", "--name", "Viewer", "--perm", "ApplicationSettings:View")
        key = s.cli("key", "create", "--user", "viewer").stdout.strip()
        r = s.request("POST", "/api/v1/Webhook", {"Name": "watched", "Events": ["order.paid"],
                                                  "TargetUrl": rx.url + "/in"})
        assert r.status == 200, r
        r = s.request("POST", "/api/v1/Agents/Webhook/SignalEvent", {"EventName": "order.paid", "PrimaryKey": 1})
        assert r.status == 204, r
        rx.wait_for(1)
        s.cli("webhook", "lock", "1")
        b = Browser("http://127.0.0.1:%d" % s.port, shots)
        try:
            sign_in(b, key)
            assert "Viewer (viewer): ApplicationSettings:View" == b.text("#who-name")
            row = b.shown('.webhooks tr[data-webhook-id="1"]')
            assert "watched" in row.text and "Active" in row.text and "locked" in row.text
            assert not b.finds("#new-webhook")
            assert [e.text for e in row.find_elements(By.CSS_SELECTOR, ".actions a, .actions button")] == ["Deliveries"]
            assert not b.find("#nav-signal").is_displayed()
            b.shot("01-list")
            b.go("#/webhooks/1")
            b.wait(lambda: len(rows(b, "table.log tbody tr")) == 1, "the delivery")
            assert not b.finds(".resend-button") and not b.finds("#recover-form")
            assert "Edit" not in [e.text for e in b.finds(".page-head a")]
            b.find(".detail-button").click()
            assert "order.paid" in b.text("#detail-request")
            b.shot("02-deliveries")
            # Straight to the editor: everything read-only, nothing to save.
            b.go("#/webhooks/1/edit")
            b.wait(lambda: b.find("#wh-name").get_attribute("value") == "watched", "the webhook shown")
            assert not b.finds("#save") and not b.finds("#test")
            assert all(not b.find(c).is_enabled() for c in ("#wh-name", "#wh-url", "#wh-events", "#wh-secret",
                                                            "#wh-state", "#generate-secret"))
            assert "only view" in b.text("#edit-error")
            b.shot("03-editor-read-only")
            b.go("#/signal")
            assert "Events:Signal is needed" in b.text("#signal-error")
            # The API agrees with what was offered.
            assert s.request("PATCH", "/api/v1/Webhook/1", {"Name": "x"}, key=key).status == 403
            assert_clean(b)
            # The policy holds in the browser, and the console check sees what breaks it: an inline script
            # put into the page does not run, and its refusal is an error on the console.
            b.d.execute_script("const e = document.createElement('script'); e.textContent = 'window.inlineRan = 1';"
                               "document.body.appendChild(e);")
            assert b.d.execute_script("return window.inlineRan === undefined")
            refusals = b.errors()
            assert len(refusals) == 1 and "Content Security Policy" in refusals[0]["message"], refusals
        finally:
            b.close()


if __name__ == "__main__":
    run(globals())
