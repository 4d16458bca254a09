-- Written by hand (drizzle-kit generate --custom): a function drizzle's schema cannot
-- declare. A statement that writes events announces them through it instead of calling
-- pg_notify directly: a NOTIFY payload must stay under 8,000 bytes, and one statement's
-- lines (a batch of runs finishing, each with its message and step events) can exceed
-- that. It sends the lines in as many notifications as they need, cut between lines, in
-- order; all of them still commit (or vanish) with the statement's transaction, which
-- takes the notification queue's lock once however many it sends. STRICT: nothing to
-- announce (a null payload), nothing sent.
CREATE FUNCTION runway_notify(channel text, payload text) RETURNS void
LANGUAGE plpgsql STRICT VOLATILE
AS $$
DECLARE
  chunk text := '';
  line text;
BEGIN
  IF octet_length(payload) <= 7900 THEN
    PERFORM pg_notify(channel, payload);
    RETURN;
  END IF;
  FOREACH line IN ARRAY string_to_array(payload, E'\n') LOOP
    IF chunk = '' THEN
      chunk := line;
    ELSIF octet_length(chunk) + 1 + octet_length(line) > 7900 THEN
      PERFORM pg_notify(channel, chunk);
      chunk := line;
    ELSE
      chunk := chunk || E'\n' || line;
    END IF;
  END LOOP;
  IF chunk <> '' THEN
    PERFORM pg_notify(channel, chunk);
  END IF;
END
$$;
