/**
 * Input rules, as zod schemas attached to arguments through plugin-zod. The limits are
 * those of the Assistants API the seeds describe.
 */
import { z } from 'zod';

export const LIMITS = {
  metadataKeys: 16,
  metadataKeyLength: 64,
  metadataValueLength: 512,
  tools: 20,
  minTokenLimit: 256,
  pageSize: 100,
} as const;

export const metadataSchema = z
  .record(
    z.string().max(LIMITS.metadataKeyLength, `keys must be at most ${LIMITS.metadataKeyLength} characters`),
    z.string({ error: 'values must be strings' }).max(
      LIMITS.metadataValueLength,
      `values must be at most ${LIMITS.metadataValueLength} characters`,
    ),
  )
  .refine((m) => Object.keys(m).length <= LIMITS.metadataKeys, {
    message: `at most ${LIMITS.metadataKeys} keys`,
  });

export const pageSizeSchema = z.number().int().min(1).max(LIMITS.pageSize);
export const temperatureSchema = z.number().min(0).max(2);
export const topPSchema = z.number().min(0).max(1);
export const tokenLimitSchema = z.number().int().min(LIMITS.minTokenLimit);
export const functionNameSchema = z
  .string()
  .regex(/^[a-zA-Z0-9_-]{1,64}$/, 'must be 1 to 64 letters, digits, underscores or dashes');

/** Visible ASCII only (a UUID is typical), as Stripe and OpenAI take them. */
export const idempotencyKeySchema = z
  .string()
  .regex(/^[\x21-\x7E]{1,255}$/, 'must be 1 to 255 visible ASCII characters (a UUID, say)');
