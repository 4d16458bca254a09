DROP INDEX "runs_queued_idx";--> statement-breakpoint
CREATE INDEX "runs_queued_idx" ON "runs" USING btree ("project_id","id") WHERE status = 'queued';