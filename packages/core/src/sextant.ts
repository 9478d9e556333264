import { propagation, type Tracer } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { type BusinessTracer, createBusinessTracer } from './business.ts';
import { type ResolvedConfig, resolveConfig, type SextantOptions } from './config.ts';
import { ensureContextManager } from './context.ts';
import { createEndpoints, type Endpoints } from './endpoints.ts';
import { createHealth, type Health } from './health.ts';
import { createHttpInstrumentation, type HttpInstrumentation } from './http.ts';
import { createInFlight, type InFlight } from './in-flight.ts';
import { createInternalErrorSink, type InternalErrorSink } from './internal-errors.ts';
import { createLogger, logBusinessEvent } from './logger.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { createPropagator } from './propagation.ts';
import { createQuantumTracer, type QuantumTracer } from './quantum.ts';
import { createRedactor, type Redactor } from './redact.ts';
import { createTracing, type Tracing } from './tracing.ts';

/** One instrumented service: everything adapters and application code reach for. */
export interface Sextant {
  readonly config: ResolvedConfig;
  /** JSON logger whose records carry the active trace, span and request ids. */
  readonly logger: Logger;
  readonly tracer: Tracer;
  readonly tracing: Tracing;
  readonly metrics: Metrics;
  readonly health: Health;
  /** Framework-agnostic handlers for `/metrics` and `/health*`, mounted by the adapters. */
  readonly endpoints: Endpoints;
  /** The server-request primitives every HTTP adapter is built on. */
  readonly http: HttpInstrumentation;
  /** Requests and jobs in progress; shutdown waits for them. */
  readonly inFlight: InFlight;
  /** Jobs sent to quantum providers: one span per job, the quantum_* metrics, breaker state. */
  readonly quantum: QuantumTracer;
  /** Business units: operations, events and KPIs. */
  readonly business: BusinessTracer;
  readonly errors: InternalErrorSink;
  /** The redaction the logger applies (built-in keys plus `logs.redactKeys`), for adapters that record values. */
  readonly redactor: Redactor;
  /**
   * A variable of the environment Sextant was configured from (the `env` option, else
   * `process.env`), for adapters that read `SEXTANT_*` variables of their own.
   */
  readEnv(name: string): string | undefined;
  /** Logs a business event (`order.placed`) as one record, with the active ids. */
  event(name: string, fields?: Record<string, unknown>): void;
  /**
   * Runs `hook` as soon as shutdown starts, right after readiness flips, without waiting for it:
   * stop taking new work here (a queue worker's `close()`), while in-flight work drains.
   */
  onShutdownStart(hook: () => void | Promise<void>): void;
  /**
   * Runs `hook` during shutdown, once in-flight work has finished (close servers and pools here).
   * Hooks run one after another, the last registered first: what an application opened first
   * (its database, say) closes after what it opened later and which may still use it (a queue
   * worker finishing a job past the timeout, a server).
   */
  onShutdown(hook: () => void | Promise<void>): void;
  /**
   * Flips readiness to 503, waits for in-flight requests and jobs (up to `shutdown.timeoutMs`),
   * runs the shutdown hooks, flushes spans and stops Sextant's timers. Safe to call twice.
   */
  shutdown(): Promise<void>;
}

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;
/** What the span flush at shutdown gets when draining in-flight work took the whole shutdown timeout. */
const MIN_FLUSH_MS = 2000;

/**
 * Builds the instrumentation from options (overridden by the environment). Throws a
 * `SextantConfigError` naming any invalid option or `SEXTANT_*` variable.
 */
export function createSextant(options: SextantOptions = {}): Sextant {
  const { config, warnings } = resolveConfig(options);
  const errors = createInternalErrorSink({ intervalMs: config.internalErrorLogIntervalMs });
  const redactor = createRedactor({ extraKeys: config.logs.redactKeys });
  const logger = createLogger(config, errors, redactor);
  for (const warning of warnings) logger.warn({ code: warning.code }, warning.message);

  ensureContextManager();
  const tracing = createTracing(config, errors, redactor);
  if (tracing.ownsProvider) propagation.setGlobalPropagator(createPropagator(errors));

  const metrics = createMetrics(config, errors, {
    spans: () => tracing.stats(),
    internalErrors: () => errors.counts(),
  });
  const health = createHealth(config, errors, { name: config.serviceName, version: config.serviceVersion });
  const endpoints = createEndpoints(config, errors, { metrics, health });
  const inFlight = createInFlight();
  const http = createHttpInstrumentation({
    config,
    tracer: tracing.tracer,
    metrics: metrics.http,
    logger,
    endpoints,
    inFlight,
    sink: errors,
    tracingEnabled: tracing.enabled,
    redactor,
  });

  const domainDeps = { tracer: tracing.tracer, metrics, logger, sink: errors };
  const quantum = createQuantumTracer(domainDeps);
  const business = createBusinessTracer({ ...domainDeps, collectTimeoutMs: config.metrics.collectTimeoutMs });

  const shutdownStartHooks: Array<() => void | Promise<void>> = [];
  const shutdownHooks: Array<() => void | Promise<void>> = [];
  let shuttingDown: Promise<void> | undefined;

  const onSignal = (signal: NodeJS.Signals) => {
    logger.info({ signal }, 'shutting down on signal');
    void shutdown();
  };

  async function drainAndFlush(): Promise<void> {
    const startedAt = performance.now();
    health.markShuttingDown();
    for (const hook of shutdownStartHooks) {
      // Not awaited: stopping intake (a worker's close) may itself wait for the work in flight.
      Promise.resolve()
        .then(hook)
        .catch((error: unknown) => errors.report('shutdown_hook', error));
    }
    // The server keeps serving while in-flight work drains: readiness already answers 503, so
    // load balancers stop sending; hooks (closing the server, pools) run once it is quiet.
    const drained = await inFlight.idle(config.shutdown.timeoutMs);
    if (!drained) {
      logger.warn(
        { in_flight: inFlight.count, timeout_ms: config.shutdown.timeoutMs },
        'shutdown timed out waiting for in-flight work',
      );
    }
    for (const hook of shutdownHooks.toReversed()) {
      try {
        await hook();
      } catch (error) {
        errors.report('shutdown_hook', error);
      }
    }
    // An unreachable collector would hold each batch until its export timeout: the flush gets
    // what is left of the shutdown timeout, and at least MIN_FLUSH_MS.
    const elapsed = performance.now() - startedAt;
    await tracing.shutdown(Math.max(MIN_FLUSH_MS, config.shutdown.timeoutMs - elapsed));
    health.close();
    if (config.shutdown.handleSignals) for (const signal of SIGNALS) process.off(signal, onSignal);
    logger.flush();
  }

  function shutdown(): Promise<void> {
    shuttingDown ??= drainAndFlush().catch((error) => errors.report('shutdown', error));
    return shuttingDown;
  }

  if (config.shutdown.handleSignals) for (const signal of SIGNALS) process.once(signal, onSignal);

  return {
    config,
    logger,
    tracer: tracing.tracer,
    tracing,
    metrics,
    health,
    endpoints,
    http,
    inFlight,
    quantum,
    business,
    errors,
    redactor,
    event: (name, fields) => logBusinessEvent(logger, name, fields),
    readEnv: (name) => (options.env ?? process.env)[name],
    onShutdownStart: (hook) => {
      shutdownStartHooks.push(hook);
    },
    onShutdown: (hook) => {
      shutdownHooks.push(hook);
    },
    shutdown,
  };
}
