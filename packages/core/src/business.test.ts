import { SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterEach, describe, expect, it } from 'vitest';
import { sampleValue } from '../../../tooling/testing/exposition.ts';
import { promtoolCheck } from '../../../tooling/testing/promtool.ts';
import type { BusinessKpi, BusinessTracer } from './business.ts';
import type { SextantOptions } from './config.ts';
import { runWithRequestId, setTenant, setUser } from './context.ts';
import { ERROR_CODES, SextantConfigError } from './errors.ts';
import { createSextant, type Sextant } from './sextant.ts';

type LogRecord = Record<string, unknown> & { level: string; msg: string };

interface Harness {
  sextant: Sextant;
  business: BusinessTracer;
  records(): LogRecord[];
  spans(): readonly ReadableSpan[];
  scrape(): Promise<string>;
}

let current: Sextant | undefined;

afterEach(async () => {
  await current?.shutdown();
  current = undefined;
});

function harness(metrics: SextantOptions['metrics'] = {}): Harness {
  const lines: string[] = [];
  const sextant = createSextant({
    serviceName: 'business-test',
    tracing: { exporter: 'memory' },
    logs: { destination: { write: (line: string) => void lines.push(line) } },
    metrics: { defaultMetrics: false, ...metrics },
    env: {},
  });
  current = sextant;
  return {
    sextant,
    business: sextant.business,
    records: () => lines.map((line) => JSON.parse(line) as LogRecord),
    spans: () => sextant.tracing.finishedSpans(),
    scrape: async () => (await sextant.metrics.render()).body,
  };
}

/** The SextantConfigError `declare` throws. */
function refusal(declare: () => void): SextantConfigError {
  try {
    declare();
  } catch (error) {
    expect(error).toBeInstanceOf(SextantConfigError);
    return error as SextantConfigError;
  }
  throw new Error('expected a SextantConfigError');
}

const collect = () => 1;

const CHARGE_SUCCESS = { business_unit: 'billing', business_operation: 'charge', outcome: 'success' };
const CHARGE_FAILURE = { ...CHARGE_SUCCESS, outcome: 'failure' };

/** Runs `fn` as a request of user u-42 in tenant acme. */
function asUser<T>(fn: () => T): T {
  return runWithRequestId('req-1', () => {
    setUser('u-42');
    setTenant('acme');
    return fn();
  });
}

describe('business operations', () => {
  it('runs a sync operation in a span with unit, operation, user and tenant; metrics without them', async () => {
    const { business, spans, records, scrape, sextant } = harness();
    const billing = business.unit('billing');
    expect(business.unit('billing')).toBe(billing);
    const value = asUser(() => billing.operation('charge', () => 42, { 'billing.plan': 'pro' }));
    expect(value).toBe(42);

    const [span, ...others] = spans();
    expect(others).toEqual([]);
    expect(span!.name).toBe('billing.charge');
    expect(span!.attributes).toEqual({
      'billing.plan': 'pro',
      'business.unit': 'billing',
      'business.operation': 'charge',
      'business.outcome': 'success',
      'enduser.id': 'u-42',
      'tenant.id': 'acme',
    });
    expect(span!.status.code).toBe(SpanStatusCode.UNSET);

    const logged = records().filter((r) => r.business_operation === 'charge');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({
      level: 'info',
      msg: 'business operation completed',
      business_unit: 'billing',
      outcome: 'success',
      user_id: 'u-42',
      tenant_id: 'acme',
      request_id: 'req-1',
      trace_id: span!.spanContext().traceId,
      span_id: span!.spanContext().spanId,
    });
    // Rounded to the microsecond, as the access record's duration is.
    const duration = logged[0]!.duration_ms as number;
    expect(Math.round(duration * 1000) / 1000).toBe(duration);

    const body = await scrape();
    expect(sampleValue(body, 'business_operations_total', CHARGE_SUCCESS)).toBe(1);
    expect(sampleValue(body, 'business_operation_duration_seconds_count', CHARGE_SUCCESS)).toBe(1);
    expect(body).not.toContain('u-42');
    expect(body).not.toContain('acme');
    expect(promtoolCheck((await sextant.metrics.render()).body)).toEqual({ status: 0, problems: '' });
  });

  it('records an async failure and passes the same rejection on', async () => {
    const { business, spans, records, scrape } = harness();
    const billing = business.unit('billing');
    const error = new TypeError('card declined');
    const pending = asUser(() =>
      billing.operation('charge', async () => {
        await Promise.resolve();
        throw error;
      }),
    );
    await expect(pending).rejects.toBe(error);
    await new Promise((resolve) => setImmediate(resolve));

    const span = spans()[0]!;
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'card declined' });
    expect(span.attributes).toMatchObject({
      'business.outcome': 'failure',
      'error.type': 'TypeError',
      'enduser.id': 'u-42',
    });
    expect(records().find((r) => r.business_operation === 'charge')).toMatchObject({
      level: 'error',
      msg: 'business operation failed',
      outcome: 'failure',
      user_id: 'u-42',
      err: { message: 'card declined' },
    });
    const body = await scrape();
    expect(sampleValue(body, 'business_operations_total', CHARGE_FAILURE)).toBe(1);
    expect(sampleValue(body, 'business_operation_duration_seconds_count', CHARGE_FAILURE)).toBe(1);
    expect(sampleValue(body, 'business_operations_total', CHARGE_SUCCESS)).toBe(undefined);
  });

  it('records a sync throw as a failure and rethrows it', async () => {
    const { business, scrape, spans } = harness();
    const billing = business.unit('billing');
    expect(() =>
      billing.operation('charge', () => {
        throw new Error('ledger locked');
      }),
    ).toThrow('ledger locked');
    expect(spans()[0]!.attributes['business.outcome']).toBe('failure');
    expect(sampleValue(await scrape(), 'business_operations_total', CHARGE_FAILURE)).toBe(1);
  });

  it("ends the operation as a failure when a thenable's then() throws, and rethrows that error", async () => {
    const { business, scrape, spans, records } = harness();
    const billing = business.unit('billing');
    const error = new Error('query builder broken');
    expect(() =>
      billing.operation('charge', () => ({
        // biome-ignore lint/suspicious/noThenProperty: a broken thenable is the case under test
        then() {
          throw error;
        },
      })),
    ).toThrow(error);
    // One that settles and then throws still ends once, as what happened first.
    expect(() =>
      billing.operation('charge', () => ({
        // biome-ignore lint/suspicious/noThenProperty: a broken thenable is the case under test
        then(onFulfilled: (value: number) => void) {
          onFulfilled(1);
          throw error;
        },
      })),
    ).toThrow(error);
    const ended = spans();
    expect(ended).toHaveLength(2);
    expect(ended[0]!.attributes['business.outcome']).toBe('failure');
    expect(ended[0]!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'query builder broken' });
    expect(ended[1]!.attributes['business.outcome']).toBe('success');
    const body = await scrape();
    expect(sampleValue(body, 'business_operations_total', CHARGE_FAILURE)).toBe(1);
    expect(sampleValue(body, 'business_operations_total', CHARGE_SUCCESS)).toBe(1);
    expect(records().filter((r) => r.business_operation === 'charge')).toHaveLength(2);
  });

  it('reads the user named during the operation, and leaves ids out when there is no request', async () => {
    const { business, spans } = harness();
    const auth = business.unit('auth');
    await runWithRequestId('req-2', () => auth.operation('login', async () => setUser('u-7')));
    auth.operation('ping', () => undefined);
    const [login, ping] = spans();
    expect(login!.attributes['enduser.id']).toBe('u-7');
    expect(ping!.attributes).not.toHaveProperty('enduser.id');
    expect(ping!.attributes).not.toHaveProperty('tenant.id');
  });

  it('refuses a unit name that cannot be a label and part of a metric name', () => {
    const { business } = harness();
    expect(() => business.unit('Billing Dept')).toThrow(SextantConfigError);
    expect(() => business.unit('Billing Dept')).toThrow(/business unit name "Billing Dept" is invalid/);
  });
});

describe('business events', () => {
  it('counts the event and logs one business-event record', async () => {
    const { business, records, scrape } = harness();
    const billing = business.unit('billing');
    asUser(() => billing.event('invoice.paid', { amount: 12 }));
    billing.event('invoice.paid');
    expect(
      sampleValue(await scrape(), 'business_events_total', {
        business_unit: 'billing',
        business_event: 'invoice.paid',
      }),
    ).toBe(2);
    const events = records().filter((r) => r.event === 'invoice.paid');
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({
      event_kind: 'business',
      business_unit: 'billing',
      amount: 12,
      user_id: 'u-42',
      tenant_id: 'acme',
    });
  });
});

describe('business KPIs', () => {
  it('reads each KPI at scrape time into its own gauge', async () => {
    const { business, scrape } = harness();
    const billing = business.unit('billing');
    let open = 17;
    billing.kpi({ name: 'open_invoices', help: 'Invoices not paid yet.', collect: () => open });
    billing.kpi({ name: 'revenue_ratio', help: 'Revenue against target.', collect: async () => 0.75 });
    let body = await scrape();
    expect(body).toContain('# HELP business_billing_open_invoices Invoices not paid yet.');
    expect(body).toContain('# TYPE business_billing_open_invoices gauge');
    expect(sampleValue(body, 'business_billing_open_invoices', {})).toBe(17);
    expect(sampleValue(body, 'business_billing_revenue_ratio', {})).toBe(0.75);
    open = 18;
    body = await scrape();
    expect(sampleValue(body, 'business_billing_open_invoices', {})).toBe(18);
    expect(promtoolCheck(body)).toEqual({ status: 0, problems: '' });
  });

  it('counts failing and hung KPIs without failing or hanging the scrape', async () => {
    const { business, scrape } = harness();
    const billing = business.unit('billing');
    billing.kpi({
      name: 'overdue_invoices',
      help: 'Invoices past due.',
      collect: () => {
        throw new Error('database down');
      },
    });
    billing.kpi({
      name: 'churn_ratio',
      help: 'Customers lost this month.',
      collect: () => new Promise<number>(() => undefined),
      timeoutMs: 20,
    });
    billing.kpi({ name: 'mood', help: 'Not a number.', collect: () => 'great' as unknown as number });
    const body = await scrape();
    for (const metric of ['business_billing_overdue_invoices', 'business_billing_churn_ratio']) {
      expect(sampleValue(body, 'sextant_metric_errors_total', { metric, reason: 'collect_failed' })).toBe(1);
    }
    expect(
      sampleValue(body, 'sextant_metric_errors_total', {
        metric: 'business_billing_mood',
        reason: 'invalid_value',
      }),
    ).toBe(1);
  });

  it('never starts a second call of a KPI whose first one is still running', async () => {
    const { business, scrape } = harness({ collectTimeoutMs: 50 });
    let calls = 0;
    let answer: (value: number) => void = () => undefined;
    business.unit('billing').kpi({
      name: 'open_invoices',
      help: 'Invoices not paid yet.',
      timeoutMs: 20,
      collect: () => {
        calls += 1;
        return new Promise<number>((resolve) => {
          answer = resolve;
        });
      },
    });
    let body = '';
    for (let i = 0; i < 5; i++) body = await scrape();
    expect(calls).toBe(1);
    expect(
      sampleValue(body, 'sextant_metric_errors_total', {
        metric: 'business_billing_open_invoices',
        reason: 'collect_failed',
      }),
    ).toBe(5);
    // The late answer is not lost: it sets the gauge, and only then does a scrape call again.
    answer(12);
    await new Promise((resolve) => setImmediate(resolve));
    body = await scrape();
    expect(calls).toBe(2);
    expect(sampleValue(body, 'business_billing_open_invoices', {})).toBe(12);
  });

  it('exports no sample for a KPI until it first answers', async () => {
    const { business, scrape } = harness();
    let failing = true;
    business.unit('billing').kpi({
      name: 'overdue_invoices',
      help: 'Invoices past due.',
      collect: () => {
        if (failing) throw new Error('database down');
        return 3;
      },
    });
    let body = await scrape();
    expect(body).toContain('# TYPE business_billing_overdue_invoices gauge');
    expect(sampleValue(body, 'business_billing_overdue_invoices', {})).toBe(undefined);
    expect(promtoolCheck(body)).toEqual({ status: 0, problems: '' });
    failing = false;
    body = await scrape();
    expect(sampleValue(body, 'business_billing_overdue_invoices', {})).toBe(3);
    // Afterwards, a failure keeps the last value.
    failing = true;
    expect(sampleValue(await scrape(), 'business_billing_overdue_invoices', {})).toBe(3);
  });

  it('refuses a KPI without a valid name', async () => {
    const { business, scrape } = harness();
    const billing = business.unit('billing');
    const unnamed = refusal(() => billing.kpi({ name: undefined as unknown as string, help: 'h', collect }));
    expect(unnamed.code).toBe(ERROR_CODES.INVALID_METRIC);
    expect(unnamed.message).toMatch(/KPI name undefined of business unit "billing" is invalid: expected/);
    expect(refusal(() => billing.kpi(undefined as unknown as BusinessKpi)).message).toMatch(
      /KPI definition undefined of business unit "billing" is invalid/,
    );
    expect(await scrape()).not.toContain('business_billing_undefined');
  });

  it('refuses a KPI declared twice, naming the KPI and its unit', async () => {
    const { business, scrape } = harness();
    const billing = business.unit('billing');
    billing.kpi({ name: 'open_invoices', help: 'Invoices not paid yet.', collect });
    const twice = refusal(() =>
      billing.kpi({ name: 'open_invoices', help: 'Invoices not paid yet.', collect: () => 2 }),
    );
    expect(twice.code).toBe(ERROR_CODES.DUPLICATE_METRIC);
    expect(twice.message).toMatch(/KPI "open_invoices" of business unit "billing" is declared twice/);
    // Another unit whose KPI would be the same gauge.
    const other = refusal(() =>
      business.unit('billing_open').kpi({ name: 'invoices', help: 'Invoices not paid yet.', collect }),
    );
    expect(other.message).toMatch(
      /KPI "invoices" of business unit "billing_open" is declared twice: its gauge business_billing_open_invoices is already declared by KPI "open_invoices" of business unit "billing"/,
    );
    expect(sampleValue(await scrape(), 'business_billing_open_invoices', {})).toBe(1);
  });

  it('refuses a KPI timeout out of 1..metrics.collectTimeoutMs, naming the range', async () => {
    const { business, scrape } = harness({ collectTimeoutMs: 5000 });
    const billing = business.unit('billing');
    for (const timeoutMs of [3_000_000_000, 5001, 0.5, Number.POSITIVE_INFINITY]) {
      const error = refusal(() => billing.kpi({ name: 'late_invoices', help: 'h', collect, timeoutMs }));
      expect(error.code).toBe(ERROR_CODES.INVALID_OPTION);
      expect(error.message).toMatch(
        /KPI "late_invoices" of business unit "billing" has timeoutMs .*: expected milliseconds from 1 to 5000 \(metrics\.collectTimeoutMs/,
      );
    }
    billing.kpi({ name: 'late_invoices', help: 'h', collect, timeoutMs: 5000 });
    expect(sampleValue(await scrape(), 'business_billing_late_invoices', {})).toBe(1);
  });

  it('refuses invalid KPI declarations at start-up', () => {
    const { business } = harness();
    const billing = business.unit('billing');
    const declare = (kpi: Parameters<typeof billing.kpi>[0]) => {
      try {
        billing.kpi(kpi);
      } catch (error) {
        return error as SextantConfigError;
      }
      throw new Error('expected a SextantConfigError');
    };
    expect(declare({ name: 'Open Invoices', help: 'h', collect: () => 1 }).code).toBe(
      ERROR_CODES.INVALID_METRIC,
    );
    expect(declare({ name: 'latency_ms', help: 'h', collect: () => 1 }).message).toMatch(
      /base unit "seconds"/,
    );
    expect(declare({ name: 'x', help: 'h', collect: 3 as unknown as () => number }).code).toBe(
      ERROR_CODES.INVALID_OPTION,
    );
    expect(declare({ name: 'y', help: 'h', collect: () => 1, timeoutMs: 0 }).message).toMatch(/timeoutMs 0/);
  });
});
