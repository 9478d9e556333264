import type { IncomingMessage } from 'node:http';
import {
  type ChildLoggerFactory,
  createDeferredChildLoggerFactory,
  generateRequestId,
  type Sextant,
  sanitizeRequestId,
} from '@sextant/core';
import type { FastifyBaseLogger, LogController } from 'fastify';
import { createFrameworkErrorHandler, type FrameworkErrorHandler } from './framework-errors.ts';
import { createLogController, type LogControllerOptions } from './log-controller.ts';
import { assertSextant, describe, optionError } from './options.ts';
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
  /**
   * Records the requests Fastify's router rejects before any hook runs (a malformed
   * percent-encoding, a parameter over `maxParamLength`) as requests that matched no route, and
   * answers them as Fastify does. Replacing it leaves those requests unrecorded.
   */
  frameworkErrors: FrameworkErrorHandler;
}

const LOGGING_OPTIONS = ['disableRequestLogging', 'requestIdLogLabel'];

function checkLogging(logging: unknown): void {
  if (logging === undefined) return;
  if (typeof logging !== 'object' || logging === null || Array.isArray(logging)) {
    throw optionError(
      `logging must be an object { disableRequestLogging?, requestIdLogLabel? }, got ${describe(logging)}`,
    );
  }
  for (const key of Object.keys(logging)) {
    if (!LOGGING_OPTIONS.includes(key)) {
      throw optionError(
        `unknown logging option ${JSON.stringify(key)}; expected one of: ${LOGGING_OPTIONS.join(', ')}`,
      );
    }
  }
  const { disableRequestLogging, requestIdLogLabel } = logging as Record<string, unknown>;
  if (
    disableRequestLogging !== undefined &&
    typeof disableRequestLogging !== 'boolean' &&
    typeof disableRequestLogging !== 'function'
  ) {
    throw optionError(
      `logging.disableRequestLogging must be a boolean or a function (request) => boolean, got ${describe(disableRequestLogging)}`,
    );
  }
  if (
    requestIdLogLabel !== undefined &&
    (typeof requestIdLogLabel !== 'string' || requestIdLogLabel === '')
  ) {
    throw optionError(
      `logging.requestIdLogLabel must be a non-empty string, got ${describe(requestIdLogLabel)}`,
    );
  }
}

/**
 * Hands Fastify Sextant's logger and request ids:
 * `fastify({ ...sextantServerOptions(sextant), bodyLimit: 1_000_000 })`. `logging` takes the
 * options of Fastify's `LogController` (`disableRequestLogging`, `requestIdLogLabel`), which
 * replace the deprecated top-level options of the same names. Invalid arguments throw a
 * `SextantConfigError`.
 */
export function sextantServerOptions(sextant: Sextant, logging?: LogControllerOptions): SextantServerOptions {
  assertSextant(sextant, 'sextantServerOptions()');
  checkLogging(logging);
  const header = sextant.config.http.requestIdHeader;
  const options: SextantServerOptions = {
    loggerInstance: sextant.logger,
    childLoggerFactory: createDeferredChildLoggerFactory<FastifyBaseLogger>(sextant.logger),
    genReqId(request) {
      const requestId = sanitizeRequestId(request.headers[header]) ?? generateRequestId();
      (request as IncomingMessage & { [kChosenRequestId]?: string })[kChosenRequestId] = requestId;
      return requestId;
    },
    frameworkErrors: createFrameworkErrorHandler(sextant),
  };
  const logController = createLogController(sextant, logging);
  if (logController !== undefined) options.logController = logController;
  return options;
}
