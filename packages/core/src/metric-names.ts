/**
 * Every metric Sextant emits or reserves for its adapters, declared once. Instruments, alert
 * rules, SLO rules and dashboards all read these descriptors, so they cannot drift apart.
 * Names are the OpenTelemetry semantic conventions translated to Prometheus: dots become
 * underscores, the unit becomes a suffix, and counters end in `_total`.
 */

import { HTTP_DURATION_BUCKETS } from './config.ts';
import { describeValue, ERROR_CODES, SextantConfigError } from './errors.ts';

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricDescriptor<L extends string = string> {
  readonly type: MetricType;
  readonly name: string;
  readonly help: string;
  /** Base unit the name ends in (before `_total`), when the metric has one. */
  readonly unit?: string;
  readonly labelNames: readonly L[];
  /** Histogram buckets (seconds for durations); the HTTP ones when absent. */
  readonly buckets?: readonly number[];
}

function describe<const L extends string>(descriptor: {
  type: MetricType;
  name: string;
  help: string;
  unit?: string;
  labelNames: readonly L[];
  buckets?: readonly number[];
}): MetricDescriptor<L> {
  return Object.freeze({ ...descriptor, labelNames: Object.freeze([...descriptor.labelNames]) });
}

/**
 * Buckets (seconds) of the quantum job and phase durations: a job waits in a provider's queue for
 * minutes to hours, runs for seconds to minutes, and a classical fallback answers in a fraction
 * of a second to minutes, so the HTTP buckets (5 ms to 10 s) would put nearly every job in +Inf.
 */
const QUANTUM_DURATION_BUCKETS = [
  0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400,
] as const;

const MESSAGING_LABELS = [
  'messaging_system',
  'messaging_destination_name',
  'messaging_operation_name',
  'error_type',
] as const;

export const METRICS = Object.freeze({
  // HTTP server (stable semantic conventions)
  httpServerRequestDuration: describe({
    type: 'histogram',
    name: 'http_server_request_duration_seconds',
    help: 'Duration of HTTP server requests.',
    unit: 'seconds',
    labelNames: ['http_request_method', 'http_route', 'http_response_status_code'],
  }),
  httpServerActiveRequests: describe({
    type: 'gauge',
    name: 'http_server_active_requests',
    help: 'Number of active HTTP server requests.',
    labelNames: ['http_request_method'],
  }),

  // Database client (stable semantic conventions)
  dbClientOperationDuration: describe({
    type: 'histogram',
    name: 'db_client_operation_duration_seconds',
    help: 'Duration of database client operations.',
    unit: 'seconds',
    labelNames: ['db_system_name', 'db_operation_name', 'db_collection_name', 'error_type'],
    // OpenTelemetry's advice for database durations: most queries take well under 5 ms.
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
  }),
  // `db.client.connection.count` would end in `_count`, which Prometheus reserves for
  // histograms: the older semantic-convention name stands in for it.
  dbClientConnections: describe({
    type: 'gauge',
    name: 'db_client_connections',
    help: 'Connections of a database client pool, by state (idle or used).',
    labelNames: ['db_client_connection_pool_name', 'db_client_connection_state'],
  }),
  dbClientConnectionPendingRequests: describe({
    type: 'gauge',
    name: 'db_client_connection_pending_requests',
    help: 'Requests waiting for a connection of a database client pool.',
    labelNames: ['db_client_connection_pool_name'],
  }),
  dbClientConnectionMax: describe({
    type: 'gauge',
    name: 'db_client_connection_max',
    help: 'Most connections a database client pool opens.',
    labelNames: ['db_client_connection_pool_name'],
  }),

  // Messaging (BullMQ jobs; messaging_system is "bullmq")
  messagingProcessDuration: describe({
    type: 'histogram',
    name: 'messaging_process_duration_seconds',
    help: 'Duration of processing operations (a consumer running a job).',
    unit: 'seconds',
    labelNames: MESSAGING_LABELS,
  }),
  messagingClientOperationDuration: describe({
    type: 'histogram',
    name: 'messaging_client_operation_duration_seconds',
    help: 'Duration of messaging operations initiated by a producer or consumer client.',
    unit: 'seconds',
    labelNames: MESSAGING_LABELS,
  }),
  messagingQueueDepth: describe({
    type: 'gauge',
    name: 'messaging_queue_depth',
    help: 'Jobs in a queue, by state (waiting, active, delayed, failed, ...).',
    labelNames: ['messaging_system', 'messaging_destination_name', 'state'],
  }),
  messagingJobWaitDuration: describe({
    type: 'histogram',
    name: 'messaging_job_wait_duration_seconds',
    help: 'Time from a job being ready (enqueued, plus its delay) to the start of its first attempt.',
    unit: 'seconds',
    labelNames: ['messaging_system', 'messaging_destination_name'],
  }),
  messagingJobOutcomes: describe({
    type: 'counter',
    name: 'messaging_job_outcomes_total',
    help: 'Job attempts finished, by outcome (completed, retried, failed, other).',
    labelNames: ['messaging_system', 'messaging_destination_name', 'outcome'],
  }),

  // Quantum jobs
  quantumJobs: describe({
    type: 'counter',
    name: 'quantum_jobs_total',
    help: 'Quantum jobs finished, by provider and outcome.',
    labelNames: ['quantum_provider', 'outcome'],
  }),
  quantumJobDuration: describe({
    type: 'histogram',
    name: 'quantum_job_duration_seconds',
    help: 'Duration of quantum jobs, by provider and outcome.',
    unit: 'seconds',
    labelNames: ['quantum_provider', 'outcome'],
    buckets: QUANTUM_DURATION_BUCKETS,
  }),
  quantumActiveJobs: describe({
    type: 'gauge',
    name: 'quantum_active_jobs',
    help: 'Quantum jobs in progress, by provider.',
    labelNames: ['quantum_provider'],
  }),
  quantumClassicalFallbacks: describe({
    type: 'counter',
    name: 'quantum_classical_fallbacks_total',
    help: 'Jobs that fell back to a classical solver, by reason.',
    labelNames: ['quantum_provider', 'reason'],
  }),
  quantumAdvantage: describe({
    type: 'gauge',
    name: 'quantum_advantage_ratio',
    help: 'Classical solve time divided by quantum solve time, by problem type (above 1: quantum was faster).',
    unit: 'ratio',
    labelNames: ['quantum_problem_type'],
  }),
  quantumJobPhaseDuration: describe({
    type: 'histogram',
    name: 'quantum_job_phase_duration_seconds',
    help: 'Time quantum jobs spent in a phase (queued, running, fallback), by provider.',
    unit: 'seconds',
    labelNames: ['quantum_provider', 'phase'],
    buckets: QUANTUM_DURATION_BUCKETS,
  }),
  quantumInvalidTransitions: describe({
    type: 'counter',
    name: 'quantum_invalid_transitions_total',
    help: 'Quantum job transitions ignored because the job could not make them, by state and attempted transition.',
    labelNames: ['from', 'to'],
  }),
  quantumCircuitBreakerState: describe({
    type: 'gauge',
    name: 'quantum_circuit_breaker_state',
    help: 'State of the circuit breaker in front of a quantum provider: 0 closed, 1 half-open, 2 open.',
    labelNames: ['quantum_provider'],
  }),
  quantumCircuitBreakerEvents: describe({
    type: 'counter',
    name: 'quantum_circuit_breaker_events_total',
    help: 'Calls through the circuit breaker in front of a quantum provider, each counted once by outcome: success, failure, timeout (the breaker gave up waiting) or reject (the breaker was open).',
    labelNames: ['quantum_provider', 'event'],
  }),
  quantumCircuitBreakerFallbacks: describe({
    type: 'counter',
    name: 'quantum_circuit_breaker_fallbacks_total',
    help: 'Runs of the fallback function of the circuit breaker in front of a quantum provider, each after a failed, timed-out or rejected call.',
    labelNames: ['quantum_provider'],
  }),

  // Business units
  businessOperations: describe({
    type: 'counter',
    name: 'business_operations_total',
    help: 'Business operations finished, by unit, operation and outcome.',
    labelNames: ['business_unit', 'business_operation', 'outcome'],
  }),
  businessOperationDuration: describe({
    type: 'histogram',
    name: 'business_operation_duration_seconds',
    help: 'Duration of business operations, by unit, operation and outcome.',
    unit: 'seconds',
    labelNames: ['business_unit', 'business_operation', 'outcome'],
  }),
  businessEvents: describe({
    type: 'counter',
    name: 'business_events_total',
    help: 'Business events, by unit and event name.',
    labelNames: ['business_unit', 'business_event'],
  }),

  // Sextant's own health
  spansDropped: describe({
    type: 'counter',
    name: 'sextant_spans_dropped_total',
    help: 'Spans that will never be exported, by reason.',
    labelNames: ['reason'],
  }),
  spansExported: describe({
    type: 'counter',
    name: 'sextant_spans_exported_total',
    help: 'Spans the exporter confirmed.',
    labelNames: [],
  }),
  metricSeriesRefused: describe({
    type: 'counter',
    name: 'sextant_metric_series_refused_total',
    help: 'Recordings refused because their metric had reached its series limit, by metric.',
    labelNames: ['metric'],
  }),
  metricErrors: describe({
    type: 'counter',
    name: 'sextant_metric_errors_total',
    help: 'Recordings ignored or altered because of invalid input, by metric and reason.',
    labelNames: ['metric', 'reason'],
  }),
  internalErrors: describe({
    type: 'counter',
    name: 'sextant_internal_errors_total',
    help: 'Failures inside Sextant, by kind; none of them reached the application.',
    labelNames: ['kind'],
  }),
});

/** Values of the `reason` label of `sextant_metric_errors_total`. */
export const METRIC_ERROR_REASONS = Object.freeze({
  /** NaN, an infinity, or not a number. */
  INVALID_VALUE: 'invalid_value',
  NEGATIVE_INCREMENT: 'negative_increment',
  /** A label name the metric does not declare. */
  UNKNOWN_LABEL: 'unknown_label',
  /** Labels that are not an object, or a positional label list of the wrong length. */
  INVALID_LABELS: 'invalid_labels',
  /** A label value that is not a string or a number (or an HTTP status code out of range). */
  INVALID_LABEL_VALUE: 'invalid_label_value',
  /** A label value longer than the cap: recorded, cut to the cap. */
  LABEL_VALUE_TRUNCATED: 'label_value_truncated',
  /** A gauge's collect callback (or a self-metric source) threw or rejected. */
  COLLECT_FAILED: 'collect_failed',
});

export type MetricErrorReason = (typeof METRIC_ERROR_REASONS)[keyof typeof METRIC_ERROR_REASONS];

// ---- naming rules: start-up errors, for every declaration ----

const NAME_PATTERN = /^[a-z_][a-z0-9_]*$/;
export const COUNTER_SUFFIX = '_total';
const NON_COUNTER_RESERVED_SUFFIXES = ['_total', '_count', '_sum', '_bucket', '_created'] as const;
const RESERVED_LABELS: ReadonlyMap<string, string> = new Map([
  ['le', 'it holds the bucket bounds of histograms'],
  ['quantile', 'it holds the quantiles of summaries'],
]);
const TYPE_WORDS: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary']);
const HELP_FORBIDDEN = /["\u0000-\u001f\u007f]/;

// The unit rules are promtool's (promlint), so a declared metric can never fail `promtool check metrics`.
const ABBREVIATED_UNITS: ReadonlyMap<string, string> = new Map([
  ['s', 'seconds'],
  ['sec', 'seconds'],
  ['ms', 'seconds'],
  ['us', 'seconds'],
  ['ns', 'seconds'],
  ['h', 'seconds'],
  ['d', 'seconds'],
  ['m', 'seconds or meters'],
  ['b', 'bytes'],
  ['kb', 'bytes'],
  ['mb', 'bytes'],
  ['gb', 'bytes'],
  ['tb', 'bytes'],
  ['pb', 'bytes'],
]);
const BASE_UNITS = 'seconds bytes meters metres grams joules volts amperes celsius kelvin'.split(' ');
const UNIT_PREFIXES =
  'pico nano micro milli centi deci deca hecto kilo kibi mega mibi giga gibi tera tebi peta pebi'.split(' ');
const NON_BASE_UNITS: ReadonlyMap<string, string> = new Map([
  ...BASE_UNITS.flatMap((unit) => UNIT_PREFIXES.map((prefix): [string, string] => [prefix + unit, unit])),
  ['minutes', 'seconds'],
  ['hours', 'seconds'],
  ['days', 'seconds'],
  ['weeks', 'seconds'],
  ['kelvins', 'kelvin'],
  ['fahrenheit', 'celsius'],
  ['rankine', 'celsius'],
  ['inches', 'meters'],
  ['yards', 'meters'],
  ['miles', 'meters'],
  ['bits', 'bytes'],
  ['calories', 'joules'],
  ['pounds', 'grams'],
  ['ounces', 'grams'],
]);

export interface NormalizedMetricDefinition {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly unit: string | undefined;
  readonly buckets: readonly number[] | undefined;
}

/** What a definition of each type may hold (`type` comes with the descriptors in METRICS). */
const DEFINITION_KEYS: Readonly<Record<MetricType, readonly string[]>> = Object.freeze({
  counter: ['name', 'help', 'labelNames', 'unit', 'type'],
  histogram: ['name', 'help', 'labelNames', 'unit', 'buckets', 'type'],
  gauge: ['name', 'help', 'labelNames', 'unit', 'collect', 'collectTimeoutMs', 'type'],
});

function invalidMetric(message: string): never {
  throw new SextantConfigError(ERROR_CODES.INVALID_METRIC, message);
}

function checkUnitWords(type: MetricType, name: string): void {
  const words = name.split('_');
  words.forEach((word, index) => {
    const nonBase = NON_BASE_UNITS.get(word);
    const abbreviated = index > 0 ? ABBREVIATED_UNITS.get(word) : undefined;
    const base = nonBase ?? abbreviated;
    if (base !== undefined) {
      const renamed = base.includes(' ')
        ? ''
        : `, e.g. "${words.map((w) => (w === word ? base : w)).join('_')}"`;
      const durationHint =
        word === 'ms' || word === 'milliseconds'
          ? ' (durations are recorded in seconds: divide milliseconds by 1000)'
          : '';
      invalidMetric(
        `${type} "${name}" uses the unit "${word}": use the base unit "${base}" spelled out${renamed}${durationHint}`,
      );
    }
    if (index > 0 && TYPE_WORDS.has(word)) {
      invalidMetric(`${type} "${name}" must not include a metric type ("${word}") in its name`);
    }
  });
}

function checkName(type: MetricType, name: unknown): string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name) || name.startsWith('__')) {
    invalidMetric(
      `${type} name ${describeValue(name)} is invalid: expected lowercase snake case matching ^[a-z_][a-z0-9_]*$, not starting with "__" (e.g. "orders_placed_total")`,
    );
  }
  if (type === 'counter') {
    if (!name.endsWith(COUNTER_SUFFIX) || name.length === COUNTER_SUFFIX.length) {
      invalidMetric(`counter "${name}" must end in "_total" (e.g. "${name.replace(/_+$/, '')}_total")`);
    }
  } else {
    const suffix = NON_COUNTER_RESERVED_SUFFIXES.find((s) => name.endsWith(s));
    if (suffix !== undefined) {
      invalidMetric(
        `${type} "${name}" must not end in "${suffix}": the suffixes ${NON_COUNTER_RESERVED_SUFFIXES.join(', ')} are reserved for counter and histogram samples`,
      );
    }
  }
  checkUnitWords(type, name);
  return name;
}

function checkUnit(type: MetricType, name: string, unit: unknown): string | undefined {
  if (unit === undefined) return undefined;
  if (typeof unit !== 'string' || !/^[a-z][a-z0-9_]*$/.test(unit)) {
    invalidMetric(
      `${type} "${name}" has unit ${describeValue(unit)}: expected a lowercase base unit such as "seconds", "bytes" or "ratio"`,
    );
  }
  const stem = type === 'counter' ? name.slice(0, -COUNTER_SUFFIX.length) : name;
  if (!stem.endsWith(`_${unit}`)) {
    invalidMetric(
      `${type} "${name}" has unit "${unit}" but its name does not end in "_${unit}"${type === 'counter' ? ' before "_total"' : ''} (e.g. "${stem}_${unit}${type === 'counter' ? COUNTER_SUFFIX : ''}")`,
    );
  }
  return unit;
}

function checkHelp(type: MetricType, name: string, help: unknown): string {
  if (typeof help !== 'string' || help.trim() === '' || HELP_FORBIDDEN.test(help)) {
    invalidMetric(
      `${type} "${name}" has help ${describeValue(help)}: expected one non-empty line of text without double quotes (OpenMetrics cannot carry them unescaped)`,
    );
  }
  return help;
}

function checkLabelNames(type: MetricType, name: string, labelNames: unknown): readonly string[] {
  if (labelNames === undefined) return [];
  if (!Array.isArray(labelNames)) {
    invalidMetric(
      `${type} "${name}" has labelNames ${describeValue(labelNames)}: expected an array of label names`,
    );
  }
  const seen = new Set<string>();
  for (const label of labelNames) {
    if (typeof label !== 'string' || !NAME_PATTERN.test(label) || label.startsWith('__')) {
      invalidMetric(
        `${type} "${name}" has label name ${describeValue(label)}: expected lowercase snake case matching ^[a-z_][a-z0-9_]*$, not starting with "__" (reserved by Prometheus)`,
      );
    }
    const reserved = RESERVED_LABELS.get(label);
    if (reserved !== undefined) {
      invalidMetric(`${type} "${name}" must not use the label "${label}": ${reserved}`);
    }
    if (seen.has(label)) invalidMetric(`${type} "${name}" lists the label "${label}" twice`);
    seen.add(label);
  }
  return Object.freeze([...labelNames]);
}

function checkBuckets(name: string, buckets: unknown): readonly number[] {
  if (buckets === undefined) return HTTP_DURATION_BUCKETS;
  if (
    !Array.isArray(buckets) ||
    buckets.length === 0 ||
    buckets.some((b, i) => typeof b !== 'number' || !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]))
  ) {
    invalidMetric(
      `histogram "${name}" has buckets ${describeValue(buckets)}: expected a non-empty array of finite numbers in increasing order (+Inf is added)`,
    );
  }
  return Object.freeze([...buckets]);
}

/**
 * Checks a definition against the naming rules (a superset of promtool's lint, so no declared
 * metric can fail `promtool check metrics`) and returns it normalized. Throws
 * `SextantConfigError` (`INVALID_METRIC`) naming the metric, what is wrong and what is allowed.
 */
export function normalizeMetricDefinition(type: MetricType, definition: unknown): NormalizedMetricDefinition {
  if (typeof definition !== 'object' || definition === null) {
    invalidMetric(
      `${type} definition ${describeValue(definition)} is invalid: expected an object with name and help`,
    );
  }
  const raw = definition as Record<string, unknown>;
  const name = checkName(type, raw.name);
  const known = DEFINITION_KEYS[type];
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) {
      invalidMetric(`${type} "${name}" has an unknown key "${key}": expected only ${known.join(', ')}`);
    }
  }
  // A descriptor from metric-names.ts carries its type: declaring it as another type would
  // give alert rules and dashboards the wrong kind of series.
  if (raw.type !== undefined && raw.type !== type) {
    invalidMetric(`metric "${name}" is described as a ${describeValue(raw.type)} but declared as a ${type}`);
  }
  if (type === 'gauge' && raw.collect !== undefined && typeof raw.collect !== 'function') {
    invalidMetric(`gauge "${name}" has collect ${describeValue(raw.collect)}: expected a function`);
  }
  const timeout = raw.collectTimeoutMs;
  if (
    type === 'gauge' &&
    timeout !== undefined &&
    !(typeof timeout === 'number' && Number.isInteger(timeout) && timeout >= 1 && timeout <= 60_000)
  ) {
    invalidMetric(
      `gauge "${name}" has collectTimeoutMs ${describeValue(timeout)}: expected an integer from 1 to 60000 (milliseconds)`,
    );
  }
  return {
    name,
    help: checkHelp(type, name, raw.help),
    labelNames: checkLabelNames(type, name, raw.labelNames),
    unit: checkUnit(type, name, raw.unit),
    buckets: type === 'histogram' ? checkBuckets(name, raw.buckets) : undefined,
  };
}
