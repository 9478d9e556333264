import {
  type Attributes,
  type Context,
  context,
  type Span,
  type SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { ATTR_ERROR_TYPE, ERROR_TYPE_VALUE_OTHER } from '@opentelemetry/semantic-conventions';
import { ERROR_CODES, SextantConfigError } from './errors.ts';
import { exportedException } from './redact.ts';
import { TRACER_NAME } from './tracing.ts';

export interface TracedOptions {
  /** Span kind. Default `INTERNAL`. */
  kind?: SpanKind;
  /** Attributes set when the span starts. */
  attributes?: Attributes;
  /** Tracer to start the span with. Default: the global tracer `@sextant/core`, resolved per call. */
  tracer?: Tracer;
  /**
   * For results that finish later but are not promises (an RxJS Observable, a stream): return a
   * replacement that calls `end` once, when the work is done (with the error if it failed), or
   * `undefined` to end the span at once. Core stays free of such libraries; adapters pass this.
   */
  settle?: SettleResult;
}

/** See {@link TracedOptions.settle}. `spanContext` is the span's context, to run deferred work in. */
export type SettleResult = (result: unknown, end: (error?: unknown) => void, spanContext: Context) => unknown;

const NO_OPTIONS: TracedOptions = Object.freeze({});

/**
 * Runs `fn` inside a new active span named `name`. A returned promise (or thenable) ends the
 * span when it settles; anything else ends it at once. A throw or rejection is recorded on
 * the span (exception event, status ERROR, `error.type`) and passed on unchanged.
 *
 * A native promise is returned as is. Another thenable (a query builder, a Prisma query) is
 * returned as itself, behind a proxy: its type and methods stay (`$transaction([...])` still
 * takes a Prisma query). Awaiting it calls its `then` once, inside the span's context, and the
 * span ends when it settles; when another of its methods is called instead (a batch transaction
 * or a builder takes it over), the span ends then.
 */
export function traced<T>(name: string, fn: (span: Span) => T, options: TracedOptions = NO_OPTIONS): T {
  const tracer = options.tracer ?? trace.getTracer(TRACER_NAME);
  return tracer.startActiveSpan(name, options, (span) => {
    let result: T;
    try {
      result = fn(span);
    } catch (error) {
      recordSpanError(span, error);
      span.end();
      throw error;
    }
    if (result instanceof Promise) {
      result.then(
        () => span.end(),
        (error: unknown) => {
          recordSpanError(span, error);
          span.end();
        },
      );
      return result;
    }
    if (options.settle !== undefined) {
      const settled = options.settle(result, endOnce(span), context.active());
      if (settled !== undefined) return settled as T;
    }
    if (isThenable(result)) return endWhenAwaited(result, span, context.active()) as T;
    span.end();
    return result;
  });
}

type Then = PromiseLike<unknown>['then'];

/** Ends `span` on the first call, recording the error if one is given; later calls do nothing. */
function endOnce(span: Span): (error?: unknown) => void {
  let ended = false;
  return (error?: unknown) => {
    if (ended) return;
    ended = true;
    if (error !== undefined) recordSpanError(span, error);
    span.end();
  };
}

function endWhenAwaited(thenable: PromiseLike<unknown> & object, span: Span, spanContext: Context): unknown {
  const end = endOnce(span);
  let settled: Promise<unknown> | undefined;
  // A lazy thenable starts its work when `then` is first called: in the span's context, once.
  const awaited = (): Promise<unknown> => {
    settled ??= new Promise<unknown>((resolve, reject) => {
      context.with(spanContext, () => thenable.then(resolve, reject));
    }).then(
      (value) => {
        end();
        return value;
      },
      (error: unknown) => {
        end(error);
        throw error;
      },
    );
    return settled;
  };
  const then: Then = (onFulfilled, onRejected) => awaited().then(onFulfilled, onRejected);
  const catchRejection = (onRejected?: (reason: unknown) => unknown) => awaited().catch(onRejected);
  const onSettled = (onFinally?: () => void) => awaited().finally(onFinally);
  return new Proxy(thenable, {
    get(target, property) {
      if (property === 'then') return then;
      if (property === 'catch') return catchRejection;
      if (property === 'finally') return onSettled;
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      // Another method called: something other than an await takes the work over.
      return (...args: unknown[]) => {
        end();
        return (value as (...args: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * Records a failure on a span the way every Sextant span does: exception event, status ERROR
 * and `error.type` (the error's class, or `_OTHER`). Never throws.
 */
export function recordSpanError(span: Span, error: unknown): void {
  try {
    if (error instanceof Error) {
      const exception = exportedException(error);
      span.recordException(exception);
      span.setStatus({ code: SpanStatusCode.ERROR, message: exception.message });
      span.setAttribute(ATTR_ERROR_TYPE, error.constructor?.name || error.name || ERROR_TYPE_VALUE_OTHER);
    } else {
      span.recordException(String(error));
      span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
      span.setAttribute(ATTR_ERROR_TYPE, ERROR_TYPE_VALUE_OTHER);
    }
  } catch {
    // An error object with throwing getters must not replace the application's own error.
  }
}

type Method = (this: any, ...args: any[]) => any;

/** The signatures `@Traced()` accepts: TC39 standard decorators and TypeScript's `experimentalDecorators`. */
export interface TracedDecorator {
  <This, T extends (this: This, ...args: any[]) => any>(
    value: T,
    context: ClassMethodDecoratorContext<This, T>,
  ): T;
  (target: object, propertyKey: string | symbol, descriptor: PropertyDescriptor): PropertyDescriptor;
}

/**
 * Method decorator: each call runs inside a span, as with {@link traced}. The default span
 * name is `ClassName.method`. Works with TC39 standard decorators and with TypeScript's
 * `experimentalDecorators`; metadata that other decorators (NestJS) attached to the method
 * through reflect-metadata is carried over to the wrapper.
 */
export function Traced(name?: string, options: TracedOptions = NO_OPTIONS): TracedDecorator {
  function tracedDecorator(
    targetOrMethod: object,
    keyOrContext: string | symbol | ClassMethodDecoratorContext,
    descriptor?: PropertyDescriptor,
  ): unknown {
    if (typeof keyOrContext === 'object') {
      if (keyOrContext.kind !== 'method' || typeof targetOrMethod !== 'function') {
        throw notAMethod(String(keyOrContext.name));
      }
      const key = keyOrContext.name;
      return wrapMethod(targetOrMethod as Method, key, name, options);
    }
    if (typeof descriptor?.value !== 'function') throw notAMethod(String(keyOrContext));
    // Legacy decorators see the prototype (instance methods) or the class itself (static ones).
    const className =
      typeof targetOrMethod === 'function' ? targetOrMethod.name : targetOrMethod.constructor.name;
    descriptor.value = wrapMethod(
      descriptor.value,
      keyOrContext,
      name ?? `${className}.${String(keyOrContext)}`,
      options,
    );
    return descriptor;
  }
  return tracedDecorator as TracedDecorator;
}

function notAMethod(key: string): SextantConfigError {
  return new SextantConfigError(
    ERROR_CODES.INVALID_OPTION,
    `@Traced() on ${describeKey(key)}: expected a method (not a field, getter, setter or class)`,
  );
}

function describeKey(key: string): string {
  return key.length > 60 ? `${key.slice(0, 57)}...` : key;
}

function wrapMethod(
  original: Method,
  key: string | symbol,
  fixedName: string | undefined,
  options: TracedOptions,
): Method {
  let spanName = fixedName;
  const methodName = String(key);
  // Standard decorators do not see the class, so its name is found on the first call: the
  // object in `this`'s prototype chain that holds this very wrapper is the declaring one.
  const resolveSpanName = (self: unknown): string => {
    for (let holder = self; holder !== null && holder !== undefined; holder = Object.getPrototypeOf(holder)) {
      if (Object.getOwnPropertyDescriptor(holder, key)?.value === wrapper) {
        const owner: { name?: string } | undefined =
          typeof holder === 'function' ? holder : holder.constructor;
        spanName = owner?.name ? `${owner.name}.${methodName}` : methodName;
        return spanName;
      }
    }
    // A detached call or a private method: no holder to name, and nothing worth caching.
    const receiver = self as { constructor?: { name?: string }; name?: string } | null | undefined;
    const className = typeof self === 'function' ? receiver?.name : receiver?.constructor?.name;
    return className ? `${className}.${methodName}` : methodName;
  };
  const wrapper = function (this: unknown, ...args: unknown[]): unknown {
    return traced(spanName ?? resolveSpanName(this), () => original.apply(this, args), options);
  };
  Object.defineProperty(wrapper, 'name', { value: original.name, configurable: true });
  Object.defineProperty(wrapper, 'length', { value: original.length, configurable: true });
  copyReflectMetadata(original, wrapper);
  return wrapper;
}

interface ReflectMetadataApi {
  getOwnMetadataKeys(target: object): unknown[];
  getOwnMetadata(key: unknown, target: object): unknown;
  defineMetadata(key: unknown, value: unknown, target: object): void;
}

/** Copies metadata only when reflect-metadata (or a compatible polyfill) is loaded; Sextant never loads it. */
function copyReflectMetadata(from: object, to: object): void {
  const reflect = Reflect as unknown as Partial<ReflectMetadataApi>;
  if (
    typeof reflect.getOwnMetadataKeys !== 'function' ||
    typeof reflect.getOwnMetadata !== 'function' ||
    typeof reflect.defineMetadata !== 'function'
  ) {
    return;
  }
  for (const key of reflect.getOwnMetadataKeys(from)) {
    reflect.defineMetadata(key, reflect.getOwnMetadata(key, from), to);
  }
}
