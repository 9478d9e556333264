import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from './config.ts';
import { createHealth, type HealthCheckResult } from './health.ts';
import { createEventLoopCheck, createMemoryCheck, type MonitoredHealthCheck } from './health-checks.ts';
import { createInternalErrorSink } from './internal-errors.ts';

const opened: MonitoredHealthCheck[] = [];

function eventLoopCheck(thresholdMs: number): MonitoredHealthCheck {
  const check = createEventLoopCheck(thresholdMs);
  opened.push(check);
  return check;
}

/** Lets the histogram take a few samples (one every 20 ms). */
function letTheLoopTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 150));
}

function run(check: { check: (signal: AbortSignal) => unknown }): HealthCheckResult {
  return check.check(new AbortController().signal) as HealthCheckResult;
}

afterEach(() => {
  for (const check of opened.splice(0)) check.close();
});

describe('event_loop', () => {
  it('reports the delay in milliseconds, without its own 20 ms sampling interval', async () => {
    const check = eventLoopCheck(10);
    expect(check).toMatchObject({ name: 'event_loop', critical: false });
    // Counted as lag, the interval alone would put every window over 10 ms. A busy machine can
    // still delay one window past it, so an idle loop gets a few windows to show it.
    let result: HealthCheckResult = { status: 'down' };
    for (let attempt = 0; attempt < 5 && result.status === 'down'; attempt++) {
      await letTheLoopTurn();
      result = run(check);
    }

    expect(result.status).toBe('up');
    const details = result.details as Record<string, number>;
    expect(details.samples).toBeGreaterThan(0);
    expect(details.p99_ms).toBeGreaterThanOrEqual(0);
    expect(details.p99_ms).toBeLessThan(10);
    expect(details.max_ms).toBeGreaterThanOrEqual(details.p99_ms as number);
    expect(details.mean_ms).toBeGreaterThanOrEqual(0);
    expect(details.mean_ms).toBeLessThanOrEqual(details.max_ms as number);
    expect(details.threshold_ms).toBe(10);
  });

  it('goes down with a reason when the loop stalls past the threshold', async () => {
    const check = eventLoopCheck(100);
    // A delay is measured from the previous sample, so the loop turns first to take one.
    await letTheLoopTurn();
    const stallUntil = performance.now() + 300;
    while (performance.now() < stallUntil) {}
    await letTheLoopTurn();

    const result = run(check);

    expect(result.status).toBe('down');
    expect(result.reason).toMatch(/^event loop delay p99 \d+(\.\d+)? ms is over 100 ms$/);
    const details = result.details as Record<string, number>;
    // The 300 ms stall less the interval the timer was due anyway, give or take the timer's slack.
    expect(details.max_ms).toBeGreaterThanOrEqual(250);
    expect(details.p99_ms).toBeGreaterThan(100);
  });

  it('reads the delay since the previous read', async () => {
    const check = eventLoopCheck(1000);
    await letTheLoopTurn();
    run(check);
    const immediatelyAfter = run(check);
    expect(immediatelyAfter).toEqual({ status: 'up', details: { samples: 0, threshold_ms: 1000 } });
  });

  it('stops sampling once closed', async () => {
    const check = eventLoopCheck(1000);
    check.close();
    run(check);
    await letTheLoopTurn();
    expect((run(check).details as Record<string, number>).samples).toBe(0);
  });

  it('is stopped by health.close()', async () => {
    const { config } = resolveConfig({ env: {} });
    const health = createHealth(config, createInternalErrorSink({ intervalMs: 60_000 }), {
      name: 'svc',
      version: undefined,
    });
    health.close();
    await health.detailed();
    await letTheLoopTurn();
    const { body } = await health.detailed();
    expect(body.checks?.find((check) => check.name === 'event_loop')?.details).toMatchObject({ samples: 0 });
  });
});

describe('memory', () => {
  it('reports heap used against the heap limit and stays up under the threshold', () => {
    const check = createMemoryCheck(1);
    expect(check).toMatchObject({ name: 'memory', critical: false });

    const result = run(check);

    expect(result.status).toBe('up');
    const details = result.details as Record<string, number>;
    expect(details.heap_used_bytes).toBeGreaterThan(0);
    expect(details.heap_limit_bytes).toBeGreaterThan(details.heap_used_bytes as number);
    expect(details.heap_used_ratio).toBeGreaterThan(0);
    expect(details.heap_used_ratio).toBeLessThan(1);
    expect(details.threshold_ratio).toBe(1);
  });

  it('goes down with a reason over the threshold', () => {
    const result = run(createMemoryCheck(0.000_001));
    expect(result.status).toBe('down');
    expect(result.reason).toMatch(/^heap used is [\d.]+ of its limit, over 0\.000001$/);
  });

  it('reads the thresholds from the configuration', async () => {
    const { config } = resolveConfig({
      env: {},
      health: { heapUsedRatioThreshold: 0.01, eventLoopLagThresholdMs: 1 },
    });
    const health = createHealth(config, createInternalErrorSink({ intervalMs: 60_000 }), {
      name: 'svc',
      version: undefined,
    });
    try {
      const { body } = await health.detailed();
      const details = (name: string) => body.checks?.find((check) => check.name === name)?.details;
      expect(details('memory')).toMatchObject({ threshold_ratio: 0.01 });
      expect(details('event_loop')).toMatchObject({ threshold_ms: 1 });
    } finally {
      health.close();
    }
  });
});
