import { type ArgumentsHost, Catch, HttpException, Inject } from '@nestjs/common';
import { BaseExceptionFilter, HttpAdapterHost } from '@nestjs/core';
import type { Sextant } from '@sextant/core';
import { SEXTANT } from './constants.ts';

/**
 * Exceptions this package has logged: `SextantLogger` drops Nest's own `ExceptionsHandler`
 * record of the same exception, so each is logged once.
 */
export const loggedExceptions = new WeakSet<object>();

function statusOf(exception: unknown): number {
  if (exception instanceof HttpException) return exception.getStatus();
  // Errors from http-errors and Fastify carry their status, and Nest answers with it.
  const { statusCode, status } = (exception ?? {}) as { statusCode?: unknown; status?: unknown };
  const value = typeof statusCode === 'number' ? statusCode : status;
  return typeof value === 'number' && value >= 400 && value < 600 ? value : 500;
}

/**
 * Records an exception on the request's exchange (core puts an `exception` event on the server
 * span, and status ERROR when the answer is a 5xx) and logs it once with the request's ids (`request failed` at `error`, or
 * `request rejected` at `warn` for a 4xx), then lets Nest's `BaseExceptionFilter` answer exactly
 * as it would have. Registered globally by `SextantModule`; an application with a catch-all
 * filter of its own extends this class and calls `super.catch()`.
 */
export class SextantExceptionFilter<T = unknown> extends BaseExceptionFilter<T> {
  readonly #sextant: Sextant;
  readonly #enabled: boolean;

  constructor(sextant: Sextant, adapterHost?: HttpAdapterHost, enabled = true) {
    super(adapterHost?.httpAdapter);
    this.#sextant = sextant;
    this.#enabled = enabled;
  }

  override catch(exception: T, host: ArgumentsHost): void {
    if (this.#enabled && host.getType() === 'http') this.#record(exception);
    super.catch(exception, host);
  }

  #record(exception: unknown): void {
    try {
      if (typeof exception === 'object' && exception !== null) {
        if (loggedExceptions.has(exception)) return;
        loggedExceptions.add(exception);
      }
      const status = statusOf(exception);
      // Core ends the span with the response: the exception event, and ERROR only for a 5xx.
      const exchange = this.#sextant.http.exchangeOf();
      if (exchange !== undefined) this.#sextant.http.recordError(exchange, exception);
      if (status < 500)
        this.#sextant.logger.warn({ err: exception, status_code: status }, 'request rejected');
      else this.#sextant.logger.error({ err: exception, status_code: status }, 'request failed');
    } catch (failure) {
      this.#sextant.errors.report('nestjs_exception_filter', failure);
    }
  }
}
Catch()(SextantExceptionFilter);
Inject(SEXTANT)(SextantExceptionFilter, undefined, 0);
Inject(HttpAdapterHost)(SextantExceptionFilter, undefined, 1);
