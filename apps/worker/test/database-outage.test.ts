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
import { API_CWD, SOLVER_ENV, SQUARE, WORKER_CWD } from './fixtures.ts';

const PG_COMMAND_TIMEOUT_MS = 20_000;

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

  /** Stops the server if it runs and removes every file; never throws. */
  destroy(): void {
    try {
      if (existsSync(join(this.data, 'postmaster.pid'))) {
        this.run('pg_ctl', ['-D', this.data, '-m', 'immediate', '-w', '-t', '15', 'stop']);
      }
    } catch {}
    rmSync(this.root, { recursive: true, force: true });
  }
}

async function submit(api: AppProcess, requestId: string): Promise<Response> {
  return fetch(`${api.url}/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': requestId },
    body: JSON.stringify(SQUARE),
    signal: AbortSignal.timeout(10_000),
  });
}

async function waitForJob(api: AppProcess, id: string, timeoutMs = 20_000): Promise<Record<string, any>> {
  const deadline = Date.now() + timeoutMs;
  let job: Record<string, any> = {};
  while (Date.now() < deadline) {
    const response = await fetch(`${api.url}/jobs/${id}`, { signal: AbortSignal.timeout(5_000) });
    job = (await response.json()) as Record<string, any>;
    if (job.status === 'completed') return job;
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
    expect(await during.json()).toEqual({ error: 'the job store is unavailable, try again later' });
    const read = await fetch(`${app.url}/jobs/${beforeId}`, { signal: AbortSignal.timeout(10_000) });
    expect(read.status).toBe(503);
    expect(await read.json()).toEqual({ error: 'the job store is unavailable, try again later' });

    await waitForStatus(`${app.url}/health/ready`, 503);
    await waitForStatus(`${solver.url}/health/ready`, 503);
    expect(await status(`${app.url}/health`)).toBe(200);
    expect(await status(`${solver.url}/health`)).toBe(200);
    const detailed = (await (
      await fetch(`${app.url}/health/detailed`, { signal: AbortSignal.timeout(10_000) })
    ).json()) as { checks: Array<{ name: string; status: string }> };
    expect(detailed.checks.find((check) => check.name === 'prisma')).toMatchObject({ status: 'down' });

    // Neither process crashed, and both noticed the database going away.
    expect(app.child.exitCode).toBeNull();
    expect(solver.child.exitCode).toBeNull();
    expect(stderr).not.toMatch(/Unhandled/);
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

    expect(app.child.exitCode).toBeNull();
    expect(solver.child.exitCode).toBeNull();
    expect(stderr).not.toMatch(/Unhandled/);
  }, 60_000);
});
