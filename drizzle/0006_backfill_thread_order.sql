-- Written by hand (drizzle-kit generate --custom): a data migration, no schema change.
-- 0002_thread_order added runs.thread_seq, run_events.thread_seq and threads.run_count
-- with a default of 0 and no backfill, so runs created before it all have thread_seq 0
-- (their thread's events have no order) and the thread's next run was numbered 1 again.
-- Here every run of such a thread is numbered in creation order (ids are ULIDs), its
-- events follow, and the thread's count is set. Threads without a run numbered 0 are
-- untouched; cursors of the threads renumbered, already ambiguous, change.
WITH affected AS (
	SELECT DISTINCT thread_id FROM runs WHERE thread_seq = 0
), numbered AS (
	SELECT r.id, row_number() OVER (PARTITION BY r.thread_id ORDER BY r.id)::integer AS seq
	FROM runs r JOIN affected a ON a.thread_id = r.thread_id
)
UPDATE runs SET thread_seq = numbered.seq FROM numbered WHERE runs.id = numbered.id;
--> statement-breakpoint
UPDATE run_events SET thread_seq = runs.thread_seq
FROM runs WHERE run_events.run_id = runs.id AND run_events.thread_seq <> runs.thread_seq;
--> statement-breakpoint
UPDATE threads SET run_count = counted.n
FROM (SELECT thread_id, max(thread_seq) AS n FROM runs GROUP BY thread_id) counted
WHERE threads.id = counted.thread_id AND threads.run_count < counted.n;
