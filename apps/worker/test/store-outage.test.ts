/** How the worker tells a database outage from a bad job, and pauses and resumes for it. */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { trace } from '@opentelemetry/api';
import { createSextant, type Sextant } from '@sextant/core';
import { createJobStore, isStoreUnavailable, type JobStore, jobStoreReachable } from 'job-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STORE_DEFER_BASE_MS, STORE_DEFER_MAX_MS, storeDeferDelay } from '../src/processor.ts';
import { createStoreOutageGate } from '../src/store-outage.ts';

function testSextant(): Sextant {
  return createSextant({
    serviceName: 'store-outage-test',
    env: {},
    tracing: { exporter: 'memory' },
    logs: { level: 'silent' },
    metrics: { defaultMetrics: false },
  });
}

describe('isStoreUnavailable', () => {
  const file = join(tmpdir(), `sextant-store-outage-${randomBytes(5).toString('hex')}.db`);
  const sextant = testSextant();
  let store: JobStore;

  beforeAll(async () => {
    store = await createJobStore(sextant, { databaseUrl: `file:${file}` });
  });
  afterAll(async () => {
    await sextant.shutdown();
    for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${file}${suffix}`, { force: true });
  });

  it('is true for a PostgreSQL server that refuses connections', async () => {
    // Nothing listens on port 1: the store cannot even migrate.
    const error = await createJobStore(testSextant(), {
      databaseUrl: 'postgresql://postgres@127.0.0.1:1/postgres',
    }).catch((caught: unknown) => caught);
    expect(isStoreUnavailable(error)).toBe(true);
  });

  it('is true for a PostgreSQL server that accepts connections and never answers', async () => {
    // A hung host: TCP accepts, the server says nothing. Without the pool's connect timeout the
    // attempt waits forever (the connection is up, so TCP never gives up), past this test's timeout.
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    try {
      const error = await createJobStore(testSextant(), {
        databaseUrl: `postgresql://postgres@127.0.0.1:${port}/postgres`,
      }).catch((caught: unknown) => caught);
      expect(isStoreUnavailable(error)).toBe(true);
    } finally {
      silent.close();
      silent.unref();
    }
  }, 30_000);

  it.each([
    ['P1001, not reachable', { code: 'P1001', message: "Can't reach database server at 127.0.0.1:5432" }],
    [
      'a 57P01 shutdown through the driver adapter',
      { code: 'P2010', meta: { driverAdapterError: { cause: { kind: 'postgres', code: '57P01' } } } },
    ],
    [
      'a closed connection, as a cause',
      new Error('update failed', { cause: new Error('Connection terminated unexpectedly') }),
    ],
  ])('is true for %s', (_label, error) => {
    expect(isStoreUnavailable(error)).toBe(true);
  });

  it('is false for a missing row, a constraint violation and an ordinary error', async () => {
    const missing = await store.job
      .update({ where: { id: 'no-such-job' }, data: { status: 'running' } })
      .catch((caught: unknown) => caught);
    expect((missing as { code?: string }).code).toBe('P2025');
    expect(isStoreUnavailable(missing)).toBe(false);
    await store.job.create({ data: { id: 'twice', status: 'queued', problem: {} } });
    const duplicate = await store.job
      .create({ data: { id: 'twice', status: 'queued', problem: {} } })
      .catch((caught: unknown) => caught);
    expect(isStoreUnavailable(duplicate)).toBe(false);
    expect(isStoreUnavailable(new Error('the solver failed'))).toBe(false);
    expect(isStoreUnavailable(undefined)).toBe(false);
  });

  it('probes a reachable store as reachable', async () => {
    expect(await jobStoreReachable(store)).toBe(true);
  });
});

describe('the store-outage gate', () => {
  it('pauses the worker once per outage and resumes it once the probe passes', async () => {
    const calls: string[] = [];
    let reachable = false;
    const gate = createStoreOutageGate(testSextant(), {
      probe: async () => reachable,
      probeIntervalMs: 20,
    });
    gate.attach({
      pause: async (doNotWaitActive) => {
        calls.push(`pause(${doNotWaitActive})`);
      },
      resume: async () => {
        calls.push('resume');
      },
    });
    gate.trip(new Error("Can't reach database server"), 'a');
    gate.trip(new Error("Can't reach database server"), 'b');
    await sleep(100);
    expect(gate.down).toBe(true);
    expect(calls).toEqual(['pause(true)']);
    reachable = true;
    await sleep(100);
    expect(gate.down).toBe(false);
    expect(calls).toEqual(['pause(true)', 'resume']);
    gate.close();
  });

  it("probes and resumes outside the job that tripped it: the worker's loop does not inherit that job's trace", async () => {
    const sextant = testSextant();
    const seen: Array<string | undefined> = [];
    let reachable = false;
    const gate = createStoreOutageGate(sextant, {
      probe: async () => {
        seen.push(trace.getActiveSpan()?.spanContext().traceId);
        return reachable;
      },
      probeIntervalMs: 20,
    });
    gate.attach({
      pause: async () => undefined,
      resume: async () => {
        // BullMQ's resume restarts the worker's loop in the context it is called in.
        seen.push(trace.getActiveSpan()?.spanContext().traceId);
      },
    });
    // What the processor does when an attempt finds the database away.
    sextant.tracer.startActiveSpan('process quantum-jobs', (attempt) => {
      gate.trip(new Error("Can't reach database server"), 'a');
      attempt.end();
    });
    await sleep(60);
    reachable = true;
    await sleep(60);
    gate.close();
    await sextant.shutdown();
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen.every((traceId) => traceId === undefined)).toBe(true);
  });

  it('never resumes after close', async () => {
    const calls: string[] = [];
    const gate = createStoreOutageGate(testSextant(), { probe: async () => true, probeIntervalMs: 20 });
    gate.attach({
      pause: async () => {
        calls.push('pause');
      },
      resume: async () => {
        calls.push('resume');
      },
    });
    gate.trip(new Error('down'), 'a');
    gate.close();
    await sleep(100);
    expect(calls).toEqual(['pause']);
  });
});

describe('storeDeferDelay', () => {
  it('doubles with each deferral of the job, up to the maximum', () => {
    expect(storeDeferDelay({ attemptsStarted: 1, attemptsMade: 0 })).toBe(STORE_DEFER_BASE_MS);
    expect(storeDeferDelay({ attemptsStarted: 3, attemptsMade: 0 })).toBe(STORE_DEFER_BASE_MS * 4);
    // Counted attempts (ordinary failures) do not add to it.
    expect(storeDeferDelay({ attemptsStarted: 3, attemptsMade: 2 })).toBe(STORE_DEFER_BASE_MS);
    expect(storeDeferDelay({ attemptsStarted: 50, attemptsMade: 0 })).toBe(STORE_DEFER_MAX_MS);
  });
});
