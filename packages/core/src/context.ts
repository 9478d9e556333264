import {
  type Context,
  context,
  createContextKey,
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  type Span,
  trace,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';

/**
 * Per-request (or per-job) state carried in the OpenTelemetry context. It is one mutable object
 * so that a handler can name the user after authentication and every later log record sees it.
 */
export interface RequestState {
  readonly requestId: string;
  userId: string | undefined;
  tenantId: string | undefined;
}

const kRequestState = createContextKey('sextant.request_state');

export function getRequestState(ctx: Context = context.active()): RequestState | undefined {
  return ctx.getValue(kRequestState) as RequestState | undefined;
}

export function setRequestState(ctx: Context, state: RequestState): Context {
  return ctx.setValue(kRequestState, state);
}

/** The API's key for the active span, learned once through the public Context interface. */
const SPAN_KEY: symbol = (() => {
  let key: symbol | undefined;
  const probe: Context = {
    getValue: () => undefined,
    setValue(given) {
      key = given;
      return probe;
    },
    deleteValue: () => probe,
  };
  trace.setSpan(probe, trace.wrapSpanContext(INVALID_SPAN_CONTEXT));
  if (key === undefined) throw new Error('@sextant/core: the OpenTelemetry API set no span key');
  return key;
})();

/**
 * A request's context: its parent plus the request's span and state, in one object. Built with
 * `setValue`, each of the two would copy the parent's map of values, on every request. Reads need
 * no copy; the first context derived from it (a child span's, say) builds the usual one, once.
 */
class RequestContext implements Context {
  readonly #parent: Context;
  readonly #span: Span | undefined;
  readonly #state: RequestState;
  #built: Context | undefined;

  constructor(parent: Context, span: Span | undefined, state: RequestState) {
    this.#parent = parent;
    this.#span = span;
    this.#state = state;
  }

  getValue(key: symbol): unknown {
    if (key === kRequestState) return this.#state;
    if (key === SPAN_KEY && this.#span !== undefined) return this.#span;
    return this.#parent.getValue(key);
  }

  setValue(key: symbol, value: unknown): Context {
    return this.#build().setValue(key, value);
  }

  deleteValue(key: symbol): Context {
    return this.#build().deleteValue(key);
  }

  #build(): Context {
    this.#built ??= setRequestState(
      this.#span === undefined ? this.#parent : trace.setSpan(this.#parent, this.#span),
      this.#state,
    );
    return this.#built;
  }
}

/**
 * `parent` with one more value, in one object. `setValue` copies the parent's map of values
 * (OpenTelemetry contexts are immutable), and under a request's context the copy first builds that
 * context's own map. Reads need no copy; the first context derived from this one builds the usual
 * one, once.
 */
class ContextWithValue implements Context {
  readonly #parent: Context;
  readonly #key: symbol;
  readonly #value: unknown;
  #built: Context | undefined;

  constructor(parent: Context, key: symbol, value: unknown) {
    this.#parent = parent;
    this.#key = key;
    this.#value = value;
  }

  getValue(key: symbol): unknown {
    return key === this.#key ? this.#value : this.#parent.getValue(key);
  }

  setValue(key: symbol, value: unknown): Context {
    return this.#build().setValue(key, value);
  }

  deleteValue(key: symbol): Context {
    return this.#build().deleteValue(key);
  }

  #build(): Context {
    this.#built ??= this.#parent.setValue(this.#key, this.#value);
    return this.#built;
  }
}

/**
 * What `parent.setValue(key, value)` returns, without copying the parent's values: for a context
 * made once per request, job or operation.
 */
export function contextWithValue(parent: Context, key: symbol, value: unknown): Context {
  return new ContextWithValue(parent, key, value);
}

/** What `trace.setSpan(parent, span)` returns, without copying the parent's values. */
export function contextWithSpan(parent: Context, span: Span): Context {
  return new ContextWithValue(parent, SPAN_KEY, span);
}

/** `parent` with `span` (when given) active and `state` as the request state. */
export function createRequestContext(parent: Context, span: Span | undefined, state: RequestState): Context {
  return new RequestContext(parent, span, state);
}

// A class rather than an object literal: V8 may decide to allocate a literal's objects straight in
// the old generation (allocation-site pretenuring, after a warm-up in which they happened to
// survive), and an old state object then keeps everything a request hangs on it alive until the
// next full collection. Under load in a Nest app that doubled the cost of minor GCs.
class MutableRequestState implements RequestState {
  readonly requestId: string;
  userId: string | undefined = undefined;
  tenantId: string | undefined = undefined;
  constructor(requestId: string) {
    this.requestId = requestId;
  }
}

export function createRequestState(requestId: string): RequestState {
  return new MutableRequestState(requestId);
}

/** The correlation id of the active request or job, if any. */
export function getRequestId(): string | undefined {
  return getRequestState()?.requestId;
}

/** A user or tenant id as records carry it; numeric database ids as their decimal text. */
function idText(id: unknown): string | undefined {
  if (typeof id === 'string') return id;
  if ((typeof id === 'number' && Number.isFinite(id)) || typeof id === 'bigint') return String(id);
  return undefined;
}

/**
 * Names the user of the active request or job; it goes on its spans and log records, never on
 * metric labels. A number or bigint (a database id) is written as its decimal text; any other
 * value (an object, `undefined` from an untyped `req.user`) is ignored rather than risk the
 * request's records.
 */
export function setUser(userId: string | number | bigint): void {
  const state = getRequestState();
  const text = idText(userId);
  if (state && text !== undefined) state.userId = text;
}

/** Names the tenant of the active request or job, as `setUser` does the user. */
export function setTenant(tenantId: string | number | bigint): void {
  const state = getRequestState();
  const text = idText(tenantId);
  if (state && text !== undefined) state.tenantId = text;
}

/** Runs `fn` with a fresh request state (a background task, a script) so its logs carry an id. */
export function runWithRequestId<T>(requestId: string, fn: () => T): T {
  return context.with(setRequestState(context.active(), createRequestState(requestId)), fn);
}

let installedContextManager: AsyncLocalStorageContextManager | undefined;

/**
 * Context must follow async calls for ids to reach logs. If the application (or
 * auto-instrumentation) registered a context manager, it is used; otherwise Sextant installs
 * the AsyncLocalStorage one.
 */
export function ensureContextManager(): void {
  if (installedContextManager) return;
  const probe = createContextKey('sextant.probe');
  const carries = context.with(
    ROOT_CONTEXT.setValue(probe, true),
    () => context.active().getValue(probe) === true,
  );
  if (carries) return;
  const manager = new AsyncLocalStorageContextManager().enable();
  if (context.setGlobalContextManager(manager)) installedContextManager = manager;
  else manager.disable();
}
