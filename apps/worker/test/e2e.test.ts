/**
 * The sample deployment end to end: express-api and the worker as their own processes, real
 * Redis and PostgreSQL, both exporting OTLP to one receiver in this process.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SpanKind } from '@opentelemetry/api';
import { createSextant, runWithRequestId, traced } from '@sextant/core';
import { type AppProcess, startApp } from '@sextant/testing/app-process';
import { sampleSum, sampleValue } from '@sextant/testing/exposition';
import { type DecodedSpan, type OtlpReceiver, startOtlpReceiver } from '@sextant/testing/otlp-receiver';
import { promtoolCheck } from '@sextant/testing/promtool';
import { createJobQueue, createJobStore, submitJob } from 'job-store';
import { createTestBackends, type TestBackends } from 'job-store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_CWD, expectNoCrashOutput, expectRunning, SOLVER_ENV, SQUARE, WORKER_CWD } from './fixtures.ts';

const SPAN_KIND = { server: 2, client: 3, producer: 4, consumer: 5 } as const;

interface Deployment {
  api: AppProcess;
  worker: AppProcess;
  /** Everything both processes wrote to stderr since they started listening. */
  stderr(): string;
  stop(): Promise<void>;
}

async function startDeployment(env: Record<string, string>): Promise<Deployment> {
  const [api, worker] = await Promise.all([
    startApp({ cwd: API_CWD, env: { OTEL_SERVICE_NAME: 'express-api', ...env } }),
    startApp({ cwd: WORKER_CWD, env: { METRICS_PORT: '0', ...SOLVER_ENV, ...env } }),
  ]);
  let stderr = '';
  for (const app of [api, worker]) {
    app.child.stderr!.on('data', (chunk) => {
      stderr += chunk;
    });
  }
  return {
    api,
    worker,
    stderr: () => stderr,
    async stop() {
      await Promise.all([api.stop(), worker.stop()]);
    },
  };
}

async function submit(
  api: AppProcess,
  body: unknown,
  requestId: string,
): Promise<{ response: Response; id: string; traceId: string }> {
  const response = await fetch(`${api.url}/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': requestId },
    body: JSON.stringify(body),
  });
  const json = (await response.clone().json()) as { id?: string };
  const traceId = response.headers.get('traceresponse')?.split('-')[1] ?? '';
  return { response, id: json.id ?? '', traceId };
}

async function waitForJob(
  api: AppProcess,
  id: string,
  status: 'completed' | 'failed',
  timeoutMs = 20_000,
): Promise<Record<string, any>> {
  const deadline = Date.now() + timeoutMs;
  let job: Record<string, any> = {};
  while (Date.now() < deadline) {
    job = (await (await fetch(`${api.url}/jobs/${id}`)).json()) as Record<string, any>;
    if (job.status === status) return job;
    await sleep(50);
  }
  throw new Error(`job ${id} did not reach ${status}: ${JSON.stringify(job)}`);
}

const serviceOf = (span: DecodedSpan) => span.resource['service.name'];

function only(spans: DecodedSpan[], predicate: (span: DecodedSpan) => boolean): DecodedSpan {
  const found = spans.filter(predicate);
  expect(found, `spans: ${spans.map((s) => `${serviceOf(s)}:${s.name}`).join(', ')}`).toHaveLength(1);
  return found[0]!;
}

function isDescendant(spans: DecodedSpan[], span: DecodedSpan, ancestor: DecodedSpan): boolean {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  for (let current: DecodedSpan | undefined = span; current; current = byId.get(current.parentSpanId)) {
    if (current.parentSpanId === ancestor.spanId) return true;
  }
  return false;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Polls the app's `/metrics` until the sample `name` with exactly `labels` (0 while absent) passes `until`; returns it. */
async function waitForMetric(
  app: AppProcess,
  name: string,
  labels: Record<string, string>,
  until: (value: number) => boolean,
  timeoutMs = 10_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  const read = async () => sampleValue(await (await fetch(`${app.url}/metrics`)).text(), name, labels) ?? 0;
  let value = await read();
  while (!until(value) && Date.now() < deadline) {
    await sleep(50);
    value = await read();
  }
  return value;
}

/**
 * Listens on 127.0.0.1:`port` and pipes each connection to 127.0.0.1:`target`: a collector coming
 * back at the address the apps were started with. Resolves with the function that stops it.
 */
async function forward(port: number, target: number): Promise<() => Promise<void>> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
}

describe('one POST /jobs is one trace across the API and the worker', () => {
  let receiver: OtlpReceiver;
  let backends: TestBackends;
  let deployment: Deployment;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    backends = createTestBackends('e2e');
    deployment = await startDeployment({
      ...backends.env,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: '50',
    });
  });
  afterAll(async () => {
    await deployment?.stop();
    await receiver?.close();
    await backends?.cleanup();
  });

  it('links the server span, the publish, the processing, both processes’ queries and the quantum job', async () => {
    const { api, worker } = deployment;
    const { response, id, traceId } = await submit(api, SQUARE, 'e2e-one-trace');
    expect(response.status).toBe(202);
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    const job = await waitForJob(api, id, 'completed');
    expect(job).toMatchObject({ id, type: 'maxcut', status: 'completed', attempts: 1 });
    expect(job.result).toMatchObject({ value: 4 });

    // The worker's last query (the result) may still be in its batch when the job reads completed.
    await receiver.waitForSpans(
      (s) => s.traceId === traceId && serviceOf(s) === 'worker' && s.name === 'process quantum-jobs',
      1,
      10_000,
    );
    await receiver.waitForSpans(
      (s) => s.traceId === traceId && serviceOf(s) === 'worker' && s.name === 'update Job',
      2,
      10_000,
    );
    const spans = receiver.spans().filter((s) => s.traceId === traceId);

    const server = only(spans, (s) => s.name === 'POST /jobs');
    expect(server.kind).toBe(SPAN_KIND.server);
    expect(serviceOf(server)).toBe('express-api');
    expect(server.parentSpanId).toBe('');

    const publish = only(spans, (s) => s.kind === SPAN_KIND.producer);
    expect(publish.name).toBe('add quantum-jobs');
    expect(serviceOf(publish)).toBe('express-api');
    expect(isDescendant(spans, publish, server)).toBe(true);

    const insert = only(spans, (s) => s.name === 'create Job');
    expect(insert.kind).toBe(SPAN_KIND.client);
    expect(serviceOf(insert)).toBe('express-api');
    expect(isDescendant(spans, insert, server)).toBe(true);

    const processing = only(spans, (s) => s.kind === SPAN_KIND.consumer);
    expect(processing.name).toBe('process quantum-jobs');
    expect(serviceOf(processing)).toBe('worker');
    expect(processing.parentSpanId).toBe(publish.spanId);
    expect(processing.attributes['bullmq.job.outcome']).toBe('completed');

    const updates = spans.filter((s) => s.name === 'update Job');
    expect(updates).toHaveLength(2); // running, then completed
    for (const update of updates) {
      expect(serviceOf(update)).toBe('worker');
      expect(update.attributes['db.system.name']).toBe('postgresql');
      expect(isDescendant(spans, update, processing)).toBe(true);
    }

    const quantum = only(spans, (s) => s.name === 'quantum.job maxcut');
    expect(serviceOf(quantum)).toBe('worker');
    expect(isDescendant(spans, quantum, processing)).toBe(true);

    // The request id is on every related record of both processes.
    const apiRecords = api.records().filter((r) => r.trace_id === traceId);
    expect(apiRecords.length).toBeGreaterThan(0);
    for (const record of apiRecords) expect(record.request_id).toBe('e2e-one-trace');
    const workerRecords = worker.records().filter((r) => r.job_id === id);
    expect(workerRecords.map((r) => r.msg)).toEqual(['job started', 'job completed']);
    for (const record of workerRecords) {
      expect(record).toMatchObject({ request_id: 'e2e-one-trace', trace_id: traceId, service: 'worker' });
      expect(record.span_id).toMatch(/^[0-9a-f]{16}$/);
    }
    expect(
      worker
        .records()
        .filter((r) => r.trace_id === traceId)
        .every((r) => r.request_id === 'e2e-one-trace'),
    ).toBe(true);
  });

  it('keeps a job failed on purpose twice in one trace: three attempts, then completed', async () => {
    const { api, worker } = deployment;
    const { response, id, traceId } = await submit(
      api,
      { ...SQUARE, options: { failAttempts: 2 } },
      'e2e-retry',
    );
    expect(response.status).toBe(202);
    const job = await waitForJob(api, id, 'completed');
    expect(job.attempts).toBe(3);
    const attempts = await receiver.waitForSpans(
      (s) => s.traceId === traceId && s.name === 'process quantum-jobs',
      3,
      10_000,
    );
    const spans = receiver.spans().filter((s) => s.traceId === traceId);
    const publish = only(spans, (s) => s.kind === SPAN_KIND.producer);
    expect(attempts.map((s) => s.parentSpanId)).toEqual([publish.spanId, publish.spanId, publish.spanId]);
    expect(attempts.map((s) => s.attributes['bullmq.job.outcome'])).toEqual([
      'retried',
      'retried',
      'completed',
    ]);
    expect(attempts.map((s) => s.attributes['bullmq.job.attempts.made'])).toEqual([1, 2, 3]);
    expect(attempts.map((s) => s.status.code)).toEqual([2, 2, 0]);
    const failures = worker
      .records()
      .filter((r) => r.job_id === id && r.msg === 'job attempt failed, will retry');
    expect(failures).toHaveLength(2);
    for (const record of failures) expect(record.request_id).toBe('e2e-retry');
  });

  it('runs a delayed job no earlier than its delay, in the same trace', async () => {
    const { api } = deployment;
    const { response, id, traceId } = await submit(
      api,
      { ...SQUARE, options: { delayMs: 500 } },
      'e2e-delayed',
    );
    expect(response.status).toBe(202);
    expect((await waitForJob(api, id, 'completed')).status).toBe('completed');
    const [processing] = await receiver.waitForSpans(
      (s) => s.traceId === traceId && s.name === 'process quantum-jobs',
      1,
      10_000,
    );
    const publish = only(
      receiver.spans().filter((s) => s.traceId === traceId),
      (s) => s.kind === SPAN_KIND.producer,
    );
    expect(processing!.parentSpanId).toBe(publish.spanId);
    const delayNs = BigInt(processing!.startTimeUnixNano) - BigInt(publish.startTimeUnixNano);
    expect(delayNs >= 500_000_000n).toBe(true);
  });

  it('shows each hop in its own /metrics, which promtool accepts', async () => {
    const { api, worker } = deployment;
    const apiMetrics = await (await fetch(`${api.url}/metrics`)).text();
    expect(promtoolCheck(apiMetrics)).toEqual({ status: 0, problems: '' });
    expect(
      sampleSum(apiMetrics, 'http_server_request_duration_seconds_count', {
        http_request_method: 'POST',
        http_route: '/jobs',
        http_response_status_code: '202',
      }),
    ).toBeGreaterThanOrEqual(3);
    // The user-facing operations are the `optimisation` business unit's: counted with their
    // outcome, with a business event per submitted job, and no user or tenant on any label.
    const submitted = sampleSum(apiMetrics, 'business_operations_total', {
      business_unit: 'optimisation',
      business_operation: 'submit_job',
      outcome: 'success',
    });
    expect(submitted).toBe(
      sampleSum(apiMetrics, 'http_server_request_duration_seconds_count', {
        http_route: '/jobs',
        http_response_status_code: '202',
      }),
    );
    expect(
      sampleSum(apiMetrics, 'business_events_total', {
        business_unit: 'optimisation',
        business_event: 'job_submitted',
      }),
    ).toBe(submitted);
    expect(apiMetrics).not.toMatch(/user_id|tenant_id/);
    expect(
      sampleSum(apiMetrics, 'db_client_operation_duration_seconds_count', {
        db_system_name: 'postgresql',
        db_operation_name: 'create',
        db_collection_name: 'Job',
      }),
    ).toBeGreaterThanOrEqual(3);
    expect(
      sampleSum(apiMetrics, 'messaging_client_operation_duration_seconds_count', {
        messaging_destination_name: 'quantum-jobs',
        messaging_operation_name: 'add',
      }),
    ).toBeGreaterThanOrEqual(3);

    const workerMetrics = await (await fetch(`${worker.url}/metrics`)).text();
    expect(promtoolCheck(workerMetrics)).toEqual({ status: 0, problems: '' });
    expect(
      sampleSum(workerMetrics, 'messaging_process_duration_seconds_count', {
        messaging_destination_name: 'quantum-jobs',
        error_type: '',
      }),
    ).toBeGreaterThanOrEqual(3);
    expect(
      sampleSum(workerMetrics, 'messaging_process_duration_seconds_count', {
        messaging_destination_name: 'quantum-jobs',
        error_type: 'DemoFailureError',
      }),
    ).toBe(2);
    expect(
      sampleSum(workerMetrics, 'db_client_operation_duration_seconds_count', {
        db_operation_name: 'update',
        db_collection_name: 'Job',
      }),
    ).toBeGreaterThanOrEqual(6);
    expect(sampleSum(workerMetrics, 'quantum_jobs_total', {})).toBeGreaterThanOrEqual(3);
    expect(workerMetrics).toMatch(/^messaging_queue_depth\{[^}]*state="waiting"/m);
    expect(workerMetrics).toMatch(/^db_client_connections\{/m);

    for (const url of [api.url, worker.url]) {
      const detailed = (await (await fetch(`${url}/health/detailed`)).json()) as {
        checks: Array<{ name: string }>;
      };
      expect(detailed.checks.map((check) => check.name)).toEqual(expect.arrayContaining(['prisma', 'redis']));
    }
  });

  it('marks a job failed after its last attempt', async () => {
    const { api } = deployment;
    const exhausted = await submit(api, { ...SQUARE, options: { failAttempts: 3 } }, 'e2e-exhausted');
    expect(exhausted.response.status).toBe(202);
    const failed = await waitForJob(api, exhausted.id, 'failed');
    expect(failed).toMatchObject({
      attempts: 3,
      error: expect.stringContaining('attempt 3 fails on purpose'),
    });
    const attempts = await receiver.waitForSpans(
      (s) => s.traceId === exhausted.traceId && s.name === 'process quantum-jobs',
      3,
      10_000,
    );
    expect(attempts.map((s) => s.attributes['bullmq.job.outcome'])).toEqual(['retried', 'retried', 'failed']);
  });

  it('refuses an invalid problem with 400, and the worker fails one found on the queue at once, without retrying it', async () => {
    const { api, worker } = deployment;
    // The API validates as the worker's solver does: vertex 500 is past its 64 variables.
    const problem = { type: 'maxcut', edges: [[0, 500]] };
    const refused = await submit(api, problem, 'e2e-invalid');
    expect(refused.response.status).toBe(400);
    expect(await refused.response.json()).toEqual({
      statusCode: 400,
      error: 'Bad Request',
      message: expect.stringMatching(/^"edges\[0\]" names vertex 500: vertices are numbered from 0 to 63/),
    });
    // Refused before anything was stored or enqueued.
    await receiver.waitForSpans((s) => s.traceId === refused.traceId && s.name === 'POST /jobs', 1, 10_000);
    expect(receiver.spans().filter((s) => s.traceId === refused.traceId && s.name !== 'POST /jobs')).toEqual(
      [],
    );

    // An invalid job can still reach the queue (another producer, an older API): stored and
    // enqueued here as the API does it, inside a request with its id and trace.
    const producer = createSextant({
      serviceName: 'e2e-producer',
      env: {},
      tracing: { exporter: 'memory' },
      logs: { level: 'silent' },
      metrics: { defaultMetrics: false },
    });
    try {
      const store = await createJobStore(producer, { databaseUrl: backends.env.DATABASE_URL });
      const queue = createJobQueue(producer, {
        redisUrl: backends.env.REDIS_URL,
        prefix: backends.env.SEXTANT_QUEUE_PREFIX,
      });
      const id = await runWithRequestId('e2e-invalid-queued', () =>
        traced('POST /jobs', () => submitJob(store, queue, problem), {
          kind: SpanKind.SERVER,
          tracer: producer.tracer,
        }),
      );
      const publishes = producer.tracing.finishedSpans().filter((s) => s.kind === SpanKind.PRODUCER);
      expect(publishes.map((s) => s.name)).toEqual(['add quantum-jobs']);
      const { traceId, spanId: publishSpanId } = publishes[0]!.spanContext();

      const failed = await waitForJob(api, id, 'failed');
      expect(failed).toMatchObject({ id, type: 'maxcut', status: 'failed', attempts: 1 });
      expect(failed.error).toMatch(/invalid problem/);
      // The row is written first; BullMQ moves the job once the attempt has thrown.
      await expect
        .poll(async () => {
          const job = (await queue.getJob(id))!;
          return { state: await job.getState(), attemptsMade: job.attemptsMade };
        })
        .toEqual({ state: 'failed', attemptsMade: 1 });
      const [attempt] = await receiver.waitForSpans(
        (s) => s.traceId === traceId && s.name === 'process quantum-jobs',
        1,
        10_000,
      );
      expect(attempt!.parentSpanId).toBe(publishSpanId);
      expect(attempt!.attributes['bullmq.job.outcome']).toBe('failed');
      expect(attempt!.attributes['error.type']).toBe('UnrecoverableError');
      expect(attempt!.status.code).toBe(2);
      await worker.waitForRecord((r) => r.job_id === id && r.msg === 'job failed');
      const records = worker.records().filter((r) => r.job_id === id);
      expect(records.map((r) => r.msg)).toEqual(['job started', 'job failed']);
      expect(records[1]).toMatchObject({
        level: 'warn',
        final: true,
        request_id: 'e2e-invalid-queued',
        trace_id: traceId,
      });
      // Never retried: still one attempt, well past the 200 ms backoff a retry would wait.
      await sleep(500);
      expect(
        receiver.spans().filter((s) => s.traceId === traceId && s.name === 'process quantum-jobs'),
      ).toHaveLength(1);
    } finally {
      await producer.shutdown();
    }
  });

  it('stops the worker on SIGTERM: it exits by itself with code 0 and wrote nothing to stderr', async () => {
    const { worker } = deployment;
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toEqual({ code: 0, signal: null });
    expect(worker.strayLines()).toEqual([]);
    expectNoCrashOutput(deployment.stderr());
  });
});

describe('shutdown', () => {
  it('lets a job that outlives the shutdown timeout store its result before the database closes', async () => {
    const backends = createTestBackends('e2e_shutdown');
    // The provider answers after 1.2 s; Sextant waits 200 ms for in-flight work, then runs the
    // hooks: the worker's close (which waits for its job) must come before the store's.
    const deployment = await startDeployment({
      ...backends.env,
      QUANTUM_LATENCY_MS: '1200',
      SEXTANT_SHUTDOWN_TIMEOUT_MS: '200',
    });
    try {
      const { api, worker } = deployment;
      const { response, id } = await submit(api, SQUARE, 'e2e-slow-job-shutdown');
      expect(response.status).toBe(202);
      await worker.waitForRecord((r) => r.job_id === id && r.msg === 'job started');
      worker.child.kill('SIGTERM');
      expect(await worker.exited).toEqual({ code: 0, signal: null });
      expect(worker.records().some((r) => r.msg === 'shutdown timed out waiting for in-flight work')).toBe(
        true,
      );
      expect((await waitForJob(api, id, 'completed', 5000)).result).toMatchObject({ value: 4 });
      expect(
        worker
          .records()
          .filter((r) => r.job_id === id)
          .map((r) => r.msg),
      ).toEqual(['job started', 'job completed']);
      expectNoCrashOutput(deployment.stderr());
    } finally {
      await deployment.stop();
      await backends.cleanup();
    }
  });
});

describe('outages', () => {
  it('serves and processes normally while the collector is unreachable, says so once, and exports again once it is back', async () => {
    // The endpoint is fixed at start-up: nothing listens on it until the collector "comes back".
    const port = await freePort();
    const backends = createTestBackends('e2e_collector');
    const deployment = await startDeployment({
      ...backends.env,
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_BSP_SCHEDULE_DELAY: '50',
      // A refused export is retried with backoff until this timeout (10 s by default): short, so
      // that several batches fail during the test, not one.
      OTEL_EXPORTER_OTLP_TIMEOUT: '300',
    });
    let receiver: OtlpReceiver | undefined;
    let stopForwarding: (() => Promise<void>) | undefined;
    try {
      const { api, worker } = deployment;
      // One job after the other: each process fails to export several batches.
      for (const n of [1, 2, 3]) {
        const { response, id } = await submit(api, SQUARE, `e2e-no-collector-${n}`);
        expect(response.status).toBe(202);
        expect((await waitForJob(api, id, 'completed')).result).toMatchObject({ value: 4 });
      }
      expect((await fetch(`${api.url}/health/ready`)).status).toBe(200);
      expect((await fetch(`${worker.url}/health/ready`)).status).toBe(200);

      // Each process says so in one record, however many exports failed (at most one per minute).
      const internalErrors = (app: AppProcess) =>
        app.records().filter((r) => r.msg === 'sextant internal error');
      for (const app of [api, worker]) {
        const failures = await waitForMetric(
          app,
          'sextant_internal_errors_total',
          { kind: 'span_export' },
          (value) => value >= 2,
        );
        expect(failures).toBeGreaterThanOrEqual(2);
        const dropped = await waitForMetric(
          app,
          'sextant_spans_dropped_total',
          { reason: 'export_failed' },
          (v) => v > 0,
        );
        expect(dropped).toBeGreaterThan(0);
        await app.waitForRecord((r) => r.msg === 'sextant internal error');
        expect(internalErrors(app)).toHaveLength(1);
        expect(internalErrors(app)[0]).toMatchObject({
          level: 'warn',
          component: 'sextant',
          kind: 'span_export',
          err: { message: expect.stringMatching(/ECONNREFUSED/) },
        });
      }
      expectRunning([api, worker], deployment.stderr());

      // The collector is back at the same address: the next request's spans arrive from both processes.
      receiver = await startOtlpReceiver();
      stopForwarding = await forward(port, receiver.port);
      const after = await submit(api, SQUARE, 'e2e-collector-back');
      expect(after.response.status).toBe(202);
      await waitForJob(api, after.id, 'completed');
      const [server] = await receiver.waitForSpans(
        (s) => s.traceId === after.traceId && s.name === 'POST /jobs',
        1,
        10_000,
      );
      expect(serviceOf(server!)).toBe('express-api');
      const [processing] = await receiver.waitForSpans(
        (s) => s.traceId === after.traceId && s.name === 'process quantum-jobs',
        1,
        10_000,
      );
      expect(serviceOf(processing!)).toBe('worker');
      for (const app of [api, worker]) {
        const exported = await waitForMetric(app, 'sextant_spans_exported_total', {}, (v) => v > 0);
        expect(exported).toBeGreaterThan(0);
        expect(internalErrors(app)).toHaveLength(1);
      }
      expectRunning([api, worker], deployment.stderr());
    } finally {
      await deployment.stop();
      await stopForwarding?.();
      await receiver?.close();
      await backends.cleanup();
    }
  });

  it('answers 503 while Redis is down, reports not ready, and completes jobs again once it is back', async () => {
    const port = await freePort();
    const pidfile = join(tmpdir(), `sextant-e2e-redis-${port}.pid`);
    const startRedis = () =>
      execFileSync('redis-server', [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'yes',
        '--pidfile',
        pidfile,
      ]);
    const stopRedis = () => {
      try {
        process.kill(Number(readFileSync(pidfile, 'utf8').trim()), 'SIGKILL');
      } catch {}
      rmSync(pidfile, { force: true });
    };
    const waitForRedis = async () => {
      for (let i = 0; i < 100; i++) {
        try {
          if (execFileSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).trim() === 'PONG')
            return;
        } catch {}
        await sleep(50);
      }
      throw new Error('redis-server did not start');
    };
    const waitForReadiness = async (url: string, status: number) => {
      for (let i = 0; i < 200; i++) {
        if ((await fetch(`${url}/health/ready`)).status === status) return;
        await sleep(50);
      }
      throw new Error(`${url}/health/ready never answered ${status}`);
    };

    startRedis();
    await waitForRedis();
    const backends = createTestBackends('e2e_redis');
    const deployment = await startDeployment({
      ...backends.env,
      REDIS_URL: `redis://127.0.0.1:${port}`,
      OTEL_TRACES_EXPORTER: 'none',
    });
    try {
      const { api, worker } = deployment;
      const before = await submit(api, SQUARE, 'e2e-redis-before');
      expect(before.response.status).toBe(202);
      await waitForJob(api, before.id, 'completed');

      stopRedis();
      await waitForReadiness(api.url, 503);
      await waitForReadiness(worker.url, 503);
      const during = await submit(api, SQUARE, 'e2e-redis-down');
      expect(during.response.status).toBe(503);
      expect(await during.response.json()).toEqual({
        statusCode: 503,
        error: 'Service Unavailable',
        message: 'the job queue is unavailable, try again later',
      });
      expect((await fetch(`${api.url}/health`)).status).toBe(200);
      // The refused request, in the API's log: the operation's failure with its cause, and the 503
      // (written as the response ends: it may reach us after the response).
      await api.waitForRecord((r) => r.request_id === 'e2e-redis-down' && r.msg === 'request completed');
      const refused = api.records().filter((r) => r.request_id === 'e2e-redis-down');
      expect(refused).toEqual([
        expect.objectContaining({
          level: 'error',
          msg: 'business operation failed',
          business_operation: 'submit_job',
          outcome: 'failure',
          err: expect.objectContaining({
            type: 'JobsUnavailableError',
            message: 'the job queue is unavailable, try again later',
          }),
        }),
        expect.objectContaining({ msg: 'request completed', http_response_status_code: 503 }),
      ]);
      // Each Redis connection says it cannot reach Redis, naming the address: once, not on each of
      // the reconnects that fail while Redis stays away (about one a second).
      await sleep(2500);
      const refusedConnections = (app: AppProcess, what: string) =>
        app
          .records()
          .filter((r) => r.msg === `${what}: Redis connection error` && r.err?.code === 'ECONNREFUSED');
      for (const [app, what] of [
        [api, 'job queue'],
        [worker, 'job queue'],
        [worker, 'worker'],
      ] as const) {
        expect(refusedConnections(app, what)).toEqual([
          expect.objectContaining({
            level: 'warn',
            err: expect.objectContaining({ message: `connect ECONNREFUSED 127.0.0.1:${port}` }),
          }),
        ]);
      }
      expectRunning([api, worker], deployment.stderr());

      startRedis();
      await waitForRedis();
      await waitForReadiness(api.url, 200);
      await waitForReadiness(worker.url, 200);
      const after = await submit(api, SQUARE, 'e2e-redis-after');
      expect(after.response.status).toBe(202);
      await waitForJob(api, after.id, 'completed', 30_000);
      expectRunning([api, worker], deployment.stderr());

      // SIGTERM while Redis is away: both still drain, flush and exit by themselves.
      stopRedis();
      await waitForReadiness(api.url, 503);
      api.child.kill('SIGTERM');
      worker.child.kill('SIGTERM');
      expect(await api.exited).toEqual({ code: 0, signal: null });
      expect(await worker.exited).toEqual({ code: 0, signal: null });
      // Their Redis connections cannot close cleanly: each is dropped, with one record.
      const unclosed = (app: AppProcess) =>
        app
          .records()
          .filter((r) => /: Redis connection did not close cleanly, disconnecting$/.test(String(r.msg)))
          .map((r) => r.msg)
          .sort();
      // (Their last lines may still be in the pipe when the exit is reported.)
      await expect
        .poll(() => unclosed(api))
        .toEqual(['job queue: Redis connection did not close cleanly, disconnecting']);
      await expect
        .poll(() => unclosed(worker))
        .toEqual([
          'job queue: Redis connection did not close cleanly, disconnecting',
          'worker: Redis connection did not close cleanly, disconnecting',
        ]);
      expectNoCrashOutput(deployment.stderr());
    } finally {
      await deployment.stop();
      stopRedis();
      await backends.cleanup().catch(() => undefined);
    }
  });
});
