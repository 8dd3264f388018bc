"""End to end: the API reference, src/api/openapi.json, served at GET /openapi.json.

- The served document is the file, and a well-kept OpenAPI 3.1 validator
  (@seriousme/openapi-schema-validator from npm, installed by deps/install.sh
  into $HOOKD_TEST_TOOLS, default /opt/hookd-test-tools; never fetched here)
  accepts it, and refuses a broken copy.
- The routes in the document are exactly the router's, both ways: the route
  tables of src/api/*.c (read with a regex) against the document, with each
  route's permission; and the running server, which must answer every
  described method and path (401 without a key where a key is needed, never
  its "no resource" 404 or its 405) and list, for every described path,
  exactly the described methods in the Allow header of its 405.
- The schemas describe what the server really answers: real traffic through
  every operation, each answer's status must be documented and its body
  valid against the documented schema (JSON Schema 2020-12, Debian's
  python3-jsonschema), and every operation must have been seen succeeding.
"""
import copy
import glob
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.parse

import jsonschema

from hookd_test import ADMIN_KEY, BIN, Server, run
from receiver import Receiver

SOURCE_DIR = os.environ.get("HOOKD_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
DOC_PATH = os.path.join(SOURCE_DIR, "src", "api", "openapi.json")
TOOLS = os.environ.get("HOOKD_TEST_TOOLS", "/opt/hookd-test-tools")
VALIDATOR = os.path.join(TOOLS, "node_modules", "@seriousme", "openapi-schema-validator", "index.js")
ALLOW = {"HOOKD_DELIVERY_ALLOW_TARGETS": "127.0.0.1/32"}
METHODS = ("get", "head", "post", "put", "patch", "delete")
PERMS = {
    "0": None,
    "HK_PERM_VIEW": "ApplicationSettings:View",
    "HK_PERM_MANAGE": "ApplicationSettings:Manage",
    "HK_PERM_ACCOUNTS": "Accounts:Edit",
    "HK_PERM_SIGNAL": "Events:Signal",
    "HK_PERM_EXECUTE": "Webhooks:Execute",
    "HK_PERM_METRICS": "Metrics:Read",
}
# Values for path parameters that select the templated route, not a literal sibling.
SAMPLE = {"id": "7", "webhookId": "7", "webhookLogId": "3", "eventName": "contact.created", "primaryKey": "42",
          "nodeId": "5", "accountId": "6"}


def load_doc():
    with open(DOC_PATH, "rb") as f:
        return f.read()


def served_doc():
    """The document as a freshly started server serves it, checked to be the file's bytes."""
    with Server() as s:
        r = s.request("GET", "/openapi.json", key=None)
    assert r.status == 200, r
    assert r.body == load_doc(), "GET /openapi.json differs from src/api/openapi.json (rebuild?)"
    return json.loads(r.body)


def operations(doc):
    """(PATH, METHOD) -> operation object, for every operation of the document."""
    return {(path, m.upper()): item[m] for path, item in doc["paths"].items() for m in METHODS if m in item}


def concrete(path):
    return re.sub(r"\{(\w+)\}", lambda m: urllib.parse.quote(SAMPLE[m.group(1)], safe=""), path)


def roles(op):
    """The permission an operation's security requirements name: None for none, else the one role."""
    reqs = op.get("security")
    assert reqs is not None, "operation %s has no security of its own" % op["operationId"]
    if not reqs:
        return None
    found = {r for req in reqs for rs in req.values() for r in rs}
    assert len(found) == 1 and all(len(req) == 1 for req in reqs), (op["operationId"], reqs)
    return found.pop()


# ---- the document on its own ---------------------------------------------------------

def structure_problems(doc):
    """What the JSON Schema of OpenAPI cannot see: path parameters, unique operation ids, $refs that resolve."""
    problems = []
    seen = {}
    for (path, method), op in operations(doc).items():
        oid = op.get("operationId")
        if oid in seen:
            problems.append("operationId %s used by %s and %s %s" % (oid, seen[oid], method, path))
        seen[oid] = "%s %s" % (method, path)
        params = [resolve(doc, p) for p in doc["paths"][path].get("parameters", []) + op.get("parameters", [])]
        declared = {p["name"] for p in params if p["in"] == "path"}
        templated = set(re.findall(r"\{(\w+)\}", path))
        if declared != templated:
            problems.append("%s %s: path parameters %s declared, %s in the path" % (method, path, sorted(declared),
                                                                                    sorted(templated)))
        for p in params:
            if p["in"] == "path" and p.get("required") is not True:
                problems.append("%s %s: path parameter %s is not required" % (method, path, p["name"]))
    for ref in re.findall(r'"\$ref":\s*"([^"]*)"', json.dumps(doc)):
        try:
            resolve(doc, {"$ref": ref})
        except (KeyError, AssertionError):
            problems.append("unresolved $ref " + ref)
    return problems


def resolve(doc, obj):
    while isinstance(obj, dict) and "$ref" in obj:
        ref = obj["$ref"]
        assert ref.startswith("#/"), ref
        obj = doc
        for part in ref[2:].split("/"):
            obj = obj[part.replace("~1", "/").replace("~0", "~")]
    return obj


def validate_with_npm(doc):
    """Runs the npm validator on doc; returns its verdict {valid, version, errors}."""
    if not os.path.exists(VALIDATOR):
        raise AssertionError("%s is missing: run deps/install.sh (as root) to install the test tools" % VALIDATOR)
    script = ('import { pathToFileURL } from "node:url";\n'
              'import { readFileSync } from "node:fs";\n'
              'const { Validator } = await import(pathToFileURL(process.env.HK_VALIDATOR).href);\n'
              'const v = new Validator();\n'
              'const res = await v.validate(JSON.parse(readFileSync(process.env.HK_DOC, "utf8")));\n'
              'console.log(JSON.stringify({valid: res.valid, version: v.version, errors: res.errors ?? null}));\n')
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(doc, f)
    try:
        p = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True,
                           timeout=120, env=dict(os.environ, HK_VALIDATOR=VALIDATOR, HK_DOC=f.name))
    finally:
        os.unlink(f.name)
    assert p.returncode == 0, "the validator failed to run (%d):\n%s%s" % (p.returncode, p.stdout, p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_the_document_is_served_without_a_key_as_the_file():
    raw = load_doc()
    with Server() as s:
        r = s.request("GET", "/openapi.json", key=None)
        assert r.status == 200, r
        assert r.header("content-type") == "application/json", r.headers
        assert r.body == raw, "GET /openapi.json differs from src/api/openapi.json (rebuild?)"
        # A key is not needed, but one does no harm.
        assert s.request("GET", "/openapi.json").body == raw
    doc = json.loads(raw)
    version = subprocess.run([BIN, "version"], capture_output=True, text=True, timeout=30).stdout.split()[-1]
    assert doc["openapi"].startswith("3.1."), doc["openapi"]
    assert doc["info"]["version"] == version, (doc["info"]["version"], version)


def test_a_well_kept_validator_accepts_the_document_and_refuses_broken_ones():
    doc = served_doc()
    verdict = validate_with_npm(doc)
    assert verdict["valid"] is True and verdict["version"].startswith("3.1"), verdict
    # The validator is alive: it refuses a response without its description, and a parameter in "body".
    broken = copy.deepcopy(doc)
    del broken["paths"]["/healthz"]["get"]["responses"]["200"]["description"]
    assert validate_with_npm(broken)["valid"] is False
    broken = copy.deepcopy(doc)
    broken["paths"]["/api/v3/webhook"]["get"]["parameters"][0]["in"] = "body"
    assert validate_with_npm(broken)["valid"] is False

    assert structure_problems(doc) == []
    broken = copy.deepcopy(doc)
    broken["paths"]["/api/v1/Webhook/{id}"]["get"]["parameters"].pop(0)
    broken["paths"]["/readyz"]["get"]["operationId"] = "getHealth"
    broken["paths"]["/healthz"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {
        "$ref": "#/components/schemas/NoSuchThing"}
    found = structure_problems(broken)
    assert len(found) == 3, found
    # Every schema is a valid JSON Schema 2020-12 (OpenAPI 3.1's dialect).
    for name, schema in doc["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)


# ---- the document against the router ---------------------------------------------------

ENTRY = re.compile(r'\{\s*"([A-Z]+)"\s*,\s*"(/[^"]*)"\s*,\s*(\w+)\s*,\s*([\w|\s]+?)\s*\}')
TABLE = re.compile(r'hk_api_route\s+\w+\s*\[\s*\]\s*=\s*\{(.*?)\n\}\s*;', re.S)


def source_routes():
    """(PATTERN, METHOD) -> permission name or None, from every hk_api_route table in src/api."""
    routes = {}
    files = sorted(glob.glob(os.path.join(SOURCE_DIR, "src", "api", "**", "*.c"), recursive=True))
    tables = 0
    for path in files:
        with open(path) as f:
            text = re.sub(r"/\*.*?\*/|//[^\n]*", "", f.read(), flags=re.S)
        for body in TABLE.findall(text):
            tables += 1
            rest = ENTRY.sub("", body)
            assert rest.strip(" \t\n,") == "", "%s: a route entry the test cannot read: %r" % (path, rest.strip())
            for method, pattern, _fn, perm in ENTRY.findall(body):
                perm = re.sub(r"\s+", "", perm)
                assert perm in PERMS, "%s: %s %s needs %s, which the test does not know" % (path, method, pattern,
                                                                                          perm)
                assert (pattern, method) not in routes, "%s %s registered twice" % (method, pattern)
                routes[(pattern, method)] = PERMS[perm]
    assert tables >= 7 and len(routes) >= 37, (tables, len(routes))
    return routes


def test_every_route_in_the_source_is_described_and_every_described_route_is_in_the_source():
    doc = served_doc()
    described = {k: roles(op) for k, op in operations(doc).items()}
    routes = source_routes()
    missing = sorted(set(routes) - set(described))
    extra = sorted(set(described) - set(routes))
    assert not missing, "routes in src/api not described in openapi.json: %s" % missing
    assert not extra, "operations in openapi.json that no route table has: %s" % extra
    wrong = [(k, routes[k], described[k]) for k in routes if routes[k] != described[k]]
    assert not wrong, "permission in the source vs the document: %s" % wrong


def test_the_running_router_has_exactly_the_described_routes():
    doc = json.loads(load_doc())
    ops = operations(doc)
    with Server() as s:
        for (path, method), op in sorted(ops.items()):
            url = concrete(path)
            r = s.request(method, url, key=None)
            where = "%s %s (%s)" % (method, path, url)
            if r.status in (404, 405) and r.body:
                body = r.json()
                text = json.dumps(body)
                assert "no resource at" not in text and "method not allowed" not in text, (where, r)
            need = roles(op)
            if need is None:
                assert str(r.status) in op["responses"], (where, r)
            else:
                assert r.status == 401, (where, "a key should be needed", r)
                check_body(doc, op, r, where)
        # A method no route has (OPTIONS) is the router's 405, whose Allow lists exactly the path's methods.
        for path, item in sorted(doc["paths"].items()):
            r = s.request("OPTIONS", concrete(path), key=None)
            assert r.status == 405, (path, r)
            allowed = sorted(m.strip() for m in r.header("allow").split(","))
            assert allowed == sorted(m.upper() for m in METHODS if m in item), (path, r.header("allow"))
        # And the router's own answers are told apart from a handler's: an unknown path is the router's 404.
        r = s.request("GET", "/api/v1/NoSuchThing", key=None)
        assert r.status == 404 and "no resource at" in r.json()["Message"], r


# ---- the schemas against real answers ----------------------------------------------------

def schema_validator(doc, schema, closed=False):
    """A JSON Schema 2020-12 validator of schema; with closed, objects may hold only the members described."""
    components = closed_components(doc) if closed else doc["components"]
    if closed:
        schema = close_objects(copy.deepcopy(schema), set())
    # The schema sits in a document that also holds the components, so "#/components/..." resolves.
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema", "components": components, "allOf": [schema]}
    return jsonschema.Draft202012Validator(root)


def close_objects(node, open_names, inside_allof=False):
    """Adds unevaluatedProperties: false to every object schema that says nothing about other members.

    A schema that is a part of an allOf stays open (its whole closes), and so do the components named in
    open_names (those used as such parts)."""
    if isinstance(node, list):
        return [close_objects(n, open_names) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k in ("example", "examples", "enum", "const", "default"):
            out[k] = v
        elif k == "properties":
            out[k] = {name: close_objects(sub, open_names) for name, sub in v.items()}
        elif k == "allOf":
            out[k] = [close_objects(sub, open_names, inside_allof=True) for sub in v]
        else:
            out[k] = close_objects(v, open_names)
    says = "additionalProperties" in node or "unevaluatedProperties" in node
    if ("properties" in node or "allOf" in node) and not says and not inside_allof:
        out["unevaluatedProperties"] = False
    return out


def closed_components(doc):
    schemas = doc["components"]["schemas"]
    open_names = {m["$ref"].rsplit("/", 1)[1] for s in schemas.values() for m in s.get("allOf", []) if "$ref" in m}
    closed = {name: close_objects(s, open_names, inside_allof=name in open_names) for name, s in schemas.items()}
    return dict(doc["components"], schemas=closed)


def check_body(doc, op, r, where):
    """Asserts that r's status is documented for op and that its body is valid against the documented schema."""
    resp = op["responses"].get(str(r.status))
    assert resp is not None, "%s answered %d, which the document does not list: %r" % (where, r.status, r)
    resp = resolve(doc, resp)
    content = resp.get("content")
    if content is None:
        assert r.body == b"", (where, "a body the document does not describe", r)
        return
    ctype = (r.header("content-type") or "").split(";")[0].strip()
    assert ctype in content, (where, ctype, list(content))
    if r.body == b"" and op["operationId"].startswith("head"):
        return
    if not ctype.endswith("json"):
        # Text (the Prometheus exposition): described as a string; its content is checked by its own test.
        assert content[ctype]["schema"].get("type") == "string", (where, ctype)
        r.body.decode("utf-8")
        return
    # Answers are checked against closed schemas: a member the document does not describe is an error.
    errors = sorted(schema_validator(doc, content[ctype]["schema"], closed=True).iter_errors(r.json()), key=str)
    assert not errors, "%s: the %d body does not match the document: %s\n%r" % (
        where, r.status, "; ".join("%s at %s" % (e.message, list(e.absolute_path)) for e in errors[:5]), r)
    for name, h in resolve(doc, resp).get("headers", {}).items():
        h = resolve(doc, h)
        if name == "Retry-After" or name == "WWW-Authenticate":
            continue
        v = r.header(name)
        assert v is not None, (where, "header %s missing" % name)
        if h["schema"].get("type") == "integer":
            assert re.fullmatch(r"\d+", v), (where, name, v)


class Contract:
    """Sends requests to a server and checks every answer against the document."""

    def __init__(self, server, doc):
        self.s = server
        self.doc = doc
        self.ops = operations(doc)
        self.succeeded = set()

    def call(self, method, template, values=None, body=None, key=ADMIN_KEY, auth="bearer", query="",
             content_type=None, headers=None, expect=None):
        op = self.ops.get((template, method))
        assert op is not None, "%s %s is not described" % (method, template)
        path = template
        for k, v in (values or {}).items():
            path = path.replace("{%s}" % k, urllib.parse.quote(str(v), safe=""))
        assert "{" not in path, path
        hdrs = dict(headers or {})
        data = body
        if body is not None and not isinstance(body, (str, bytes)):
            data = json.dumps(body)
            ctype = content_type or "application/json"
        else:
            ctype = content_type
        if ctype is not None:
            hdrs["Content-Type"] = ctype
        r = self.s.request(method, path + query, body=data, key=key, auth=auth, headers=hdrs)
        where = "%s %s" % (method, path + query)
        if expect is not None:
            assert r.status == expect, (where, r)
        check_body(self.doc, op, r, where)
        if body is not None and 200 <= r.status < 300:
            # A request that worked is valid against the documented request body.
            assert "requestBody" in op, (where, "takes a body the document does not describe")
            media = op["requestBody"]["content"].get(ctype.split(";")[0])
            assert media is not None, (where, ctype, "is not a documented request media type")
            sent = body if not isinstance(body, str) or not ctype.endswith("json") else json.loads(body)
            errs = list(schema_validator(self.doc, media["schema"]).iter_errors(sent))
            assert not errs, (where, "a request body that worked is not valid against the document", errs[0].message)
        if 200 <= r.status < 300:
            self.succeeded.add((template, method))
        return r


def wait_for(cond, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def test_every_operation_answers_as_its_schemas_say():
    doc = json.loads(load_doc())
    with Receiver() as rx, Server(env=ALLOW) as s:
        c = Contract(s, doc)
        s.cli("user", "add", "--code", "viewer", "--name", "Viewer", "--perm", "ApplicationSettings:View")
        viewer = s.cli("key", "create", "--user", "viewer").stdout.strip()

        # Health and the document.
        c.call("GET", "/healthz", key=None, expect=200)
        c.call("HEAD", "/healthz", key=None, expect=200)
        c.call("GET", "/readyz", key=None, expect=200)
        c.call("HEAD", "/readyz", key=None, expect=200)
        c.call("GET", "/openapi.json", key=None, expect=200)
        c.call("GET", "/metrics", expect=200)
        c.call("GET", "/metrics", key=None, expect=401)
        c.call("GET", "/metrics", key=viewer, expect=403)

        # SuperOffice: the resource.
        hook = {"Name": "CRM", "Events": ["contact.created"], "TargetUrl": rx.url + "/so", "Secret": "s3cret",
                "State": "Active", "Type": "webhook", "Headers": {"X-Tenant": "t1"}, "Properties": {"tenant": 1},
                "ErrorsEmail": "ops@example.com;dev@example.com", "Extension": "crm"}
        so = c.call("POST", "/api/v1/Webhook", body=hook, expect=200).json()
        sid = so["WebhookId"]
        c.call("GET", "/api/v1/Webhook", expect=200)
        c.call("GET", "/api/v1/Webhook", auth="basic:admin", expect=200)
        c.call("GET", "/api/v1/Webhook", query="?statusFilter=Active&nameFilter=cr&eventFilter=contact.created",
               expect=200)
        c.call("GET", "/api/v1/Webhook", query="?statusFilter=Sleeping", expect=400)
        c.call("GET", "/api/v1/Webhook/default", expect=200)
        c.call("GET", "/api/v1/Webhook/default", query="?$select=Name", expect=200)
        c.call("GET", "/api/v1/Webhook/{id}", {"id": sid}, expect=200)
        c.call("GET", "/api/v1/Webhook/{id}", {"id": sid}, query="?$select=Name,TargetUrl", expect=200)
        c.call("GET", "/api/v1/Webhook/{id}", {"id": 999999}, expect=404)
        c.call("GET", "/api/v1/Webhook/{id}", {"id": sid}, key=None, expect=401)
        c.call("GET", "/api/v1/Webhook/{id}", {"id": sid}, key="hk_wrong", expect=401)
        c.call("PUT", "/api/v1/Webhook/{id}", {"id": sid}, body=dict(hook, Name="CRM 2"), expect=200)
        c.call("PUT", "/api/v1/Webhook/{id}", {"id": sid}, body=dict(hook, Type="crmscript"), expect=400)
        c.call("PUT", "/api/v1/Webhook/{id}", {"id": sid}, body=hook, key=viewer, expect=403)
        c.call("PUT", "/api/v1/Webhook/{id}", {"id": sid}, body=hook,
               headers={"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}, expect=412)
        c.call("PATCH", "/api/v1/Webhook/{id}", {"id": sid}, body=[{"op": "replace", "path": "/Name", "value": "P"}],
               content_type="application/json-patch+json", expect=200)
        c.call("PATCH", "/api/v1/Webhook/{id}", {"id": sid}, body={"Name": "Merged"},
               content_type="application/merge-patch+json", expect=200)
        c.call("PATCH", "/api/v1/Webhook/{id}", {"id": sid}, body=[{"op": "test", "path": "/Name", "value": "no"}],
               expect=409)
        c.call("GET", "/api/v1/Webhook/{id}/LastError", {"id": sid}, expect=200)

        # SuperOffice: the Agents twins.
        saved = c.call("POST", "/api/v1/Agents/Webhook/SaveWebhook", body={"Webhook": dict(hook, Extension=None)},
                       expect=200).json()
        aid = saved["WebhookId"]
        c.call("POST", "/api/v1/Agents/Webhook/SaveWebhook", body=dict(hook, WebhookId=aid, Extension="", Name="A2"),
               expect=200)
        c.call("POST", "/api/v1/Agents/Webhook/SaveWebhook", body=dict(hook, WebhookId=987654), expect=404)
        c.call("POST", "/api/v1/Agents/Webhook/GetWebhook", body={"webhookId": aid}, expect=200)
        c.call("POST", "/api/v1/Agents/Webhook/GetWebhook", query="?webhookId=%d" % aid, expect=200)
        c.call("POST", "/api/v1/Agents/Webhook/GetWebhook", body={}, expect=400)
        c.call("POST", "/api/v1/Agents/Webhook/GetAllWebhooks", body={"NameFilter": "a", "StatusFilter": 1}, expect=200)
        c.call("POST", "/api/v1/Agents/Webhook/GetAllWebhooks", expect=200)
        c.call("POST", "/api/v1/Agents/Webhook/CreateDefaultWebhook", expect=200)
        c.call("POST", "/api/v1/Agents/Webhook/GetLastError", body=aid, expect=200)
        c.call("POST", "/api/v1/Agents/Webhook/DeleteWebhook", body={"WebhookId": aid}, expect=204)
        c.call("POST", "/api/v1/Agents/Webhook/DeleteWebhook", body={"WebhookId": aid}, expect=404)

        # Signals, and the deliveries they make.
        c.call("POST", "/api/v1/Agents/Webhook/SignalEvent",
               body={"EventName": "contact.created", "PrimaryKey": 1, "Data": {"n": 1}},
               headers={"Idempotency-Key": "k1"}, expect=204)
        c.call("POST", "/api/v1/Agents/Webhook/SignalEvent", body={"EventName": "contact.created"}, expect=400)
        c.call("POST", "/api/v1/Webhook/{eventName}/{primaryKey}", {"eventName": "contact.created", "primaryKey": 2},
               body={"n": 2}, expect=204)
        c.call("POST", "/api/v1/Webhook/{eventName}/{primaryKey}", {"eventName": "contact.created", "primaryKey": "x"},
               expect=400)
        rx.wait_for(2)

        # Test calls.
        c.call("POST", "/api/v1/Webhook/Test", body={"TargetUrl": rx.url + "/test", "Secret": "s"}, expect=200)
        c.call("POST", "/api/v1/Agents/Webhook/TestWebhook", body={"Webhook": {"TargetUrl": rx.url + "/test"}},
               expect=200)
        c.call("POST", "/api/v1/Webhook/Test", body={"Name": "no target"}, expect=400)

        # EnergyCAP: the resource.
        types = c.call("GET", "/api/v3/webhook/eventType", auth="eci", expect=200).json()
        tid = types[0]["webhookEventTypeId"]
        edit = {"webhookName": "Bills", "webhookDescription": "d", "url": rx.url + "/ecap", "secret": "s3cret",
                "active": True, "mailingList": ["ops@example.com"], "webhookEventTypeId": tid, "extension": "bills"}
        eid = c.call("POST", "/api/v3/webhook", body=edit, auth="eci", expect=200).json()["webhookId"]
        c.call("POST", "/api/v3/webhook", body=dict(edit, mailingList=[]), auth="eci", expect=400)
        c.call("GET", "/api/v3/webhook", auth="eci", expect=200)
        c.call("GET", "/api/v3/webhook", query="?filter=" + urllib.parse.quote("webhookStatus equals Active"),
               auth="eci", expect=200)
        c.call("GET", "/api/v3/webhook", query="?filter=" + urllib.parse.quote("nosuchfield equals 1"), auth="eci",
               expect=400)
        c.call("GET", "/api/v3/webhook/{webhookId}", {"webhookId": eid}, auth="eci", expect=200)
        c.call("GET", "/api/v3/webhook/{webhookId}", {"webhookId": 999999}, auth="eci", expect=404)
        c.call("GET", "/api/v3/webhook/{webhookId}", {"webhookId": eid}, key=None, auth="eci", expect=401)
        c.call("PUT", "/api/v3/webhook/{webhookId}", {"webhookId": eid}, body=dict(edit, active=False), auth="eci",
               expect=200)
        c.call("PUT", "/api/v3/webhook/{webhookId}", {"webhookId": eid}, body=dict(edit, active=True), auth="eci",
               expect=200)
        c.call("PUT", "/api/v3/webhook/{webhookId}", {"webhookId": eid}, body=edit, key=viewer, auth="eci",
               expect=403)

        # EnergyCAP: the attempt log of the SuperOffice webhook, which got two deliveries.
        def logged():
            r = s.request("GET", "/api/v3/webhook/%d/log" % sid, auth="eci")
            return r.status == 200 and len(r.json()) >= 2 and r.json()

        wait_for(logged, "two log records")
        page = c.call("GET", "/api/v3/webhook/{webhookId}/log", {"webhookId": sid}, query="?pageSize=1&pageNumber=2",
                      auth="eci", expect=200).json()
        c.call("GET", "/api/v3/webhook/{webhookId}/log", {"webhookId": sid},
               query="?filter=" + urllib.parse.quote("result equals 200"), auth="eci", expect=200)
        c.call("GET", "/api/v3/webhook/{webhookId}/log", {"webhookId": sid}, query="?pageSize=0", auth="eci",
               expect=400)
        c.call("GET", "/api/v3/webhook/{webhookId}/log", {"webhookId": 999999}, auth="eci", expect=404)
        lid = page[0]["webhookLogId"]
        c.call("GET", "/api/v3/webhook/{webhookId}/log/{webhookLogId}/detail", {"webhookId": sid, "webhookLogId": lid},
               auth="eci", expect=200)
        c.call("GET", "/api/v3/webhook/{webhookId}/log/{webhookLogId}/detail",
               {"webhookId": sid, "webhookLogId": 999999}, auth="eci", expect=404)
        c.call("POST", "/api/v3/webhook/{webhookId}/log/{webhookLogId}/resend", {"webhookId": sid, "webhookLogId": lid},
               auth="eci", expect=202)
        rx.wait_for(5)
        # Recovery after an outage (nothing failed here: none is queued again).
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600))
        c.call("POST", "/api/v3/webhook/{webhookId}/recover", {"webhookId": sid}, body={"since": since}, auth="eci",
               expect=202)
        c.call("POST", "/api/v3/webhook/{webhookId}/recover", {"webhookId": sid}, body={}, auth="eci", expect=400)
        c.call("POST", "/api/v3/webhook/{webhookId}/recover", {"webhookId": 999999}, body={"since": since},
               auth="eci", expect=404)
        c.call("POST", "/api/v3/webhook/recover", body={"since": since, "until": None}, auth="eci", expect=202)
        c.call("POST", "/api/v1/Webhook/{id}/Recover", {"id": sid}, body={"Since": since}, expect=202)
        c.call("POST", "/api/v1/Webhook/{id}/Recover", {"id": sid}, body={"Since": "never"}, expect=400)

        # EnergyCAP: the account tree and the custom actions.
        c.call("PUT", "/api/v3/admin/node/{nodeId}", {"nodeId": 1}, body={"name": "Root"}, auth="eci", expect=200)
        c.call("PUT", "/api/v3/admin/node/{nodeId}", {"nodeId": 2}, body={"name": "East", "parentId": 1}, auth="eci",
               expect=200)
        c.call("PUT", "/api/v3/admin/node/{nodeId}", {"nodeId": 3}, body={"name": "Orphan", "parentId": 77},
               auth="eci", expect=400)
        c.call("PUT", "/api/v3/admin/account/{accountId}", {"accountId": 10}, body={"name": "Plant", "nodeId": 2},
               auth="eci", expect=200)
        c.call("PUT", "/api/v3/admin/account/{accountId}", {"accountId": 11}, body={"name": "Lost"}, auth="eci",
               expect=400)
        s.cli("user", "set", "--code", "admin", "--top-node", "1")
        c.call("PUT", "/api/v202211/account/customAction", body={"ids": [10], "webhookId": eid}, auth="eci",
               expect=200)
        c.call("PUT", "/api/v202211/account/customAction", body={"ids": [], "webhookId": eid}, auth="eci", expect=204)
        c.call("PUT", "/api/v202211/account/customAction", body={"ids": [12345], "webhookId": eid}, auth="eci",
               expect=400)
        c.call("PUT", "/api/v202211/account/customAction", body={"ids": [10], "webhookId": 999999}, auth="eci",
               expect=404)
        c.call("PUT", "/api/v3/admin/customapplicationaction/{webhookId}", {"webhookId": eid}, auth="eci", expect=200)
        c.call("PUT", "/api/v3/admin/customapplicationaction/{webhookId}", {"webhookId": 999999}, auth="eci",
               expect=404)

        # Ivanti: Execute.
        c.call("POST", "/api/rest/Webhooks/Execute", query="?extension=crm", body={"ticket": 1}, auth="rest",
               expect=200)
        c.call("POST", "/api/rest/Webhooks/Execute", query="?extension=crm", body='<ticket id="1"/>',
               content_type="application/xml", auth="rest", expect=200)
        c.call("POST", "/api/rest/Webhooks/Execute", query="?extension=nope", body={"ticket": 1}, auth="rest",
               expect=400)
        c.call("POST", "/api/rest/Webhooks/Execute", query="?extension=crm", body={"ticket": 1}, key="hk_wrong",
               auth="rest", expect=401)
        c.call("POST", "/api/rest/Webhooks/Execute", query="?extension=crm", body={"ticket": 1}, key=viewer,
               auth="rest", expect=403)

        # The console's files and its own two endpoints.
        for path in ("/console/", "/console/console.css", "/console/console.js", "/console/webhooks.js",
                     "/console/deliveries.js", "/console/activity.js"):
            c.call("GET", path, key=None, expect=200)
        c.call("GET", "/console/api/me", expect=200)
        c.call("GET", "/console/api/me", key=viewer, expect=200)
        c.call("GET", "/console/api/me", key=None, expect=401)
        c.call("GET", "/console/api/activity", expect=200)
        c.call("GET", "/console/api/activity", query="?webhookId=%d" % sid, key=viewer, expect=200)
        c.call("GET", "/console/api/activity", query="?webhookId=999999", expect=404)
        c.call("GET", "/console/api/activity", query="?webhookId=abc", expect=400)
        c.call("GET", "/console/api/activity", key=None, expect=401)

        # Deletes last.
        c.call("DELETE", "/api/v3/webhook/{webhookId}", {"webhookId": eid}, auth="eci", expect=204)
        c.call("DELETE", "/api/v3/webhook/{webhookId}", {"webhookId": eid}, auth="eci", expect=404)
        c.call("DELETE", "/api/v1/Webhook/{id}", {"id": sid}, expect=204)
        c.call("DELETE", "/api/v1/Webhook/{id}", {"id": sid}, expect=404)

        unseen = sorted(set(c.ops) - c.succeeded)
        assert not unseen, "operations never seen succeeding: %s" % unseen


if __name__ == "__main__":
    run(globals())
