ALTER TABLE "runs" ADD COLUMN "worker_id" text;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "lease_token" uuid;--> statement-breakpoint
ALTER TABLE "runs" ADD COLUMN "lease_expires_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "runs_queued_idx" ON "runs" USING btree ("id") WHERE status = 'queued';--> statement-breakpoint
CREATE INDEX "runs_leased_idx" ON "runs" USING btree ("lease_expires_at") WHERE status in ('in_progress', 'cancelling');--> statement-breakpoint
CREATE INDEX "runs_active_expires_at_idx" ON "runs" USING btree ("expires_at") WHERE status in ('queued', 'in_progress', 'requires_action', 'cancelling');