-- 003_ops.sql: the remaining ops of the storage seam (store.h) as
-- functions, as in 002_ops.sql: one statement per op, the op's inputs only
-- (the time is p_now), the rules of the embedded engine (src/state/apply.c,
-- auth.c, accounts.c), an expected refusal a status ('ok', 'notfound',
-- 'exists', 'conflict', 'invalid') and not an error.
--
-- Advisory locks added to 001_schema.sql's (first key 1752133483):
--   (1752133483, 4) the first admin (a user put with only_first),
--   (1752133483, 5) changes to the node tree and accounts, one at a time.
--
-- Locks, so that two nodes deciding on one webhook decide once: an op
-- counting an attempt locks the webhook's row (FOR NO KEY UPDATE) before
-- its statistics, as a webhook put and delete lock the row before they
-- touch the statistics; two outcomes of one webhook therefore run one
-- after the other, and the second sees the first's consecutive failures
-- and state.

-- Counts one attempt in the webhook's statistics and disables it when the
-- rules say so (a 410, or p_disable_after failures in a row) unless it is
-- locked or not Active, storing the state event p_kind (NULL: none) in the
-- same transaction. The webhook's row must be locked by the caller.
-- p_error is cut here to what a webhook keeps of its last error (511 bytes, between characters).
-- Returns whether this attempt disabled the webhook.
CREATE FUNCTION hookd_count_attempt(p_now bigint, p_webhook bigint, p_success boolean, p_error text,
                                    p_is410 boolean, p_disable_after bigint, p_kind text, p_kind_json text,
                                    p_reason_json text, p_uuid uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    err text := p_error;
BEGIN
    -- What a webhook keeps of its last error: 511 bytes at most, cut between characters.
    IF octet_length(err) > 511 THEN
        err := left(err, 511);
        WHILE octet_length(err) > 511 LOOP
            err := left(err, length(err) - 1);
        END LOOP;
    END IF;
    INSERT INTO webhook_stats AS st (webhook_id, calls, errors, consecutive, last_error_ms, last_error)
    VALUES (p_webhook, 1, CASE WHEN p_success THEN 0 ELSE 1 END, CASE WHEN p_success THEN 0 ELSE 1 END,
            CASE WHEN p_success THEN 0 ELSE p_now END, CASE WHEN p_success THEN '' ELSE err END)
    ON CONFLICT (webhook_id) DO UPDATE SET
        calls = st.calls + 1,
        errors = st.errors + CASE WHEN p_success THEN 0 ELSE 1 END,
        consecutive = CASE WHEN p_success THEN 0 ELSE st.consecutive + 1 END,
        last_error_ms = CASE WHEN p_success THEN st.last_error_ms ELSE p_now END,
        last_error = CASE WHEN p_success THEN st.last_error ELSE err END
    RETURNING st.consecutive INTO n;
    IF p_success OR NOT (p_is410 OR n >= p_disable_after) THEN
        RETURN false;
    END IF;
    UPDATE webhooks w SET state = 2 WHERE w.id = p_webhook AND w.state = 0 AND NOT w.locked;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF p_kind IS NOT NULL THEN
        PERFORM hookd_state_event(p_webhook, p_now, p_kind, p_kind_json, p_reason_json, p_uuid);
    END IF;
    RETURN true;
END
$$;

-- An attempt record into the log (its id from the sequence); returns the id.
CREATE FUNCTION hookd_log_attempt(p_rec attempts, p_disabled boolean) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    p_rec.id := nextval('attempt_id_seq');
    p_rec.disabled := p_disabled;
    INSERT INTO attempts SELECT (p_rec).*;
    RETURN p_rec.id;
END
$$;

-- HK_OP_OUTCOME: a queued delivery's attempt. The entry goes (vanished when
-- it is gone: nothing else happens); when its webhook is gone too, nothing
-- else happens either. Otherwise the attempt is counted (auto-disable), a
-- failure with p_next_due <> 0 queues the retry (attempts + 1, first_ms
-- kept, no lease), and the record is logged.
CREATE FUNCTION hookd_outcome(p_now bigint, p_webhook bigint, p_due bigint, p_event bigint, p_is410 boolean,
                              p_next_due bigint, p_disable_after bigint, p_kind text, p_kind_json text,
                              p_reason_json text, p_uuid uuid, p_rec attempts)
RETURNS TABLE (vanished boolean, disabled boolean, log_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    d deliveries%ROWTYPE;
    dis boolean;
BEGIN
    PERFORM 1 FROM webhooks w WHERE w.id = p_webhook FOR NO KEY UPDATE;
    DELETE FROM deliveries q WHERE q.webhook_id = p_webhook AND q.due_ms = p_due AND q.event_id = p_event
    RETURNING * INTO d;
    IF NOT FOUND THEN
        RETURN QUERY SELECT true, false, 0::bigint;
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.id = p_webhook) THEN
        RETURN QUERY SELECT true, false, 0::bigint;
        RETURN;
    END IF;
    dis := hookd_count_attempt(p_now, p_webhook, p_rec.success, p_rec.error, p_is410, p_disable_after, p_kind,
                               p_kind_json, p_reason_json, p_uuid);
    IF NOT p_rec.success AND p_next_due <> 0 THEN
        INSERT INTO deliveries (webhook_id, due_ms, event_id, attempts, first_ms)
        VALUES (p_webhook, p_next_due, p_event, d.attempts + 1, d.first_ms)
        ON CONFLICT (webhook_id, due_ms, event_id) DO UPDATE SET
            attempts = EXCLUDED.attempts, first_ms = EXCLUDED.first_ms, leased_by = NULL, lease_until = NULL;
    END IF;
    RETURN QUERY SELECT false, dis, hookd_log_attempt(p_rec, dis);
END
$$;

-- HK_OP_ATTEMPT: a synchronous call's attempt, counted and logged; vanished
-- when its webhook is gone.
CREATE FUNCTION hookd_attempt(p_now bigint, p_is410 boolean, p_disable_after bigint, p_kind text, p_kind_json text,
                              p_reason_json text, p_uuid uuid, p_rec attempts)
RETURNS TABLE (vanished boolean, disabled boolean, log_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    dis boolean;
BEGIN
    PERFORM 1 FROM webhooks w WHERE w.id = p_rec.webhook_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT true, false, 0::bigint;
        RETURN;
    END IF;
    dis := hookd_count_attempt(p_now, p_rec.webhook_id, p_rec.success, p_rec.error, p_is410, p_disable_after,
                               p_kind, p_kind_json, p_reason_json, p_uuid);
    RETURN QUERY SELECT false, dis, hookd_log_attempt(p_rec, dis);
END
$$;

-- HK_OP_RESEND: the event queued for the webhook again, due now.
CREATE FUNCTION hookd_resend(p_now bigint, p_webhook bigint, p_event bigint) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.id = p_webhook)
       OR NOT EXISTS (SELECT 1 FROM events e WHERE e.id = p_event) THEN
        RETURN 'notfound';
    END IF;
    INSERT INTO deliveries (webhook_id, due_ms, event_id, attempts, first_ms)
    VALUES (p_webhook, p_now, p_event, 0, p_now)
    ON CONFLICT (webhook_id, due_ms, event_id) DO UPDATE SET attempts = 0, first_ms = p_now;
    RETURN 'ok';
END
$$;

-- HK_OP_QUEUE_DROP: up to p_max queue entries of a deleted webhook (a live
-- one's are kept: ids are never reused). Returns whether entries remain.
CREATE FUNCTION hookd_queue_drop(p_webhook bigint, p_max integer) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhooks w WHERE w.id = p_webhook) THEN
        RETURN false;
    END IF;
    DELETE FROM deliveries q WHERE (q.webhook_id, q.due_ms, q.event_id) IN
        (SELECT r.webhook_id, r.due_ms, r.event_id FROM deliveries r WHERE r.webhook_id = p_webhook
         ORDER BY r.due_ms, r.event_id LIMIT p_max);
    RETURN EXISTS (SELECT 1 FROM deliveries q WHERE q.webhook_id = p_webhook);
END
$$;

-- HK_OP_USER_PUT: creates (p_id 0) or replaces a user; its code is unique
-- ASCII-case-insensitively (p_code_lower is hookd's lower-casing); with
-- p_only_first nothing is stored when a user exists ('skipped'); a key
-- (p_hash not NULL) is stored for the user in the same transaction.
CREATE FUNCTION hookd_user_put(p_now bigint, p_id bigint, p_code text, p_code_lower text, p_full_name text,
                               p_perms integer, p_top_node bigint, p_only_first boolean, p_hash bytea,
                               p_key_created bigint, p_key_revoked boolean, p_short_id text)
RETURNS TABLE (status text, id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    uid bigint := p_id;
BEGIN
    IF p_only_first AND p_id = 0 THEN
        -- Two nodes creating the first admin at once: one decides.
        PERFORM pg_advisory_xact_lock(1752133483, 4);
        IF EXISTS (SELECT 1 FROM users) THEN
            RETURN QUERY SELECT 'skipped', 0::bigint;
            RETURN;
        END IF;
    END IF;
    IF p_id <> 0 AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = p_id) THEN
        RETURN QUERY SELECT 'notfound', 0::bigint;
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM users u WHERE u.code_lower = p_code_lower AND u.id <> p_id) THEN
        RETURN QUERY SELECT 'exists', 0::bigint;
        RETURN;
    END IF;
    IF p_id = 0 THEN
        uid := nextval('user_id_seq');
    END IF;
    BEGIN
        INSERT INTO users AS u (id, code, code_lower, full_name, perms, top_node)
        VALUES (uid, p_code, p_code_lower, p_full_name, p_perms, p_top_node)
        ON CONFLICT ON CONSTRAINT users_pkey DO UPDATE SET
            code = EXCLUDED.code, code_lower = EXCLUDED.code_lower, full_name = EXCLUDED.full_name,
            perms = EXCLUDED.perms, top_node = EXCLUDED.top_node;
        IF p_hash IS NOT NULL THEN
            INSERT INTO api_keys (hash, user_id, created_ms, revoked, short_id)
            VALUES (p_hash, uid, CASE WHEN p_key_created = 0 THEN p_now ELSE p_key_created END, p_key_revoked,
                    p_short_id);
        END IF;
    EXCEPTION WHEN unique_violation THEN
        -- The code (or the key) another node's commit took meanwhile.
        RETURN QUERY SELECT 'exists', 0::bigint;
        RETURN;
    END;
    RETURN QUERY SELECT 'ok', uid;
END
$$;

-- HK_OP_KEY_PUT: a new key of an existing user.
CREATE FUNCTION hookd_key_put(p_now bigint, p_hash bytea, p_user bigint, p_created bigint, p_revoked boolean,
                              p_short_id text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM users u WHERE u.id = p_user) THEN
        RETURN 'notfound';
    END IF;
    INSERT INTO api_keys (hash, user_id, created_ms, revoked, short_id)
    VALUES (p_hash, p_user, CASE WHEN p_created = 0 THEN p_now ELSE p_created END, p_revoked, p_short_id)
    ON CONFLICT (hash) DO NOTHING;
    RETURN CASE WHEN FOUND THEN 'ok' ELSE 'exists' END;
END
$$;

-- HK_OP_KEY_REVOKE: by the first four bytes of the hash (p_prefix, a short
-- id; 'conflict' with the count when several keys have it) or by the hash.
CREATE FUNCTION hookd_key_revoke(p_prefix bytea, p_hash bytea) RETURNS TABLE (status text, matches bigint)
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    h bytea := p_hash;
BEGIN
    IF p_prefix IS NOT NULL THEN
        SELECT count(*) INTO n FROM api_keys k WHERE substr(k.hash, 1, 4) = p_prefix;
        SELECT k.hash INTO h FROM api_keys k WHERE substr(k.hash, 1, 4) = p_prefix LIMIT 1;
        IF n > 1 THEN
            RETURN QUERY SELECT 'conflict', n;
            RETURN;
        END IF;
    END IF;
    UPDATE api_keys k SET revoked = true WHERE k.hash = h;
    RETURN QUERY SELECT CASE WHEN FOUND THEN 'ok' ELSE 'notfound' END, 0::bigint;
END
$$;

-- HK_OP_NODE_PUT: creates or replaces a node whose parent chain exists,
-- does not pass through the node itself and is at most 1000 deep. The
-- name was checked by hookd. Returns the status and, for 'invalid', why.
CREATE FUNCTION hookd_node_put(p_id bigint, p_parent bigint, p_name text) RETURNS TABLE (status text, err text)
LANGUAGE plpgsql AS $$
DECLARE
    cur bigint := p_parent;
    up bigint;
    depth integer := 0;
BEGIN
    -- Tree changes one at a time: two nodes moving two nodes under each other would make a cycle.
    PERFORM pg_advisory_xact_lock(1752133483, 5);
    WHILE cur <> 0 LOOP
        IF cur = p_id THEN
            RETURN QUERY SELECT 'invalid', format('node %s cannot be its own ancestor (parent %s)', p_id, p_parent);
            RETURN;
        END IF;
        IF depth >= 1000 THEN
            RETURN QUERY SELECT 'invalid', format('node %s would be deeper than %s levels', p_id, 1000);
            RETURN;
        END IF;
        SELECT n.parent INTO up FROM nodes n WHERE n.id = cur;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'invalid', format('node %s does not exist', cur);
            RETURN;
        END IF;
        cur := up;
        depth := depth + 1;
    END LOOP;
    INSERT INTO nodes (id, parent, name) VALUES (p_id, p_parent, p_name)
    ON CONFLICT (id) DO UPDATE SET parent = EXCLUDED.parent, name = EXCLUDED.name;
    RETURN QUERY SELECT 'ok', ''::text;
END
$$;

-- HK_OP_ACCOUNT_PUT: creates or replaces an account of an existing node.
CREATE FUNCTION hookd_account_put(p_id bigint, p_node bigint, p_name text) RETURNS TABLE (status text, err text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1752133483, 5);
    IF NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = p_node) THEN
        RETURN QUERY SELECT 'invalid', format('node %s does not exist', p_node);
        RETURN;
    END IF;
    INSERT INTO accounts (id, node, name) VALUES (p_id, p_node, p_name)
    ON CONFLICT (id) DO UPDATE SET node = EXCLUDED.node, name = EXCLUDED.name;
    RETURN QUERY SELECT 'ok', ''::text;
END
$$;

-- HK_OP_PRUNE: one step of retention, one node at a time (when another
-- node holds the retention lock this step does nothing: 'busy'). Attempt
-- partitions that end before p_attempts_before are dropped whole (rows of
-- attempts_default deleted); then events older than p_events_before in id
-- order, each with its queue entries, up to p_max records (an event and
-- its entries never split; events dated after p_now stepped over); then
-- expired Idempotency-Keys.
CREATE FUNCTION hookd_prune(p_now bigint, p_attempts_before bigint, p_events_before bigint, p_idem_before bigint,
                            p_max bigint)
RETURNS TABLE (status text, more boolean, removed bigint, dropped_deliveries bigint)
LANGUAGE plpgsql AS $$
DECLARE
    ev record;
    used bigint := 0;
    rem bigint := 0;
    dropped bigint := 0;
    n bigint;
    is_more boolean := false;
BEGIN
    IF NOT pg_try_advisory_xact_lock(1752133483, 3) THEN
        RETURN QUERY SELECT 'busy', false, 0::bigint, 0::bigint;
        RETURN;
    END IF;
    IF p_attempts_before <> 0 THEN
        PERFORM hookd_attempts_drop_before(p_attempts_before);
    END IF;
    IF p_events_before <> 0 THEN
        FOR ev IN SELECT e.id, e.ts_ms FROM events e ORDER BY e.id LOOP
            CONTINUE WHEN p_now <> 0 AND ev.ts_ms > p_now;
            EXIT WHEN ev.ts_ms >= p_events_before;
            IF used >= p_max THEN
                is_more := true;
                EXIT;
            END IF;
            DELETE FROM deliveries q WHERE q.event_id = ev.id;
            GET DIAGNOSTICS n = ROW_COUNT;
            DELETE FROM events e WHERE e.id = ev.id;
            rem := rem + 1;
            dropped := dropped + n;
            used := used + 1 + n;
        END LOOP;
    END IF;
    IF NOT is_more AND p_idem_before <> 0 THEN
        DELETE FROM idempotency_keys k WHERE (k.user_id, k.key) IN
            (SELECT i.user_id, i.key FROM idempotency_keys i WHERE i.recorded_ms < p_idem_before
             ORDER BY i.recorded_ms LIMIT greatest(p_max - used, 0));
        GET DIAGNOSTICS n = ROW_COUNT;
        rem := rem + n;
        is_more := EXISTS (SELECT 1 FROM idempotency_keys i WHERE i.recorded_ms < p_idem_before);
    END IF;
    RETURN QUERY SELECT 'ok', is_more, rem, dropped;
END
$$;

-- HK_OP_TREE_IMPORT: nodes (p_nodes) or accounts, rows hookd read from the
-- CSV and checked one by one (ids, names, no id twice; p_lines says where
-- each began). All are stored first and checked after, in the order given,
-- so a parent may come later in the file; a row whose parent or node does
-- not exist, or that makes a node its own ancestor or the tree deeper than
-- 1000, undoes the whole import ('invalid', 'line N: reason').
CREATE FUNCTION hookd_tree_import(p_nodes boolean, p_ids bigint[], p_links bigint[], p_names text[],
                                  p_lines bigint[]) RETURNS TABLE (status text, err text, stored bigint)
LANGUAGE plpgsql AS $$
DECLARE
    cur bigint;
    up bigint;
    depth integer;
BEGIN
    PERFORM pg_advisory_xact_lock(1752133483, 5);
    BEGIN
        IF p_nodes THEN
            INSERT INTO nodes (id, parent, name) SELECT * FROM unnest(p_ids, p_links, p_names)
            ON CONFLICT (id) DO UPDATE SET parent = EXCLUDED.parent, name = EXCLUDED.name;
        ELSE
            INSERT INTO accounts (id, node, name) SELECT * FROM unnest(p_ids, p_links, p_names)
            ON CONFLICT (id) DO UPDATE SET node = EXCLUDED.node, name = EXCLUDED.name;
        END IF;
        FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
            IF NOT p_nodes THEN
                IF NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = p_links[i]) THEN
                    RAISE EXCEPTION 'line %: node % does not exist', p_lines[i], p_links[i];
                END IF;
                CONTINUE;
            END IF;
            cur := p_links[i];
            depth := 0;
            WHILE cur <> 0 LOOP
                IF cur = p_ids[i] THEN
                    RAISE EXCEPTION 'line %: node % cannot be its own ancestor (parent %)', p_lines[i], p_ids[i],
                        p_links[i];
                END IF;
                IF depth >= 1000 THEN
                    RAISE EXCEPTION 'line %: node % would be deeper than 1000 levels', p_lines[i], p_ids[i];
                END IF;
                SELECT n.parent INTO up FROM nodes n WHERE n.id = cur;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'line %: node % does not exist', p_lines[i], cur;
                END IF;
                cur := up;
                depth := depth + 1;
            END LOOP;
        END LOOP;
    EXCEPTION WHEN raise_exception THEN
        -- The block's rows are undone with it: nothing of the import is kept.
        RETURN QUERY SELECT 'invalid', SQLERRM, 0::bigint;
        RETURN;
    END;
    RETURN QUERY SELECT 'ok', ''::text, coalesce(array_length(p_ids, 1), 0)::bigint;
END
$$;

-- Statistics change on every attempt; rather than a notification each,
-- nodes read the rows changed since their last read, once a second: every
-- write stamps the row with the next value of webhook_stats_change_seq.
CREATE SEQUENCE webhook_stats_change_seq AS bigint MINVALUE 1 NO CYCLE;
ALTER TABLE webhook_stats ADD COLUMN changed bigint NOT NULL DEFAULT 0;
CREATE INDEX webhook_stats_changed ON webhook_stats (changed);

CREATE FUNCTION hookd_stats_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed := nextval('webhook_stats_change_seq');
    RETURN NEW;
END
$$;

CREATE TRIGGER webhook_stats_changed BEFORE INSERT OR UPDATE ON webhook_stats
    FOR EACH ROW EXECUTE FUNCTION hookd_stats_changed();
