import { describe, expect, it } from 'vitest';
import { createSextant } from './sextant.ts';

function quietSextant(options: { timeoutMs?: number } = {}) {
  const reported: string[] = [];
  const sextant = createSextant({
    serviceName: 'lifecycle-test',
    tracing: { exporter: 'memory' },
    metrics: { defaultMetrics: false },
    logs: { destination: { write: () => undefined } },
    shutdown: { timeoutMs: options.timeoutMs ?? 5000 },
    env: {},
  });
  sextant.errors.setWriter(({ kind }) => void reported.push(kind));
  return { sextant, reported };
}

describe('shutdown', () => {
  it('flips readiness at once, stops intake, drains in-flight work, then closes and flushes, once', async () => {
    const { sextant, reported } = quietSextant();
    const events: string[] = [];
    const finishWork = sextant.inFlight.start();
    sextant.tracer.startSpan('before shutdown').end();
    sextant.onShutdownStart(() => {
      events.push(`start hook, in flight ${sextant.inFlight.count}`);
    });
    sextant.onShutdownStart(() => {
      throw new Error('intake would not stop');
    });
    sextant.onShutdown(() => {
      events.push(`end hook, in flight ${sextant.inFlight.count}`);
    });

    const first = sextant.shutdown();
    expect(sextant.shutdown()).toBe(first);
    expect((await sextant.health.readiness()).statusCode).toBe(503);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(events).toEqual(['start hook, in flight 1']);

    finishWork();
    await first;
    expect(events).toEqual(['start hook, in flight 1', 'end hook, in flight 0']);
    expect(sextant.tracing.finishedSpans().map((span) => span.name)).toEqual(['before shutdown']);
    expect(reported).toContain('shutdown_hook');
  });

  it('stops waiting for work that never ends after shutdown.timeoutMs, and still runs the hooks', async () => {
    const { sextant } = quietSextant({ timeoutMs: 50 });
    sextant.inFlight.start();
    let closed = false;
    sextant.onShutdown(() => {
      closed = true;
    });
    await sextant.shutdown();
    expect(closed).toBe(true);
    expect(sextant.inFlight.count).toBe(1);
  });
});
