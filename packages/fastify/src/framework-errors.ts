import { STATUS_CODES } from 'node:http';
import { context } from '@opentelemetry/api';
import type { HttpExchange, Sextant } from '@sextant/core';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { beginExchange } from './exchange.ts';
import type { SextantRequest } from './internal-types.ts';
import { ERROR_KIND } from './options.ts';
import { pluginServes, writePendingIncomingLog } from './pending-log.ts';

/** Fastify's `frameworkErrors` option. */
export type FrameworkErrorHandler = (
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
) => void;

// Fastify's own answers when no frameworkErrors handler is set (fastify.js, onBadUrl and
// onMaxParamLength, buildAsyncConstraintCallback), so that Sextant changes none of them.
const ASYNC_CONSTRAINT_BODY =
  '{"error":"Internal Server Error","message":"Unexpected error from async constraint","statusCode":500}';
const URL_ERRORS = new Set(['FST_ERR_BAD_URL', 'FST_ERR_MAX_PARAM_LENGTH']);

const noRoute = () => undefined;

function answer(request: SextantRequest, reply: FastifyReply, error: FastifyError): void {
  writePendingIncomingLog(request, reply);
  let statusCode = typeof error.statusCode === 'number' ? error.statusCode : 500;
  let body: string;
  if (error.code === 'FST_ERR_ASYNC_CONSTRAINT') {
    statusCode = 500;
    body = ASYNC_CONSTRAINT_BODY;
  } else {
    // Fastify says "Bad Request" for its 414 too.
    const reason = URL_ERRORS.has(error.code) ? 'Bad Request' : (STATUS_CODES[statusCode] ?? 'Error');
    body = JSON.stringify({ error: reason, code: error.code, message: error.message, statusCode });
  }
  reply.raw.writeHead(statusCode, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  });
  reply.raw.end(body);
}

/**
 * Requests Fastify's router rejects before routing (a malformed percent-encoding, a parameter
 * over `maxParamLength`, a failing async constraint) run no hook, so the plugin never sees them.
 * They are recorded here as requests that matched no route, and answered as Fastify answers them.
 */
export function createFrameworkErrorHandler(sextant: Sextant): FrameworkErrorHandler {
  const { http, errors } = sextant;
  return function sextantFrameworkErrors(error, request, reply) {
    const state = request as SextantRequest;
    let exchange: HttpExchange | undefined;
    // Without the plugin at the root, Sextant records no other request of this app either.
    if (pluginServes(request.server)) {
      try {
        exchange = beginExchange(http, request, reply);
        http.endOnResponse(exchange, reply.raw, noRoute);
        http.recordError(exchange, error);
      } catch (failure) {
        errors.report(ERROR_KIND, failure);
      }
    }
    if (exchange?.recorded === true) context.with(exchange.context, answer, undefined, state, reply, error);
    else answer(state, reply, error);
  };
}
