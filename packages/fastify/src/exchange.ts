import type { HttpExchange, HttpInstrumentation } from '@sextant/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { SextantRequest } from './internal-types.ts';
import { kChosenRequestId, kExchange } from './symbols.ts';

/**
 * Begins the request's exchange and puts its headers on the raw response: not through
 * `reply.header()`, which reaches only replies Fastify sends itself, while a hijacked reply or one
 * written through `reply.raw` (server-sent events) is recorded too.
 */
export function beginExchange(
  http: HttpInstrumentation,
  request: FastifyRequest,
  reply: FastifyReply,
): HttpExchange {
  const exchange = http.begin({
    method: request.method,
    url: request.url,
    headers: request.headers,
    remoteAddress: request.ip,
    httpVersion: request.raw.httpVersion,
    scheme: request.protocol,
    requestId: (request.raw as { [kChosenRequestId]?: string })[kChosenRequestId],
  });
  (request as SextantRequest)[kExchange] = exchange;
  const headers = exchange.responseHeaders;
  for (let i = 0; i < headers.length; i++) reply.raw.setHeader(headers[i]![0], headers[i]![1]);
  return exchange;
}
