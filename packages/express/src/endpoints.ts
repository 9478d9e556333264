import type { Sextant } from '@sextant/core';
import type { RequestHandler } from 'express';
import { assertSextant } from './options.ts';

/**
 * Serves Sextant's endpoints (`/metrics`, `/health`, `/health/ready`, `/health/detailed`) at
 * their paths under `endpoints.prefix` (SEXTANT_ENDPOINTS_PREFIX), with `endpoints.token` required
 * when set; every other request passes through. Paths are matched on the full request path, so
 * the prefix is configured once, in core, and `app.use()` it without a path.
 */
export function createEndpointsHandler(sextant: Sextant): RequestHandler {
  assertSextant(sextant, 'createEndpointsHandler');
  const { endpoints } = sextant;

  return function sextantEndpoints(req, res, next) {
    const url = req.originalUrl ?? req.url;
    const name = endpoints.match(url);
    if (name === undefined) {
      next();
      return;
    }
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    // `handle` never rejects: an internal failure already answers 500.
    void endpoints.handle(name, { method: req.method, path, headers: req.headers }).then((response) => {
      if (!res.headersSent) res.writeHead(response.statusCode, response.headers).end(response.body);
    });
  };
}
