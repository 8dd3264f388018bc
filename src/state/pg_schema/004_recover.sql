-- 004_recover.sql: HK_OP_RECOVER (store.h's hk_op_recover) on the cluster's
-- database: failed deliveries of a time window queued again, once each, in
-- bounded steps.
--
-- A step queues, due at p_now with a fresh attempt count, the events of
-- webhook p_webhook whose last attempt record that started within
-- [p_since, p_until] is a failure after which no retry was due (exhausted,
-- or a 410: next_due_ms 0), with no success recorded after it (in the
-- window or later), whose event is still stored and which are not queued
-- now; synchronous calls never. At most p_max of them, in the order of
-- those failure records' ids, from p_from_log on: the next step starts
-- after the last one this step queued (next_log_id), so a delivery queued
-- again and failing again during the run is not queued a second time.
-- The embedded engine walks the log and notes candidates between steps;
-- here one set-based statement finds them, so no note outlives a step.
--
-- Returns (status, next_log_id, queued, done, gone): status 'ok',
-- 'notfound' (no such webhook at the first step), 'invalid' (p_until
-- before p_since) or 'timeout' (the run began more than a day ago); gone:
-- the webhook was deleted since the first step (nothing queued, done).
CREATE FUNCTION hookd_recover(p_now bigint, p_webhook bigint, p_since bigint, p_until bigint, p_run_ms bigint,
                              p_from_log bigint, p_max integer)
RETURNS TABLE (r_status text, r_next_log_id bigint, r_queued bigint, r_done boolean, r_gone boolean)
LANGUAGE plpgsql AS $$
DECLARE
    n bigint := 0;
    last_id bigint := NULL;
    c record;
BEGIN
    IF p_until < p_since THEN
        RETURN QUERY SELECT 'invalid'::text, p_from_log, 0::bigint, true, false;
        RETURN;
    END IF;
    IF p_now - p_run_ms > 86400000 THEN
        RETURN QUERY SELECT 'timeout'::text, p_from_log, 0::bigint, true, false;
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.id = p_webhook) THEN
        IF p_from_log = 0 THEN
            RETURN QUERY SELECT 'notfound'::text, 0::bigint, 0::bigint, true, false;
        ELSE
            RETURN QUERY SELECT 'ok'::text, p_from_log, 0::bigint, true, true;
        END IF;
        RETURN;
    END IF;
    FOR c IN
        SELECT l.id, l.event_id
        FROM (SELECT DISTINCT ON (a.event_id) a.id, a.event_id, a.success, a.exhausted, a.next_due_ms
              FROM attempts a
              WHERE a.webhook_id = p_webhook AND NOT a.sync AND a.event_id <> 0
                AND a.started_ms >= p_since AND a.started_ms <= p_until
              ORDER BY a.event_id, a.id DESC) l
        WHERE NOT l.success AND (l.exhausted OR l.next_due_ms = 0) AND l.id >= p_from_log
          AND NOT EXISTS (SELECT 1 FROM attempts s
                          WHERE s.webhook_id = p_webhook AND s.event_id = l.event_id AND s.success AND s.id > l.id)
          AND EXISTS (SELECT 1 FROM events e WHERE e.id = l.event_id)
          AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.webhook_id = p_webhook AND d.event_id = l.event_id)
        ORDER BY l.id
        LIMIT p_max
    LOOP
        INSERT INTO deliveries (webhook_id, due_ms, event_id, attempts, first_ms)
        VALUES (p_webhook, p_now, c.event_id, 0, p_now)
        ON CONFLICT (webhook_id, due_ms, event_id) DO NOTHING;
        n := n + 1;
        last_id := c.id;
    END LOOP;
    RETURN QUERY SELECT 'ok'::text, COALESCE(last_id + 1, p_from_log), n, n < p_max, false;
END
$$;
