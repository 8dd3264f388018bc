-- 002_ops.sql: the ops of the storage seam (store.h) that one statement
-- cannot express, as functions, so that a group commit sends each op as
-- one statement and the whole group in one round trip (src/state/pg_store.c).
-- They apply the same rules as the embedded engine (src/state/apply.c,
-- webhook.c) to the op's inputs; the time is always the op's (p_now), never
-- the server's clock. An expected refusal is a status, not an error, so it
-- does not abort the group's transaction:
--   'ok', 'notfound', 'locked', 'conflict' (If-Unmodified-Since),
--   'exists' (an extension another webhook holds).

-- A state event (webhook{ID}.<kind>): an event named webhook.<kind> with
-- PrimaryKey ID and Data {"WebhookId":ID,"State":kind[,"Reason":reason]},
-- queued for the Active webhooks subscribed to webhook{ID}.<kind>, never
-- for ID itself. p_kind_json and p_reason_json are the JSON strings of the
-- kind and the reason (NULL: no Reason), quoted by hookd as the embedded
-- engine quotes them, so both engines store the same bytes. Returns the
-- event's id.
CREATE FUNCTION hookd_state_event(p_webhook bigint, p_now bigint, p_kind text, p_kind_json text,
                                  p_reason_json text, p_uuid uuid) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    route text := 'webhook' || p_webhook || '.' || p_kind;
    eid bigint := nextval('event_id_seq');
BEGIN
    INSERT INTO events (id, ts_ms, primary_key, user_id, uuid, name, changes, data)
    VALUES (eid, p_now, p_webhook, 0, p_uuid, 'webhook.' || p_kind,
            CASE WHEN p_reason_json IS NULL THEN '["WebhookId","State"]' ELSE '["WebhookId","State","Reason"]' END,
            '{"WebhookId":' || p_webhook || ',"State":' || p_kind_json
                || coalesce(',"Reason":' || p_reason_json, '') || '}');
    PERFORM hookd_event_type(route);
    INSERT INTO deliveries (webhook_id, due_ms, event_id, attempts, first_ms)
    SELECT s.webhook_id, p_now, eid, 0, p_now
    FROM webhook_subscriptions s JOIN webhooks w ON w.id = s.webhook_id
    WHERE s.event = route AND w.state = 0 AND s.webhook_id <> p_webhook;
    RETURN eid;
END
$$;

-- Registers an event type name (a known one takes no id from the sequence).
CREATE FUNCTION hookd_event_type(p_name text) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO event_types (name)
    SELECT p_name WHERE NOT EXISTS (SELECT 1 FROM event_types WHERE name = p_name)
    ON CONFLICT (name) DO NOTHING;
$$;

-- The subscription names an event reaches, as the embedded engine looks
-- them up (apply.c): its name, and, unless it is a state event's
-- (webhook{ID}.<kind>) or longer than 128 bytes, the patterns "*" and "p.*"
-- for every prefix p of the name that ends before one of its dots.
CREATE FUNCTION hookd_routes(p_name text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    routes text[] := ARRAY[p_name, '*'];
BEGIN
    IF p_name ~ '^webhook[0-9]+\.' OR octet_length(p_name) > 128 THEN
        RETURN ARRAY[p_name];
    END IF;
    FOR i IN 1 .. length(p_name) - 1 LOOP
        IF substr(p_name, i, 1) = '.' THEN
            routes := routes || (substr(p_name, 1, i) || '*');
        END IF;
    END LOOP;
    RETURN routes;
END
$$;

-- HK_OP_SIGNAL: an accepted event with its fan-out to the Active
-- subscribers of its name (and of the patterns that match it, each webhook
-- once). With an Idempotency-Key (p_key not NULL), the
-- key's row decides, also between nodes: a second transaction with the same
-- key waits for the first and then finds it, so the event is stored once.
-- Returns whether it was a duplicate, the event (the first one, for a
-- duplicate) and the webhooks a delivery was queued for, in id order.
CREATE FUNCTION hookd_signal(p_now bigint, p_name text, p_primary_key bigint, p_data text, p_changes text,
                             p_user bigint, p_uuid uuid, p_key bytea, p_window bigint)
RETURNS TABLE (duplicate boolean, event_id bigint, webhooks bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    eid bigint := nextval('event_id_seq');
    kept bigint;
BEGIN
    IF p_key IS NOT NULL THEN
        -- Inserts the key, or takes it over when it expired; within the window the row keeps its event.
        INSERT INTO idempotency_keys AS k (user_id, key, recorded_ms, event_id)
        VALUES (p_user, p_key, p_now, eid)
        ON CONFLICT (user_id, key) DO UPDATE SET
            recorded_ms = CASE WHEN k.recorded_ms + p_window > EXCLUDED.recorded_ms
                               THEN k.recorded_ms ELSE EXCLUDED.recorded_ms END,
            event_id = CASE WHEN k.recorded_ms + p_window > EXCLUDED.recorded_ms
                            THEN k.event_id ELSE EXCLUDED.event_id END
        RETURNING k.event_id INTO kept;
        IF kept <> eid THEN
            RETURN QUERY SELECT true, kept, '{}'::bigint[];
            RETURN;
        END IF;
    END IF;
    INSERT INTO events (id, ts_ms, primary_key, user_id, uuid, name, changes, data)
    VALUES (eid, p_now, p_primary_key, p_user, p_uuid, p_name, p_changes, p_data);
    PERFORM hookd_event_type(p_name);
    RETURN QUERY
    WITH q AS (
        INSERT INTO deliveries (webhook_id, due_ms, event_id, attempts, first_ms)
        SELECT DISTINCT s.webhook_id, p_now, eid, 0, p_now
        FROM webhook_subscriptions s JOIN webhooks w ON w.id = s.webhook_id
        WHERE s.event = ANY (hookd_routes(p_name)) AND w.state = 0
        RETURNING deliveries.webhook_id
    )
    SELECT false, eid, coalesce(array_agg(q.webhook_id ORDER BY q.webhook_id), '{}'::bigint[]) FROM q;
END
$$;

-- HK_OP_WEBHOOK_PUT: creates (p_id 0: an id from the sequence) or replaces
-- a webhook, its subscriptions and event types. A client (p_by_client)
-- cannot change a locked webhook, nor its lock; one re-activating a
-- webhook the failure rules disabled resets its consecutive failures.
-- p_event_kind (NULL: none) stores a state event in the same transaction.
CREATE FUNCTION hookd_webhook_put(
    p_now bigint, p_id bigint, p_by_client boolean, p_unmodified_since bigint,
    p_name text, p_description text, p_url text, p_secret text, p_prev_secret text, p_prev_secret_until bigint,
    p_state smallint, p_locked boolean, p_extension text, p_events text[], p_header_names text[],
    p_header_values text[], p_property_names text[], p_property_values text[], p_notify text[],
    p_registered_ms bigint, p_registered_by bigint, p_updated_ms bigint, p_updated_by bigint,
    p_event_kind text, p_event_kind_json text, p_event_reason_json text, p_event_uuid uuid)
RETURNS TABLE (status text, id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    old webhooks%ROWTYPE;
    wid bigint := p_id;
    lock boolean := p_locked;
BEGIN
    IF p_id <> 0 THEN
        SELECT * INTO old FROM webhooks w WHERE w.id = p_id FOR UPDATE;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'notfound', 0::bigint;
            RETURN;
        END IF;
        IF p_by_client AND old.locked THEN
            RETURN QUERY SELECT 'locked', 0::bigint;
            RETURN;
        END IF;
        -- HTTP dates have whole seconds: If-Unmodified-Since compares at that granularity.
        IF p_unmodified_since <> 0 AND old.updated_ms / 1000 > p_unmodified_since / 1000 THEN
            RETURN QUERY SELECT 'conflict', 0::bigint;
            RETURN;
        END IF;
        IF p_by_client THEN
            lock := old.locked;
        END IF;
    ELSE
        wid := nextval('webhook_id_seq');
    END IF;
    BEGIN
        INSERT INTO webhooks AS w (id, name, description, url, secret, prev_secret, prev_secret_until_ms, state,
                                   locked, extension, events, header_names, header_values, property_names,
                                   property_values, notify, registered_ms, registered_by, updated_ms, updated_by)
        VALUES (wid, p_name, p_description, p_url, p_secret, p_prev_secret, p_prev_secret_until, p_state, lock,
                nullif(p_extension, ''), p_events, p_header_names, p_header_values, p_property_names,
                p_property_values, p_notify, p_registered_ms, p_registered_by, p_updated_ms, p_updated_by)
        ON CONFLICT ON CONSTRAINT webhooks_pkey DO UPDATE SET
            name = EXCLUDED.name, description = EXCLUDED.description, url = EXCLUDED.url,
            secret = EXCLUDED.secret, prev_secret = EXCLUDED.prev_secret,
            prev_secret_until_ms = EXCLUDED.prev_secret_until_ms, state = EXCLUDED.state,
            locked = EXCLUDED.locked, extension = EXCLUDED.extension, events = EXCLUDED.events,
            header_names = EXCLUDED.header_names, header_values = EXCLUDED.header_values,
            property_names = EXCLUDED.property_names, property_values = EXCLUDED.property_values,
            notify = EXCLUDED.notify, registered_ms = EXCLUDED.registered_ms,
            registered_by = EXCLUDED.registered_by, updated_ms = EXCLUDED.updated_ms,
            updated_by = EXCLUDED.updated_by;
    EXCEPTION WHEN unique_violation THEN
        -- The extension is another webhook's (also one committed meanwhile by another node).
        RETURN QUERY SELECT 'exists', 0::bigint;
        RETURN;
    END;
    DELETE FROM webhook_subscriptions s WHERE s.webhook_id = wid AND s.event <> ALL (p_events);
    INSERT INTO webhook_subscriptions (event, webhook_id)
    SELECT DISTINCT e, wid FROM unnest(p_events) e
    ON CONFLICT DO NOTHING;
    -- In the order given, as the embedded engine registers them (new names get ids in that order).
    PERFORM hookd_event_type(u.e) FROM unnest(p_events) WITH ORDINALITY AS u(e, n) ORDER BY u.n;
    IF p_id <> 0 AND old.state = 2 AND p_state = 0 THEN
        UPDATE webhook_stats st SET consecutive = 0 WHERE st.webhook_id = wid;
    END IF;
    IF p_event_kind IS NOT NULL THEN
        PERFORM hookd_state_event(wid, p_now, p_event_kind, p_event_kind_json, p_event_reason_json, p_event_uuid);
    END IF;
    RETURN QUERY SELECT 'ok', wid;
END
$$;

-- HK_OP_WEBHOOK_DELETE: the webhook with its subscriptions and statistics,
-- and up to p_log_max of its attempt records (the rest expire with the log's
-- retention); its queue entries go later, in bounded steps (HK_OP_QUEUE_DROP).
CREATE FUNCTION hookd_webhook_delete(p_id bigint, p_by_client boolean, p_unmodified_since bigint,
                                     p_log_max integer) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    old webhooks%ROWTYPE;
BEGIN
    SELECT * INTO old FROM webhooks w WHERE w.id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'notfound';
    END IF;
    IF p_by_client AND old.locked THEN
        RETURN 'locked';
    END IF;
    IF p_unmodified_since <> 0 AND old.updated_ms / 1000 > p_unmodified_since / 1000 THEN
        RETURN 'conflict';
    END IF;
    DELETE FROM webhooks w WHERE w.id = p_id;
    DELETE FROM attempts a
    WHERE a.webhook_id = p_id AND (a.id, a.started_ms) IN
        (SELECT b.id, b.started_ms FROM attempts b WHERE b.webhook_id = p_id LIMIT p_log_max);
    RETURN 'ok';
END
$$;
