import { createHook } from 'node:async_hooks';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { resolveConfig, type SextantHealthOptions } from './config.ts';
import { ERROR_CODES, SextantConfigError } from './errors.ts';
import {
  type CheckReport,
  createHealth,
  down,
  type Health,
  type HealthCheck,
  type HealthCheckResult,
  up,
} from './health.ts';
import { createInternalErrorSink } from './internal-errors.ts';

// Every timer health.ts creates, unref'ed or not, seen through async_hooks: none may outlive a test.
const liveHealthTimers = new Set<number>();
const timerHook = createHook({
  init(asyncId, type) {
    if (type === 'Timeout' && new Error().stack?.includes('/src/health.ts:')) liveHealthTimers.add(asyncId);
  },
  destroy(asyncId) {
    liveHealthTimers.delete(asyncId);
  },
});

const created: Health[] = [];

function makeHealth(health: SextantHealthOptions = {}): Health {
  const { config } = resolveConfig({ env: {}, health });
  const sink = createInternalErrorSink({ intervalMs: 60_000, writer: () => {} });
  const instance = createHealth(config, sink, { name: 'orders-api', version: '1.2.3' });
  created.push(instance);
  return instance;
}

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function reportOf(checks: CheckReport[] | undefined, name: string): CheckReport {
  const report = checks?.find((check) => check.name === name);
  if (!report) throw new Error(`no report for ${name}`);
  return report;
}

async function runOne(check: HealthCheck['check']): Promise<CheckReport> {
  const health = makeHealth();
  health.register({ name: 'subject', check });
  const { body } = await health.readiness();
  return reportOf(body.checks, 'subject');
}

beforeEach(() => {
  liveHealthTimers.clear();
  timerHook.enable();
});

afterEach(async () => {
  for (const health of created.splice(0)) health.close();
  // Destroy hooks run from the immediate queue.
  await new Promise((resolve) => setImmediate(resolve));
  timerHook.disable();
  expect(liveHealthTimers.size).toBe(0);
});

describe('register', () => {
  function registrationError(check: unknown): SextantConfigError {
    const health = makeHealth();
    health.register({ name: 'db', check: () => {} });
    try {
      health.register(check as HealthCheck);
    } catch (error) {
      expect(error).toBeInstanceOf(SextantConfigError);
      expect((error as SextantConfigError).code).toBe(ERROR_CODES.INVALID_HEALTH_CHECK);
      return error as SextantConfigError;
    }
    throw new Error('register did not throw');
  }

  it.each([
    ['Database', '"Database"'],
    ['', '""'],
    ['-db', '"-db"'],
    ['db cache', '"db cache"'],
    ['a'.repeat(65), `"${'a'.repeat(65)}"`],
    [42, '42'],
  ])('refuses the name %j', (name, shown) => {
    const error = registrationError({ name, check: () => {} });
    expect(error.message).toContain(`health check name ${shown} is invalid`);
    expect(error.message).toContain('a-z, 0-9');
  });

  it('accepts names at the edges of the pattern', () => {
    const health = makeHealth();
    expect(() => health.register({ name: 'a'.repeat(64), check: () => {} })).not.toThrow();
    expect(() => health.register({ name: '0db.primary_pool-1', check: () => {} })).not.toThrow();
  });

  it('refuses a duplicate name, including a built-in one', () => {
    expect(registrationError({ name: 'db', check: () => {} }).message).toContain(
      '"db" is already registered',
    );
    expect(registrationError({ name: 'event_loop', check: () => {} }).message).toContain(
      '"event_loop" is already registered',
    );
  });

  it.each([0, -5, 1.5, 600_001, Number.NaN, '100'])('refuses timeoutMs %j', (timeoutMs) => {
    const error = registrationError({ name: 'cache', check: () => {}, timeoutMs });
    expect(error.message).toMatch(
      /health check "cache": timeoutMs is .+: expected an integer from 1 to 600000/,
    );
  });

  it('refuses a check that is not a function, a non-boolean critical and a non-object', () => {
    expect(registrationError({ name: 'cache', check: 'ping' }).message).toContain(
      'health check "cache": check is "ping": expected a function',
    );
    expect(registrationError({ name: 'cache', check: () => {}, critical: 'yes' }).message).toContain(
      'health check "cache": critical is "yes": expected a boolean',
    );
    expect(registrationError(null).message).toContain('health check null is invalid: expected an object');
  });

  it('returns an unregister function that removes only its own registration', async () => {
    const health = makeHealth();
    const unregisterFirst = health.register({ name: 'db', check: () => down('first') });
    unregisterFirst();
    unregisterFirst();
    expect((await health.readiness()).statusCode).toBe(200);

    health.register({ name: 'db', check: () => down('second') });
    unregisterFirst();
    const { statusCode, body } = await health.readiness();
    expect(statusCode).toBe(503);
    expect(reportOf(body.checks, 'db').reason).toBe('second');
  });
});

describe('running checks', () => {
  it('runs checks in parallel: each starts before any finishes', async () => {
    const health = makeHealth();
    const events: string[] = [];
    const bothStarted = deferred();
    let started = 0;
    // Each check waits for the other to start, so run one after the other they would both time out.
    const barrierCheck = (name: string) => async () => {
      events.push(`${name} started`);
      started += 1;
      if (started === 2) bothStarted.resolve();
      await bothStarted.promise;
      events.push(`${name} finished`);
    };
    health.register({ name: 'db', check: barrierCheck('db'), timeoutMs: 5_000 });
    health.register({ name: 'cache', check: barrierCheck('cache'), timeoutMs: 5_000 });

    const { statusCode, body } = await health.readiness();

    expect(statusCode).toBe(200);
    expect(body.checks?.map((check) => check.status)).toEqual(['up', 'up']);
    expect(events.slice(0, 2).sort()).toEqual(['cache started', 'db started']);
    expect(events.slice(2).sort()).toEqual(['cache finished', 'db finished']);
  });

  it('times out a hung check: down with a reason, and its signal aborted', async () => {
    const health = makeHealth();
    let seenSignal: AbortSignal | undefined;
    health.register({
      name: 'db',
      timeoutMs: 30,
      check: (signal) => {
        seenSignal = signal;
        return new Promise<void>(() => {});
      },
    });

    const { statusCode, body } = await health.readiness();

    expect(statusCode).toBe(503);
    expect(reportOf(body.checks, 'db')).toMatchObject({ status: 'down', reason: 'timed out after 30 ms' });
    expect(seenSignal?.aborted).toBe(true);
    expect(seenSignal?.reason).toMatchObject({ name: 'TimeoutError' });
  });

  it('calls a check that outlived its timeout once, however many probes come while it hangs', async () => {
    const health = makeHealth();
    let calls = 0;
    // A client call that ignores the signal, like Prisma's query against a hung database.
    health.register({
      name: 'db',
      timeoutMs: 20,
      check: () => {
        calls += 1;
        return new Promise<void>(() => {});
      },
    });

    const first = await health.readiness();
    expect(reportOf(first.body.checks, 'db').reason).toBe('timed out after 20 ms');
    const later: CheckReport[] = [];
    for (let probe = 0; probe < 9; probe++) {
      // Answered at once, before any timer could fire: the probe does not wait out a timeout again.
      const answer = await Promise.race([
        health.readiness(),
        new Promise<'waited'>((resolve) => setImmediate(resolve, 'waited')),
      ]);
      if (answer === 'waited') throw new Error(`probe ${probe} waited`);
      expect(answer.statusCode).toBe(503);
      later.push(reportOf(answer.body.checks, 'db'));
    }

    expect(calls).toBe(1);
    for (const report of later) {
      expect(report.status).toBe('down');
      expect(report.reason).toMatch(
        /^still running after \d+ ms \(timeout 20 ms\); not called again until it settles or 30 s pass$/,
      );
    }
  });

  it('calls the check again once its late call settles', async () => {
    const health = makeHealth();
    const calls: ReturnType<typeof deferred<HealthCheckResult | undefined>>[] = [];
    health.register({
      name: 'db',
      timeoutMs: 20,
      check: () => {
        const call = deferred<HealthCheckResult | undefined>();
        calls.push(call);
        return call.promise;
      },
    });

    expect(reportOf((await health.readiness()).body.checks, 'db').reason).toBe('timed out after 20 ms');
    expect(reportOf((await health.detailed()).body.checks, 'db').reason).toMatch(/^still running/);
    expect(calls).toHaveLength(1);

    // The late answer counts for nothing: it came after the timeout.
    calls[0]?.resolve(undefined);
    await new Promise((resolve) => setImmediate(resolve));
    const probe = health.readiness();
    expect(calls).toHaveLength(2);
    calls[1]?.resolve(up());
    expect((await probe).statusCode).toBe(200);
  });

  it('gives up on a call that never settles after 30 s and calls the check again, so readiness can recover', async () => {
    const health = makeHealth();
    let calls = 0;
    health.register({
      name: 'db',
      timeoutMs: 20,
      check: () => {
        calls += 1;
        // The first call hangs for good (a connection with no timeout); the database is back for the next.
        return calls === 1 ? new Promise<void>(() => {}) : up();
      },
    });
    expect((await health.readiness()).statusCode).toBe(503);
    expect((await health.readiness()).statusCode).toBe(503);
    expect(calls).toBe(1);
    const now = performance.now();
    const clock = vi.spyOn(performance, 'now').mockImplementation(() => now + 30_001);
    try {
      expect((await health.readiness()).statusCode).toBe(200);
      expect(calls).toBe(2);
    } finally {
      clock.mockRestore();
    }
  });

  it('uses health.checkTimeoutMs when a check sets no timeout', async () => {
    const health = makeHealth({ checkTimeoutMs: 25 });
    health.register({
      name: 'db',
      check: (signal) => new Promise((_, reject) => signal.addEventListener('abort', reject)),
    });
    const { body } = await health.readiness();
    expect(reportOf(body.checks, 'db').reason).toBe('timed out after 25 ms');
  });

  it('shares one in-flight run of a check between concurrent probes', async () => {
    const health = makeHealth();
    let calls = 0;
    const release = deferred();
    health.register({
      name: 'db',
      check: async () => {
        calls += 1;
        await release.promise;
        return up({ pool: 4 });
      },
    });

    const probes = Promise.all([health.readiness(), health.readiness(), health.detailed()]);
    release.resolve();
    const [first, second, detailed] = await probes;

    expect(calls).toBe(1);
    expect(reportOf(first.body.checks, 'db')).toMatchObject({ status: 'up', details: { pool: 4 } });
    expect(reportOf(second.body.checks, 'db')).toBe(reportOf(first.body.checks, 'db'));
    expect(reportOf(detailed.body.checks, 'db')).toBe(reportOf(first.body.checks, 'db'));

    await health.readiness();
    expect(calls).toBe(2);
  });

  it('reports the duration of each check', async () => {
    const report = await runOne(() => new Promise<void>((resolve) => setTimeout(resolve, 20)));
    expect(report.duration_ms).toBeGreaterThan(0);
  });

  it('does not hold the process open while a check runs', async () => {
    const health = makeHealth();
    const release = deferred();
    health.register({ name: 'db', check: () => release.promise, timeoutMs: 60_000 });
    const refedTimersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const probe = health.readiness();
    const refedTimersDuring = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    release.resolve();
    await probe;
    expect(refedTimersDuring).toBe(refedTimersBefore);
  });
});

describe('results are values', () => {
  it('counts nothing returned as up and takes up() and down() as given', async () => {
    expect(await runOne(() => {})).toMatchObject({ status: 'up', critical: true });
    expect(await runOne(async () => up({ latency_ms: 3 }))).toMatchObject({
      status: 'up',
      details: { latency_ms: 3 },
    });
    expect(await runOne(() => down('replica lag', { lag_s: 40 }))).toMatchObject({
      status: 'down',
      reason: 'replica lag',
      details: { lag_s: 40 },
    });
  });

  it('turns a synchronous throw into down with the message and no stack', async () => {
    const report = await runOne(() => {
      throw new Error('ECONNREFUSED 127.0.0.1:5432');
    });
    expect(report).toMatchObject({ status: 'down', reason: 'ECONNREFUSED 127.0.0.1:5432' });
    expect(JSON.stringify(report)).not.toContain('health.test.ts');
  });

  it('turns a rejection into down with the message', async () => {
    const report = await runOne(() => Promise.reject(new TypeError('pool closed')));
    expect(report).toMatchObject({ status: 'down', reason: 'pool closed' });
  });

  it('describes thrown values that are not errors', async () => {
    expect((await runOne(() => Promise.reject('no route'))).reason).toBe('no route');
    expect((await runOne(() => Promise.reject({ code: 7 }))).reason).toBe('threw {"code":7}');
    expect((await runOne(() => Promise.reject(new Error('')))).reason).toBe('Error');
  });

  it('bounds long reasons', async () => {
    const report = await runOne(() => down('x'.repeat(500)));
    expect(report.reason).toHaveLength(200);
    expect(report.reason?.endsWith('...')).toBe(true);
  });

  it('handles garbage results without throwing', async () => {
    const garbage = (value: unknown) => runOne(() => value as undefined);
    expect(await garbage(null)).toMatchObject({ status: 'up' });
    expect(await garbage(42)).toMatchObject({
      status: 'down',
      reason: expect.stringContaining('returned number'),
    });
    expect(await garbage({ status: 'maybe' })).toMatchObject({
      status: 'down',
      reason: 'returned status "maybe": expected "up" or "down"',
    });
    expect(await garbage({ status: 'down' })).toMatchObject({
      status: 'down',
      reason: 'reported down without a reason',
    });
    const upWithBadDetails = await garbage({ status: 'up', details: 'fine', reason: 'ignored' });
    expect(upWithBadDetails).toEqual({
      name: 'subject',
      status: 'up',
      critical: true,
      duration_ms: expect.any(Number),
    });
    const throwingGetter = {
      get status(): string {
        throw new Error('getter exploded');
      },
    };
    expect(await garbage(throwingGetter)).toMatchObject({ status: 'down', reason: 'getter exploded' });
  });
});

describe('readiness and detailed', () => {
  it('answers readiness from critical checks only; detailed shows all', async () => {
    const health = makeHealth();
    health.register({ name: 'search', critical: false, check: () => down('index rebuilding') });
    health.register({ name: 'db', check: () => up() });

    const ready = await health.readiness();
    expect(ready.statusCode).toBe(200);
    expect(ready.body).toMatchObject({ status: 'ok' });
    expect(ready.body.checks?.map((check) => check.name)).toEqual(['db']);

    const detailed = await health.detailed();
    expect(detailed.statusCode).toBe(200);
    expect(reportOf(detailed.body.checks, 'search')).toMatchObject({
      status: 'down',
      critical: false,
      reason: 'index rebuilding',
    });
  });

  it('answers 503 unavailable when a critical check is down', async () => {
    const health = makeHealth();
    health.register({ name: 'db', check: () => down('connection refused') });

    const ready = await health.readiness();
    expect(ready.statusCode).toBe(503);
    expect(ready.body.status).toBe('unavailable');
    expect(reportOf(ready.body.checks, 'db').reason).toBe('connection refused');

    const detailed = await health.detailed();
    expect(detailed.statusCode).toBe(503);
    expect(detailed.body.status).toBe('unavailable');
  });

  it('answers liveness 200 without running checks', () => {
    const health = makeHealth();
    let calls = 0;
    health.register({
      name: 'db',
      check: () => {
        calls += 1;
      },
    });
    expect(health.liveness()).toEqual({ statusCode: 200, body: { status: 'ok' } });
    expect(calls).toBe(0);
  });

  it('reports service, version, uptime, memory and the built-in checks in detailed', async () => {
    const { statusCode, body } = await makeHealth().detailed();
    expect(statusCode).toBe(200);
    expect(body).toMatchObject({ status: 'ok', service: 'orders-api', version: '1.2.3' });
    expect(body.uptime_seconds).toBeGreaterThan(0);
    expect(body.memory?.rss).toBeGreaterThan(0);
    expect(body.memory?.heap_used).toBeGreaterThan(0);
    expect(body.memory?.heap_total).toBeGreaterThanOrEqual(
      body.memory?.heap_used ?? Number.POSITIVE_INFINITY,
    );
    expect(body.memory?.external).toBeGreaterThanOrEqual(0);
    expect(body.checks?.map(({ name, critical }) => ({ name, critical }))).toEqual([
      { name: 'event_loop', critical: false },
      { name: 'memory', critical: false },
    ]);
  });
});

describe('shutting down', () => {
  it('answers readiness 503 at once, without running checks', async () => {
    const health = makeHealth();
    let calls = 0;
    health.register({
      name: 'db',
      check: () => {
        calls += 1;
      },
    });
    expect(health.shuttingDown).toBe(false);

    health.markShuttingDown();

    expect(health.shuttingDown).toBe(true);
    expect(await health.readiness()).toEqual({ statusCode: 503, body: { status: 'shutting_down' } });
    expect(calls).toBe(0);
    expect(health.liveness().statusCode).toBe(200);
    const detailed = await health.detailed();
    expect(detailed.statusCode).toBe(503);
    expect(detailed.body.status).toBe('shutting_down');
  });

  it('answers 503 when shutdown begins while the checks run', async () => {
    const health = makeHealth();
    const release = deferred();
    health.register({ name: 'db', check: () => release.promise });
    const probe = health.readiness();
    health.markShuttingDown();
    release.resolve();
    expect((await probe).body.status).toBe('shutting_down');
  });

  it('closes twice without throwing', () => {
    const health = makeHealth();
    health.close();
    expect(() => health.close()).not.toThrow();
  });
});

describe('process lifetime', () => {
  it('lets the process exit with health running, a hung check timed out and close() never called', async () => {
    const sourceDir = fileURLToPath(new URL('.', import.meta.url));
    const script = `
      const { resolveConfig } = await import(${JSON.stringify(`${sourceDir}config.ts`)});
      const { createInternalErrorSink } = await import(${JSON.stringify(`${sourceDir}internal-errors.ts`)});
      const { createHealth } = await import(${JSON.stringify(`${sourceDir}health.ts`)});
      const { config } = resolveConfig({ env: {} });
      const health = createHealth(config, createInternalErrorSink({ intervalMs: 1000 }), { name: 'x', version: undefined });
      health.register({ name: 'hung', timeoutMs: 20, check: () => new Promise(() => {}) });
      health.register({ name: 'slow', timeoutMs: 60000, check: () => new Promise((r) => setTimeout(r, 5)) });
      // Stands for the server that keeps a real service alive; once it closes, the process must be free to exit.
      const server = setInterval(() => {}, 1000);
      const { body } = await health.detailed();
      clearInterval(server);
      console.log(body.checks.map((c) => c.name + '=' + c.status).join(' '));
    `;
    const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      // The timeout only guards against a hang; the assertion is on how the process ended.
      execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 15_000 }, (error, out) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout: out });
      });
    });
    expect(stdout.trim()).toBe('event_loop=up memory=up hung=down slow=up');
    expect(code).toBe(0);
  });
});
