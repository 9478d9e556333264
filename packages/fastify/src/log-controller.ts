import { context } from '@opentelemetry/api';
import type { Sextant } from '@sextant/core';
import fastify, { type FastifyReply, type FastifyRequest, type LogController } from 'fastify';
import type { PendingIncomingLog, SextantRequest } from './internal-types.ts';
import { pluginServes } from './pending-log.ts';
import { kExchange, kPendingIncomingLog } from './symbols.ts';

export type LogControllerOptions = ConstructorParameters<typeof LogController>[0];

/** `url` up to its query string. */
function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/**
 * The request as a `req` serializer sees it (Fastify's, or a route's `logSerializers`): `url` and
 * `originalUrl` without their query, everything else read through to the request itself. The
 * request itself when neither has a query, which costs no allocation.
 */
function withoutQuery(request: FastifyRequest): FastifyRequest {
  const { url } = request;
  // What `request.originalUrl` returns, read from the raw request: the getter caches it on the
  // request, a property added to every request that logs.
  const originalUrl = (request.raw as { originalUrl?: string }).originalUrl || url;
  if (url.indexOf('?') === -1 && originalUrl.indexOf('?') === -1) return request;
  return Object.create(request, {
    url: { value: pathOf(url) },
    originalUrl: { value: pathOf(originalUrl) },
  }) as FastifyRequest;
}

/**
 * Fastify writes "incoming request" before any hook runs, so before the request's span exists,
 * and before Sextant knows whether it records the request. This controller holds the line back
 * until the plugin's onRequest hook has begun the exchange, then writes it inside the request's
 * context, or drops it: while Sextant's access log is on, its record carries what the line would
 * and more. "request completed" is written inside the context too, unless Sextant's own access
 * record (route, status, duration, ids) already stands for it. Requests Sextant leaves out (its
 * endpoints, `http.ignorePaths`) get neither line, so probes and scrapes stay out of the logs;
 * routes with `config: { sextant: false }`, and every route where the plugin is not registered,
 * keep Fastify's lines, the query cut.
 *
 * No line written here carries the query string, which holds what Sextant's redaction cannot tell
 * apart from any other value (an OAuth `code`, a pre-signed URL's signature): Sextant's access
 * record has the path only (`url_path`), and so have Fastify's lines here. `req.url` is the path in
 * "incoming request" and in the 5xx and `writeHead` error records, and "Route GET:/path not found"
 * names the path; for a request Sextant records while its access log is on, that last line is not
 * written at all, as the access record says the same (method, path, 404, `_unmatched`).
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
    override incomingRequest(request: FastifyRequest): void {
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
      this.writeIncoming(request);
    }

    /** Fastify's own "incoming request" line, its `req.url` without the query. */
    private writeIncoming(request: FastifyRequest): void {
      if (this.isLogDisabled(request)) return;
      request.log.info({ req: withoutQuery(request) }, 'incoming request');
    }

    writeIncomingRequest(request: FastifyRequest): void {
      const exchange = (request as SextantRequest)[kExchange];
      // Left out by Sextant, or stood for by its access record: a second line per request would
      // cost as much again on the hot path.
      if (exchange != null && (!exchange.recorded || accessLog)) return;
      this.writeIncoming(request);
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
        this.writeIncoming(request);
      }
      const exchange = state[kExchange];
      if (exchange == null) {
        super.requestCompleted(error, request, reply, metadata);
        return;
      }
      if (!error && (!exchange.recorded || accessLog)) return;
      context.with(exchange.context, super.requestCompleted, this, error, request, reply, metadata);
    }

    /** Fastify's default 404 handler: "Route GET:/path not found", without the query. */
    override routeNotFound(request: FastifyRequest): void {
      const exchange = (request as SextantRequest)[kExchange];
      // The access record says it all: method, path, 404 and the `_unmatched` route.
      if (accessLog && exchange?.recorded) return;
      if (this.isLogDisabled(request)) return;
      const { url, method } = request.raw;
      request.log.info(`Route ${method}:${url === undefined ? url : pathOf(url)} not found`);
    }

    /**
     * Fastify's default error handler: the error at `error` with the request for a 5xx, at `info`
     * without it otherwise. Written as Fastify writes it, for every request, with `req.url` the
     * path only.
     */
    override defaultErrorLog(error: Error, request: FastifyRequest, reply: FastifyReply): void {
      if (this.isLogDisabled(request)) return;
      if (reply.statusCode >= 500) {
        reply.log.error({ req: withoutQuery(request), res: reply, err: error }, error?.message);
      } else {
        reply.log.info({ res: reply, err: error }, error?.message);
      }
    }

    /** An error handler's answer that `writeHead` refused: Fastify's warning, `req.url` the path only. */
    override writeHeadError(error: Error, request: FastifyRequest, reply: FastifyReply): void {
      if (this.isLogDisabled(request)) return;
      reply.log.warn({ req: withoutQuery(request), res: reply, err: error }, error?.message);
    }
  }

  return new SextantLogController(options);
}
