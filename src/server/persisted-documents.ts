/**
 * Persisted (trusted) documents: a manifest of hash -> document, as GraphQL Codegen's
 * client-preset writes it (`persistedDocuments: true`), lets clients send a document's id
 * instead of its text; with arbitrary operations off, only those documents run at all.
 *
 * On HTTP this is graphql-yoga's own plugin (`@graphql-yoga/plugin-persisted-operations`),
 * given the manifest and Runway's error codes. The fast path and the websocket do not pass
 * through yoga's HTTP layer, where that plugin works, so they ask {@link resolveDocument}
 * the same questions: the rules are one function, the answers the plugin's.
 *
 * An id is read from `documentId` (the GraphQL over HTTP draft's name, what client-preset
 * documents say to send) or from `extensions.persistedQuery.sha256Hash` (Apollo's and
 * urql's persisted-query links); a request with a `query` runs that text, if allowed.
 */
import { readFileSync } from 'node:fs';
import { usePersistedOperations } from '@graphql-yoga/plugin-persisted-operations';
import type { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { ErrorCode } from '../domain/error-codes.js';
import { codedError, httpStatus } from '../graphql/errors.js';

export interface PersistedDocuments {
  /** Id (the manifest's key, a hash) -> the document's text. */
  documents: ReadonlyMap<string, string>;
  /** Whether a request may still send a document's text instead of an id. */
  allowArbitrary: boolean;
}

/** Reads a manifest (a JSON object of id -> document text); a bad file stops the start. */
export function loadPersistedDocuments(path: string): ReadonlyMap<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new Error(`PERSISTED_DOCUMENTS: cannot read ${path} as JSON: ${(error as Error).message}`, { cause: error });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`PERSISTED_DOCUMENTS: ${path} must be a JSON object of id -> document`);
  }
  const documents = new Map<string, string>();
  for (const [id, text] of Object.entries(parsed)) {
    if (typeof text !== 'string') throw new Error(`PERSISTED_DOCUMENTS: ${path}: the document of ${id} is not a string`);
    documents.set(id, text);
  }
  return documents;
}

const MESSAGES = {
  notFound: 'No persisted document has this id: the manifest the server was given lacks it.',
  required: 'This server runs persisted documents only: send `documentId` (or extensions.persistedQuery.sha256Hash), not `query`.',
  missing: "Send a `query`, or a persisted document's id in `documentId` (or extensions.persistedQuery.sha256Hash).",
} as const;

/** A persisted document's id in a request's parameters, if it names one. */
export function documentIdOf(params: { documentId?: unknown; extensions?: unknown }): string | undefined {
  if (typeof params.documentId === 'string') return params.documentId;
  const persisted = (params.extensions as { persistedQuery?: { version?: unknown; sha256Hash?: unknown } } | null | undefined)
    ?.persistedQuery;
  if (persisted?.version === 1 && typeof persisted.sha256Hash === 'string') return persisted.sha256Hash;
  return undefined;
}

/**
 * The text to run for these parameters, or the error to answer: a `query` runs as sent
 * (when arbitrary operations are allowed), an id runs its document.
 */
export function resolveDocument(
  persisted: PersistedDocuments,
  params: { query?: unknown; documentId?: unknown; extensions?: unknown },
): { query: string } | { error: GraphQLError } {
  if (typeof params.query === 'string' && params.query !== '') {
    return persisted.allowArbitrary ? { query: params.query } : { error: codedError('PERSISTED_DOCUMENT_REQUIRED', MESSAGES.required) };
  }
  const id = documentIdOf(params);
  if (id === undefined) return { error: codedError('PERSISTED_DOCUMENT_REQUIRED', MESSAGES.missing) };
  const query = persisted.documents.get(id);
  return query === undefined ? { error: codedError('PERSISTED_DOCUMENT_NOT_FOUND', MESSAGES.notFound, { documentId: id }) } : { query };
}

/** An HTTP refusal: yoga answers it with the catalogue's status (and shows no `http`). */
function refusal(code: Extract<ErrorCode, `PERSISTED_DOCUMENT_${string}`>, message: string, extra?: Record<string, unknown>) {
  return codedError(code, message, { ...extra, ...httpStatus(code) });
}

/** yoga's plugin, for requests through yoga's HTTP layer. */
export function usePersistedDocuments(persisted: PersistedDocuments): Plugin {
  return usePersistedOperations({
    allowArbitraryOperations: persisted.allowArbitrary,
    // yoga reads only query, operationName, variables and extensions from a GET's URL.
    extractPersistedOperationId: (params, request) =>
      documentIdOf(params as never) ?? (request.method === 'GET' ? new URL(request.url).searchParams.get('documentId') : null),
    getPersistedOperation: (id) => persisted.documents.get(id) ?? null,
    customErrors: {
      notFound: (payload) => {
        const id = documentIdOf(payload.params as never) ?? new URL(payload.request.url).searchParams.get('documentId');
        return refusal('PERSISTED_DOCUMENT_NOT_FOUND', MESSAGES.notFound, { documentId: id });
      },
      persistedQueryOnly: () => refusal('PERSISTED_DOCUMENT_REQUIRED', MESSAGES.required),
      keyNotFound: () => refusal('PERSISTED_DOCUMENT_REQUIRED', MESSAGES.missing),
    },
  }) as Plugin;
}
