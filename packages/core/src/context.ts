import { type Context, context, createContextKey, ROOT_CONTEXT } from '@opentelemetry/api';
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

/** Names the user of the active request or job; it goes on its spans and log records, never on metric labels. */
export function setUser(userId: string): void {
  const state = getRequestState();
  if (state) state.userId = userId;
}

/** Names the tenant of the active request or job; it goes on its spans and log records, never on metric labels. */
export function setTenant(tenantId: string): void {
  const state = getRequestState();
  if (state) state.tenantId = tenantId;
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
