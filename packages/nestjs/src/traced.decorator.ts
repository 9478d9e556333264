import type { Attributes, Context } from '@opentelemetry/api';
import { context } from '@opentelemetry/api';
import { Traced as coreTraced, type SettleResult } from '@sextant/core';
import { isObservable, Observable } from 'rxjs';

/** Options of {@link Traced}. */
export interface TracedOptions {
  /** Attributes set when the span starts. */
  attributes?: Attributes;
}

/**
 * An Observable that runs its source inside the span's context and ends the span when the
 * source completes, errors or the subscriber unsubscribes (the first of them, on the first
 * subscription: a span is one call).
 */
function tracedObservable(source: Observable<unknown>, end: (error?: unknown) => void, spanContext: Context) {
  return new Observable((subscriber) => {
    const subscription = context.with(spanContext, () =>
      source.subscribe({
        next: (value) => subscriber.next(value),
        error: (error: unknown) => {
          end(error ?? new Error('Observable errored without an error'));
          subscriber.error(error);
        },
        complete: () => {
          end();
          subscriber.complete();
        },
      }),
    );
    return () => {
      subscription.unsubscribe();
      end();
    };
  });
}

/**
 * Only a plain Observable is replaced (by one of the same class). One of another class, a Subject
 * or BehaviorSubject above all, is handed back as it is, and the span ends at once: callers use its
 * own API (`next`, `value`), which a replacement would not have.
 */
const settleObservable: SettleResult = (result, end, spanContext) =>
  isObservable(result) && Object.getPrototypeOf(result) === Observable.prototype
    ? tracedObservable(result, end, spanContext)
    : undefined;

/**
 * Method decorator for providers and controllers: each call runs inside a child span of the
 * active one (the request's), named `ClassName.method` unless `name` is given. A returned
 * promise ends the span when it settles; a returned Observable when it completes, errors or is
 * unsubscribed, with its subscription running inside the span; a Subject (or any Observable of
 * another class) is returned as it is and the span ends at once, as for anything else. A throw,
 * rejection or Observable error is recorded on the span (exception event, status ERROR,
 * `error.type`) and passed on unchanged. Every metadata key other decorators put on the method
 * is kept, whichever side of `@Traced()` they are.
 */
export function Traced(name?: string, options: TracedOptions = {}): MethodDecorator {
  return coreTraced(name, { ...options, settle: settleObservable }) as MethodDecorator;
}
