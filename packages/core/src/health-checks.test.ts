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
  it('reports the delay percentiles in milliseconds and stays up under the threshold', async () => {
    const check = eventLoopCheck(1000);
    expect(check).toMatchObject({ name: 'event_loop', critical: false });
    await letTheLoopTurn();

    const result = run(check);

    expect(result.status).toBe('up');
    const details = result.details as Record<string, number>;
    expect(details.samples).toBeGreaterThan(0);
    // The sampling interval itself is 20 ms, so the delay between samples is at least that.
    expect(details.p99_ms).toBeGreaterThanOrEqual(19);
    expect(details.max_ms).toBeGreaterThanOrEqual(details.p99_ms as number);
    expect(details.mean_ms).toBeGreaterThan(0);
    expect(details.threshold_ms).toBe(1000);
  });

  it('goes down with a reason over the threshold', async () => {
    const check = eventLoopCheck(1);
    // On a busy machine a window can pass without a sample; a stall guarantees a long delay.
    let result: HealthCheckResult = { status: 'up' };
    for (let attempt = 0; attempt < 20 && result.status === 'up'; attempt++) {
      const stallUntil = Date.now() + 30;
      while (Date.now() < stallUntil) {}
      await letTheLoopTurn();
      result = run(check);
    }

    expect(result.status).toBe('down');
    expect(result.reason).toMatch(/^event loop delay p99 \d+(\.\d+)? ms is over 1 ms$/);
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
