/**
 * A PostgreSQL outage end to end: express-api and the worker as their own processes against a
 * private PostgreSQL server (never the shared one), which the test stops and starts again.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AppProcess, startApp } from '@sextant/testing/app-process';
import { Queue } from 'bullmq';
import { JOB_QUEUE_NAME } from 'job-store';
import { createTestBackends } from 'job-store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_CWD, expectRunning, SOLVER_ENV, SQUARE, WORKER_CWD } from './fixtures.ts';

const PG_COMMAND_TIMEOUT_MS = 20_000;
const DEFERRED_MSG =
  'database unreachable: jobs are deferred without spending an attempt, and no new job is taken until it answers';
const RESUMED_MSG = 'database reachable again, taking jobs';
/** The API's answer while the database is away, in the shape of all its error answers. */
const STORE_UNAVAILABLE = {
  statusCode: 503,
  error: 'Service Unavailable',
  message: 'the job store is unavailable, try again later',
};

function postgresBin(): string {
  const versions = readdirSync('/usr/lib/postgresql')
    .filter((name) => existsSync(join('/usr/lib/postgresql', name, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error('no PostgreSQL binaries under /usr/lib/postgresql/*/bin');
  return join('/usr/lib/postgresql', versions[0]!, 'bin');
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A throwaway PostgreSQL cluster in a temporary directory, run as `postgres` when we are root. */
class PrivatePostgres {
  readonly root = mkdtempSync(join(tmpdir(), 'sextant-pg-'));
  readonly data = join(this.root, 'data');
  private readonly bin = postgresBin();
  private readonly asRoot = userInfo().uid === 0;

  readonly port: number;

  constructor(port: number) {
    this.port = port;
    if (this.asRoot) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
      chownSync(this.root, uid, gid);
    }
  }

  get url(): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/postgres`;
  }

  private run(tool: string, args: string[]): string {
    const command = join(this.bin, tool);
    const [file, argv] = this.asRoot
      ? ['runuser', ['-u', 'postgres', '--', command, ...args]]
      : [command, args];
    return execFileSync(file, argv, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: PG_COMMAND_TIMEOUT_MS,
    });
  }

  init(): void {
    this.run('initdb', ['-D', this.data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  }

  start(): void {
    this.run('pg_ctl', [
      '-D',
      this.data,
      '-l',
      join(this.root, 'server.log'),
      '-o',
      `-p ${this.port} -k ${this.root} -c listen_addresses=127.0.0.1 -c fsync=off`,
      '-w',
      '-t',
      '15',
      'start',
    ]);
  }

  stop(): void {
    this.run('pg_ctl', ['-D', this.data, '-m', 'fast', '-w', '-t', '15', 'stop']);
  }

  get running(): boolean {
    return existsSync(join(this.data, 'postmaster.pid'));
  }

  /** Stops the server if it runs and removes every file; never throws. */
  destroy(): void {
    try {
      if (this.running) {
        this.run('pg_ctl', ['-D', this.data, '-m', 'immediate', '-w', '-t', '15', 'stop']);
      }
    } catch {}
    rmSync(this.root, { recursive: true, force: true });
  }
}

async function submit(api: AppProcess, requestId: string, options?: { delayMs: number }): Promise<Response> {
  return fetch(`${api.url}/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': requestId },
    body: JSON.stringify(options === undefined ? SQUARE : { ...SQUARE, options }),
    signal: AbortSignal.timeout(10_000),
  });
}

async function waitForJob(api: AppProcess, id: string, timeoutMs = 20_000): Promise<Record<string, any>> {
  const deadline = Date.now() + timeoutMs;
  let job: Record<string, any> = {};
  while (Date.now() < deadline) {
    const response = await fetch(`${api.url}/jobs/${id}`, { signal: AbortSignal.timeout(5_000) });
    job = (await response.json()) as Record<string, any>;
    if (job.status === 'completed' || job.status === 'failed') return job;
    await sleep(50);
  }
  throw new Error(`job ${id} did not complete: ${JSON.stringify(job)}`);
}

async function status(url: string): Promise<number> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(5_000) })).status;
  } catch {
    return 0;
  }
}

async function waitForStatus(url: string, expected: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 0;
  while (Date.now() < deadline) {
    last = await status(url);
    if (last === expected) return;
    await sleep(100);
  }
  throw new Error(`${url} never answered ${expected} within ${timeoutMs} ms (last: ${last})`);
}

describe('PostgreSQL outage', () => {
  let postgres: PrivatePostgres;
  let api: AppProcess | undefined;
  let worker: AppProcess | undefined;
  let stderr = '';
  const queueEnv = createTestBackends('e2e_pg').env;

  beforeAll(async () => {
    postgres = new PrivatePostgres(await freePort());
    postgres.init();
    postgres.start();
    const env = {
      DATABASE_URL: postgres.url,
      REDIS_URL: queueEnv.REDIS_URL,
      SEXTANT_QUEUE_PREFIX: queueEnv.SEXTANT_QUEUE_PREFIX,
      OTEL_TRACES_EXPORTER: 'none',
    };
    // Both apply the migrations at start; the store's advisory lock serialises them.
    const started = await Promise.allSettled([
      startApp({ cwd: API_CWD, env: { OTEL_SERVICE_NAME: 'express-api', ...env } }),
      startApp({ cwd: WORKER_CWD, env: { METRICS_PORT: '0', ...SOLVER_ENV, ...env } }),
    ]);
    if (started[0].status === 'fulfilled') api = started[0].value;
    if (started[1].status === 'fulfilled') worker = started[1].value;
    for (const result of started) if (result.status === 'rejected') throw result.reason;
    for (const app of [api!, worker!]) {
      app.child.stderr!.on('data', (chunk) => {
        stderr += chunk;
      });
    }
  }, 45_000);

  afterAll(async () => {
    await Promise.all([api?.stop(), worker?.stop()]);
    postgres?.destroy();
    const queue = new Queue(JOB_QUEUE_NAME, {
      connection: { url: queueEnv.REDIS_URL },
      prefix: queueEnv.SEXTANT_QUEUE_PREFIX,
    });
    try {
      await queue.obliterate({ force: true });
    } catch {
    } finally {
      await queue.close().catch(() => undefined);
    }
  }, 30_000);

  it('answers 503 while the database is down, reports not ready, and completes jobs again once it is back', async () => {
    const app = api!;
    const solver = worker!;

    const before = await submit(app, 'e2e-pg-before');
    expect(before.status).toBe(202);
    const { id: beforeId } = (await before.json()) as { id: string };
    expect((await waitForJob(app, beforeId)).result).toMatchObject({ value: 4 });
    expect(await status(`${app.url}/health/ready`)).toBe(200);
    expect(await status(`${solver.url}/health/ready`)).toBe(200);

    postgres.stop();

    const during = await submit(app, 'e2e-pg-down');
    expect(during.status).toBe(503);
    expect(during.headers.get('content-type')).toMatch(/application\/json/);
    expect(await during.json()).toEqual(STORE_UNAVAILABLE);
    const read = await fetch(`${app.url}/jobs/${beforeId}`, { signal: AbortSignal.timeout(10_000) });
    expect(read.status).toBe(503);
    expect(await read.json()).toEqual(STORE_UNAVAILABLE);

    await waitForStatus(`${app.url}/health/ready`, 503);
    await waitForStatus(`${solver.url}/health/ready`, 503);
    expect(await status(`${app.url}/health`)).toBe(200);
    expect(await status(`${solver.url}/health`)).toBe(200);
    const detailed = (await (
      await fetch(`${app.url}/health/detailed`, { signal: AbortSignal.timeout(10_000) })
    ).json()) as { checks: Array<{ name: string; status: string }> };
    expect(detailed.checks.find((check) => check.name === 'prisma')).toMatchObject({ status: 'down' });

    // Neither process crashed, and both noticed the database going away.
    expectRunning([app, solver], stderr);
    for (const running of [app, solver]) {
      expect(running.strayLines()).toEqual([]);
      await running.waitForRecord((record) => record.msg === 'database connection lost', 5_000);
    }

    postgres.start();
    await waitForStatus(`${app.url}/health/ready`, 200, 20_000);
    await waitForStatus(`${solver.url}/health/ready`, 200, 20_000);
    const after = await submit(app, 'e2e-pg-after');
    expect(after.status).toBe(202);
    const { id: afterId } = (await after.json()) as { id: string };
    expect(await waitForJob(app, afterId)).toMatchObject({ id: afterId, status: 'completed' });
    expect((await waitForJob(app, beforeId)).status).toBe('completed');

    expectRunning([app, solver], stderr);
  }, 60_000);

  it('keeps the jobs the worker picks up while the database is down, and completes them once it is back', async () => {
    const app = api!;
    const solver = worker!;
    // Independent of the test above, which may have stopped before restarting the database.
    if (!postgres.running) postgres.start();
    await waitForStatus(`${app.url}/health/ready`, 200, 20_000);
    await waitForStatus(`${solver.url}/health/ready`, 200, 20_000);
    const firstRecord = solver.records().length;
    const outageRecords = (msg: string) =>
      solver
        .records()
        .slice(firstRecord)
        .filter((record) => record.msg === msg);
    const queue = new Queue(JOB_QUEUE_NAME, {
      connection: { url: queueEnv.REDIS_URL },
      prefix: queueEnv.SEXTANT_QUEUE_PREFIX,
    });
    try {
      // Delayed jobs, stored while the database is up and due once it is down (a backlog does the same).
      const ids: string[] = [];
      for (const n of [1, 2]) {
        const response = await submit(app, `e2e-pg-delayed-${n}`, { delayMs: 2500 });
        expect(response.status).toBe(202);
        ids.push(((await response.json()) as { id: string }).id);
      }
      postgres.stop();

      // The worker takes them during the outage (the first one at least: once a job has found the
      // database away, the worker takes no new job until it answers)...
      const deadline = Date.now() + 15_000;
      for (;;) {
        const started = await Promise.all(ids.map(async (id) => (await queue.getJob(id))!.attemptsStarted));
        if (started.some((count) => count >= 1)) break;
        if (Date.now() > deadline) throw new Error('no job was taken during the outage');
        await sleep(50);
      }
      // ...and, for longer than their 3 attempts and backoff (0.6 s) would take, spend no attempt.
      await sleep(2000);
      for (const id of ids) {
        const job = (await queue.getJob(id))!;
        expect({ id, state: await job.getState(), attemptsMade: job.attemptsMade }).toMatchObject({
          id,
          state: expect.stringMatching(/^(delayed|waiting|active)$/),
          attemptsMade: 0,
        });
      }
      const deferred = outageRecords(DEFERRED_MSG);
      expect(deferred).toHaveLength(1);
      expect(deferred[0]).toMatchObject({ level: 'warn', component: 'store-outage' });
      expect(ids).toContain(deferred[0]!.job_id);
      expect(String(deferred[0]!.reason)).toMatch(/reach database server|terminating connection/i);
      expectRunning([app, solver], stderr);

      postgres.start();
      for (const id of ids) {
        const job = await waitForJob(app, id, 30_000);
        expect(job).toMatchObject({ id, status: 'completed', attempts: 1 });
        expect(job.result).toMatchObject({ value: 4 });
        // BullMQ marks the job completed once the processor has returned, just after the row.
        await expect
          .poll(async () => (await queue.getJob(id))!.getState(), { timeout: 5_000 })
          .toBe('completed');
      }
      await solver.waitForRecord((record) => record.msg === RESUMED_MSG, 10_000);

      // One record when the outage starts and one when it ends; no attempt failed.
      expect(outageRecords(DEFERRED_MSG)).toHaveLength(1);
      expect(outageRecords(RESUMED_MSG)).toHaveLength(1);
      const failures = solver
        .records()
        .slice(firstRecord)
        .filter((record) => ids.includes(record.job_id) && /failed/.test(String(record.msg)));
      expect(failures).toEqual([]);
      expectRunning([app, solver], stderr);
      expect(solver.strayLines()).toEqual([]);
    } finally {
      await queue.close().catch(() => undefined);
    }
  }, 90_000);
});
