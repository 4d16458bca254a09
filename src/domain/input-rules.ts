/**
 * Input rules, as zod schemas: attached to GraphQL arguments through plugin-zod, and to
 * REST request bodies; one implementation for both. The limits are
 * those of the OpenAI Assistants API, and the sizes no one tenant may exceed
 * (docs/operations.md, Limits).
 */
import { z } from 'zod';

export const LIMITS = {
  metadataKeys: 16,
  metadataKeyLength: 64,
  metadataValueLength: 512,
  tools: 20,
  minTokenLimit: 256,
  pageSize: 100,
  /** A message's content, in characters (UTF-16 code units): OpenAI's limit. */
  messageContentLength: 256_000,
  /** Instructions and additional instructions, in characters. */
  instructionsLength: 256_000,
  /** A tool output, in bytes of UTF-8 (512 KB). */
  toolOutputBytes: 512 * 1024,
  /** A tool's parameters or a response's JSON schema: levels of nesting (`{}` is one). */
  jsonSchemaDepth: 64,
  /** ... and its size as JSON, in bytes of UTF-8 (100 KB). */
  jsonSchemaBytes: 100 * 1024,
} as const;

export const metadataSchema = z
  .record(
    z.string().max(LIMITS.metadataKeyLength, `keys must be at most ${LIMITS.metadataKeyLength} characters`),
    z
      .string({ error: 'values must be strings' })
      .max(LIMITS.metadataValueLength, `values must be at most ${LIMITS.metadataValueLength} characters`),
  )
  .refine((m) => Object.keys(m).length <= LIMITS.metadataKeys, {
    message: `at most ${LIMITS.metadataKeys} keys`,
  });

export const pageSizeSchema = z.number().int().min(1).max(LIMITS.pageSize);
/** An assistant's (or a run's) model: any name a provider may serve, never empty. */
export const modelSchema = z.string().min(1, 'must not be empty');
export const assistantNameSchema = z.string().max(256);
export const assistantDescriptionSchema = z.string().max(512);
/** A run's or an assistant's tools, at most LIMITS.tools of them. */
export const TOO_MANY_TOOLS = `at most ${LIMITS.tools} tools`;
export const temperatureSchema = z.number().min(0).max(2);
export const topPSchema = z.number().min(0).max(1);
export const tokenLimitSchema = z.number().int().min(LIMITS.minTokenLimit);
export const functionNameSchema = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'must be 1 to 64 letters, digits, underscores or dashes');

/** Visible ASCII only (a UUID is typical), as Stripe and OpenAI take them. */
export const idempotencyKeySchema = z.string().regex(/^[\x21-\x7E]{1,255}$/, 'must be 1 to 255 visible ASCII characters (a UUID, say)');

export const messageContentSchema = z
  .string()
  .max(LIMITS.messageContentLength, `must be at most ${LIMITS.messageContentLength} characters`);

export const instructionsSchema = z.string().max(LIMITS.instructionsLength, `must be at most ${LIMITS.instructionsLength} characters`);

export const toolOutputSchema = z
  .string()
  // Three bytes per UTF-16 code unit at most: most outputs need no counting.
  .refine((s) => s.length * 3 <= LIMITS.toolOutputBytes || Buffer.byteLength(s) <= LIMITS.toolOutputBytes, {
    message: `must be at most ${LIMITS.toolOutputBytes} bytes (512 KB) of UTF-8`,
  });

/** How many of the thread's last messages a `last_messages` truncation keeps. */
export const lastMessagesSchema = z.number().int().min(1, 'must be at least 1');

/**
 * A rule on a whole object, past its fields' own rules: each transport checks it on the
 * object as it maps it (an input type's `validate` in GraphQL, a body schema's refinement
 * in REST), and names the field its own way.
 */
export interface ObjectRule<T> {
  readonly holds: (value: T) => boolean;
  readonly message: string;
  /** The field the rule is about, as the use cases name it. */
  readonly path: readonly string[];
}

/** A refinement's options for the rule: a copy, since zod rewrites the object it is given. */
export function refineOptions(rule: ObjectRule<never>): { message: string; path: string[] } {
  return { message: rule.message, path: [...rule.path] };
}

/** A truncation strategy (`{ type, lastMessages }`, as the use cases take it) of type `last_messages` says how many. */
export const truncationStrategyRule: ObjectRule<{ type: string; lastMessages?: number | null }> = Object.freeze({
  holds: (s: { type: string; lastMessages?: number | null }) => s.type !== 'last_messages' || s.lastMessages != null,
  message: 'required when type is last_messages',
  path: ['lastMessages'],
});

/** A response format (`{ type, jsonSchema }`) has its JSON schema with type `json_schema`, and only with it. */
export const responseFormatRule: ObjectRule<{ type: string; jsonSchema?: unknown }> = Object.freeze({
  holds: (f: { type: string; jsonSchema?: unknown }) => (f.type === 'json_schema') === (f.jsonSchema != null),
  message: 'required with type json_schema, and allowed only with it',
  path: ['jsonSchema'],
});

/**
 * A JSON Schema given as a JSON object (a tool's parameters, a response format's schema).
 * Its depth is checked first, without recursion, so that a value nested 200,000 deep is
 * refused here rather than overflowing the stack of whatever serializes it next.
 */
export const jsonSchemaObjectSchema = z.custom<Record<string, unknown>>().superRefine((value, ctx) => {
  if (exceedsDepth(value, LIMITS.jsonSchemaDepth)) {
    ctx.addIssue({ code: 'custom', message: `must nest at most ${LIMITS.jsonSchemaDepth} levels deep` });
    return;
  }
  if (Buffer.byteLength(JSON.stringify(value)) > LIMITS.jsonSchemaBytes) {
    ctx.addIssue({ code: 'custom', message: `must be at most ${LIMITS.jsonSchemaBytes} bytes (100 KB) as JSON` });
  }
});

/** What a JSON Schema field's description says of its limits. */
export const JSON_SCHEMA_LIMITS = `at most ${LIMITS.jsonSchemaDepth} levels deep and ${LIMITS.jsonSchemaBytes / 1024} KB as JSON`;

/** Whether a JSON value nests deeper than `max` levels (`{}` and `[]` are one level). */
export function exceedsDepth(value: unknown, max: number): boolean {
  const pending: [unknown, number][] = [[value, 1]];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [node, depth] = next;
    if (node === null || typeof node !== 'object') continue;
    if (depth > max) return true;
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (child !== null && typeof child === 'object') pending.push([child, depth + 1]);
    }
  }
  return false;
}
