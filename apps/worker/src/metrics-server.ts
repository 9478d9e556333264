import { createServer, type Server } from 'node:http';
import type { Sextant } from '@sextant/core';

/**
 * The worker's own HTTP server: Sextant's endpoints only (`/metrics`, `/health`,
 * `/health/ready`, `/health/detailed`), everything else 404. Probe and scrape requests are not
 * traced, so no exchange is begun for them.
 */
export function createMetricsServer(sextant: Sextant): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const endpoint = sextant.endpoints.match(path);
    if (endpoint === undefined) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    sextant.endpoints.handle(endpoint, { method: req.method ?? 'GET', path, headers: req.headers }).then(
      (response) => res.writeHead(response.statusCode, response.headers).end(response.body),
      (error: unknown) => {
        sextant.errors.report('worker_endpoint', error);
        res.writeHead(500).end();
      },
    );
  });
}
