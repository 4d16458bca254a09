CREATE TYPE "public"."message_status" AS ENUM('in_progress', 'completed', 'incomplete');--> statement-breakpoint
CREATE TABLE "run_item_events" (
	"run_id" text NOT NULL,
	"version" integer NOT NULL,
	"sub" integer NOT NULL,
	"thread_id" text NOT NULL,
	"thread_seq" integer NOT NULL,
	"kind" text NOT NULL,
	"item_id" text NOT NULL,
	"change" text NOT NULL,
	"at" bigint NOT NULL,
	CONSTRAINT "run_item_events_run_id_version_sub_pk" PRIMARY KEY("run_id","version","sub")
);
--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "status" "message_status" DEFAULT 'completed' NOT NULL;--> statement-breakpoint
ALTER TABLE "run_events" ADD COLUMN "run_state" jsonb;--> statement-breakpoint
ALTER TABLE "run_item_events" ADD CONSTRAINT "run_item_events_run_id_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."runs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "run_item_events_thread_order_idx" ON "run_item_events" USING btree ("thread_id","thread_seq","version","sub");--> statement-breakpoint
CREATE INDEX "messages_in_progress_idx" ON "messages" USING btree ("run_id") WHERE status = 'in_progress';