/** The part of a logger this needs: pino's `child`, as Fastify and others type it. */
interface ChildMaking<L> {
  child(bindings: Record<string, unknown>, options?: any): L;
}

/** Makes a child of `parent`, as a framework's child-logger hook does (Fastify's `childLoggerFactory`). */
export type ChildLoggerFactory<L> = (parent: L, bindings: Record<string, unknown>, options?: unknown) => L;

/**
 * A framework that makes a child logger for every request (Fastify's `request.log`, bound to its
 * request id) pays for it even when the request never logs through it, which with Sextant's
 * access record on is most requests; a pino child costs about 10 k instructions to make. This
 * factory hands out a stand-in that makes the real child the first time anything of it is used:
 * every method and property of the logger is there, and each one forwards to the child.
 *
 * The stand-in's members are taken from `sample` (Sextant's logger): what pino defines on the
 * instance and along its prototype chain, symbols included.
 */
export function createDeferredChildLoggerFactory<L extends ChildMaking<L>>(sample: L): ChildLoggerFactory<L> {
  class DeferredChildLogger {
    readonly #parent: L;
    readonly #bindings: Record<string, unknown>;
    readonly #options: unknown;
    #child: L | undefined;

    constructor(parent: L, bindings: Record<string, unknown>, options: unknown) {
      this.#parent = parent;
      this.#bindings = bindings;
      this.#options = options;
    }

    get realChild(): L {
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
  return (logger, bindings, options) => new DeferredChildLogger(logger, bindings, options) as unknown as L;
}
