import {
  HTTP_REQUEST_METHOD_VALUE_CONNECT,
  HTTP_REQUEST_METHOD_VALUE_DELETE,
  HTTP_REQUEST_METHOD_VALUE_GET,
  HTTP_REQUEST_METHOD_VALUE_HEAD,
  HTTP_REQUEST_METHOD_VALUE_OPTIONS,
  HTTP_REQUEST_METHOD_VALUE_OTHER,
  HTTP_REQUEST_METHOD_VALUE_PATCH,
  HTTP_REQUEST_METHOD_VALUE_POST,
  HTTP_REQUEST_METHOD_VALUE_PUT,
  HTTP_REQUEST_METHOD_VALUE_TRACE,
} from '@opentelemetry/semantic-conventions';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { HTTP_DURATION_BUCKETS, type ResolvedConfig } from './config.ts';
import { describeValue, ERROR_CODES, SextantConfigError } from './errors.ts';
import { type InternalErrorSink, safeCall } from './internal-errors.ts';
import {
  COUNTER_SUFFIX,
  METRIC_ERROR_REASONS,
  METRICS,
  type MetricErrorReason,
  type MetricType,
  type NormalizedMetricDefinition,
  normalizeMetricDefinition,
} from './metric-names.ts';
import {
  createRenderer,
  OPENMETRICS_CONTENT_TYPE,
  PROMETHEUS_CONTENT_TYPE,
  prefersOpenMetrics,
} from './metrics-render.ts';

// ---- public types ----

/** Label values of one recording; a label left out records the empty value. */
export type LabelValues<L extends string> = Partial<Record<L, string | number>>;

export interface CounterDefinition<L extends string> {
  /** Lowercase snake case; counters end in `_total`, other metrics must not. */
  name: string;
  /** One line of text (no line breaks or double quotes). */
  help: string;
  labelNames?: readonly L[];
  /** Base unit (`seconds`, `bytes`, `ratio`...): the name must end in `_<unit>` (before `_total`). */
  unit?: string;
}

export interface HistogramDefinition<L extends string> extends CounterDefinition<L> {
  /** Upper bounds in increasing order. Default: OpenTelemetry's advice for durations in seconds. */
  buckets?: readonly number[];
}

export interface GaugeDefinition<L extends string> extends CounterDefinition<L> {
  /**
   * Read at scrape time, to set the gauge from the current state. Declaring the same gauge again
   * with another `collect` adds it: every callback runs on each scrape. One that takes longer than
   * `collectTimeoutMs` does not hold the scrape (the gauge keeps its last values, and
   * `collect_failed` is counted), and is not called again until it has finished.
   */
  collect?: (gauge: SextantGauge<L>) => void | Promise<void>;
  /** How long a scrape waits for `collect`, at most `metrics.collectTimeoutMs` (the default). */
  collectTimeoutMs?: number;
}

/** Never throws: invalid input is counted in `sextant_metric_errors_total` and ignored. */
export interface SextantCounterChild {
  inc(value?: number): void;
}

/** Never throws: invalid input is counted in `sextant_metric_errors_total` and ignored. */
export interface SextantCounter<L extends string> {
  inc(labels?: LabelValues<L>, value?: number): void;
  /** Hot path: the series for label values given in `labelNames` order; keep it and increment it. */
  child(...values: string[]): SextantCounterChild;
}

export interface SextantHistogramChild {
  observe(value: number): void;
}

/** Never throws: invalid input is counted in `sextant_metric_errors_total` and ignored. */
export interface SextantHistogram<L extends string> {
  observe(labels: LabelValues<L> | undefined, value: number): void;
  /** Hot path: the series for label values given in `labelNames` order; keep it and observe on it. */
  child(...values: string[]): SextantHistogramChild;
}

/** Never throws: invalid input is counted in `sextant_metric_errors_total` and ignored. */
export interface SextantGauge<L extends string> {
  set(labels: LabelValues<L> | undefined, value: number): void;
  inc(labels?: LabelValues<L>, value?: number): void;
  dec(labels?: LabelValues<L>, value?: number): void;
  /**
   * Drops the series these labels name (a queue or a pool that is gone): `/metrics` no longer
   * shows it, and it no longer counts towards the series limit, until it is set again. Labels that
   * name no series change nothing.
   */
  remove(labels?: LabelValues<L>): void;
  /**
   * Stops calling `collect`, a callback declared with this gauge; a call already running
   * finishes. The series it set stay until removed.
   */
  removeCollect(collect: (gauge: SextantGauge<L>) => void | Promise<void>): void;
}

/**
 * The HTTP server instruments, fed by the adapters through `http.ts`: the
 * `http_server_request_duration_seconds` histogram and `http_server_active_requests` (kept as
 * per-method numbers and set on the gauge at scrape time). Methods other than the known ones are
 * recorded as `_OTHER`.
 */
export interface HttpServerMetrics {
  requestStarted(method: string): void;
  /**
   * @param route the route template (`/users/:id`), never the raw path
   * @param statusCode 100..999, or 0 when no response was sent (recorded with an empty status label)
   */
  requestEnded(method: string, route: string, statusCode: number, durationSeconds: number): void;
}

export interface Metrics {
  /** The prom-client registry behind `/metrics`; metrics registered on it directly are served too. */
  readonly registry: Registry;
  counter<L extends string = never>(definition: CounterDefinition<L>): SextantCounter<L>;
  histogram<L extends string = never>(definition: HistogramDefinition<L>): SextantHistogram<L>;
  gauge<L extends string = never>(definition: GaugeDefinition<L>): SextantGauge<L>;
  readonly http: HttpServerMetrics;
  /**
   * Prometheus text 0.0.4, or OpenMetrics 1.0 when `accept` prefers `application/openmetrics-text`.
   * Rejects only when a metric registered directly on `registry` fails to collect.
   */
  render(accept?: string): Promise<{ contentType: string; body: string }>;
}

/** Where Sextant's own health metrics read their values, at scrape time. */
export interface SelfStatsSources {
  spans(): { readonly exported: number; readonly droppedByReason: Readonly<Record<string, number>> };
  internalErrors(): ReadonlyMap<string, number>;
}

const SINK_KIND = 'metrics';
/** Longest label value recorded; longer ones are cut, so one bad value cannot bloat every scrape. */
export const MAX_LABEL_VALUE_LENGTH = 128;

// ---- runtime: series, labels, errors ----

interface MetricsHealth {
  error(metric: string, reason: MetricErrorReason, detail: string): void;
  refused(metric: string, limit: number): void;
}

/** Cuts a label value to the cap without splitting a surrogate pair. */
function capLabelValue(text: string): string {
  let end = MAX_LABEL_VALUE_LENGTH;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return text.slice(0, end);
}

/**
 * The series of one metric, keyed by its label values: each value but the last is prefixed with
 * its length, so the key is unambiguous whatever the values contain. Past the limit, new label
 * sets are refused; existing series keep working.
 */
class SeriesTable<S> {
  readonly metric: string;
  readonly labelNames: readonly string[];
  readonly #series = new Map<string, S>();
  readonly #limit: number;
  readonly #health: MetricsHealth;
  readonly #create: (labels: Record<string, string>) => S;

  constructor(
    metric: string,
    labelNames: readonly string[],
    limit: number,
    health: MetricsHealth,
    create: (labels: Record<string, string>) => S,
  ) {
    this.metric = metric;
    this.labelNames = labelNames;
    this.#limit = limit;
    this.#health = health;
    this.#create = create;
  }

  get(key: string): S | undefined {
    return this.#series.get(key);
  }

  /** Drops the series under `key`; whether there was one. */
  delete(key: string): boolean {
    return this.#series.delete(key);
  }

  /** Adds the series for `values` (in `labelNames` order, already capped), unless the limit is reached. */
  admit(key: string, values: readonly string[], truncated: boolean): S | undefined {
    if (this.#series.size >= this.#limit) {
      this.#health.refused(this.metric, this.#limit);
      return undefined;
    }
    const labels: Record<string, string> = {};
    for (let i = 0; i < values.length; i++) labels[this.labelNames[i]!] = values[i]!;
    const series = this.#create(labels);
    this.#series.set(key, series);
    if (truncated) {
      this.#health.error(
        this.metric,
        METRIC_ERROR_REASONS.LABEL_VALUE_TRUNCATED,
        `a label value is longer than ${MAX_LABEL_VALUE_LENGTH} characters; recorded cut to that length`,
      );
    }
    return series;
  }
}

/**
 * Turns the labels of a call into its series, counting (never throwing) what is invalid. Series
 * found before are cached one map level per label, keyed by the values as given: callers pass
 * literals or reused strings whose hashes the engine keeps, so a hit builds no key. A miss caps
 * the values and goes through the series table, which holds the limit.
 */
class LabelResolver<S> {
  readonly #table: SeriesTable<S>;
  readonly #health: MetricsHealth;
  readonly #names: readonly string[];
  readonly #declared: ReadonlySet<string>;
  // Reused for every call: the values of the call being resolved.
  readonly #values: string[];
  readonly #cache = new Map<string, unknown>();
  #unlabelled: S | undefined;

  constructor(table: SeriesTable<S>, health: MetricsHealth) {
    this.#table = table;
    this.#health = health;
    this.#names = table.labelNames;
    this.#declared = new Set(table.labelNames);
    this.#values = table.labelNames.map(() => '');
  }

  fromObject(labels: unknown): S | undefined {
    return this.#readObject(labels) ? this.#find() : undefined;
  }

  /**
   * Drops the series `labels` name from the table and the cache. Returns its labels as recorded
   * (values cut to the cap), or undefined when the labels are invalid (counted) or name none.
   */
  remove(labels: unknown): Record<string, string> | undefined {
    if (!this.#readObject(labels)) return undefined;
    const key = this.#capValuesToKey();
    if (!this.#table.delete(key)) return undefined;
    const recorded: Record<string, string> = {};
    for (let i = 0; i < this.#names.length; i++) recorded[this.#names[i]!] = this.#values[i]!;
    // Rare (a queue or pool going away): the cache refills on the next calls.
    this.#cache.clear();
    this.#unlabelled = undefined;
    return recorded;
  }

  /** Reads `labels` into the reused values; false (counted) when they are invalid. */
  #readObject(labels: unknown): boolean {
    const names = this.#names;
    if (labels !== undefined && labels !== null) {
      if (typeof labels !== 'object') {
        this.#invalid(
          METRIC_ERROR_REASONS.INVALID_LABELS,
          `labels ${describeValue(labels)} are not an object`,
        );
        return false;
      }
      for (const name in labels) {
        if (!this.#declared.has(name)) {
          this.#invalid(
            METRIC_ERROR_REASONS.UNKNOWN_LABEL,
            `label "${name}" is not declared (declared: ${names.join(', ') || 'none'})`,
          );
          return false;
        }
      }
    }
    const record = labels as Record<string, unknown> | null | undefined;
    for (let i = 0; i < names.length; i++) {
      if (!this.#setValue(i, record?.[names[i]!])) return false;
    }
    return true;
  }

  fromValues(values: readonly unknown[]): S | undefined {
    const names = this.#names;
    if (values.length !== names.length) {
      return this.#invalid(
        METRIC_ERROR_REASONS.INVALID_LABELS,
        `${values.length} label values given; expected ${names.length} (${names.join(', ')})`,
      );
    }
    for (let i = 0; i < names.length; i++) {
      if (!this.#setValue(i, values[i])) return undefined;
    }
    return this.#find();
  }

  #setValue(index: number, raw: unknown): boolean {
    if (typeof raw === 'string') this.#values[index] = raw;
    else if (typeof raw === 'number') this.#values[index] = String(raw);
    else if (raw === undefined) this.#values[index] = '';
    else {
      this.#invalid(
        METRIC_ERROR_REASONS.INVALID_LABEL_VALUE,
        `label "${this.#names[index]}" is ${describeValue(raw)}: expected a string or a number`,
      );
      return false;
    }
    return true;
  }

  #find(): S | undefined {
    const values = this.#values;
    if (values.length === 0) {
      this.#unlabelled ??= this.#admit();
      return this.#unlabelled;
    }
    let node: unknown = this.#cache;
    for (let i = 0; i < values.length && node !== undefined; i++) {
      node = (node as Map<string, unknown>).get(values[i]!);
    }
    return (node as S | undefined) ?? this.#admit();
  }

  /**
   * Cuts the values of the call to the cap, in place, and returns the series key: each value but
   * the last prefixed with its length, so the key is unambiguous whatever the values contain.
   */
  #capValuesToKey(): string {
    const values = this.#values;
    const last = values.length - 1;
    let key = '';
    for (let i = 0; i <= last; i++) {
      let value = values[i]!;
      if (value.length > MAX_LABEL_VALUE_LENGTH) {
        value = capLabelValue(value);
        values[i] = value;
      }
      key += i === last ? value : `${value.length}:${value}`;
    }
    return key;
  }

  #admit(): S | undefined {
    const values = this.#values;
    const last = values.length - 1;
    const given = values.slice();
    const key = this.#capValuesToKey();
    const truncated = values.some((value, i) => value !== given[i]);
    const series = this.#table.get(key) ?? this.#table.admit(key, values, truncated);
    // Only admitted series under values within the cap: the cache stays within the series limit.
    if (series !== undefined && !truncated && last >= 0) {
      let level = this.#cache;
      for (let i = 0; i < last; i++) {
        let next = level.get(given[i]!) as Map<string, unknown> | undefined;
        if (next === undefined) {
          next = new Map();
          level.set(given[i]!, next);
        }
        level = next;
      }
      level.set(given[last]!, series);
    }
    return series;
  }

  #invalid(reason: MetricErrorReason, detail: string): undefined {
    this.#health.error(this.#table.metric, reason, detail);
    return undefined;
  }
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : describeValue(error);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

/** prom-client's per-series record inside a counter (`hashMap[key]`), which its render reads. */
interface PromCounterCell {
  labels: Record<string, string | number>;
  value: number;
}

interface PromCounterInternals {
  hashMap?: Record<string, PromCounterCell>;
}

/**
 * One label set of a counter, kept up to date as `HistogramSeries` keeps a histogram's: the first
 * increment goes through prom-client, later ones add to the record it keeps for the series, while
 * it still holds that record under the same key (a reset or `remove` is noticed).
 */
class CounterSeries {
  readonly #parent: PromCounterInternals;
  readonly #child: { inc(value: number): void };
  readonly #labels: Record<string, string | number>;
  readonly #record = new PromRecord<PromCounterCell>();

  constructor(parent: Counter<string>, labels: Record<string, string | number>) {
    this.#parent = parent as unknown as PromCounterInternals;
    this.#child = parent.labels(labels);
    this.#labels = labels;
  }

  /** `amount` is a finite, non-negative number: the instrument checked it. */
  inc(amount: number): void {
    const cell = this.#record.current(this.#parent.hashMap);
    if (cell !== undefined) {
      cell.value += amount;
      return;
    }
    this.#child.inc(amount);
    this.#record.find(this.#parent.hashMap, this.#labels, (found) => typeof found.value === 'number');
  }
}

/**
 * Where prom-client keeps one series' record (`hashMap[key]`), found once after prom-client made
 * it, and handed out only while prom-client still holds it there: a reset replaces the map, and
 * `remove` drops the key.
 */
class PromRecord<C extends { labels?: Record<string, string | number> }> {
  #map: Record<string, C> | undefined;
  #key = '';
  #cell: C | undefined;

  current(map: Record<string, C> | undefined): C | undefined {
    const cell = this.#cell;
    return cell !== undefined && map === this.#map && map![this.#key] === cell ? cell : undefined;
  }

  find(
    map: Record<string, C> | undefined,
    labels: Record<string, string | number>,
    accepts: (cell: C) => boolean,
  ): void {
    this.#cell = undefined;
    if (typeof map !== 'object' || map === null) return;
    for (const key in map) {
      const cell = map[key]!;
      if (sameLabels(cell.labels, labels) && accepts(cell)) {
        this.#map = map;
        this.#key = key;
        this.#cell = cell;
        return;
      }
    }
  }
}

/** prom-client's per-series record inside a histogram (`hashMap[key]`), which its render reads. */
interface PromHistogramCell {
  labels: Record<string, string | number>;
  sum: number;
  count: number;
  bucketValues: Record<string, number>;
}

interface PromHistogramInternals {
  hashMap?: Record<string, PromHistogramCell>;
  upperBounds?: number[];
  enableExemplars?: boolean;
}

/**
 * One label set of a histogram. The first observation goes through prom-client; later ones update
 * the record prom-client keeps for the series directly. prom-client's own `observe` rebuilds and
 * hashes the label key and checks every label on each call (about 5 k instructions); this costs a
 * lookup under the key found once. The record is used only while prom-client still holds it under
 * that key (a reset or `remove` replaces or drops it, and the next observation finds the new one).
 */
class HistogramSeries implements SextantHistogramChild {
  readonly #parent: PromHistogramInternals;
  readonly #child: Histogram.Internal<string>;
  readonly #labels: Record<string, string | number>;
  readonly #metric: string;
  readonly #health: MetricsHealth;
  readonly #bounds: readonly number[];
  /** Each bound as the property name prom-client files its bucket under. */
  readonly #bucketKeys: readonly string[];
  readonly #record = new PromRecord<PromHistogramCell>();

  constructor(
    parent: Histogram<string>,
    labels: Record<string, string | number>,
    metric: string,
    health: MetricsHealth,
  ) {
    this.#parent = parent as unknown as PromHistogramInternals;
    this.#child = parent.labels(labels);
    this.#labels = labels;
    this.#metric = metric;
    this.#health = health;
    const bounds = this.#parent.upperBounds;
    this.#bounds = Array.isArray(bounds) && !this.#parent.enableExemplars ? bounds : [];
    this.#bucketKeys = this.#bounds.map(String);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) {
      this.#health.error(
        this.#metric,
        METRIC_ERROR_REASONS.INVALID_VALUE,
        `observed ${describeValue(value)}`,
      );
      return;
    }
    const cell = this.#record.current(this.#parent.hashMap);
    if (cell !== undefined) {
      const bounds = this.#bounds;
      let bucket = 0;
      while (bucket < bounds.length && value > bounds[bucket]!) bucket++;
      cell.sum += value;
      cell.count += 1;
      if (bucket < bounds.length) cell.bucketValues[this.#bucketKeys[bucket]!]! += 1;
      return;
    }
    this.#child.observe(value);
    // Without bucket bounds to read (exemplars on), every observation stays with prom-client.
    if (this.#bounds.length > 0) {
      this.#record.find(
        this.#parent.hashMap,
        this.#labels,
        (found) => typeof found.bucketValues === 'object',
      );
    }
  }
}

function sameLabels(
  a: Record<string, string | number> | undefined,
  b: Record<string, string | number>,
): boolean {
  if (a === undefined) return false;
  const keys = Object.keys(b);
  if (Object.keys(a).length !== keys.length) return false;
  for (const key of keys) if (String(a[key]) !== String(b[key])) return false;
  return true;
}

const NOOP_COUNTER_CHILD: SextantCounterChild = Object.freeze({ inc() {} });
const NOOP_COUNTER: SextantCounter<never> = Object.freeze({ inc() {}, child: () => NOOP_COUNTER_CHILD });
const NOOP_HISTOGRAM_CHILD: SextantHistogramChild = Object.freeze({ observe() {} });
const NOOP_HISTOGRAM: SextantHistogram<never> = Object.freeze({
  observe() {},
  child: () => NOOP_HISTOGRAM_CHILD,
});
const NOOP_GAUGE: SextantGauge<never> = Object.freeze({
  set() {},
  inc() {},
  dec() {},
  remove() {},
  removeCollect() {},
});
const NOOP_HTTP: HttpServerMetrics = Object.freeze({ requestStarted() {}, requestEnded() {} });

// ---- HTTP label values, precomputed ----

// Known methods as-is, anything else `_OTHER` (OpenTelemetry semantic conventions): bounded.
const METHOD_LABELS: readonly string[] = [
  HTTP_REQUEST_METHOD_VALUE_CONNECT,
  HTTP_REQUEST_METHOD_VALUE_DELETE,
  HTTP_REQUEST_METHOD_VALUE_GET,
  HTTP_REQUEST_METHOD_VALUE_HEAD,
  HTTP_REQUEST_METHOD_VALUE_OPTIONS,
  HTTP_REQUEST_METHOD_VALUE_PATCH,
  HTTP_REQUEST_METHOD_VALUE_POST,
  HTTP_REQUEST_METHOD_VALUE_PUT,
  HTTP_REQUEST_METHOD_VALUE_TRACE,
  HTTP_REQUEST_METHOD_VALUE_OTHER,
];
const OTHER_METHOD_INDEX = METHOD_LABELS.length - 1;
const METHOD_INDEX: ReadonlyMap<string, number> = new Map(
  METHOD_LABELS.slice(0, OTHER_METHOD_INDEX).map((method, index) => [method, index]),
);

const NO_RESPONSE_STATUS = '';
/** Status label by code: 100..999 as text, 0 (no response sent) as the empty value. */
const STATUS_LABELS: readonly (string | undefined)[] = Array.from({ length: 1000 }, (_, code) =>
  code >= 100 ? String(code) : code === 0 ? NO_RESPONSE_STATUS : undefined,
);

// ---- the registry ----

type GaugeCollect = (gauge: SextantGauge<string>) => void | Promise<void>;

/** A collect callback declared for a gauge: how long a scrape waits for it, and what it writes through. */
interface GaugeCollector {
  readonly timeoutMs: number;
  readonly gauge: SextantGauge<string>;
}

interface Declaration {
  readonly type: MetricType;
  readonly definition: NormalizedMetricDefinition;
  readonly instrument: SextantCounter<string> | SextantHistogram<string> | SextantGauge<string>;
  /** Gauges only: every collect callback declared for the gauge. */
  readonly collectors: Map<GaugeCollect, GaugeCollector> | undefined;
}

/**
 * What `collect` writes through: once it is removed (or declared again), a call of it still
 * running (an async read that ends after `removeCollect` and `remove`) writes nothing, so a
 * removed series does not come back.
 */
function gaugeCollector(
  instrument: SextantGauge<string>,
  collectors: Map<GaugeCollect, GaugeCollector>,
  collect: GaugeCollect,
  timeoutMs: number,
): GaugeCollector {
  const live = () => collectors.get(collect) === collector;
  const collector: GaugeCollector = {
    timeoutMs,
    gauge: {
      set(labels, value) {
        if (live()) instrument.set(labels, value);
      },
      inc(labels, value) {
        if (live()) instrument.inc(labels, value);
      },
      dec(labels, value) {
        if (live()) instrument.dec(labels, value);
      },
      remove(labels) {
        if (live()) instrument.remove(labels);
      },
      removeCollect: instrument.removeCollect,
    },
  };
  return collector;
}

function describeShape(type: MetricType, definition: NormalizedMetricDefinition): string {
  const buckets = definition.buckets ? `, buckets [${definition.buckets.join(', ')}]` : '';
  const unit = definition.unit ? `, unit "${definition.unit}"` : '';
  return `a ${type} with labels [${definition.labelNames.join(', ')}]${buckets}${unit}`;
}

function sameShape(a: Declaration, type: MetricType, b: NormalizedMetricDefinition): boolean {
  const x = a.definition;
  return (
    a.type === type &&
    x.unit === b.unit &&
    x.labelNames.length === b.labelNames.length &&
    x.labelNames.every((label, i) => label === b.labelNames[i]) &&
    (x.buckets ?? []).length === (b.buckets ?? []).length &&
    (x.buckets ?? []).every((bound, i) => bound === b.buckets?.[i])
  );
}

function promType(metric: unknown): string {
  return (metric as { type: string }).type;
}

/**
 * Builds the metrics of one Sextant instance on its own prom-client registry (never the global
 * one). Declarations validate names and labels and throw `SextantConfigError` at start-up;
 * recording never throws.
 */
export function createMetrics(
  config: ResolvedConfig,
  sink: InternalErrorSink,
  sources: SelfStatsSources,
): Metrics {
  const { enabled, seriesLimit, collectTimeoutMs } = config.metrics;
  const registry = new Registry();
  const registers = [registry];
  const declarations = new Map<string, Declaration>();
  const renderRegistry = createRenderer(registry);

  if (enabled && config.metrics.defaultMetrics) {
    safeCall(sink, SINK_KIND, () => collectDefaultMetrics({ register: registry }), undefined);
    // prom-client's nodejs_active_{handles,requests,resources}_total are gauges with a counter's
    // suffix, which promtool rejects; the per-type gauges beside them carry the same numbers
    // (sum them for the total).
    for (const metric of registry.getMetricsAsArray()) {
      if (promType(metric) !== 'counter' && metric.name.endsWith(COUNTER_SUFFIX)) {
        registry.removeSingleMetric(metric.name);
      }
    }
  }

  // Scrape-time reads run before rendering starts (not in prom-client's per-metric collect, which
  // runs while other metrics are already being read): whatever they count shows in the same scrape.
  const gaugeCollections: Array<() => Promise<void> | undefined> = [];
  const selfTotals: Array<() => void> = [];

  async function collectBeforeRender(): Promise<void> {
    const pending: Promise<void>[] = [];
    for (const collect of gaugeCollections) {
      const result = collect();
      if (result !== undefined) pending.push(result);
    }
    if (pending.length > 0) await Promise.all(pending);
    // Last, so that failures of the gauge collections are in the totals.
    for (const read of selfTotals) read();
  }

  // Assigned with the other built-in metrics below, before any instrument can record.
  let metricErrors: Counter<string> | undefined;
  let seriesRefused: Counter<string> | undefined;

  const health: MetricsHealth = {
    error(metric, reason, detail) {
      metricErrors?.inc({ metric, reason });
      sink.report(SINK_KIND, new Error(`@sextant/core: metric "${metric}": ${reason}: ${detail}`));
    },
    refused(metric, limit) {
      seriesRefused?.inc({ metric });
      sink.report(
        SINK_KIND,
        new Error(
          `@sextant/core: metric "${metric}" reached its limit of ${limit} series; a new label set was refused`,
        ),
      );
    },
  };

  function checkNameFree(type: MetricType, name: string): void {
    if (registry.getSingleMetric(name) !== undefined) {
      throw new SextantConfigError(
        ERROR_CODES.DUPLICATE_METRIC,
        `${type} "${name}" already exists in the registry (a Node.js default metric, or one registered with prom-client directly): choose another name`,
      );
    }
    // In OpenMetrics a counter's family name drops "_total", so "x_total" and "x" would collide.
    const rival = type === 'counter' ? name.slice(0, -COUNTER_SUFFIX.length) : `${name}${COUNTER_SUFFIX}`;
    if (declarations.has(rival) || registry.getSingleMetric(rival) !== undefined) {
      throw new SextantConfigError(
        ERROR_CODES.DUPLICATE_METRIC,
        `${type} "${name}" would collide with the metric "${rival}" in OpenMetrics, where a counter's family name drops "_total": rename one of them`,
      );
    }
  }

  /** The declaration a repeated declaration of the same shape shares; throws for another shape. */
  function previousDeclaration(
    type: MetricType,
    definition: NormalizedMetricDefinition,
  ): Declaration | undefined {
    const previous = declarations.get(definition.name);
    if (previous === undefined) {
      checkNameFree(type, definition.name);
      return undefined;
    }
    if (!sameShape(previous, type, definition)) {
      throw new SextantConfigError(
        ERROR_CODES.DUPLICATE_METRIC,
        `metric "${definition.name}" is already declared as ${describeShape(previous.type, previous.definition)}; this declaration is ${describeShape(type, definition)}: declare each metric once (see metric-names.ts) and reuse it`,
      );
    }
    return previous;
  }

  function declareNoop<I extends Declaration['instrument']>(
    type: MetricType,
    definition: NormalizedMetricDefinition,
    instrument: I,
  ): I {
    declarations.set(definition.name, { type, definition, instrument, collectors: undefined });
    return instrument;
  }

  function seriesTable<S>(
    definition: NormalizedMetricDefinition,
    create: (labels: Record<string, string>) => S,
  ) {
    return new SeriesTable(definition.name, definition.labelNames, seriesLimit, health, create);
  }

  function defineCounter(definition: NormalizedMetricDefinition) {
    const name = definition.name;
    const prom = new Counter({ name, help: definition.help, labelNames: definition.labelNames, registers });
    const resolver = new LabelResolver(
      seriesTable(definition, (labels) => new CounterSeries(prom, labels)),
      health,
    );
    /** The amount to add, or undefined (counted as an error) when `value` is not one. */
    const amountOf = (value: number | undefined): number | undefined => {
      const amount = value ?? 1;
      if (!Number.isFinite(amount)) {
        health.error(name, METRIC_ERROR_REASONS.INVALID_VALUE, `inc by ${describeValue(value)}`);
        return undefined;
      }
      if (amount < 0) {
        health.error(name, METRIC_ERROR_REASONS.NEGATIVE_INCREMENT, `inc by ${amount}: counters only go up`);
        return undefined;
      }
      return amount;
    };
    const instrument: SextantCounter<string> = {
      inc(labels, value) {
        const amount = amountOf(value);
        if (amount !== undefined) resolver.fromObject(labels)?.inc(amount);
      },
      child(...values) {
        const found = resolver.fromValues(values);
        return {
          inc(value) {
            const amount = amountOf(value);
            // Refused or invalid label values: each increment is counted the same way, not silently lost.
            if (amount !== undefined) (found ?? resolver.fromValues(values))?.inc(amount);
          },
        };
      },
    };
    declarations.set(name, { type: 'counter', definition, instrument, collectors: undefined });
    return { prom, instrument };
  }

  function defineHistogram(definition: NormalizedMetricDefinition) {
    const name = definition.name;
    const prom = new Histogram({
      name,
      help: definition.help,
      labelNames: definition.labelNames,
      buckets: [...(definition.buckets ?? HTTP_DURATION_BUCKETS)],
      registers,
    });
    const series = seriesTable(definition, (labels) => new HistogramSeries(prom, labels, name, health));
    const resolver = new LabelResolver(series, health);
    const invalidValue = (value: unknown) =>
      health.error(name, METRIC_ERROR_REASONS.INVALID_VALUE, `observed ${describeValue(value)}`);
    const instrument: SextantHistogram<string> = {
      observe(labels, value) {
        if (Number.isFinite(value)) resolver.fromObject(labels)?.observe(value);
        else invalidValue(value);
      },
      child(...values) {
        const found = resolver.fromValues(values);
        if (found) return found;
        // Refused or invalid: each later observation is counted the same way, not silently lost.
        return {
          observe(value) {
            if (Number.isFinite(value)) resolver.fromValues(values)?.observe(value);
            else invalidValue(value);
          },
        };
      },
    };
    declarations.set(name, { type: 'histogram', definition, instrument, collectors: undefined });
    return { series, instrument };
  }

  function defineGauge(definition: NormalizedMetricDefinition) {
    const name = definition.name;
    const collectors = new Map<GaugeCollect, GaugeCollector>();
    const collectFailed = (error: unknown) =>
      health.error(name, METRIC_ERROR_REASONS.COLLECT_FAILED, `collect failed: ${describeError(error)}`);
    /** Collects still running from an earlier scrape: waited for again, never started twice. */
    const running = new Map<GaugeCollect, Promise<unknown>>();
    const runCollectors = (): Promise<void> | undefined => {
      const pending: Promise<unknown>[] = [];
      for (const [collect, { timeoutMs, gauge }] of collectors) {
        let result = running.get(collect);
        if (result === undefined) {
          try {
            const returned = collect(gauge);
            if (returned === undefined) continue;
            const settled = Promise.resolve(returned)
              .catch(collectFailed)
              .finally(() => running.delete(collect));
            running.set(collect, settled);
            result = settled;
          } catch (error) {
            collectFailed(error);
            continue;
          }
        }
        pending.push(
          withinTimeout(result, timeoutMs, () =>
            collectFailed(new Error(`collect did not finish within ${timeoutMs} ms`)),
          ),
        );
      }
      return pending.length === 0 ? undefined : Promise.all(pending).then(() => undefined);
    };
    gaugeCollections.push(() => (collectors.size === 0 ? undefined : runCollectors()));
    const prom = new Gauge({ name, help: definition.help, labelNames: definition.labelNames, registers });
    const series = seriesTable(definition, (labels) => prom.labels(labels));
    const resolver = new LabelResolver(series, health);
    const invalidValue = (operation: string, value: unknown) =>
      health.error(name, METRIC_ERROR_REASONS.INVALID_VALUE, `${operation} ${describeValue(value)}`);
    const instrument: SextantGauge<string> = {
      set(labels, value) {
        if (Number.isFinite(value)) resolver.fromObject(labels)?.set(value);
        else invalidValue('set to', value);
      },
      inc(labels, value) {
        const amount = value ?? 1;
        if (Number.isFinite(amount)) resolver.fromObject(labels)?.inc(amount);
        else invalidValue('inc by', value);
      },
      dec(labels, value) {
        const amount = value ?? 1;
        if (Number.isFinite(amount)) resolver.fromObject(labels)?.dec(amount);
        else invalidValue('dec by', value);
      },
      remove(labels) {
        const removed = resolver.remove(labels);
        if (removed !== undefined) prom.remove(removed);
      },
      removeCollect(collect) {
        collectors.delete(collect as GaugeCollect);
      },
    };
    declarations.set(name, { type: 'gauge', definition, instrument, collectors });
    return { series, instrument, collectors };
  }

  function counter<L extends string = never>(input: CounterDefinition<L>): SextantCounter<L> {
    const definition = normalizeMetricDefinition('counter', input);
    const previous = previousDeclaration('counter', definition);
    if (previous) return previous.instrument as SextantCounter<L>;
    return enabled ? defineCounter(definition).instrument : declareNoop('counter', definition, NOOP_COUNTER);
  }

  function histogram<L extends string = never>(input: HistogramDefinition<L>): SextantHistogram<L> {
    const definition = normalizeMetricDefinition('histogram', input);
    const previous = previousDeclaration('histogram', definition);
    if (previous) return previous.instrument as SextantHistogram<L>;
    return enabled
      ? defineHistogram(definition).instrument
      : declareNoop('histogram', definition, NOOP_HISTOGRAM);
  }

  function gauge<L extends string = never>(input: GaugeDefinition<L>): SextantGauge<L> {
    const definition = normalizeMetricDefinition('gauge', input);
    const collect = input.collect as GaugeCollect | undefined;
    const declared: Pick<Declaration, 'instrument' | 'collectors'> =
      previousDeclaration('gauge', definition) ??
      (enabled
        ? defineGauge(definition)
        : { instrument: declareNoop('gauge', definition, NOOP_GAUGE), collectors: undefined });
    const { collectors, instrument } = declared;
    if (collect !== undefined && collectors !== undefined) {
      const timeoutMs = Math.min(input.collectTimeoutMs ?? collectTimeoutMs, collectTimeoutMs);
      collectors.set(
        collect,
        gaugeCollector(instrument as SextantGauge<string>, collectors, collect, timeoutMs),
      );
    }
    return instrument as SextantGauge<L>;
  }

  /** Sets a counter to the totals a source reports at scrape time. */
  function readTotals(
    metric: string,
    prom: Counter<string>,
    labelName: string | undefined,
    read: () => Iterable<readonly [string, unknown]>,
  ): void {
    let totals: (readonly [string, unknown])[];
    try {
      totals = [...read()];
    } catch (error) {
      health.error(
        metric,
        METRIC_ERROR_REASONS.COLLECT_FAILED,
        `reading the source failed: ${describeError(error)}`,
      );
      return;
    }
    prom.reset();
    for (const [labelValue, total] of totals) {
      if (!isCount(total)) {
        health.error(metric, METRIC_ERROR_REASONS.INVALID_VALUE, `source gave ${describeValue(total)}`);
      } else if (labelName === undefined) {
        prom.inc(total);
      } else {
        prom.inc({ [labelName]: String(labelValue) }, total);
      }
    }
  }

  const httpDuration = { ...METRICS.httpServerRequestDuration, buckets: config.metrics.httpDurationBuckets };
  let http: HttpServerMetrics = NOOP_HTTP;
  if (enabled) {
    const builtIn = (descriptor: CounterDefinition<string>) =>
      normalizeMetricDefinition('counter', descriptor);
    metricErrors = defineCounter(builtIn(METRICS.metricErrors)).prom;
    seriesRefused = defineCounter(builtIn(METRICS.metricSeriesRefused)).prom;
    const { spansExported, spansDropped, internalErrors } = METRICS;
    const exported = defineCounter(builtIn(spansExported)).prom;
    const dropped = defineCounter(builtIn(spansDropped)).prom;
    const internal = defineCounter(builtIn(internalErrors)).prom;
    selfTotals.push(
      () => readTotals(spansExported.name, exported, undefined, () => [['', sources.spans().exported]]),
      () =>
        readTotals(spansDropped.name, dropped, 'reason', () =>
          Object.entries(sources.spans().droppedByReason),
        ),
      () => readTotals(internalErrors.name, internal, 'kind', () => sources.internalErrors()),
    );
    const server = createHttpServerMetrics(
      defineHistogram(normalizeMetricDefinition('histogram', httpDuration)).series,
      defineGauge(normalizeMetricDefinition('gauge', METRICS.httpServerActiveRequests)).series,
      health,
    );
    http = server.http;
    gaugeCollections.push(server.collect);
  } else {
    // Declared all the same, so a name clash with them fails whether metrics are on or off.
    for (const descriptor of [
      METRICS.metricErrors,
      METRICS.metricSeriesRefused,
      METRICS.spansExported,
      METRICS.spansDropped,
      METRICS.internalErrors,
    ]) {
      counter(descriptor);
    }
    histogram(httpDuration);
    gauge(METRICS.httpServerActiveRequests);
  }

  return Object.freeze({
    registry,
    counter,
    histogram,
    gauge,
    http,
    async render(accept?: string) {
      const openMetrics = prefersOpenMetrics(accept);
      const contentType = openMetrics ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE;
      // An OpenMetrics exposition is valid only with its terminator, even when it holds nothing.
      if (!enabled) return { contentType, body: openMetrics ? '# EOF\n' : '' };
      await collectBeforeRender();
      return { contentType, body: await renderRegistry(openMetrics) };
    },
  });
}

/**
 * The request hot path. Each method's duration series are cached by the route string (the router
 * hands over the same template strings, whose hashes the engine keeps) and then by status code,
 * so a request that hits an existing series allocates nothing here (prom-client's observe still
 * hashes its labels). A miss checks the labels and goes through the series table (and its limit)
 * under the key any declaration of the histogram uses. Active requests are plain per-method
 * numbers, set on the gauge at scrape time.
 */
function createHttpServerMetrics(
  durations: SeriesTable<HistogramSeries>,
  active: SeriesTable<Gauge.Internal<string>>,
  health: MetricsHealth,
): { http: HttpServerMetrics; collect(): undefined } {
  const metric = durations.metric;
  const activeSeries: (Gauge.Internal<string> | undefined)[] = METHOD_LABELS.map(() => undefined);
  const activeCounts: number[] = METHOD_LABELS.map(() => 0);
  const durationsByMethod: Map<string, Map<number, HistogramSeries>>[] = METHOD_LABELS.map(() => new Map());
  const scratch = ['', '', ''];

  /** False when the method's active-requests series was refused by the series limit. */
  function admitActive(methodIndex: number): boolean {
    const label = METHOD_LABELS[methodIndex]!;
    const series = active.get(label) ?? active.admit(label, [label], false);
    activeSeries[methodIndex] = series;
    return series !== undefined;
  }

  function durationSeries(
    methodIndex: number,
    route: string,
    statusCode: number,
  ): HistogramSeries | undefined {
    const status = STATUS_LABELS[statusCode];
    if (typeof status !== 'string') {
      health.error(
        metric,
        METRIC_ERROR_REASONS.INVALID_LABEL_VALUE,
        `status code ${describeValue(statusCode)}`,
      );
      return undefined;
    }
    if (typeof route !== 'string') {
      health.error(metric, METRIC_ERROR_REASONS.INVALID_LABEL_VALUE, `route ${describeValue(route)}`);
      return undefined;
    }
    const method = METHOD_LABELS[methodIndex]!;
    const routeLabel = route.length > MAX_LABEL_VALUE_LENGTH ? capLabelValue(route) : route;
    const truncated = routeLabel !== route;
    const key = `${method.length}:${method}${routeLabel.length}:${routeLabel}${status}`;
    scratch[0] = method;
    scratch[1] = routeLabel;
    scratch[2] = status;
    const series = durations.get(key) ?? durations.admit(key, scratch, truncated);
    // Only what was admitted, under its own route: the cache stays within the series limit.
    if (series !== undefined && !truncated) {
      const byRoute = durationsByMethod[methodIndex]!;
      let byStatus = byRoute.get(route);
      if (byStatus === undefined) {
        byStatus = new Map();
        byRoute.set(route, byStatus);
      }
      byStatus.set(statusCode, series);
    }
    return series;
  }

  const http: HttpServerMetrics = {
    requestStarted(method) {
      const methodIndex = METHOD_INDEX.get(method) ?? OTHER_METHOD_INDEX;
      if (activeSeries[methodIndex] === undefined && !admitActive(methodIndex)) return;
      activeCounts[methodIndex]! += 1;
    },
    requestEnded(method, route, statusCode, durationSeconds) {
      const methodIndex = METHOD_INDEX.get(method) ?? OTHER_METHOD_INDEX;
      if (activeSeries[methodIndex] !== undefined) activeCounts[methodIndex]! -= 1;
      if (typeof durationSeconds !== 'number' || !(durationSeconds >= 0 && durationSeconds < Infinity)) {
        health.error(
          metric,
          METRIC_ERROR_REASONS.INVALID_VALUE,
          `duration ${describeValue(durationSeconds)}`,
        );
        return;
      }
      const series =
        durationsByMethod[methodIndex]!.get(route)?.get(statusCode) ??
        durationSeries(methodIndex, route, statusCode);
      series?.observe(durationSeconds);
    },
  };

  function collect(): undefined {
    for (let i = 0; i < activeSeries.length; i++) activeSeries[i]?.set(activeCounts[i]!);
    return undefined;
  }

  return { http, collect };
}

/** Resolves when `work` settles or after `timeoutMs`, whichever is first; `onTimeout` runs in the second case. */
function withinTimeout(work: Promise<unknown>, timeoutMs: number, onTimeout: () => void): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      onTimeout();
      resolve();
    }, timeoutMs);
    timer.unref();
    work.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
