import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { context } from '@opentelemetry/api';
import { type Sextant, setUser, traced } from '@sextant/core';

/**
 * A small HTTP service that uses only @sextant/core's primitives, the way a framework adapter
 * does: begin an exchange per request, echo its headers, run the handler in its context, and
 * let core end it when the response finishes (or the client goes away).
 */
interface Route {
  method: string;
  template: string;
  pattern: RegExp;
  handle: (req: IncomingMessage, res: ServerResponse, id: string | undefined) => Promise<void> | void;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

export function createService(sextant: Sextant): Server {
  const log = sextant.logger.child({ component: 'orders' });

  const routes: Route[] = [
    {
      method: 'GET',
      template: '/orders/:id',
      pattern: /^\/orders\/([^/]+)$/,
      async handle(_req, res, id) {
        setUser('user-7');
        const order = await traced('orders.load', async (span) => {
          span.setAttribute('order.id', String(id));
          await new Promise((resolve) => setTimeout(resolve, 5));
          return { id, total: 42 };
        });
        log.info({ order_id: id }, 'order loaded');
        json(res, 200, order);
      },
    },
    {
      method: 'POST',
      template: '/orders',
      pattern: /^\/orders$/,
      handle(_req, res) {
        sextant.event('order.placed', { amount: 42 });
        json(res, 201, { id: 'o-1' });
      },
    },
    {
      method: 'GET',
      template: '/fail',
      pattern: /^\/fail$/,
      handle() {
        throw new Error('payment provider unavailable');
      },
    },
  ];

  return createServer((req, res) => {
    const exchange = sextant.http.begin({
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
      remoteAddress: req.socket.remoteAddress,
      httpVersion: req.httpVersion,
    });
    for (const [name, value] of exchange.responseHeaders) res.setHeader(name, value);

    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const endpoint = sextant.endpoints.match(path);
    if (endpoint) {
      void sextant.endpoints
        .handle(endpoint, { method: req.method ?? 'GET', path, headers: req.headers })
        .then((response) => res.writeHead(response.statusCode, response.headers).end(response.body));
      return;
    }

    let matched: Route | undefined;
    let id: string | undefined;
    for (const candidate of routes) {
      const found = candidate.method === req.method ? candidate.pattern.exec(path) : null;
      if (found) {
        matched = candidate;
        id = found[1];
        break;
      }
    }
    sextant.http.endOnResponse(exchange, res, () => matched?.template);

    context.with(exchange.context, async () => {
      if (!matched) return json(res, 404, { error: 'not found' });
      try {
        await matched.handle(req, res, id);
      } catch (error) {
        sextant.http.recordError(exchange, error);
        log.error({ err: error }, 'request failed');
        json(res, 500, { error: 'internal error' });
      }
    });
  });
}
