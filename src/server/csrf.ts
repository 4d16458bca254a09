/**
 * yoga's CSRF prevention, with a code: requests a browser could send cross-site without a
 * preflight (a GET, a form or text/plain POST) must carry `x-graphql-yoga-csrf`; JSON POSTs
 * (what GraphQL clients send) are preflighted and pass. yoga refuses the others with a bare
 * 403; this gives the refusal its catalogued code, as every other answer has one.
 */
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import type { Plugin } from 'graphql-yoga';
import { codedError, httpStatus } from '../graphql/errors.js';

export const CSRF_HEADER = 'x-graphql-yoga-csrf';

export function useCsrfPrevention(): Plugin {
  const check = useCSRFPrevention({ requestHeaders: [CSRF_HEADER] }).onRequestParse;
  if (!check) throw new Error("yoga's CSRF prevention no longer checks at onRequestParse");
  return {
    onRequestParse(payload) {
      try {
        return check(payload);
      } catch (error) {
        if ((error as { extensions?: { http?: { status?: number } } }).extensions?.http?.status !== 403) throw error;
        throw codedError('CSRF_REQUIRED_HEADER', (error as Error).message, httpStatus('CSRF_REQUIRED_HEADER'));
      }
    },
  };
}
