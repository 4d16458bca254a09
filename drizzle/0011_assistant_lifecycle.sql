ALTER TABLE "runs" DROP CONSTRAINT "runs_assistant_id_assistants_id_fk";
--> statement-breakpoint
ALTER TABLE "assistants" ADD COLUMN "revision" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
CREATE INDEX "assistants_project_id_id_idx" ON "assistants" USING btree ("project_id","id");--> statement-breakpoint
CREATE INDEX "idempotency_keys_result_id_idx" ON "idempotency_keys" USING btree ("result_id");