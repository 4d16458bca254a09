ALTER TABLE "assistants" ADD COLUMN "temperature" double precision DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "assistants" ADD COLUMN "top_p" double precision DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "assistants" ADD COLUMN "response_format" jsonb DEFAULT '{"type":"auto"}'::jsonb NOT NULL;