import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
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

  it('runs the shutdown hooks one at a time, the last registered first, so what opened first closes last', async () => {
    const { sextant } = quietSextant();
    const events: string[] = [];
    sextant.onShutdown(async () => {
      events.push('database closes');
    });
    sextant.onShutdown(async () => {
      events.push('worker closing');
      // The worker's last job still writes to the database while it closes.
      await new Promise((resolve) => setTimeout(resolve, 20));
      events.push('worker closed');
    });
    sextant.onShutdown(() => {
      events.push('server closes');
    });
    await sextant.shutdown();
    expect(events).toEqual(['server closes', 'worker closing', 'worker closed', 'database closes']);
  });

  it('gives the span flush a limit: with the collector unreachable, unsent spans are dropped (shutdown), not waited for', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const sextant = createSextant({
      serviceName: 'lifecycle-test',
      // Every batch to a refused port is retried until the OTLP timeout (10 s by default).
      tracing: { endpoint: `http://127.0.0.1:${port}` },
      metrics: { defaultMetrics: false },
      logs: { destination: { write: () => undefined } },
      shutdown: { timeoutMs: 100 },
      env: {},
    });
    sextant.errors.setWriter(() => undefined);
    for (let i = 0; i < 1500; i++) sextant.tracer.startSpan(`span-${i}`).end();
    await sextant.shutdown();
    const stats = sextant.tracing.stats();
    expect(stats.ended).toBe(1500);
    expect(stats.exported).toBe(0);
    // Every span is accounted for when shutdown resolves, the batch that was being sent included.
    expect(stats.droppedByReason.shutdown + stats.droppedByReason.export_failed).toBe(1500);
    expect(stats.droppedByReason.shutdown).toBeGreaterThan(0);
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
