import type { IncomingMessage } from 'node:http';
import {
  type ChildLoggerFactory,
  createDeferredChildLoggerFactory,
  generateRequestId,
  type Sextant,
  sanitizeRequestId,
} from '@sextant/core';
import type { FastifyBaseLogger, LogController } from 'fastify';
import { createLogController, type LogControllerOptions } from './log-controller.ts';
import { kChosenRequestId } from './symbols.ts';

/** Options for `fastify()`, to spread into the options the app already passes. */
export interface SextantServerOptions {
  /** Sextant's logger: `request.log` and Fastify's own records carry the trace and request ids. */
  loggerInstance: FastifyBaseLogger;
  /**
   * Fastify's `request.id` (`reqId` in its records) is Sextant's request id: the sanitised
   * `x-request-id` header, or a generated id, which the plugin then uses for the exchange so
   * that Fastify, Sextant and the echoed header agree.
   */
  genReqId: (request: IncomingMessage) => string;
  /**
   * Writes Fastify's "incoming request" line inside the request's trace context, and leaves
   * "request completed" to Sextant's access record. Absent with Fastify older than 5.10.
   */
  logController?: LogController;
  /**
   * Makes `request.log` only when the request first logs through it: with Sextant's access record
   * on, most requests never do, and making a child logger for each was a tenth of Sextant's cost.
   */
  childLoggerFactory: ChildLoggerFactory<FastifyBaseLogger>;
}

/**
 * Hands Fastify Sextant's logger and request ids:
 * `fastify({ ...sextantServerOptions(sextant), bodyLimit: 1_000_000 })`. `logging` takes the
 * options of Fastify's `LogController` (`disableRequestLogging`, `requestIdLogLabel`), which
 * replace the deprecated top-level options of the same names.
 */
export function sextantServerOptions(sextant: Sextant, logging?: LogControllerOptions): SextantServerOptions {
  const header = sextant.config.http.requestIdHeader;
  const options: SextantServerOptions = {
    loggerInstance: sextant.logger,
    childLoggerFactory: createDeferredChildLoggerFactory<FastifyBaseLogger>(sextant.logger),
    genReqId(request) {
      const requestId = sanitizeRequestId(request.headers[header]) ?? generateRequestId();
      (request as IncomingMessage & { [kChosenRequestId]?: string })[kChosenRequestId] = requestId;
      return requestId;
    },
  };
  const logController = createLogController(sextant, logging);
  if (logController !== undefined) options.logController = logController;
  return options;
}
