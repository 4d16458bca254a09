-- Written by hand (drizzle-kit generate --custom): a function drizzle's schema cannot
-- declare. A statement that writes run events calls it, as it would call pg_notify, to
-- add its announcement to the outbox in its own transaction; STRICT: nothing to
-- announce (a null payload), nothing added.
CREATE FUNCTION runway_outbox_append(payload text) RETURNS bigint
LANGUAGE sql STRICT VOLATILE
AS $$ INSERT INTO event_outbox (payload) VALUES (payload) RETURNING id $$;
