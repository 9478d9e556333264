/**
 * The business-unit tracer: operations as spans with duration and outcome metrics and one log
 * record each, business events as a counter and a log record, and KPIs as gauges read at scrape
 * time. The user and tenant of the request go on spans and log records, never on metric labels:
 * they are unbounded.
 */

import type { Attributes, Span, Tracer } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { Gauge } from 'prom-client';
import { getRequestState } from './context.ts';
import { describeValue, ERROR_CODES, SextantConfigError } from './errors.ts';
import type { InternalErrorSink } from './internal-errors.ts';
import { logBusinessEvent } from './logger.ts';
import { METRICS } from './metric-names.ts';
import type { Metrics, SextantCounter, SextantHistogram, SextantHistogramChild } from './metrics.ts';
import { isThenable, recordSpanError } from './traced.ts';

/** Span attribute keys of business operations (`enduser.id` is OpenTelemetry's, copied here: it is incubating). */
export const BUSINESS_ATTRIBUTES = Object.freeze({
  UNIT: 'business.unit',
  OPERATION: 'business.operation',
  OUTCOME: 'business.outcome',
  ENDUSER_ID: 'enduser.id',
  TENANT_ID: 'tenant.id',
});

export type BusinessOutcome = 'success' | 'failure';

export interface BusinessKpi {
  /**
   * Lowercase snake case (`^[a-z][a-z0-9_]*$`), once per unit; the gauge is
   * `business_<unit>_<name>`, so a unit suffix follows the metric rules (`_seconds`, `_bytes`, `_ratio`).
   */
  name: string;
  /** One line of text, the gauge's HELP. */
  help: string;
  /**
   * Read on every scrape, but never called again while a previous call is still running: later
   * scrapes wait for that call, and its answer, however late, sets the gauge. A throw, a
   * rejection, a non-number or a timeout is counted in `sextant_metric_errors_total` and the gauge
   * keeps its previous value; until the first answer, the gauge has no sample.
   */
  collect: () => number | Promise<number>;
  /**
   * Milliseconds a scrape waits for `collect`: 1 to `metrics.collectTimeoutMs` (default 2000),
   * since a scrape waits no longer for any collect. Default 500.
   */
  timeoutMs?: number;
}

export interface BusinessUnit {
  readonly name: string;
  /**
   * Runs `fn` (sync or async) in the span `<unit>.<name>` and records its duration and outcome
   * (`success`, or `failure` when it throws or rejects; the error is passed on unchanged).
   * `name` is a metric label: keep it bounded.
   */
  operation<T>(name: string, fn: (span: Span) => T, attributes?: Attributes): T;
  /** Counts `business_events_total{business_unit, business_event}` and logs a business-event record. */
  event(name: string, fields?: Record<string, unknown>): void;
  /**
   * Declares the gauge `business_<unit>_<kpi.name>`, read at scrape time. Throws
   * `SextantConfigError` for an invalid or already declared name, a `collect` that is not a
   * function, or a `timeoutMs` out of range.
   */
  kpi(kpi: BusinessKpi): void;
}

export interface BusinessTracer {
  /** The unit named `name` (lowercase snake case; the same object for the same name). */
  unit(name: string): BusinessUnit;
}

export interface BusinessTracerDeps {
  tracer: Tracer;
  metrics: Metrics;
  logger: Logger;
  sink: InternalErrorSink;
  /** `metrics.collectTimeoutMs`: no KPI may ask a scrape to wait longer. Default 60000. */
  collectTimeoutMs?: number;
}

const DEFAULT_KPI_TIMEOUT_MS = 500;
/**
 * The largest `metrics.collectTimeoutMs`: no scrape waits longer for a KPI, and it keeps the
 * timer far from Node's 2^31 ms limit (past which a timer fires at once).
 */
const MAX_KPI_TIMEOUT_MS = 60_000;
const UNIT_NAME = /^[a-z][a-z0-9_]*$/;
const KPI_NAME = UNIT_NAME;
/** Operations whose series are kept ready per unit; past it they are looked up per call (the metric's series limit still holds). */
const MAX_CACHED_OPERATIONS = 256;

interface OperationSeries {
  readonly spanName: string;
  readonly durations: Readonly<Record<BusinessOutcome, SextantHistogramChild>>;
  readonly labels: Readonly<
    Record<BusinessOutcome, { business_unit: string; business_operation: string; outcome: BusinessOutcome }>
  >;
}

type OperationLabel = 'business_unit' | 'business_operation' | 'outcome';

interface Shared {
  readonly deps: BusinessTracerDeps;
  /** Gauge names of the KPIs declared so far (of every unit), and which KPI declared each. */
  readonly kpis: Map<string, string>;
  readonly operations: SextantCounter<OperationLabel>;
  readonly durations: SextantHistogram<OperationLabel>;
  readonly events: SextantCounter<'business_unit' | 'business_event'>;
}

function createUnit(shared: Shared, unitName: string): BusinessUnit {
  const { tracer, logger, metrics, sink } = shared.deps;
  const series = new Map<string, OperationSeries>();

  function seriesOf(operation: string): OperationSeries {
    const cached = series.get(operation);
    if (cached !== undefined) return cached;
    const created: OperationSeries = {
      spanName: `${unitName}.${operation}`,
      durations: {
        success: shared.durations.child(unitName, operation, 'success'),
        failure: shared.durations.child(unitName, operation, 'failure'),
      },
      labels: {
        success: { business_unit: unitName, business_operation: operation, outcome: 'success' },
        failure: { business_unit: unitName, business_operation: operation, outcome: 'failure' },
      },
    };
    if (series.size < MAX_CACHED_OPERATIONS) series.set(operation, created);
    return created;
  }

  function finish(
    span: Span,
    operation: string,
    { durations, labels }: OperationSeries,
    startedAt: number,
    outcome: BusinessOutcome,
    error: unknown,
  ): void {
    try {
      const durationMs = performance.now() - startedAt;
      durations[outcome].observe(durationMs / 1000);
      shared.operations.inc(labels[outcome]);
      // Read at the end: the operation may be the one that names the user (a login).
      const state = getRequestState();
      if (state?.userId !== undefined) span.setAttribute(BUSINESS_ATTRIBUTES.ENDUSER_ID, state.userId);
      if (state?.tenantId !== undefined) span.setAttribute(BUSINESS_ATTRIBUTES.TENANT_ID, state.tenantId);
      span.setAttribute(BUSINESS_ATTRIBUTES.OUTCOME, outcome);
      if (outcome === 'failure') recordSpanError(span, error);
      // user_id and tenant_id come from the request state through the logger, like every record.
      const record = {
        business_unit: unitName,
        business_operation: operation,
        outcome,
        // To the microsecond, as the access record's: `3.55`, not `3.549641999999949`.
        duration_ms: Math.round(durationMs * 1000) / 1000,
        err: error,
      };
      if (outcome === 'success') logger.info(record, 'business operation completed');
      else logger.error(record, 'business operation failed');
    } catch (failure) {
      sink.report('business', failure);
    }
    span.end();
  }

  function operation<T>(name: string, fn: (span: Span) => T, attributes?: Attributes): T {
    const operationSeries = seriesOf(name);
    return tracer.startActiveSpan(operationSeries.spanName, { attributes }, (span) => {
      span.setAttribute(BUSINESS_ATTRIBUTES.UNIT, unitName);
      span.setAttribute(BUSINESS_ATTRIBUTES.OPERATION, name);
      const startedAt = performance.now();
      let result: T;
      try {
        result = fn(span);
      } catch (error) {
        finish(span, name, operationSeries, startedAt, 'failure', error);
        throw error;
      }
      if (!isThenable(result)) {
        finish(span, name, operationSeries, startedAt, 'success', undefined);
        return result;
      }
      // A hand-written thenable may call both callbacks, or call one and then throw: the
      // operation ends once, with what happened first.
      let ended = false;
      const end = (outcome: BusinessOutcome, error: unknown) => {
        if (ended) return;
        ended = true;
        finish(span, name, operationSeries, startedAt, outcome, error);
      };
      try {
        if (result instanceof Promise) {
          // The caller keeps the original promise; this only observes it, so its rejection is
          // not turned into a second, unhandled one.
          result.then(
            () => end('success', undefined),
            (error: unknown) => end('failure', error),
          );
          return result;
        }
        // Another thenable (a query builder) is awaited exactly once, as traced() does.
        return result.then(
          (value: unknown) => {
            end('success', undefined);
            return value;
          },
          (error: unknown) => {
            end('failure', error);
            throw error;
          },
        ) as T;
      } catch (error) {
        // then() itself threw: the operation failed with that error, as a throw from fn would.
        end('failure', error);
        throw error;
      }
    });
  }

  function event(name: string, fields?: Record<string, unknown>): void {
    try {
      shared.events.inc({ business_unit: unitName, business_event: name });
      logBusinessEvent(logger, name, { ...fields, business_unit: unitName });
    } catch (error) {
      sink.report('business', error);
    }
  }

  function kpi(definition: BusinessKpi): void {
    if (typeof definition !== 'object' || definition === null) {
      throw new SextantConfigError(
        ERROR_CODES.INVALID_OPTION,
        `KPI definition ${describeValue(definition)} of business unit "${unitName}" is invalid: expected an object with name, help and collect`,
      );
    }
    const { name, help, collect } = definition;
    const timeoutMs = definition.timeoutMs ?? DEFAULT_KPI_TIMEOUT_MS;
    if (typeof name !== 'string' || !KPI_NAME.test(name)) {
      throw new SextantConfigError(
        ERROR_CODES.INVALID_METRIC,
        `KPI name ${describeValue(name)} of business unit "${unitName}" is invalid: expected lowercase snake case matching ^[a-z][a-z0-9_]*$ (e.g. "open_invoices"); the gauge is business_${unitName}_<name>`,
      );
    }
    const described = `KPI "${name}" of business unit "${unitName}"`;
    if (typeof collect !== 'function') {
      throw new SextantConfigError(
        ERROR_CODES.INVALID_OPTION,
        `${described} has collect ${describeValue(collect)}: expected a function returning a number or a promise of one`,
      );
    }
    const maxTimeoutMs = shared.deps.collectTimeoutMs ?? MAX_KPI_TIMEOUT_MS;
    if (
      !(
        typeof timeoutMs === 'number' &&
        Number.isInteger(timeoutMs) &&
        timeoutMs >= 1 &&
        timeoutMs <= maxTimeoutMs
      )
    ) {
      throw new SextantConfigError(
        ERROR_CODES.INVALID_OPTION,
        `${described} has timeoutMs ${describeValue(timeoutMs)}: expected milliseconds from 1 to ${maxTimeoutMs} (metrics.collectTimeoutMs: a scrape waits no longer for any collect)`,
      );
    }
    const metricName = `business_${unitName}_${name}`;
    const declaredBy = shared.kpis.get(metricName);
    if (declaredBy !== undefined || metrics.registry.getSingleMetric(metricName) !== undefined) {
      const holder =
        declaredBy === undefined
          ? `the gauge ${metricName} is already declared (with metrics.gauge or on the registry)`
          : declaredBy === described
            ? `its gauge ${metricName} is already declared`
            : `its gauge ${metricName} is already declared by ${declaredBy}`;
      throw new SextantConfigError(
        ERROR_CODES.DUPLICATE_METRIC,
        `${described} is declared twice: ${holder}; declare each KPI once, or choose another name`,
      );
    }
    // The metrics layer waits at most timeoutMs per scrape, and never starts a collect that is
    // still running: a late answer still sets the gauge.
    metrics.gauge({
      name: metricName,
      help,
      collectTimeoutMs: timeoutMs,
      async collect(gauge) {
        gauge.set(undefined, await collect());
      },
    });
    shared.kpis.set(metricName, described);
    // prom-client shows a gauge without labels as 0 from its declaration: a KPI that has never
    // answered would read as a true 0.
    const prom = metrics.registry.getSingleMetric(metricName);
    if (prom instanceof Gauge) prom.remove();
  }

  return Object.freeze({ name: unitName, operation, event, kpi });
}

/** Builds the business-unit tracer on a Sextant instance's tracer, metrics, logger and error sink. */
export function createBusinessTracer(deps: BusinessTracerDeps): BusinessTracer {
  const { metrics } = deps;
  const shared: Shared = {
    deps,
    kpis: new Map(),
    operations: metrics.counter(METRICS.businessOperations),
    durations: metrics.histogram(METRICS.businessOperationDuration),
    events: metrics.counter(METRICS.businessEvents),
  };
  const units = new Map<string, BusinessUnit>();

  function unit(name: string): BusinessUnit {
    const existing = units.get(name);
    if (existing !== undefined) return existing;
    if (typeof name !== 'string' || !UNIT_NAME.test(name)) {
      throw new SextantConfigError(
        ERROR_CODES.INVALID_OPTION,
        `business unit name ${describeValue(name)} is invalid: expected lowercase snake case matching ^[a-z][a-z0-9_]*$ (e.g. "billing"); it is a metric label and part of KPI metric names`,
      );
    }
    const created = createUnit(shared, name);
    units.set(name, created);
    return created;
  }

  return Object.freeze({ unit });
}
