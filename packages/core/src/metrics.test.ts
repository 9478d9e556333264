import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Counter } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveConfig, type SextantMetricsOptions } from './config.ts';
import { ERROR_CODES, SextantConfigError } from './errors.ts';
import { createInternalErrorSink } from './internal-errors.ts';
import { METRIC_ERROR_REASONS, METRICS } from './metric-names.ts';
import { createMetrics, MAX_LABEL_VALUE_LENGTH, type SelfStatsSources } from './metrics.ts';

const OPENMETRICS_ACCEPT = 'application/openmetrics-text;version=1.0.0';
// What Prometheus 2.x sends when it may negotiate OpenMetrics.
const PROMETHEUS_SCRAPER_ACCEPT =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

interface Setup {
  metrics: ReturnType<typeof createMetrics>;
  reports: string[];
  spans: { exported: number; droppedByReason: Record<string, number> };
  /** Samples of a Prometheus-format scrape, by `name{labels}` exactly as rendered. */
  scrape(): Promise<Map<string, number>>;
}

function setup(metricsOptions: SextantMetricsOptions = {}): Setup {
  const { config } = resolveConfig({ env: {}, metrics: { defaultMetrics: false, ...metricsOptions } });
  const reports: string[] = [];
  const sink = createInternalErrorSink({
    intervalMs: 0,
    writer: ({ kind, error }) => reports.push(`${kind}: ${error instanceof Error ? error.message : error}`),
  });
  const spans = { exported: 0, droppedByReason: {} as Record<string, number> };
  const sources: SelfStatsSources = { spans: () => spans, internalErrors: () => sink.counts() };
  const metrics = createMetrics(config, sink, sources);
  return {
    metrics,
    reports,
    spans,
    async scrape() {
      return parseSamples((await metrics.render()).body);
    },
  };
}

function parseSamples(body: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

function errorOf(declare: () => unknown): SextantConfigError {
  try {
    declare();
  } catch (error) {
    if (error instanceof SextantConfigError) return error;
    throw error;
  }
  throw new Error('expected a SextantConfigError');
}

function errorsFor(samples: Map<string, number>, metric: string, reason: string): number | undefined {
  return samples.get(`sextant_metric_errors_total{metric="${metric}",reason="${reason}"}`);
}

describe('naming rules', () => {
  const { metrics } = setup();

  it('accepts every metric declared in metric-names.ts', () => {
    for (const descriptor of Object.values(METRICS)) {
      if (descriptor.type === 'counter') metrics.counter(descriptor);
      else if (descriptor.type === 'histogram') metrics.histogram(descriptor);
      else metrics.gauge(descriptor);
    }
    expect(metrics.registry.getSingleMetric(METRICS.dbClientOperationDuration.name)).toBeDefined();
  });

  it.each([
    ['camelCase', 'httpRequests_total'],
    ['upper case', 'HTTP_REQUESTS_TOTAL'],
    ['a leading digit', '2xx_responses_total'],
    ['a dash', 'http-requests_total'],
    ['a colon', 'http:requests_total'],
    ['a leading double underscore', '__requests_total'],
  ])('rejects a name with %s', (_, name) => {
    const error = errorOf(() => metrics.counter({ name, help: 'h' }));
    expect(error.code).toBe(ERROR_CODES.INVALID_METRIC);
    expect(error.message).toContain(JSON.stringify(name));
    expect(error.message).toContain('lowercase snake case');
  });

  it('requires counters to end in _total, naming the fix', () => {
    const error = errorOf(() => metrics.counter({ name: 'jobs_processed', help: 'h' }));
    expect(error.code).toBe(ERROR_CODES.INVALID_METRIC);
    expect(error.message).toContain('counter "jobs_processed" must end in "_total"');
    expect(error.message).toContain('"jobs_processed_total"');
  });

  it('rejects a key a definition does not take, so a typo cannot silently lose the labels', () => {
    const labels = errorOf(() =>
      metrics.counter({ name: 'orders_total', help: 'Orders', labels: ['payment_method'] } as never),
    );
    expect(labels.code).toBe(ERROR_CODES.INVALID_METRIC);
    expect(labels.message).toContain(
      'counter "orders_total" has an unknown key "labels": expected only name, help, labelNames, unit, type',
    );
    expect(
      errorOf(() => metrics.histogram({ name: 'order_value', help: 'h', bucket: [1, 2] } as never)).message,
    ).toContain('unknown key "bucket": expected only name, help, labelNames, unit, buckets, type');
    // Buckets belong to histograms, collect to gauges.
    expect(
      errorOf(() => metrics.gauge({ name: 'depth', help: 'h', buckets: [1] } as never)).message,
    ).toContain('gauge "depth" has an unknown key "buckets"');
    expect(() => metrics.histogram(METRICS.messagingJobWaitDuration)).not.toThrow();
  });

  it('rejects a counter named only _total', () => {
    expect(errorOf(() => metrics.counter({ name: '_total', help: 'h' })).message).toContain(
      'must end in "_total"',
    );
  });

  it.each([
    ['gauge', 'queue_jobs_total', '_total'],
    ['gauge', 'queue_jobs_count', '_count'],
    ['gauge', 'queue_wait_sum', '_sum'],
    ['histogram', 'job_duration_bucket', '_bucket'],
    ['histogram', 'job_created', '_created'],
  ] as const)('rejects a %s named %s (reserved suffix %s)', (type, name, suffix) => {
    const declare = () =>
      type === 'gauge' ? metrics.gauge({ name, help: 'h' }) : metrics.histogram({ name, help: 'h' });
    const error = errorOf(declare);
    expect(error.code).toBe(ERROR_CODES.INVALID_METRIC);
    expect(error.message).toContain(`${type} "${name}" must not end in "${suffix}"`);
  });

  it('requires the name to end in the declared unit (before _total)', () => {
    expect(
      errorOf(() => metrics.histogram({ name: 'payload_size_seconds', help: 'h', unit: 'bytes' })).message,
    ).toContain('has unit "bytes" but its name does not end in "_bytes"');
    expect(
      errorOf(() => metrics.counter({ name: 'payload_total', help: 'h', unit: 'bytes' })).message,
    ).toContain('e.g. "payload_bytes_total"');
    expect(() => metrics.counter({ name: 'payload_bytes_total', help: 'h', unit: 'bytes' })).not.toThrow();
  });

  it('rejects a unit that is not lowercase', () => {
    expect(errorOf(() => metrics.gauge({ name: 'temperature_C', help: 'h', unit: 'C' })).code).toBe(
      ERROR_CODES.INVALID_METRIC,
    );
  });

  it.each([
    ['request_duration_milliseconds', 'request_duration_seconds'],
    ['request_duration_ms', 'request_duration_seconds'],
    ['request_latency_ms_total', 'request_latency_seconds_total'],
  ])('rejects the duration %s and suggests %s', (name, suggestion) => {
    const declare = () =>
      name.endsWith('_total') ? metrics.counter({ name, help: 'h' }) : metrics.histogram({ name, help: 'h' });
    const error = errorOf(declare);
    expect(error.code).toBe(ERROR_CODES.INVALID_METRIC);
    expect(error.message).toContain('use the base unit "seconds"');
    expect(error.message).toContain(`"${suggestion}"`);
    expect(error.message).toContain('divide milliseconds by 1000');
  });

  it('rejects other non-base units the way promtool does', () => {
    expect(errorOf(() => metrics.counter({ name: 'upload_kilobytes_total', help: 'h' })).message).toContain(
      'use the base unit "bytes"',
    );
    expect(errorOf(() => metrics.gauge({ name: 'uptime_hours', help: 'h' })).message).toContain(
      'use the base unit "seconds"',
    );
  });

  it('rejects a metric type in the name', () => {
    expect(errorOf(() => metrics.gauge({ name: 'queue_depth_gauge', help: 'h' })).message).toContain(
      'must not include a metric type ("gauge")',
    );
  });

  it.each([
    ['not snake case', ['httpMethod']],
    ['starting with __', ['__meta']],
    ['starting with a digit', ['2nd']],
  ])('rejects a label name %s', (_, labelNames) => {
    const error = errorOf(() => metrics.counter({ name: 'label_test_total', help: 'h', labelNames }));
    expect(error.code).toBe(ERROR_CODES.INVALID_METRIC);
    expect(error.message).toContain(JSON.stringify(labelNames[0]));
  });

  it('rejects a duplicated label name', () => {
    expect(
      errorOf(() => metrics.counter({ name: 'label_test_total', help: 'h', labelNames: ['route', 'route'] }))
        .message,
    ).toContain('lists the label "route" twice');
  });

  it('rejects le on a histogram (and on anything else)', () => {
    expect(
      errorOf(() => metrics.histogram({ name: 'le_test_seconds', help: 'h', labelNames: ['le'] })).message,
    ).toContain('must not use the label "le": it holds the bucket bounds of histograms');
    expect(errorOf(() => metrics.gauge({ name: 'le_test', help: 'h', labelNames: ['le'] })).code).toBe(
      ERROR_CODES.INVALID_METRIC,
    );
  });

  it('rejects quantile', () => {
    expect(
      errorOf(() => metrics.gauge({ name: 'quantile_test', help: 'h', labelNames: ['quantile'] })).message,
    ).toContain('must not use the label "quantile"');
  });

  it.each([
    ['empty', ''],
    ['two lines', 'first\nsecond'],
    ['double quotes', 'the "waiting" state'],
  ])('rejects help text that is %s', (_, help) => {
    expect(errorOf(() => metrics.gauge({ name: 'help_test', help })).message).toContain(
      'expected one non-empty line of text without double quotes',
    );
  });

  it.each([
    ['not increasing', [0.1, 0.05]],
    ['infinite', [0.1, Number.POSITIVE_INFINITY]],
    ['empty', []],
  ])('rejects histogram buckets that are %s', (_, buckets) => {
    expect(
      errorOf(() => metrics.histogram({ name: 'bucket_test_seconds', help: 'h', buckets })).message,
    ).toContain('expected a non-empty array of finite numbers in increasing order');
  });

  it('rejects a descriptor declared as another type', () => {
    expect(errorOf(() => metrics.histogram(METRICS.quantumActiveJobs)).message).toContain(
      'is described as a "gauge" but declared as a histogram',
    );
  });

  it('returns the existing instrument for a repeated declaration of the same shape', () => {
    const first = metrics.counter({ name: 'repeat_total', help: 'h', labelNames: ['a'] });
    expect(metrics.counter({ name: 'repeat_total', help: 'h', labelNames: ['a'] })).toBe(first);
  });

  it('rejects the same name with another shape, naming both', () => {
    metrics.histogram({ name: 'shape_test_seconds', help: 'h', labelNames: ['a'] });
    const otherLabels = errorOf(() =>
      metrics.histogram({ name: 'shape_test_seconds', help: 'h', labelNames: ['b'] }),
    );
    expect(otherLabels.code).toBe(ERROR_CODES.DUPLICATE_METRIC);
    expect(otherLabels.message).toContain('already declared as a histogram with labels [a]');
    expect(otherLabels.message).toContain('this declaration is a histogram with labels [b]');
    const otherType = errorOf(() =>
      metrics.gauge({ name: 'shape_test_seconds', help: 'h', labelNames: ['a'] }),
    );
    expect(otherType.code).toBe(ERROR_CODES.DUPLICATE_METRIC);
    const otherBuckets = errorOf(() =>
      metrics.histogram({ name: 'shape_test_seconds', help: 'h', labelNames: ['a'], buckets: [1, 2] }),
    );
    expect(otherBuckets.message).toContain('buckets [1, 2]');
  });

  it('rejects names that would collide in OpenMetrics (counter x_total and metric x)', () => {
    metrics.counter({ name: 'collide_jobs_total', help: 'h' });
    const error = errorOf(() => metrics.gauge({ name: 'collide_jobs', help: 'h' }));
    expect(error.code).toBe(ERROR_CODES.DUPLICATE_METRIC);
    expect(error.message).toContain('would collide with the metric "collide_jobs_total" in OpenMetrics');
  });

  it('rejects the name of a Node.js default metric', () => {
    const { metrics: withDefaults } = setup({ defaultMetrics: true });
    const error = errorOf(() => withDefaults.gauge({ name: 'process_resident_memory_bytes', help: 'h' }));
    expect(error.code).toBe(ERROR_CODES.DUPLICATE_METRIC);
    expect(error.message).toContain('already exists in the registry');
  });

  it('applies the rules when metrics are disabled too', () => {
    const { metrics: disabled } = setup({ enabled: false });
    expect(errorOf(() => disabled.counter({ name: 'jobs', help: 'h' })).code).toBe(
      ERROR_CODES.INVALID_METRIC,
    );
    expect(errorOf(() => disabled.gauge({ name: 'sextant_metric_errors', help: 'h' })).code).toBe(
      ERROR_CODES.DUPLICATE_METRIC,
    );
  });
});

describe('series limit', () => {
  it('refuses new label sets past the limit, counts them, and keeps existing series working', async () => {
    const { metrics, scrape, reports } = setup({ seriesLimit: 3 });
    const counter = metrics.counter({ name: 'limited_total', help: 'h', labelNames: ['key'] });
    for (const key of ['a', 'b', 'c', 'd', 'e']) counter.inc({ key });
    counter.inc({ key: 'a' }, 4);

    const samples = await scrape();
    expect(samples.get('limited_total{key="a"}')).toBe(5);
    expect(samples.get('limited_total{key="c"}')).toBe(1);
    expect(samples.has('limited_total{key="d"}')).toBe(false);
    expect(samples.has('limited_total{key="e"}')).toBe(false);
    expect(samples.get('sextant_metric_series_refused_total{metric="limited_total"}')).toBe(2);
    expect(reports.some((r) => r.includes('"limited_total" reached its limit of 3 series'))).toBe(true);
  });

  it('counts every observation on a refused histogram child', async () => {
    const { metrics, scrape } = setup({ seriesLimit: 1 });
    const histogram = metrics.histogram({ name: 'limited_seconds', help: 'h', labelNames: ['op'] });
    histogram.child('read').observe(0.1);
    const refused = histogram.child('write');
    refused.observe(0.1);
    refused.observe(0.2);

    const samples = await scrape();
    expect(samples.get('limited_seconds_count{op="read"}')).toBe(1);
    expect(samples.has('limited_seconds_count{op="write"}')).toBe(false);
    expect(samples.get('sextant_metric_series_refused_total{metric="limited_seconds"}')).toBe(3);
  });

  it('applies to the HTTP duration histogram', async () => {
    const { metrics, scrape } = setup({ seriesLimit: 2 });
    for (const route of ['/a', '/b', '/c']) metrics.http.requestEnded('GET', route, 200, 0.01);
    const samples = await scrape();
    expect(
      samples.get('sextant_metric_series_refused_total{metric="http_server_request_duration_seconds"}'),
    ).toBe(1);
  });
});

describe('invalid input is counted, never thrown', () => {
  it('ignores NaN, infinite and negative counter increments', async () => {
    const { metrics, scrape, reports } = setup();
    const counter = metrics.counter({ name: 'orders_total', help: 'h' });
    counter.inc();
    expect(() => counter.inc(undefined, Number.NaN)).not.toThrow();
    expect(() => counter.inc(undefined, Number.POSITIVE_INFINITY)).not.toThrow();
    expect(() => counter.inc(undefined, -1)).not.toThrow();
    expect(() => counter.inc(undefined, '3' as unknown as number)).not.toThrow();

    const samples = await scrape();
    expect(samples.get('orders_total')).toBe(1);
    expect(errorsFor(samples, 'orders_total', METRIC_ERROR_REASONS.INVALID_VALUE)).toBe(3);
    expect(errorsFor(samples, 'orders_total', METRIC_ERROR_REASONS.NEGATIVE_INCREMENT)).toBe(1);
    expect(reports.filter((r) => r.startsWith('metrics: ') && r.includes('"orders_total"'))).toHaveLength(4);
    expect(samples.get('sextant_internal_errors_total{kind="metrics"}')).toBe(4);
  });

  it('ignores unknown label names and invalid label values', async () => {
    const { metrics, scrape } = setup();
    const counter = metrics.counter({ name: 'labelled_total', help: 'h', labelNames: ['kind'] });
    const untyped = counter as unknown as { inc(labels: unknown, value?: number): void };
    expect(() => untyped.inc({ kind: 'a', region: 'eu' })).not.toThrow();
    expect(() => untyped.inc({ kind: { nested: true } })).not.toThrow();
    expect(() => untyped.inc({ kind: true })).not.toThrow();
    expect(() => untyped.inc('kind')).not.toThrow();
    counter.inc({ kind: 'a' });

    const samples = await scrape();
    expect(samples.get('labelled_total{kind="a"}')).toBe(1);
    expect(errorsFor(samples, 'labelled_total', METRIC_ERROR_REASONS.UNKNOWN_LABEL)).toBe(1);
    expect(errorsFor(samples, 'labelled_total', METRIC_ERROR_REASONS.INVALID_LABEL_VALUE)).toBe(2);
    expect(errorsFor(samples, 'labelled_total', METRIC_ERROR_REASONS.INVALID_LABELS)).toBe(1);
  });

  it('records a missing label as the empty value and a number label as its text', async () => {
    const { metrics, scrape } = setup();
    const counter = metrics.counter({ name: 'status_total', help: 'h', labelNames: ['code', 'route'] });
    counter.inc({ code: 200 });
    counter.inc({ code: '200', route: undefined });
    const samples = await scrape();
    expect(samples.get('status_total{code="200",route=""}')).toBe(2);
  });

  it('ignores NaN in histograms and gauges, and a child with the wrong number of values', async () => {
    const { metrics, scrape } = setup();
    const histogram = metrics.histogram({ name: 'work_seconds', help: 'h', labelNames: ['op'] });
    const gauge = metrics.gauge({ name: 'temperature_celsius', help: 'h', unit: 'celsius' });
    expect(() => histogram.observe({ op: 'a' }, Number.NaN)).not.toThrow();
    expect(() => histogram.child('a').observe(Number.NEGATIVE_INFINITY)).not.toThrow();
    expect(() => histogram.child('a', 'b').observe(1)).not.toThrow();
    expect(() => gauge.set(undefined, Number.NaN)).not.toThrow();
    expect(() => gauge.dec(undefined, Number.POSITIVE_INFINITY)).not.toThrow();
    gauge.set(undefined, -4.5);

    const samples = await scrape();
    expect(samples.has('work_seconds_count{op="a"}')).toBe(false);
    expect(errorsFor(samples, 'work_seconds', METRIC_ERROR_REASONS.INVALID_VALUE)).toBe(2);
    expect(errorsFor(samples, 'work_seconds', METRIC_ERROR_REASONS.INVALID_LABELS)).toBe(2);
    expect(errorsFor(samples, 'temperature_celsius', METRIC_ERROR_REASONS.INVALID_VALUE)).toBe(2);
    expect(samples.get('temperature_celsius')).toBe(-4.5);
  });

  it('cuts long label values to the cap and counts it once per series', async () => {
    const { metrics, scrape } = setup();
    const counter = metrics.counter({ name: 'long_total', help: 'h', labelNames: ['query'] });
    const long = 'x'.repeat(MAX_LABEL_VALUE_LENGTH + 50);
    counter.inc({ query: long });
    counter.inc({ query: long });
    const samples = await scrape();
    expect(samples.get(`long_total{query="${'x'.repeat(MAX_LABEL_VALUE_LENGTH)}"}`)).toBe(2);
    expect(errorsFor(samples, 'long_total', METRIC_ERROR_REASONS.LABEL_VALUE_TRUNCATED)).toBe(1);
  });
});

describe('gauge collect', () => {
  it('reads the current state at scrape time', async () => {
    const { metrics, scrape } = setup();
    const queue = { waiting: 3, active: 1 };
    let calls = 0;
    metrics.gauge({
      name: 'jobs_in_queue',
      help: 'h',
      labelNames: ['state'],
      collect(gauge) {
        calls += 1;
        gauge.set({ state: 'waiting' }, queue.waiting);
        gauge.set({ state: 'active' }, queue.active);
      },
    });
    expect(calls).toBe(0);
    expect((await scrape()).get('jobs_in_queue{state="waiting"}')).toBe(3);
    queue.waiting = 7;
    expect((await scrape()).get('jobs_in_queue{state="waiting"}')).toBe(7);
    expect(calls).toBe(2);
  });

  it('awaits an async collect, and runs every collect declared for the gauge', async () => {
    const { metrics, scrape } = setup();
    const definition = { name: 'pool_connections', help: 'h', labelNames: ['pool'] as const };
    metrics.gauge({
      ...definition,
      async collect(gauge) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        gauge.set({ pool: 'primary' }, 10);
      },
    });
    metrics.gauge({ ...definition, collect: (gauge) => gauge.set({ pool: 'replica' }, 4) });
    const samples = await scrape();
    expect(samples.get('pool_connections{pool="primary"}')).toBe(10);
    expect(samples.get('pool_connections{pool="replica"}')).toBe(4);
  });

  it('stops calling a removed collect, and drops removed series from the scrape and the series limit', async () => {
    const { metrics, scrape } = setup({ seriesLimit: 2 });
    const definition = { name: 'queue_depth', help: 'h', labelNames: ['queue'] as const };
    let ordersCalls = 0;
    const orders = (gauge: { set(labels: { queue: string }, value: number): void }) => {
      ordersCalls += 1;
      gauge.set({ queue: 'orders' }, 5);
    };
    const gauge = metrics.gauge({ ...definition, collect: orders });
    metrics.gauge({ ...definition, collect: (g) => g.set({ queue: 'mail' }, 2) });
    expect((await scrape()).get('queue_depth{queue="orders"}')).toBe(5);

    gauge.removeCollect(orders);
    gauge.remove({ queue: 'orders' });
    const samples = await scrape();
    expect(ordersCalls).toBe(1);
    expect(samples.has('queue_depth{queue="orders"}')).toBe(false);
    expect(samples.get('queue_depth{queue="mail"}')).toBe(2);

    // The freed series is available again (the limit is 2), and the resolver's cache was dropped with it.
    gauge.set({ queue: 'billing' }, 1);
    gauge.set({ queue: 'orders' }, 9);
    const after = await scrape();
    expect(after.get('queue_depth{queue="billing"}')).toBe(1);
    expect(after.has('queue_depth{queue="orders"}')).toBe(false);
    expect(after.get('sextant_metric_series_refused_total{metric="queue_depth"}')).toBe(1);
  });

  it('keeps a removed series out when an async collect that was running writes after its removal', async () => {
    const { metrics, scrape } = setup({ seriesLimit: 2 });
    let release!: () => void;
    const readBacklog = async (gauge: { set(labels: { queue: string }, value: number): void }) => {
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      gauge.set({ queue: 'emails' }, 42);
    };
    const gauge = metrics.gauge({
      name: 'email_backlog',
      help: 'h',
      labelNames: ['queue'],
      collect: readBacklog,
    });
    gauge.set({ queue: 'emails' }, 1);
    const running = metrics.render();
    await new Promise((resolve) => setImmediate(resolve));
    gauge.removeCollect(readBacklog);
    gauge.remove({ queue: 'emails' });
    release();
    await running;
    const samples = await scrape();
    expect(samples.has('email_backlog{queue="emails"}')).toBe(false);
    // Nor does it hold a place in the series limit.
    gauge.set({ queue: 'a' }, 1);
    gauge.set({ queue: 'b' }, 1);
    const after = await scrape();
    expect(after.get('email_backlog{queue="b"}')).toBe(1);
    expect(after.has('sextant_metric_series_refused_total{metric="email_backlog"}')).toBe(false);
  });

  it('removes a series whose label value was cut to the cap, and ignores labels that name none', async () => {
    const { metrics, scrape, reports } = setup();
    const gauge = metrics.gauge({ name: 'long_labels', help: 'h', labelNames: ['name'] });
    const long = 'x'.repeat(MAX_LABEL_VALUE_LENGTH + 10);
    gauge.set({ name: long }, 3);
    gauge.set({ name: 'short' }, 1);
    gauge.remove({ name: 'absent' });
    gauge.remove({ name: long });
    const samples = await scrape();
    expect([...samples.keys()].filter((key) => key.startsWith('long_labels'))).toEqual([
      'long_labels{name="short"}',
    ]);
    gauge.remove({ other: 'x' } as never);
    expect(reports.some((r) => r.includes('label "other" is not declared'))).toBe(true);
  });

  it('counts a failing collect and still renders everything else', async () => {
    const { metrics, scrape, reports } = setup();
    metrics.gauge({
      name: 'broken_queue_source',
      help: 'h',
      collect() {
        throw new Error('redis down');
      },
    });
    metrics.gauge({
      name: 'rejecting_source',
      help: 'h',
      collect: () => Promise.reject(new Error('timeout')),
    });
    const first = await scrape();
    expect(first.get('sextant_spans_exported_total')).toBe(0);
    expect(errorsFor(first, 'broken_queue_source', METRIC_ERROR_REASONS.COLLECT_FAILED)).toBe(1);
    expect(errorsFor(first, 'rejecting_source', METRIC_ERROR_REASONS.COLLECT_FAILED)).toBe(1);
    expect(first.get('sextant_internal_errors_total{kind="metrics"}')).toBe(2);
    expect(reports.some((r) => r.includes('redis down'))).toBe(true);
    const second = await scrape();
    expect(errorsFor(second, 'rejecting_source', METRIC_ERROR_REASONS.COLLECT_FAILED)).toBe(2);
  });

  it('serves the scrape without a collect that hangs, keeps its last values, and never piles calls up', async () => {
    const { metrics, scrape, reports } = setup({ collectTimeoutMs: 50 });
    let calls = 0;
    let finish: () => void = () => undefined;
    metrics.gauge({
      name: 'slow_source_depth',
      help: 'h',
      labelNames: ['pool'],
      collect(gauge) {
        calls += 1;
        gauge.set({ pool: 'primary' }, calls);
        // The first read answers at once; the second never does until released.
        if (calls === 1) return undefined;
        return new Promise<void>((resolve) => {
          finish = resolve;
        });
      },
    });
    metrics.counter({ name: 'orders_total', help: 'h' }).inc();
    await scrape();
    const stuck = await scrape();
    expect(stuck.get('orders_total')).toBe(1);
    expect(stuck.get('slow_source_depth{pool="primary"}')).toBe(2);
    expect(errorsFor(stuck, 'slow_source_depth', METRIC_ERROR_REASONS.COLLECT_FAILED)).toBe(1);
    expect(reports.some((r) => r.includes('collect did not finish within 50 ms'))).toBe(true);
    const again = await scrape();
    expect(calls).toBe(2);
    expect(errorsFor(again, 'slow_source_depth', METRIC_ERROR_REASONS.COLLECT_FAILED)).toBe(2);
    finish();
    await new Promise((resolve) => setImmediate(resolve));
    await scrape();
    expect(calls).toBe(3);
  });

  it('refuses an invalid collect timeout, naming the range', () => {
    expect(() => resolveConfig({ env: {}, metrics: { collectTimeoutMs: 0 } })).toThrow(
      /metrics\.collectTimeoutMs.*1.*60000/,
    );
  });
});

describe("Sextant's own health", () => {
  it('reads span totals from the sources at scrape time', async () => {
    const { scrape, spans } = setup();
    spans.exported = 40;
    spans.droppedByReason = { queue_full: 2, export_failed: 0 };
    let samples = await scrape();
    expect(samples.get('sextant_spans_exported_total')).toBe(40);
    expect(samples.get('sextant_spans_dropped_total{reason="queue_full"}')).toBe(2);
    expect(samples.get('sextant_spans_dropped_total{reason="export_failed"}')).toBe(0);
    spans.exported = 52;
    samples = await scrape();
    expect(samples.get('sextant_spans_exported_total')).toBe(52);
  });
});

describe('histogram observations', () => {
  const sample = (name: string, labels: string) => `${name}{${labels}}`;

  it('keeps the same buckets, sum and count as prom-client, through a reset and a removed series', async () => {
    const { metrics, scrape } = setup();
    const histogram = metrics.histogram({
      name: 'work_duration_seconds',
      help: 'Work.',
      labelNames: ['kind'],
      buckets: [0.1, 1, 10],
    });
    const child = histogram.child('fast');
    // Below, on and between the bounds, and past the last one (only in +Inf).
    for (const value of [0.05, 0.1, 0.5, 1, 5, 10, 50, 0.1]) child.observe(value);
    let samples = await scrape();
    const bucket = (le: string) =>
      samples.get(sample('work_duration_seconds_bucket', `le="${le}",kind="fast"`));
    expect([bucket('0.1'), bucket('1'), bucket('10'), bucket('+Inf')]).toEqual([3, 5, 7, 8]);
    expect(samples.get(sample('work_duration_seconds_count', 'kind="fast"'))).toBe(8);
    expect(samples.get(sample('work_duration_seconds_sum', 'kind="fast"'))).toBeCloseTo(66.75, 10);

    // A reset (registry.resetMetrics) starts the series again; the child follows it.
    metrics.registry.resetMetrics();
    child.observe(2);
    child.observe(3);
    samples = await scrape();
    expect(samples.get(sample('work_duration_seconds_count', 'kind="fast"'))).toBe(2);
    expect(bucket('10')).toBe(2);

    // A series removed through prom-client comes back with only what was observed after.
    const prom = metrics.registry.getSingleMetric('work_duration_seconds') as unknown as {
      remove(labels: Record<string, string>): void;
    };
    prom.remove({ kind: 'fast' });
    child.observe(0.5);
    samples = await scrape();
    expect(samples.get(sample('work_duration_seconds_count', 'kind="fast"'))).toBe(1);
    expect(bucket('1')).toBe(1);
  });

  it('counts on a counter child as prom-client does, through a reset, a removed series and bad input', async () => {
    const { metrics, scrape } = setup();
    const counter = metrics.counter({ name: 'work_total', help: 'Work.', labelNames: ['kind', 'outcome'] });
    const child = counter.child('fast', 'ok');
    child.inc();
    child.inc(2.5);
    counter.inc({ kind: 'fast', outcome: 'ok' });
    let samples = await scrape();
    expect(samples.get(sample('work_total', 'kind="fast",outcome="ok"'))).toBe(4.5);

    metrics.registry.resetMetrics();
    child.inc();
    samples = await scrape();
    expect(samples.get(sample('work_total', 'kind="fast",outcome="ok"'))).toBe(1);

    const prom = metrics.registry.getSingleMetric('work_total') as unknown as {
      remove(labels: Record<string, string>): void;
    };
    prom.remove({ kind: 'fast', outcome: 'ok' });
    child.inc(3);
    samples = await scrape();
    expect(samples.get(sample('work_total', 'kind="fast",outcome="ok"'))).toBe(3);

    expect(() => child.inc(-1)).not.toThrow();
    expect(() => child.inc(Number.NaN)).not.toThrow();
    expect(() => counter.child('fast').inc()).not.toThrow();
    samples = await scrape();
    expect(samples.get(sample('work_total', 'kind="fast",outcome="ok"'))).toBe(3);
    expect(samples.get('sextant_metric_errors_total{metric="work_total",reason="negative_increment"}')).toBe(
      1,
    );
    expect(samples.get('sextant_metric_errors_total{metric="work_total",reason="invalid_value"}')).toBe(1);
  });
});

describe('HTTP server metrics', () => {
  const durationCount = (method: string, route: string, status: string) =>
    `http_server_request_duration_seconds_count{http_request_method="${method}",http_route="${route}",http_response_status_code="${status}"}`;

  it('records one series per route template, method and status', async () => {
    const { metrics, scrape } = setup();
    metrics.http.requestEnded('GET', '/users/:id', 200, 0.01);
    metrics.http.requestEnded('GET', '/users/:id', 200, 0.02);
    metrics.http.requestEnded('GET', '/users/:id', 404, 0.01);
    metrics.http.requestEnded('POST', '/users', 201, 0.3);
    const samples = await scrape();
    expect(samples.get(durationCount('GET', '/users/:id', '200'))).toBe(2);
    expect(samples.get(durationCount('GET', '/users/:id', '404'))).toBe(1);
    expect(samples.get(durationCount('POST', '/users', '201'))).toBe(1);
    const series = [...samples.keys()].filter((k) =>
      k.startsWith('http_server_request_duration_seconds_count'),
    );
    expect(series).toHaveLength(3);
  });

  it('shares its series with the histogram declared from the same descriptor', async () => {
    const { metrics, scrape } = setup();
    metrics.http.requestEnded('GET', '/users/:id', 200, 0.01);
    metrics
      .histogram(METRICS.httpServerRequestDuration)
      .observe(
        { http_request_method: 'GET', http_route: '/users/:id', http_response_status_code: 200 },
        0.02,
      );
    expect((await scrape()).get(durationCount('GET', '/users/:id', '200'))).toBe(2);
  });

  it('records unknown methods as _OTHER', async () => {
    const { metrics, scrape } = setup();
    metrics.http.requestStarted('BREW');
    metrics.http.requestEnded('BREW', '/pot', 418, 0.01);
    metrics.http.requestEnded('get', '/pot', 200, 0.01);
    const samples = await scrape();
    expect(samples.get(durationCount('_OTHER', '/pot', '418'))).toBe(1);
    expect(samples.get(durationCount('_OTHER', '/pot', '200'))).toBe(1);
    expect([...samples.keys()].some((k) => k.includes('BREW') || k.includes('"get"'))).toBe(false);
  });

  it('tracks active requests by method', async () => {
    const { metrics, scrape } = setup();
    metrics.http.requestStarted('GET');
    metrics.http.requestStarted('GET');
    metrics.http.requestStarted('POST');
    metrics.http.requestEnded('GET', '/a', 200, 0.01);
    const samples = await scrape();
    expect(samples.get('http_server_active_requests{http_request_method="GET"}')).toBe(1);
    expect(samples.get('http_server_active_requests{http_request_method="POST"}')).toBe(1);
  });

  it('records a request without a response (status 0) with an empty status label', async () => {
    const { metrics, scrape } = setup();
    metrics.http.requestEnded('GET', '/slow', 0, 2);
    expect((await scrape()).get(durationCount('GET', '/slow', ''))).toBe(1);
  });

  it('counts, and does not record, an invalid status code, route or duration', async () => {
    const { metrics, scrape } = setup();
    const name = METRICS.httpServerRequestDuration.name;
    metrics.http.requestEnded('GET', '/a', 42, 0.01);
    metrics.http.requestEnded('GET', '/a', Number.NaN, 0.01);
    metrics.http.requestEnded('GET', undefined as unknown as string, 200, 0.01);
    metrics.http.requestEnded('GET', '/a', 200, -1);
    metrics.http.requestEnded('GET', '/a', 200, Number.NaN);
    const samples = await scrape();
    expect([...samples.keys()].some((k) => k.startsWith('http_server_request_duration_seconds_count'))).toBe(
      false,
    );
    expect(errorsFor(samples, name, METRIC_ERROR_REASONS.INVALID_LABEL_VALUE)).toBe(3);
    expect(errorsFor(samples, name, METRIC_ERROR_REASONS.INVALID_VALUE)).toBe(2);
  });

  it('cuts a long route to the label cap', async () => {
    const { metrics, scrape } = setup();
    metrics.http.requestEnded('GET', `/${'r'.repeat(300)}`, 200, 0.01);
    const samples = await scrape();
    const route = `/${'r'.repeat(MAX_LABEL_VALUE_LENGTH - 1)}`;
    expect(samples.get(durationCount('GET', route, '200'))).toBe(1);
  });
});

describe('content negotiation', () => {
  it('serves Prometheus text by default', async () => {
    const { metrics } = setup();
    metrics.counter({ name: 'negotiated_total', help: 'h' }).inc();
    for (const accept of [undefined, 'text/plain', '*/*', 'application/openmetrics-text;q=0']) {
      const { contentType, body } = await metrics.render(accept);
      expect(contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
      expect(body).toContain('# TYPE negotiated_total counter\nnegotiated_total 1');
      expect(body).not.toContain('# EOF');
    }
  });

  it('serves OpenMetrics when the scraper asks for it', async () => {
    const { metrics } = setup();
    metrics.counter({ name: 'negotiated_total', help: 'h' }).inc();
    for (const accept of [OPENMETRICS_ACCEPT, PROMETHEUS_SCRAPER_ACCEPT]) {
      const { contentType, body } = await metrics.render(accept);
      expect(contentType).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
      expect(body.endsWith('\n# EOF\n')).toBe(true);
      expect(body).toContain('# TYPE negotiated counter\nnegotiated_total 1');
    }
  });

  it('prefers the format with the higher quality', async () => {
    const { metrics } = setup();
    const prefersText = await metrics.render('text/plain;q=1, application/openmetrics-text;q=0.5');
    expect(prefersText.contentType).toMatch(/^text\/plain/);
    const unknownVersion = await metrics.render(
      'application/openmetrics-text;version=2.0.0, text/plain;q=0.1',
    );
    expect(unknownVersion.contentType).toMatch(/^text\/plain/);
  });

  it('keeps counter names intact in Prometheus text after an OpenMetrics scrape', async () => {
    const { metrics } = setup();
    metrics.counter({ name: 'survivor_total', help: 'h' }).inc();
    await metrics.render(OPENMETRICS_ACCEPT);
    const { body } = await metrics.render();
    expect(body).toContain('# TYPE survivor_total counter\nsurvivor_total 1');
  });

  it('serves metrics registered on the registry directly, in both formats', async () => {
    const { metrics } = setup();
    new Counter({ name: 'raw_events_total', help: 'h', registers: [metrics.registry] }).inc(2);
    expect((await metrics.render()).body).toContain('raw_events_total 2');
    expect((await metrics.render(OPENMETRICS_ACCEPT)).body).toContain(
      '# TYPE raw_events counter\nraw_events_total 2',
    );
  });
});

describe('metrics disabled', () => {
  it('makes instruments no-ops and renders nothing', async () => {
    const { metrics } = setup({ enabled: false, defaultMetrics: true });
    const counter = metrics.counter({ name: 'off_total', help: 'h' });
    counter.inc(undefined, Number.NaN);
    counter.inc();
    metrics.histogram({ name: 'off_seconds', help: 'h' }).child().observe(1);
    metrics.gauge({ name: 'off_value', help: 'h' }).set(undefined, 1);
    metrics.http.requestStarted('GET');
    metrics.http.requestEnded('GET', '/', 200, 0.1);
    expect(await metrics.render()).toEqual({
      contentType: 'text/plain; version=0.0.4; charset=utf-8',
      body: '',
    });
    expect((await metrics.render(OPENMETRICS_ACCEPT)).body).toBe('# EOF\n');
    expect(metrics.registry.getMetricsAsArray()).toHaveLength(0);
  });
});

describe('promtool check metrics', () => {
  const directory = mkdtempSync(join(tmpdir(), 'sextant-promtool-'));
  afterAll(() => rmSync(directory, { recursive: true, force: true }));

  /** Runs `promtool check metrics < file`; its problems are printed one per line. */
  function promtool(body: string, fileName: string): { status: number | null; problems: string[] } {
    const file = join(directory, fileName);
    writeFileSync(file, body);
    const stdin = openSync(file, 'r');
    try {
      const result = spawnSync('promtool', ['check', 'metrics'], {
        stdio: [stdin, 'pipe', 'pipe'],
        encoding: 'utf8',
      });
      if (result.error) throw result.error;
      const problems = `${result.stdout}${result.stderr}`.split('\n').filter((line) => line.trim() !== '');
      return { status: result.status, problems };
    } finally {
      closeSync(stdin);
    }
  }

  async function populatedMetrics() {
    const { metrics, spans } = setup({ defaultMetrics: true, seriesLimit: 3 });
    spans.exported = 10;
    spans.droppedByReason = { queue_full: 1, export_failed: 2, shutdown: 0 };
    const jobs = metrics.counter({
      name: 'jobs_processed_total',
      help: 'Jobs \\ processed.',
      labelNames: ['queue'],
    });
    // Label values that need escaping in the exposition.
    jobs.inc({ queue: 'say "hi"' });
    jobs.inc({ queue: 'back\\slash\nnew line' });
    jobs.inc({ queue: 'ünïcödé ✓' });
    jobs.inc({ queue: 'refused' });
    jobs.inc(undefined, Number.NaN);
    metrics.counter({ name: 'never_incremented_total', help: 'h', labelNames: ['a'] });
    const duration = metrics.histogram({ name: 'job_duration_seconds', help: 'h', labelNames: ['queue'] });
    duration.child('q1').observe(0.2);
    duration.observe({ queue: 'q2' }, 12);
    metrics.gauge({
      name: 'queue_depth',
      help: 'h',
      labelNames: ['state'],
      collect: (gauge) => gauge.set({ state: 'waiting' }, 5),
    });
    metrics.gauge({ name: 'broken_source', help: 'h', collect: () => Promise.reject(new Error('down')) });
    for (const method of ['GET', 'POST', 'BREW']) {
      metrics.http.requestStarted(method);
      metrics.http.requestEnded(method, '/jobs/:id', 200, 0.042);
    }
    metrics.http.requestEnded('GET', '/jobs', 0, 0.5);
    // Lets the default event-loop and GC metrics take a sample.
    await new Promise((resolve) => setTimeout(resolve, 20));
    return metrics;
  }

  it('passes on the Prometheus text, default metrics included', async () => {
    const metrics = await populatedMetrics();
    const { body } = await metrics.render();
    expect(body).toContain('process_cpu_seconds_total');
    expect(body).toContain('nodejs_heap_size_used_bytes');
    expect(body).toContain('http_request_method="_OTHER"');
    expect(body).toContain('queue="say \\"hi\\""');
    const { status, problems } = promtool(body, 'metrics.prom');
    expect(problems).toEqual([]);
    expect(status).toBe(0);
  });

  it('passes on the OpenMetrics text, but for the lines its text-format parser misreads', async () => {
    const metrics = await populatedMetrics();
    // Render Prometheus first as a scrape would, so the OpenMetrics pass sees the same objects.
    await metrics.render();
    const { body } = await metrics.render(OPENMETRICS_ACCEPT);
    expect(body.endsWith('\n# EOF\n')).toBe(true);
    // promtool 2.x parses stdin as the Prometheus text format only. OpenMetrics names a counter
    // family without "_total" and its samples with it, so promtool takes the samples for an
    // untyped family "<family>_total" without HELP and says "no help text" about it. That line,
    // for a counter family with samples, is the only one accepted; anything else fails.
    const counterFamilies = [...body.matchAll(/^# TYPE (\S+) counter$/gm)].map((match) => match[1]!);
    expect(counterFamilies).toContain('jobs_processed');
    expect(counterFamilies.some((family) => family.endsWith('_total'))).toBe(false);
    const expected = new Set(
      counterFamilies
        .filter((family) => body.includes(`\n${family}_total`))
        .map((family) => `${family}_total no help text`),
    );
    const { status, problems } = promtool(body, 'metrics.openmetrics');
    expect(problems.filter((line) => !expected.has(line))).toEqual([]);
    expect(status).toBe(problems.length === 0 ? 0 : 3);
  });
});
