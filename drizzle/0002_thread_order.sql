ALTER TABLE "run_events" ADD COLUMN "thread_seq" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "thread_seq" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "threads" ADD COLUMN "run_count" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX "run_events_thread_order_idx" ON "run_events" USING btree ("thread_id","thread_seq","version");