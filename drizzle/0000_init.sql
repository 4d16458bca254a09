CREATE TYPE "public"."message_role" AS ENUM('user', 'assistant');--> statement-breakpoint
CREATE TYPE "public"."run_status" AS ENUM('queued', 'in_progress', 'requires_action', 'cancelling', 'cancelled', 'failed', 'completed', 'incomplete', 'expired');--> statement-breakpoint
CREATE TYPE "public"."run_step_status" AS ENUM('in_progress', 'cancelled', 'failed', 'completed', 'expired');--> statement-breakpoint
CREATE TYPE "public"."run_step_type" AS ENUM('message_creation', 'tool_calls');--> statement-breakpoint
CREATE TABLE "assistants" (
	"id" text PRIMARY KEY NOT NULL,
	"created_at" bigint NOT NULL,
	"model" text NOT NULL,
	"name" text,
	"description" text,
	"instructions" text,
	"tools" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "messages" (
	"id" text PRIMARY KEY NOT NULL,
	"thread_id" text NOT NULL,
	"created_at" bigint NOT NULL,
	"role" "message_role" NOT NULL,
	"content" text NOT NULL,
	"run_id" text,
	"assistant_id" text,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "run_events" (
	"run_id" text NOT NULL,
	"version" integer NOT NULL,
	"thread_id" text NOT NULL,
	"from_status" "run_status",
	"to_status" "run_status" NOT NULL,
	"at" bigint NOT NULL,
	CONSTRAINT "run_events_run_id_version_pk" PRIMARY KEY("run_id","version")
);
--> statement-breakpoint
CREATE TABLE "run_steps" (
	"id" text PRIMARY KEY NOT NULL,
	"run_id" text NOT NULL,
	"thread_id" text NOT NULL,
	"assistant_id" text NOT NULL,
	"created_at" bigint NOT NULL,
	"type" "run_step_type" NOT NULL,
	"status" "run_step_status" NOT NULL,
	"step_details" jsonb NOT NULL,
	"last_error" jsonb,
	"completed_at" bigint,
	"cancelled_at" bigint,
	"failed_at" bigint,
	"expired_at" bigint,
	"usage" jsonb
);
--> statement-breakpoint
CREATE TABLE "runs" (
	"id" text PRIMARY KEY NOT NULL,
	"thread_id" text NOT NULL,
	"assistant_id" text NOT NULL,
	"created_at" bigint NOT NULL,
	"status" "run_status" NOT NULL,
	"previous_status" "run_status",
	"version" integer DEFAULT 1 NOT NULL,
	"required_action" jsonb,
	"last_error" jsonb,
	"expires_at" bigint,
	"started_at" bigint,
	"cancelled_at" bigint,
	"failed_at" bigint,
	"completed_at" bigint,
	"incomplete_details" jsonb,
	"model" text NOT NULL,
	"instructions" text NOT NULL,
	"additional_instructions" text,
	"tools" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"usage" jsonb,
	"temperature" double precision,
	"top_p" double precision,
	"max_prompt_tokens" integer,
	"max_completion_tokens" integer,
	"truncation_strategy" jsonb,
	"tool_choice" jsonb,
	"parallel_tool_calls" boolean DEFAULT true NOT NULL,
	"response_format" jsonb
);
--> statement-breakpoint
CREATE TABLE "threads" (
	"id" text PRIMARY KEY NOT NULL,
	"created_at" bigint NOT NULL,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL
);
--> statement-breakpoint
ALTER TABLE "messages" ADD CONSTRAINT "messages_thread_id_threads_id_fk" FOREIGN KEY ("thread_id") REFERENCES "public"."threads"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "run_events" ADD CONSTRAINT "run_events_run_id_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."runs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "run_steps" ADD CONSTRAINT "run_steps_run_id_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."runs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "runs" ADD CONSTRAINT "runs_thread_id_threads_id_fk" FOREIGN KEY ("thread_id") REFERENCES "public"."threads"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "runs" ADD CONSTRAINT "runs_assistant_id_assistants_id_fk" FOREIGN KEY ("assistant_id") REFERENCES "public"."assistants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "messages_thread_id_id_idx" ON "messages" USING btree ("thread_id","id");--> statement-breakpoint
CREATE INDEX "run_steps_run_id_id_idx" ON "run_steps" USING btree ("run_id","id");--> statement-breakpoint
CREATE INDEX "runs_thread_id_id_idx" ON "runs" USING btree ("thread_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "runs_one_active_per_thread" ON "runs" USING btree ("thread_id") WHERE status in ('queued', 'in_progress', 'requires_action', 'cancelling');