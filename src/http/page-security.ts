import type { RequestHandler } from 'express';
import helmet from 'helmet';

/**
 * The Content-Security-Policy of the pages this server serves (the browser page, the GraphQL
 * explorer). They hold a token, so the policy is strict: scripts from this origin only
 * (hash-wasm needs WebAssembly compilation), connections to this origin and, with direct
 * uploads, to the object store the part URLs point at.
 *
 * `upgrade-insecure-requests` only on a request that arrived over TLS, directly or through a
 * proxy that `TRUST_PROXY` trusts to say so in X-Forwarded-Proto (`req.secure`). Sent on a
 * plain-HTTP deployment, it made a browser that opened the page by hostname fetch the page's
 * own CSS and JS over https, which fails, and the page stayed on "Loading…" (loopback addresses
 * are exempt, which is why it went unnoticed on 127.0.0.1).
 */
export function pageSecurityPolicy(connectTo: string[] = []): RequestHandler {
  const directives = {
    'script-src': ["'self'", "'wasm-unsafe-eval'"],
    // Direct uploads PUT parts to the object store's origin; otherwise default-src ('self') covers it.
    ...(connectTo.length > 0 ? { 'connect-src': ["'self'", ...connectTo] } : {}),
  };
  const overTls = helmet.contentSecurityPolicy({ directives });
  const plainHttp = helmet.contentSecurityPolicy({ directives: { ...directives, 'upgrade-insecure-requests': null } });
  return (req, res, next) => (req.secure ? overTls : plainHttp)(req, res, next);
}
