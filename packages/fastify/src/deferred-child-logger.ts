import type { FastifyBaseLogger } from 'fastify';

type ChildOptions = Parameters<FastifyBaseLogger['child']>[1];

/** What Fastify hands a `childLoggerFactory`. */
export type ChildLoggerFactory = (
  logger: FastifyBaseLogger,
  bindings: Record<string, unknown>,
  options: ChildOptions,
) => FastifyBaseLogger;

/**
 * Fastify makes a child logger for every request (`request.log`, bound to its request id). With
 * Sextant's access record on, most requests never log through it, yet a pino child costs about
 * 10 k instructions to make (about a tenth of what Sextant adds to a Fastify request). This
 * factory hands out a stand-in that makes the real child the first time anything of it is used:
 * every method and property of the logger is there, and each one forwards to the child.
 *
 * The stand-in's members are taken from `sample` (Sextant's logger): what pino defines on the
 * instance and along its prototype chain, symbols included.
 */
export function createDeferredChildLoggerFactory(sample: FastifyBaseLogger): ChildLoggerFactory {
  class DeferredChildLogger {
    readonly #parent: FastifyBaseLogger;
    readonly #bindings: Record<string, unknown>;
    readonly #options: ChildOptions;
    #child: FastifyBaseLogger | undefined;

    constructor(parent: FastifyBaseLogger, bindings: Record<string, unknown>, options: ChildOptions) {
      this.#parent = parent;
      this.#bindings = bindings;
      this.#options = options;
    }

    get realChild(): FastifyBaseLogger {
      this.#child ??= this.#parent.child(this.#bindings, this.#options);
      return this.#child;
    }
  }
  const prototype = DeferredChildLogger.prototype as unknown as Record<PropertyKey, unknown>;
  const defined = new Set<PropertyKey>(['constructor', 'realChild']);
  for (
    let source: object | null = sample;
    source !== null && source !== Object.prototype;
    source = Object.getPrototypeOf(source)
  ) {
    for (const key of Reflect.ownKeys(source)) {
      if (defined.has(key)) continue;
      defined.add(key);
      const descriptor = Object.getOwnPropertyDescriptor(source, key)!;
      if (typeof descriptor.value === 'function') {
        Object.defineProperty(prototype, key, {
          configurable: true,
          writable: true,
          value(this: DeferredChildLogger, ...args: unknown[]) {
            const child = this.realChild as unknown as Record<PropertyKey, (...rest: unknown[]) => unknown>;
            return child[key]!(...args);
          },
        });
      } else {
        Object.defineProperty(prototype, key, {
          configurable: true,
          get(this: DeferredChildLogger) {
            return (this.realChild as unknown as Record<PropertyKey, unknown>)[key];
          },
          set(this: DeferredChildLogger, value: unknown) {
            (this.realChild as unknown as Record<PropertyKey, unknown>)[key] = value;
          },
        });
      }
    }
  }
  return (logger, bindings, options) =>
    new DeferredChildLogger(logger, bindings, options) as unknown as FastifyBaseLogger;
}
