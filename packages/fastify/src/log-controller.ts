import { context } from '@opentelemetry/api';
import type { Sextant } from '@sextant/core';
import fastify, { type FastifyReply, type FastifyRequest, type LogController } from 'fastify';
import type { PendingIncomingLog, SextantRequest } from './internal-types.ts';
import { kExchange, kPendingIncomingLog } from './symbols.ts';

export type LogControllerOptions = ConstructorParameters<typeof LogController>[0];

/**
 * Fastify writes "incoming request" before any hook runs, so before the request's span exists.
 * While Sextant's access log is on, the line is dropped: the access record carries what it would
 * and more. Otherwise this controller holds it back until the plugin's onRequest hook has begun
 * the exchange, which writes it inside the request's context. "request completed" is written inside it too,
 * unless Sextant's own access record (route, status, duration, ids) already stands for it.
 * Requests Sextant leaves out (its endpoints, `http.ignorePaths`) get neither line, so probes
 * and scrapes stay out of the logs; routes with `config: { sextant: false }` keep Fastify's.
 *
 * `LogController` is exported by Fastify 5.10 and later; with an older Fastify, undefined.
 */
export function createLogController(
  sextant: Sextant,
  options: LogControllerOptions,
): LogController | undefined {
  const Base = (fastify as { LogController?: typeof LogController }).LogController;
  if (typeof Base !== 'function') return undefined;
  const accessLog = sextant.config.logs.accessLog;

  class SextantLogController extends Base implements PendingIncomingLog {
    override incomingRequest(
      request: FastifyRequest,
      reply: FastifyReply,
      metadata?: Record<string, unknown>,
    ): void {
      const state = request as SextantRequest;
      // null (not undefined): the plugin is registered and its onRequest hook has not run yet.
      if (state[kExchange] === null && state[kPendingIncomingLog] === null) {
        // Sextant's access record, written at the end with the ids, stands for the request: a
        // second line per request would cost as much again on the hot path.
        if (accessLog) return;
        state[kPendingIncomingLog] = this;
        return;
      }
      super.incomingRequest(request, reply, metadata);
    }

    writeIncomingRequest(request: FastifyRequest, reply: FastifyReply): void {
      super.incomingRequest(request, reply);
    }

    override requestCompleted(
      error: Error | null | undefined,
      request: FastifyRequest,
      reply: FastifyReply,
      metadata?: Record<string, unknown>,
    ): void {
      const state = request as SextantRequest;
      // A route whose context the plugin's hooks do not reach (registered before the plugin):
      // the held-back line is late, but not lost.
      if (state[kPendingIncomingLog] !== null) {
        state[kPendingIncomingLog] = null;
        super.incomingRequest(request, reply);
      }
      const exchange = state[kExchange];
      if (exchange === null || exchange === undefined) {
        super.requestCompleted(error, request, reply, metadata);
        return;
      }
      if (!error && (!exchange.recorded || accessLog)) return;
      context.with(exchange.context, super.requestCompleted, this, error, request, reply, metadata);
    }
  }

  return new SextantLogController(options);
}
