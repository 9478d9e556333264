import { context } from '@opentelemetry/api';
import type { Sextant } from '@sextant/core';
import fastify, { type FastifyReply, type FastifyRequest, type LogController } from 'fastify';
import type { PendingIncomingLog, SextantRequest } from './internal-types.ts';
import { pluginServes } from './pending-log.ts';
import { kExchange, kPendingIncomingLog } from './symbols.ts';

export type LogControllerOptions = ConstructorParameters<typeof LogController>[0];

/**
 * Fastify writes "incoming request" before any hook runs, so before the request's span exists,
 * and before Sextant knows whether it records the request. This controller holds the line back
 * until the plugin's onRequest hook has begun the exchange, then writes it inside the request's
 * context, or drops it: while Sextant's access log is on, its record carries what the line would
 * and more. "request completed" is written inside the context too, unless Sextant's own access
 * record (route, status, duration, ids) already stands for it. Requests Sextant leaves out (its
 * endpoints, `http.ignorePaths`) get neither line, so probes and scrapes stay out of the logs;
 * routes with `config: { sextant: false }`, and every route where the plugin is not registered,
 * keep Fastify's lines as they are.
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
      const exchange = state[kExchange];
      // null: the plugin decorated the request and its onRequest hook has not run yet. undefined
      // on the root's server: a request its router rejected, which Sextant's frameworkErrors records.
      if (
        exchange === null
          ? state[kPendingIncomingLog] === null
          : exchange === undefined && pluginServes(request.server)
      ) {
        // Held even while the access log is on: whether the route opts out is known in onRequest,
        // which reads the route's config anyway; reading it here too would build another object
        // per request.
        state[kPendingIncomingLog] = this;
        return;
      }
      super.incomingRequest(request, reply, metadata);
    }

    writeIncomingRequest(request: FastifyRequest, reply: FastifyReply): void {
      const exchange = (request as SextantRequest)[kExchange];
      // Left out by Sextant, or stood for by its access record: a second line per request would
      // cost as much again on the hot path.
      if (exchange != null && (!exchange.recorded || accessLog)) return;
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
      // the held-back line is late, but not lost. Undefined on undecorated requests, whose
      // line was written as it came.
      if (state[kPendingIncomingLog] != null) {
        state[kPendingIncomingLog] = null;
        super.incomingRequest(request, reply);
      }
      const exchange = state[kExchange];
      if (exchange == null) {
        super.requestCompleted(error, request, reply, metadata);
        return;
      }
      if (!error && (!exchange.recorded || accessLog)) return;
      context.with(exchange.context, super.requestCompleted, this, error, request, reply, metadata);
    }
  }

  return new SextantLogController(options);
}
