import { type ArgumentsHost, Catch, HttpException, Inject } from '@nestjs/common';
import { BaseExceptionFilter, HttpAdapterHost } from '@nestjs/core';
import type { Sextant } from '@sextant/core';
import { SEXTANT } from './constants.ts';

/**
 * The exception a `SextantExceptionFilter` is handing to Nest's `BaseExceptionFilter` right now,
 * after logging it for the request: `SextantLogger` drops Nest's `ExceptionsHandler` record of
 * it, written synchronously inside `super.catch()`, so each exception is logged once per request.
 */
let handing: { readonly exception: unknown } | undefined;

/** Whether `value` is the exception being handed to Nest after this package logged it. */
export function isBeingHandedToNest(value: unknown): boolean {
  return handing !== undefined && handing.exception === value;
}

/** For each request (Express `req`, Fastify request), the exception logged for it. */
const loggedFor = new WeakMap<object, unknown>();

/**
 * Records an exception on the request's exchange (core puts an `exception` event on the server
 * span, and status ERROR when the answer is a 5xx) and logs it once per request with the
 * request's ids (`request rejected` at `warn` for a 4xx answer, `request failed` at `error`
 * otherwise) with the status Nest answered, then lets Nest's `BaseExceptionFilter` answer
 * exactly as it would have. Outside HTTP (microservices, GraphQL and other external contexts) it
 * does nothing and returns nothing, which tells Nest to handle the exception as if no filter had
 * caught it. Registered by `SextantModule` as the global filter Nest tries last, after every
 * filter of the application; an application with a catch-all filter of its own extends this
 * class and calls `super.catch()` so that what it catches is recorded too.
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
    // Nest's RPC and external (GraphQL) handlers fall back to their default handling when the
    // filter returns nothing; `BaseExceptionFilter` would try to send an HTTP reply there.
    if (host.getType() !== 'http') return;
    if (!this.#enabled) {
      super.catch(exception, host);
      return;
    }
    const request: unknown = host.getArgByIndex(0);
    const begun = this.#begin(exception, request);
    if (begun === undefined) {
      super.catch(exception, host);
      return;
    }
    const previous = handing;
    handing = { exception };
    try {
      super.catch(exception, host);
    } finally {
      handing = previous;
      if (begun === 'log') this.#log(exception, host);
    }
  }

  /**
   * Records the exception on the exchange, before the answer can end it: `log` when it is new
   * for this request, `logged` when the request has logged it already, undefined on a failure.
   */
  #begin(exception: unknown, request: unknown): 'log' | 'logged' | undefined {
    try {
      if (typeof request === 'object' && request !== null) {
        if (loggedFor.has(request) && loggedFor.get(request) === exception) return 'logged';
        loggedFor.set(request, exception);
      }
      const exchange = this.#sextant.http.exchangeOf();
      if (exchange !== undefined) this.#sextant.http.recordError(exchange, exception);
      return 'log';
    } catch (failure) {
      this.#sextant.errors.report('nestjs_exception_filter', failure);
      return undefined;
    }
  }

  #log(exception: unknown, host: ArgumentsHost): void {
    try {
      const status = this.#answeredStatus(host) ?? this.#statusOf(exception);
      if (status >= 400 && status < 500)
        this.#sextant.logger.warn({ err: exception, status_code: status }, 'request rejected');
      else this.#sextant.logger.error({ err: exception, status_code: status }, 'request failed');
    } catch (failure) {
      this.#sextant.errors.report('nestjs_exception_filter', failure);
    }
  }

  /** The status of the response once Nest has answered (Express's and Fastify's both hold `statusCode`). */
  #answeredStatus(host: ArgumentsHost): number | undefined {
    const response = host.getArgByIndex(1) as { statusCode?: unknown } | null | undefined;
    const status = typeof response === 'object' && response !== null ? response.statusCode : undefined;
    return typeof status === 'number' && Number.isInteger(status) && status >= 100 && status < 600
      ? status
      : undefined;
  }

  /**
   * The status `BaseExceptionFilter` answers with, by its own rule: an `HttpException`'s, that
   * of an error its `isHttpError()` accepts (http-errors, Fastify's errors; the rule differs
   * between Nest majors), otherwise 500.
   */
  #statusOf(exception: unknown): number {
    if (exception instanceof HttpException) return exception.getStatus();
    if (this.isHttpError(exception)) return exception.statusCode;
    return 500;
  }
}
Catch()(SextantExceptionFilter);
Inject(SEXTANT)(SextantExceptionFilter, undefined, 0);
Inject(HttpAdapterHost)(SextantExceptionFilter, undefined, 1);
