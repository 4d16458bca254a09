/**
 * yoga's CSRF prevention, where a cookie-less gateway still needs it, and with a code.
 *
 * A request a browser could send cross-site without a preflight (a GET, a form or
 * text/plain POST) must carry `x-graphql-yoga-csrf`; JSON POSTs are preflighted and pass.
 * The point is a request a browser sends on its own authority, from another site's page.
 * Runway has no cookies: what authenticates is an `Authorization: Bearer` header, and no
 * cross-site form or link can set one, so a request that carries it needs no CSRF header
 * (stock clients, urql's GET queries among them, work unchanged). Without a key, in open
 * local mode, the server itself is the authority (anyone who can reach 127.0.0.1 may use
 * it): there a page on another site could drive it through the visitor's browser, so the
 * check stays. yoga refuses with a bare 403; this gives the refusal its catalogued code.
 */
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import type { Plugin } from 'graphql-yoga';
import { codedError, httpStatus } from '../graphql/errors.js';

export const CSRF_HEADER = 'x-graphql-yoga-csrf';

/** Whether the request carries a bearer credential, which no cross-site form can send. */
export function hasBearer(authorization: string | null | undefined): boolean {
  return authorization != null && /^bearer\s+\S/i.test(authorization);
}

export function useCsrfPrevention(): Plugin {
  const check = useCSRFPrevention({ requestHeaders: [CSRF_HEADER] }).onRequestParse;
  if (!check) throw new Error("yoga's CSRF prevention no longer checks at onRequestParse");
  return {
    onRequestParse(payload) {
      if (hasBearer(payload.request.headers.get('authorization'))) return;
      try {
        return check(payload);
      } catch (error) {
        if ((error as { extensions?: { http?: { status?: number } } }).extensions?.http?.status !== 403) throw error;
        throw codedError('CSRF_REQUIRED_HEADER', (error as Error).message, httpStatus('CSRF_REQUIRED_HEADER'));
      }
    },
  };
}
