/*
 * Unit tests of users, keys and permissions: the permission list syntax,
 * keys made and revoked (by key and by short id) through the store's ops,
 * and hk_auth_check on hand-built requests for all four credential forms.
 */
#include <mbedtls/base64.h>
#include <stdio.h>
#include <unistd.h>

#include "auth.h"
#include "store.h"
#include "unit.h"

static char tmpdir[] = "/tmp/hk-auth-XXXXXX";
static char dir[300];

static void test_perms(void)
{
    unsigned p = 0;
    char bad[64] = "";
    CHECK_INT(hk_perm_parse("ApplicationSettings:View", &p, bad, sizeof(bad)), 0);
    CHECK_INT(p, HK_PERM_VIEW);
    CHECK_INT(hk_perm_parse("ApplicationSettings:Manage, Events:Signal ,Webhooks:Execute", &p, bad, sizeof(bad)), 0);
    CHECK_INT(p, HK_PERM_MANAGE | HK_PERM_SIGNAL | HK_PERM_EXECUTE);
    CHECK_INT(hk_perm_parse("accounts:edit", &p, bad, sizeof(bad)), 0);
    CHECK_INT(p, HK_PERM_ACCOUNTS);
    CHECK_INT(hk_perm_parse("all", &p, bad, sizeof(bad)), 0);
    CHECK_INT(p, HK_PERM_ALL);
    CHECK_INT(hk_perm_parse("ALL", &p, bad, sizeof(bad)), 0);
    CHECK_INT(p, HK_PERM_ALL);
    CHECK_INT(hk_perm_parse("", &p, bad, sizeof(bad)), 0);
    CHECK_INT(p, 0);
    p = 99;
    CHECK_INT(hk_perm_parse("Events:Signal,Nope:Nope", &p, bad, sizeof(bad)), HK_EINVAL);
    CHECK_STR(bad, "Nope:Nope");
    CHECK_INT(p, 99);
    CHECK_INT(hk_perm_parse("Events:Signal,,Webhooks:Execute", &p, bad, sizeof(bad)), HK_EINVAL);
    CHECK_INT(hk_perm_parse("Events", &p, bad, sizeof(bad)), HK_EINVAL);
    CHECK_STR(bad, "Events");

    char buf[256];
    hk_perm_format(HK_PERM_VIEW | HK_PERM_SIGNAL, buf, sizeof(buf));
    CHECK_STR(buf, "ApplicationSettings:View,Events:Signal");
    hk_perm_format(0, buf, sizeof(buf));
    CHECK_STR(buf, "");
    hk_perm_format(HK_PERM_ALL, buf, sizeof(buf));
    CHECK_STR(buf, "ApplicationSettings:View,ApplicationSettings:Manage,Accounts:Edit,Events:Signal,Webhooks:Execute,"
                   "Metrics:Read");
    /* Format and parse round-trip. */
    CHECK_INT(hk_perm_parse(buf, &p, bad, sizeof(bad)), 0);
    CHECK_INT(p, HK_PERM_ALL);
    /* A short buffer is never overrun and stays a string. */
    char small[31];
    small[30] = 'X';
    hk_perm_format(HK_PERM_ALL, small, 30);
    CHECK(strlen(small) < 30 && small[30] == 'X');
    CHECK(strncmp(small, "ApplicationSettings:View", 24) == 0);

    CHECK(hk_perm_allows(HK_PERM_MANAGE, HK_PERM_VIEW));
    CHECK(hk_perm_allows(HK_PERM_VIEW, HK_PERM_VIEW));
    CHECK(!hk_perm_allows(HK_PERM_VIEW, HK_PERM_MANAGE));
    CHECK(!hk_perm_allows(HK_PERM_SIGNAL, HK_PERM_VIEW));
    CHECK(hk_perm_allows(HK_PERM_ALL, HK_PERM_EXECUTE | HK_PERM_ACCOUNTS));
    CHECK(!hk_perm_allows(HK_PERM_EXECUTE, HK_PERM_EXECUTE | HK_PERM_ACCOUNTS));
    CHECK_INT(hk_perm_parse("metrics:read", &p, bad, sizeof(bad)), 0);
    CHECK_INT(p, HK_PERM_METRICS);
    CHECK(hk_perm_allows(HK_PERM_METRICS, HK_PERM_METRICS));
    CHECK(!hk_perm_allows(HK_PERM_MANAGE | HK_PERM_SIGNAL, HK_PERM_METRICS));
    /* A user stored with `all` before Metrics:Read existed still holds all. */
    CHECK(hk_perm_allows(HK_PERM_ALL_V1, HK_PERM_METRICS));
    CHECK(!hk_perm_allows(HK_PERM_ALL_V1 & ~HK_PERM_EXECUTE, HK_PERM_METRICS));
}

/* ---- store-backed ------------------------------------------------------- */

struct setup {
    hk_user alice, bob;
    char alice_key[HK_KEY_TEXT_LEN], alice_id[9];
    char alice_key2[HK_KEY_TEXT_LEN], alice_id2[9];
    char bob_key[HK_KEY_TEXT_LEN], bob_id[9];
    char given_id[9];
    int dup_code;
};

static int create_user(hk_store *st, hk_user *u)
{
    hk_op op = {.type = HK_OP_USER_PUT, .now_ms = hk_now_ms()};
    op.u.user_put.user = *u;
    op.u.user_put.user.id = 0;
    int rc = hk_store_apply(st, &op);
    if (rc == 0)
        u->id = op.u.user_put.id;
    return rc;
}

/* A new key of user_id: given as text, or random into key_out; its short id into id_out. */
static int create_key(hk_store *st, uint32_t user_id, const char *given, char *key_out, char *id_out)
{
    char text[HK_KEY_TEXT_LEN];
    hk_op op = {.type = HK_OP_KEY_PUT, .now_ms = hk_now_ms()};
    hk_key_make(&op.u.key_put.key, user_id, given, op.now_ms, text);
    int rc = hk_store_apply(st, &op);
    if (rc != 0)
        return rc;
    if (key_out != NULL)
        memcpy(key_out, text, HK_KEY_TEXT_LEN);
    if (id_out != NULL)
        memcpy(id_out, op.u.key_put.key.short_id, 9);
    return 0;
}

static int setup(hk_store *st, struct setup *s)
{
    memset(&s->alice, 0, sizeof(s->alice));
    snprintf(s->alice.code, sizeof(s->alice.code), "Alice");
    snprintf(s->alice.full_name, sizeof(s->alice.full_name), "Alice Example");
    s->alice.perms = HK_PERM_VIEW | HK_PERM_SIGNAL;
    s->alice.top_node = 12;
    int rc = create_user(st, &s->alice);
    if (rc != 0)
        return rc;
    memset(&s->bob, 0, sizeof(s->bob));
    snprintf(s->bob.code, sizeof(s->bob.code), "bob");
    s->bob.perms = HK_PERM_ALL;
    if ((rc = create_user(st, &s->bob)) != 0)
        return rc;
    hk_user again;
    memset(&again, 0, sizeof(again));
    snprintf(again.code, sizeof(again.code), "ALICE");
    s->dup_code = create_user(st, &again);
    if ((rc = create_key(st, s->alice.id, NULL, s->alice_key, s->alice_id)) != 0)
        return rc;
    if ((rc = create_key(st, s->alice.id, NULL, s->alice_key2, s->alice_id2)) != 0)
        return rc;
    if ((rc = create_key(st, s->bob.id, NULL, s->bob_key, s->bob_id)) != 0)
        return rc;
    return create_key(st, s->bob.id, "hk_given_key_for_bob", NULL, s->given_id);
}

/* Revokes the key given whole or, failing that, by its short id (as `hookd key revoke` does). */
static int revoke_key(hk_store *st, const char *key_or_id)
{
    hk_op op = {.type = HK_OP_KEY_REVOKE, .now_ms = hk_now_ms()};
    hk_key_hash(key_or_id, strlen(key_or_id), op.u.key_revoke.hash);
    int rc = hk_store_apply(st, &op);
    if (rc != HK_ENOTFOUND || strlen(key_or_id) != 8)
        return rc;
    memset(&op.u.key_revoke, 0, sizeof(op.u.key_revoke));
    snprintf(op.u.key_revoke.short_id, sizeof(op.u.key_revoke.short_id), "%s", key_or_id);
    return hk_store_apply(st, &op);
}

/* A request with the given header fields ("Name", "value" pairs, NULL-terminated). */
static hk_http_request make_req(hk_header *h, const char *const *fields)
{
    hk_http_request r;
    memset(&r, 0, sizeof(r));
    size_t n = 0;
    for (; fields[2 * n] != NULL; n++) {
        h[n].name = fields[2 * n];
        h[n].name_len = strlen(fields[2 * n]);
        h[n].value = fields[2 * n + 1];
        h[n].value_len = strlen(fields[2 * n + 1]);
    }
    r.headers = h;
    r.nheaders = n;
    r.path = "/api/v1/Webhook";
    r.path_len = strlen(r.path);
    r.query = "";
    r.body = "";
    return r;
}

/* Authenticates a request with one header; out receives the user. */
static enum hk_auth_result auth1(hk_store *st, const char *name, const char *value, hk_user *out)
{
    hk_header h[4];
    const char *fields[] = {"Host", "example", name, value, NULL};
    hk_http_request r = make_req(h, name ? fields : (const char *const[]){"Host", "example", NULL});
    memset(out, 0, sizeof(*out));
    return hk_auth_check(st, &r, out);
}

static const char *basic(const char *code, const char *key)
{
    static char buf[512];
    char plain[300];
    unsigned char b64[420];
    size_t olen = 0;
    int n = snprintf(plain, sizeof(plain), "%s:%s", code, key);
    mbedtls_base64_encode(b64, sizeof(b64), &olen, (const unsigned char *)plain, (size_t)n);
    snprintf(buf, sizeof(buf), "Basic %.*s", (int)olen, b64);
    return buf;
}

static void test_users_keys_and_authentication(void)
{
    hk_store *st;
    hk_store_opts o = {.data_dir = dir, .map_size = 1 << 20, .max_batch = 16};
    CHECK_INT(hk_store_open(&st, NULL, &o), 0);
    struct setup s;
    CHECK_INT(setup(st, &s), 0);
    CHECK_INT(s.dup_code, HK_EEXIST);
    CHECK(s.alice.id != 0 && s.bob.id != 0 && s.alice.id != s.bob.id);
    /* Generated keys: "hk_" and 43 base64url characters, distinct, with 8-hex-digit ids. */
    CHECK_INT(strlen(s.alice_key), HK_KEY_TEXT_LEN - 1);
    CHECK(strncmp(s.alice_key, "hk_", 3) == 0);
    CHECK(strspn(s.alice_key + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 43);
    CHECK(strcmp(s.alice_key, s.alice_key2) != 0);
    CHECK_INT(strlen(s.alice_id), 8);
    CHECK(strspn(s.alice_id, "0123456789abcdef") == 8);
    CHECK(strcmp(s.alice_id, s.alice_id2) != 0);

    hk_user u;
    size_t users = 0;
    CHECK_INT(hk_store_user_count(st, &users), 0);
    CHECK_INT(users, 2);
    CHECK_INT(hk_store_user_by_code(st, "aLiCe", &u), 0);
    CHECK_INT(u.id, s.alice.id);
    CHECK_STR(u.code, "Alice");
    CHECK_STR(u.full_name, "Alice Example");
    CHECK_INT(u.perms, HK_PERM_VIEW | HK_PERM_SIGNAL);
    CHECK_INT(u.top_node, 12);
    CHECK_INT(hk_store_user_get(st, s.bob.id, &u), 0);
    CHECK_STR(u.code, "bob");
    CHECK_INT(hk_store_user_by_code(st, "carol", &u), HK_ENOTFOUND);
    CHECK_INT(hk_store_user_get(st, 999, &u), HK_ENOTFOUND);

    /* All four credential forms. */
    char buf[128];
    CHECK_INT(auth1(st, "ECI-ApiKey", s.alice_key, &u), HK_AUTH_OK);
    CHECK_INT(u.id, s.alice.id);
    CHECK_INT(auth1(st, "eci-apikey", s.alice_key, &u), HK_AUTH_OK);
    snprintf(buf, sizeof(buf), "Bearer %s", s.alice_key);
    CHECK_INT(auth1(st, "Authorization", buf, &u), HK_AUTH_OK);
    CHECK_INT(u.id, s.alice.id);
    snprintf(buf, sizeof(buf), "bearer %s", s.bob_key);
    CHECK_INT(auth1(st, "authorization", buf, &u), HK_AUTH_OK);
    CHECK_INT(u.id, s.bob.id);
    CHECK_INT(u.perms, HK_PERM_ALL);
    CHECK_INT(auth1(st, "Authorization", basic("Alice", s.alice_key), &u), HK_AUTH_OK);
    CHECK_INT(u.id, s.alice.id);
    CHECK_INT(auth1(st, "Authorization", basic("ALICE", s.alice_key), &u), HK_AUTH_OK);
    snprintf(buf, sizeof(buf), "rest_api_key=%s", s.alice_key);
    CHECK_INT(auth1(st, "Authorization", buf, &u), HK_AUTH_OK);
    CHECK_INT(u.id, s.alice.id);
    /* The operator-given key works like a generated one. */
    CHECK_INT(auth1(st, "Authorization", "Bearer hk_given_key_for_bob", &u), HK_AUTH_OK);
    CHECK_INT(u.id, s.bob.id);

    /* Missing and wrong credentials. */
    CHECK_INT(auth1(st, NULL, NULL, &u), HK_AUTH_MISSING);
    CHECK_INT(auth1(st, "X-Api-Key", s.alice_key, &u), HK_AUTH_MISSING);
    CHECK_INT(auth1(st, "ECI-ApiKey", "hk_wrong", &u), HK_AUTH_INVALID);
    CHECK_INT(auth1(st, "ECI-ApiKey", "", &u), HK_AUTH_INVALID);
    CHECK_INT(auth1(st, "Authorization", "Bearer hk_wrong", &u), HK_AUTH_INVALID);
    CHECK_INT(auth1(st, "Authorization", "Bearer ", &u), HK_AUTH_INVALID);
    snprintf(buf, sizeof(buf), "Token %s", s.alice_key);
    CHECK_INT(auth1(st, "Authorization", buf, &u), HK_AUTH_INVALID);
    snprintf(buf, sizeof(buf), "%s", s.alice_key);
    CHECK_INT(auth1(st, "Authorization", buf, &u), HK_AUTH_INVALID);
    /* Basic: the user code must be the key's owner's. */
    CHECK_INT(auth1(st, "Authorization", basic("bob", s.alice_key), &u), HK_AUTH_INVALID);
    CHECK_INT(auth1(st, "Authorization", basic("", s.alice_key), &u), HK_AUTH_INVALID);
    CHECK_INT(auth1(st, "Authorization", basic("Alice", "hk_wrong"), &u), HK_AUTH_INVALID);
    CHECK_INT(auth1(st, "Authorization", "Basic !!!notbase64!!!", &u), HK_AUTH_INVALID);
    CHECK_INT(auth1(st, "Authorization", "Basic bm9jb2xvbg==", &u), HK_AUTH_INVALID); /* "nocolon" */
    /* An over-long credential is refused without harm. */
    char *huge = malloc(5000);
    memset(huge, 'A', 4999);
    huge[4999] = '\0';
    memcpy(huge, "Basic ", 6);
    CHECK_INT(auth1(st, "Authorization", huge, &u), HK_AUTH_INVALID);
    memcpy(huge, "Bearer ", 7);
    CHECK_INT(auth1(st, "Authorization", huge, &u), HK_AUTH_INVALID);
    free(huge);

    /* Revoke by key: that key fails in every form, the user's other key still works. */
    CHECK_INT(revoke_key(st, s.alice_key), 0);
    CHECK_INT(auth1(st, "ECI-ApiKey", s.alice_key, &u), HK_AUTH_INVALID);
    snprintf(buf, sizeof(buf), "Bearer %s", s.alice_key);
    CHECK_INT(auth1(st, "Authorization", buf, &u), HK_AUTH_INVALID);
    CHECK_INT(auth1(st, "Authorization", basic("Alice", s.alice_key), &u), HK_AUTH_INVALID);
    snprintf(buf, sizeof(buf), "rest_api_key=%s", s.alice_key);
    CHECK_INT(auth1(st, "Authorization", buf, &u), HK_AUTH_INVALID);
    CHECK_INT(auth1(st, "ECI-ApiKey", s.alice_key2, &u), HK_AUTH_OK);

    /* Revoke by short id. */
    CHECK_INT(revoke_key(st, s.bob_id), 0);
    CHECK_INT(auth1(st, "ECI-ApiKey", s.bob_key, &u), HK_AUTH_INVALID);
    CHECK_INT(auth1(st, "Authorization", "Bearer hk_given_key_for_bob", &u), HK_AUTH_OK);
    CHECK_INT(revoke_key(st, s.given_id), 0);
    CHECK_INT(auth1(st, "Authorization", "Bearer hk_given_key_for_bob", &u), HK_AUTH_INVALID);

    /* Unknown keys and ids. */
    CHECK_INT(revoke_key(st, "hk_nosuchkey"), HK_ENOTFOUND);
    CHECK_INT(revoke_key(st, "zzzzzzzz"), HK_ENOTFOUND);
    char other[9];
    snprintf(other, sizeof(other), "%08x", 0u);
    if (strcmp(other, s.alice_id2) != 0)
        CHECK_INT(revoke_key(st, other), HK_ENOTFOUND);
    CHECK_INT(auth1(st, "ECI-ApiKey", s.alice_key2, &u), HK_AUTH_OK);

    /* Revocations survive a reopen. */
    hk_store_close(st);
    CHECK_INT(hk_store_open(&st, NULL, &o), 0);
    CHECK_INT(auth1(st, "ECI-ApiKey", s.alice_key, &u), HK_AUTH_INVALID);
    CHECK_INT(auth1(st, "ECI-ApiKey", s.bob_key, &u), HK_AUTH_INVALID);
    CHECK_INT(auth1(st, "ECI-ApiKey", s.alice_key2, &u), HK_AUTH_OK);
    hk_store_close(st);
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(dir, sizeof(dir), "%s/env", tmpdir);
    test_perms();
    test_users_keys_and_authentication();
    char path[400];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
    rmdir(tmpdir);
    return unit_done();
}
