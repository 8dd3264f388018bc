-- 001_schema.sql: hookd's state in PostgreSQL (cluster mode): everything the
-- embedded LMDB engine stores (src/state/*.c), one table per record of
-- model.h. src/state/pg_migrate.c applies it in one transaction under the
-- migration lock and records version 1 in hookd_schema in that transaction.
--
-- Conventions
-- - Times are bigint milliseconds since the Unix epoch, *_ms, as the ops'
--   now_ms gives them: applying an op stays deterministic, and a record
--   reads back exactly as the embedded engine gives it.
-- - Ids that are 32-bit in model.h are bigint with a CHECK of their range.
--   Ids hookd assigns come from sequences: never reused, never colliding
--   between nodes (a rolled-back transaction leaves a gap, as a sequence
--   does). Node and account ids are chosen by the operator.
-- - Text is stored as given. JSON text (event Data, Properties) stays text:
--   jsonb would reorder keys and drop duplicates, and hookd delivers the
--   bytes it accepted. Bytes from a peer (an attempt's request and
--   response, an Idempotency-Key) are bytea.
-- - State events (webhook{ID}.errors/.stopped/.started) are events like
--   any other, stored with their deliveries in the commit that causes them.
-- - Changes to what a node keeps in memory (webhooks and subscriptions,
--   users, keys, nodes, accounts, event types) are announced on channel
--   hookd_registry by triggers, with the payload "<table> <key>", at
--   commit, whoever writes (a node, the CLI, an operator's psql); new
--   deliveries on channel hookd_queue (empty payload, once per transaction).
-- - Advisory locks (two-key form, first key 1752133483 = 'hook'):
--   (1752133483, 1) migrations, (1752133483, 2) attempt partitions,
--   (1752133483, 3) retention, one node at a time.

DO $$
BEGIN
    IF (SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()) <> 'UTF8' THEN
        RAISE EXCEPTION 'hookd needs a database in UTF8 encoding; % is %', current_database(),
            (SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database())
            USING HINT = 'CREATE DATABASE ... ENCODING ''UTF8'' TEMPLATE template0';
    END IF;
END
$$;

-- ---- the registry --------------------------------------------------------------------

CREATE SEQUENCE webhook_id_seq AS bigint MINVALUE 1 MAXVALUE 4294967295 NO CYCLE;

-- hk_webhook. Lists keep their order: events, headers and properties as
-- parallel arrays of names and values (a property's value is compact JSON
-- text), notify the mail addresses.
CREATE TABLE webhooks (
    id bigint PRIMARY KEY CHECK (id BETWEEN 1 AND 4294967295),
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    url text NOT NULL,
    secret text NOT NULL DEFAULT '',
    prev_secret text NOT NULL DEFAULT '',
    prev_secret_until_ms bigint NOT NULL DEFAULT 0,
    state smallint NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2)), -- Active, Stopped, TooManyErrors
    locked boolean NOT NULL DEFAULT false,
    extension text UNIQUE,                                          -- Ivanti extension; NULL: none
    events text[] NOT NULL DEFAULT '{}',
    header_names text[] NOT NULL DEFAULT '{}',
    header_values text[] NOT NULL DEFAULT '{}',
    property_names text[] NOT NULL DEFAULT '{}',
    property_values text[] NOT NULL DEFAULT '{}',
    notify text[] NOT NULL DEFAULT '{}',
    registered_ms bigint NOT NULL,
    registered_by bigint NOT NULL DEFAULT 0,
    updated_ms bigint NOT NULL,
    updated_by bigint NOT NULL DEFAULT 0,
    CHECK (extension <> ''),
    CHECK (cardinality(header_names) = cardinality(header_values)),
    CHECK (cardinality(property_names) = cardinality(property_values))
);

-- Fan-out: the webhooks subscribed to an event name (kept with webhooks.events).
CREATE TABLE webhook_subscriptions (
    event text NOT NULL,
    webhook_id bigint NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    PRIMARY KEY (event, webhook_id)
);
CREATE INDEX webhook_subscriptions_webhook ON webhook_subscriptions (webhook_id);

-- hk_webhook_stats: apart from the webhook, so that counting an attempt
-- neither rewrites nor locks the registry row the hot path reads.
CREATE TABLE webhook_stats (
    webhook_id bigint PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    calls bigint NOT NULL DEFAULT 0,
    errors bigint NOT NULL DEFAULT 0,
    consecutive bigint NOT NULL DEFAULT 0,  -- failures since the last success
    last_error_ms bigint NOT NULL DEFAULT 0,
    last_error text NOT NULL DEFAULT ''
);

CREATE SEQUENCE event_type_id_seq AS bigint MINVALUE 1 MAXVALUE 4294967295 NO CYCLE;

-- Names ever subscribed or signalled, with stable ids (GET /api/v3/webhook/eventType).
CREATE TABLE event_types (
    id bigint PRIMARY KEY DEFAULT nextval('event_type_id_seq') CHECK (id BETWEEN 1 AND 4294967295),
    name text NOT NULL UNIQUE
);

-- ---- events and the delivery queue ------------------------------------------------------

CREATE SEQUENCE event_id_seq AS bigint MINVALUE 1 NO CYCLE;

-- hk_event. name is the event's name ("webhook.errors" for a state event,
-- whose subscription name is webhook{ID}.errors).
CREATE TABLE events (
    id bigint PRIMARY KEY DEFAULT nextval('event_id_seq'),
    ts_ms bigint NOT NULL,
    primary_key bigint NOT NULL,
    user_id bigint NOT NULL DEFAULT 0,
    uuid uuid NOT NULL,
    name text NOT NULL,
    changes text NOT NULL DEFAULT '[]',
    data text NOT NULL DEFAULT '{}'
);
CREATE INDEX events_ts ON events (ts_ms);

-- hk_delivery: one pending delivery of an event to a webhook, keyed as the
-- embedded engine keys it. A node claims due entries in batches:
--   UPDATE deliveries d SET leased_by = $node, lease_until = $now + $lease
--   FROM (SELECT webhook_id, due_ms, event_id FROM deliveries
--         WHERE due_ms <= $now AND (lease_until IS NULL OR lease_until <= $now)
--         ORDER BY due_ms LIMIT $n FOR UPDATE SKIP LOCKED) c
--   WHERE (d.webhook_id, d.due_ms, d.event_id) = (c.webhook_id, c.due_ms, c.event_id)
-- so each is attempted by one node at a time; a node that dies loses its
-- leases when they expire. The outcome deletes the entry (and inserts the
-- retry) in the commit that logs the attempt. No foreign keys: a deleted
-- webhook's entries go in bounded steps (HK_OP_QUEUE_DROP), a pruned event's
-- in the step that prunes it.
CREATE TABLE deliveries (
    webhook_id bigint NOT NULL,
    due_ms bigint NOT NULL,
    event_id bigint NOT NULL,
    attempts bigint NOT NULL DEFAULT 0,   -- attempts made so far
    first_ms bigint NOT NULL DEFAULT 0,   -- when the first attempt was made
    leased_by text,                       -- the claiming node (cluster_members.name); NULL: free
    lease_until bigint,                   -- ms: the claim holds until then
    PRIMARY KEY (webhook_id, due_ms, event_id),
    CHECK ((leased_by IS NULL) = (lease_until IS NULL))
);
CREATE INDEX deliveries_due ON deliveries (due_ms);
CREATE INDEX deliveries_event ON deliveries (event_id);

-- Idempotency-Keys per signalling user, remembered for [delivery]
-- idempotency_window. The key's row is the cluster's one decision: a second
-- node inserting the same key waits for the first's commit and then finds it.
CREATE TABLE idempotency_keys (
    user_id bigint NOT NULL,
    key bytea NOT NULL CHECK (length(key) <= 255),
    recorded_ms bigint NOT NULL,
    event_id bigint NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_time ON idempotency_keys (recorded_ms);

-- ---- the attempt log: one partition per UTC day, dropped whole by retention ---------------

CREATE SEQUENCE attempt_id_seq AS bigint MINVALUE 1 NO CYCLE;

-- hk_attempt. attempts_default holds what no day partition takes (a clock
-- far off); hookd_attempts_partition moves such rows into the day's
-- partition when it creates it.
CREATE TABLE attempts (
    id bigint NOT NULL DEFAULT nextval('attempt_id_seq'),
    webhook_id bigint NOT NULL,
    event_id bigint NOT NULL DEFAULT 0,   -- 0: a synchronous call
    event_name text NOT NULL DEFAULT '',
    event_uuid text NOT NULL DEFAULT '',
    attempt bigint NOT NULL DEFAULT 1,
    started_ms bigint NOT NULL,
    duration_ms bigint NOT NULL DEFAULT 0,
    success boolean NOT NULL DEFAULT false,
    status integer NOT NULL DEFAULT 0,    -- HTTP status; 0: no response
    error text NOT NULL DEFAULT '',
    url text NOT NULL DEFAULT '',
    request bytea NOT NULL DEFAULT '',
    response bytea NOT NULL DEFAULT '',
    user_id bigint NOT NULL DEFAULT 0,
    exhausted boolean NOT NULL DEFAULT false,
    next_due_ms bigint NOT NULL DEFAULT 0,
    disabled boolean NOT NULL DEFAULT false,
    sync boolean NOT NULL DEFAULT false,
    PRIMARY KEY (webhook_id, id, started_ms)
) PARTITION BY RANGE (started_ms);
CREATE TABLE attempts_default PARTITION OF attempts DEFAULT;
CREATE INDEX attempts_started ON attempts (started_ms);

-- The partition of UTC day `day` (days since the epoch), attempts_YYYYMMDD;
-- created when missing. Returns its name.
CREATE FUNCTION hookd_attempts_partition(day bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    part text := 'attempts_' || to_char(to_timestamp(day * 86400) AT TIME ZONE 'UTC', 'YYYYMMDD');
    lo bigint := day * 86400000;
    hi bigint := (day + 1) * 86400000;
BEGIN
    PERFORM pg_advisory_xact_lock(1752133483, 2);
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN part;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE attempts INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
    EXECUTE format('WITH moved AS (DELETE FROM attempts_default WHERE started_ms >= %s AND started_ms < %s RETURNING *) '
                   'INSERT INTO %I SELECT * FROM moved', lo, hi, part);
    EXECUTE format('ALTER TABLE attempts ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)', part, lo, hi);
    RETURN part;
END
$$;

-- Partitions from the day before now_ms's to days_ahead days after it.
CREATE FUNCTION hookd_attempts_ensure(now_ms bigint, days_ahead integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    today bigint := now_ms / 86400000;
BEGIN
    FOR d IN today - 1 .. today + days_ahead LOOP
        PERFORM hookd_attempts_partition(d);
    END LOOP;
END
$$;

-- Retention: drops every day partition that ends at or before before_ms
-- and deletes older rows of attempts_default. Returns the partitions dropped.
CREATE FUNCTION hookd_attempts_drop_before(before_ms bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(1752133483, 2);
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'attempts'::regclass AND c.relname ~ '^attempts_[0-9]{8}$'
    LOOP
        IF (extract(epoch FROM to_date(substr(part.relname, 10), 'YYYYMMDD'))::bigint + 86400) * 1000 <= before_ms THEN
            EXECUTE format('DROP TABLE %I', part.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    DELETE FROM attempts_default WHERE started_ms < before_ms;
    RETURN dropped;
END
$$;

SELECT hookd_attempts_ensure((extract(epoch FROM now()) * 1000)::bigint, 2);

-- ---- users, keys, the node tree, accounts ------------------------------------------------

CREATE SEQUENCE user_id_seq AS bigint MINVALUE 1 MAXVALUE 4294967295 NO CYCLE;

-- hk_user. code_lower is the code with ASCII letters lower-cased, as the
-- embedded engine compares codes (not the database's collation).
CREATE TABLE users (
    id bigint PRIMARY KEY CHECK (id BETWEEN 1 AND 4294967295),
    code text NOT NULL CHECK (code <> ''),
    code_lower text NOT NULL UNIQUE,
    full_name text NOT NULL DEFAULT '',
    perms integer NOT NULL DEFAULT 0,
    top_node bigint NOT NULL DEFAULT 0 CHECK (top_node BETWEEN 0 AND 4294967295)
);

-- hk_key: only the SHA-256 of a key is stored.
CREATE TABLE api_keys (
    hash bytea PRIMARY KEY CHECK (length(hash) = 32),
    user_id bigint NOT NULL REFERENCES users (id),
    created_ms bigint NOT NULL,
    revoked boolean NOT NULL DEFAULT false,
    short_id text NOT NULL CHECK (length(short_id) = 8)
);
CREATE INDEX api_keys_short_id ON api_keys (short_id);
CREATE INDEX api_keys_user ON api_keys (user_id);

-- hk_node: the tree that scopes account actions (parent 0: a root).
CREATE TABLE nodes (
    id bigint PRIMARY KEY CHECK (id BETWEEN 1 AND 4294967295),
    parent bigint NOT NULL DEFAULT 0 CHECK (parent BETWEEN 0 AND 4294967295),
    name text NOT NULL
);
CREATE INDEX nodes_parent ON nodes (parent);

-- hk_account: an account under a node.
CREATE TABLE accounts (
    id bigint PRIMARY KEY CHECK (id BETWEEN 1 AND 4294967295),
    node bigint NOT NULL CHECK (node BETWEEN 1 AND 4294967295),
    name text NOT NULL
);
CREATE INDEX accounts_node ON accounts (node);

-- ---- the cluster ---------------------------------------------------------------------------

-- The hookd nodes (processes) sharing this database: name is what they write
-- into deliveries.leased_by; seen_ms their last sign of life.
CREATE TABLE cluster_members (
    name text PRIMARY KEY,
    started_ms bigint NOT NULL,
    seen_ms bigint NOT NULL,
    version text NOT NULL DEFAULT ''
);

-- Failure mails: the last one sent per webhook, so that the whole cluster
-- sends at most one per [smtp] min_interval.
CREATE TABLE failure_mails (
    webhook_id bigint PRIMARY KEY,
    sent_ms bigint NOT NULL
);

-- ---- change notifications ---------------------------------------------------------------------

-- Row triggers: pg_notify('hookd_registry', '<table> <key>'), the key
-- column named by the trigger's argument (bytea keys as \x hex).
CREATE FUNCTION hookd_notify_registry() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    row_key text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        row_key := to_jsonb(OLD) ->> TG_ARGV[0];
    ELSE
        row_key := to_jsonb(NEW) ->> TG_ARGV[0];
    END IF;
    PERFORM pg_notify('hookd_registry', TG_TABLE_NAME || ' ' || row_key);
    RETURN NULL;
END
$$;

CREATE TRIGGER webhooks_notify AFTER INSERT OR UPDATE OR DELETE ON webhooks
    FOR EACH ROW EXECUTE FUNCTION hookd_notify_registry('id');
CREATE TRIGGER webhook_subscriptions_notify AFTER INSERT OR UPDATE OR DELETE ON webhook_subscriptions
    FOR EACH ROW EXECUTE FUNCTION hookd_notify_registry('webhook_id');
CREATE TRIGGER event_types_notify AFTER INSERT OR UPDATE OR DELETE ON event_types
    FOR EACH ROW EXECUTE FUNCTION hookd_notify_registry('id');
CREATE TRIGGER users_notify AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION hookd_notify_registry('id');
CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION hookd_notify_registry('hash');
CREATE TRIGGER nodes_notify AFTER INSERT OR UPDATE OR DELETE ON nodes
    FOR EACH ROW EXECUTE FUNCTION hookd_notify_registry('id');
CREATE TRIGGER accounts_notify AFTER INSERT OR UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION hookd_notify_registry('id');

-- New deliveries, once per statement (notifications with the same payload
-- in one transaction are delivered once): wakes the other nodes' dispatchers.
CREATE FUNCTION hookd_notify_queue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hookd_queue', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER deliveries_notify AFTER INSERT ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION hookd_notify_queue();
