import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { context } from '@opentelemetry/api';
import type { Sextant } from '../src/index.ts';

/**
 * A plain node:http service built on core's primitives alone, the way an adapter uses them:
 * begin an exchange, set its response headers, run the handler in its context, end on finish.
 */
export interface CoreServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, params: Record<string, string>) => unknown;

interface Route {
  method: string;
  template: string;
  pattern: RegExp;
  keys: string[];
  handler: Handler;
}

export function route(method: string, template: string, handler: Handler): Route {
  const keys: string[] = [];
  const source = template.replace(/:([a-z]+)/g, (_, key: string) => {
    keys.push(key);
    return '([^/]+)';
  });
  return { method, template, pattern: new RegExp(`^${source}$`), keys, handler };
}

export async function startCoreServer(sextant: Sextant, routes: Route[]): Promise<CoreServer> {
  const server = createServer((req, res) => {
    const exchange = sextant.http.begin({
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
      remoteAddress: req.socket.remoteAddress,
      httpVersion: req.httpVersion,
    });
    for (const [name, value] of exchange.responseHeaders) res.setHeader(name, value);

    const path = (req.url ?? '/').split('?')[0]!;
    const endpoint = sextant.endpoints.match(path);
    if (endpoint) {
      void sextant.endpoints
        .handle(endpoint, { method: req.method ?? 'GET', path, headers: req.headers })
        .then((response) => {
          res.writeHead(response.statusCode, response.headers).end(response.body);
        });
      return;
    }

    let matched: Route | undefined;
    let params: Record<string, string> = {};
    for (const candidate of routes) {
      const found = candidate.method === req.method ? candidate.pattern.exec(path) : null;
      if (found) {
        matched = candidate;
        params = Object.fromEntries(candidate.keys.map((key, i) => [key, found[i + 1]!]));
        break;
      }
    }
    sextant.http.endOnResponse(exchange, res, () => matched?.template);

    context.with(exchange.context, async () => {
      if (!matched) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
        return;
      }
      try {
        await matched.handler(req, res, params);
      } catch (error) {
        sextant.http.recordError(exchange, error);
        sextant.logger.error({ err: error }, 'request failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":"internal"}');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export { collectLines } from '../../../tooling/testing/log-collector.ts';
