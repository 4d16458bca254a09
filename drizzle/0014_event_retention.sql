CREATE TABLE "event_history_floors" (
	"thread_id" text PRIMARY KEY NOT NULL,
	"thread_seq" integer NOT NULL,
	"version" integer NOT NULL,
	"sub" integer NOT NULL,
	"pruned_at" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "event_history_floors" ADD CONSTRAINT "event_history_floors_thread_id_threads_id_fk" FOREIGN KEY ("thread_id") REFERENCES "public"."threads"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "run_events_terminal_at_idx" ON "run_events" USING btree ("at") WHERE to_status in ('cancelled', 'failed', 'completed', 'incomplete', 'expired');