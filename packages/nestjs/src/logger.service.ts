import type { LoggerService, LogLevel } from '@nestjs/common';
import type { Sextant } from '@sextant/core';
import { isBeingHandedToNest } from './exception.filter.ts';

type PinoLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/**
 * Nest's logger on Sextant's pino logger: Nest's own records (start-up, `ExceptionsHandler`) and
 * those of `new Logger(Context)` in the application become JSON lines with the request's ids,
 * the Nest context under `context`. `NestFactory.create(AppModule, { bufferLogs: true })`, then
 * `app.useLogger(new SextantLogger(sextant))`.
 */
export class SextantLogger implements LoggerService {
  readonly #logger: Sextant['logger'];

  constructor(sextant: Sextant) {
    this.#logger = sextant.logger;
  }

  log(message: unknown, ...params: unknown[]): void {
    this.#write('info', message, params);
  }
  error(message: unknown, ...params: unknown[]): void {
    this.#write('error', message, params);
  }
  warn(message: unknown, ...params: unknown[]): void {
    this.#write('warn', message, params);
  }
  debug(message: unknown, ...params: unknown[]): void {
    this.#write('debug', message, params);
  }
  verbose(message: unknown, ...params: unknown[]): void {
    this.#write('trace', message, params);
  }
  fatal(message: unknown, ...params: unknown[]): void {
    this.#write('fatal', message, params);
  }
  /** Levels are pino's, set through Sextant (`logs.level`, `SEXTANT_LOG_LEVEL`). */
  setLogLevels(_levels: LogLevel[]): void {}

  #write(level: PinoLevel, message: unknown, params: unknown[]): void {
    // Nest passes the context last, and for `error` a stack before it.
    const context = params.length > 0 && typeof params.at(-1) === 'string' ? params.at(-1) : undefined;
    // Nest's `ExceptionsHandler` record of an exception the filter has just logged for the request.
    if (isBeingHandedToNest(message)) return;
    if (message instanceof Error) {
      this.#logger[level]({ err: message, context }, message.message);
    } else if (typeof message === 'object' && message !== null) {
      this.#logger[level]({ ...message, context });
    } else {
      const stack = level === 'error' && params.length > 1 ? params[0] : undefined;
      this.#logger[level]({ context, stack }, String(message));
    }
  }
}
