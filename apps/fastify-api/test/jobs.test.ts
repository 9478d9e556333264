import type { AddressInfo } from 'node:net';
import { SpanStatusCode } from '@opentelemetry/api';
import { createSextant, type Sextant } from '@sextant/core';
import { SQUARE_JOB } from '@sextant/testing/http-conformance';
import type { FastifyInstance } from 'fastify';
import { createJobQueue, createJobStore, type JobQueue } from 'job-store';
import { createTestBackends } from 'job-store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.ts';

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('fastify-api', () => {
  let sextant: Sextant;
  let app: FastifyInstance;
  let url: string;
  let queue: JobQueue;
  const lines: string[] = [];
  const backends = createTestBackends('fastify_jobs');

  beforeAll(async () => {
    sextant = createSextant({
      serviceName: 'fastify-api-test',
      tracing: { exporter: 'memory' },
      logs: { destination: { write: (line: string) => void lines.push(line) } },
      env: {},
    });
    const store = await createJobStore(sextant, { databaseUrl: backends.env.DATABASE_URL });
    queue = createJobQueue(sextant, {
      redisUrl: backends.env.REDIS_URL,
      prefix: backends.env.SEXTANT_QUEUE_PREFIX,
    });
    app = await createApp(sextant, { store, queue });
    sextant.onShutdown(() => app.close());
    await app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await sextant?.shutdown();
    await backends.cleanup();
  });

  const postJob = (body: unknown) =>
    fetch(`${url}/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('stores a max-cut job as queued, enqueues its id only, and answers 202 with the id', async () => {
    const created = await postJob({ ...SQUARE_JOB, options: { delayMs: 5000, failAttempts: 1 } });
    expect(created.status).toBe(202);
    const { id } = (await created.json()) as { id: string };
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    const response = await fetch(`${url}/jobs/${id}`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ id, type: 'maxcut', status: 'queued', attempts: 0 });
    const queued = await queue.getJob(id);
    expect(queued?.data).toEqual({ jobId: id });
    expect(queued?.opts.delay).toBe(5000);
  });

  it('answers 404 for an unknown job', async () => {
    const response = await fetch(`${url}/jobs/no-such-job`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({
      statusCode: 404,
      error: 'Not Found',
      message: 'no job with id "no-such-job"',
    });
  });

  it('answers 400 for malformed JSON, in the same shape', async () => {
    const response = await fetch(`${url}/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"type": "maxcut", "edges": [[0,1]',
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ statusCode: 400, error: 'Bad Request' });
  });

  it('names spans after the route templates, prefixes of nested plugins included', async () => {
    const stats = await fetch(`${url}/admin/jobs/stats`);
    expect(await stats.json()).toMatchObject({ completed: expect.any(Number), queued: expect.any(Number) });
    await fetch(`${url}/admin/info`);
    await until(async () => {
      await sextant.tracing.forceFlush();
      const names = new Set(sextant.tracing.finishedSpans().map((span) => span.name));
      const expected = [
        'POST /jobs',
        'GET /jobs/:id',
        'GET /admin/jobs/stats',
        'GET /admin/info',
        'create Job',
        'add quantum-jobs',
      ];
      return expected.every((name) => names.has(name)) ? true : undefined;
    });
  });

  it('answers /slow with the request and trace ids its handler saw', async () => {
    const response = await fetch(`${url}/slow?ms=5`, { headers: { 'x-request-id': 'slow-1' } });
    const traceId = response.headers.get('traceresponse')!.split('-')[1];
    expect(await response.json()).toEqual({ request_id: 'slow-1', trace_id: traceId });
  });

  it('answers /fail with a generic 500, the error itself on the span and in the log only', async () => {
    const response = await fetch(`${url}/fail`, { headers: { 'x-request-id': 'fail-1' } });
    expect(response.status).toBe(500);
    // The client learns nothing about the internals: not the exception's message.
    expect(await response.json()).toEqual({
      statusCode: 500,
      error: 'Internal Server Error',
      message: 'internal server error',
    });
    const spanId = response.headers.get('traceresponse')!.split('-')[2];
    const span = await until(async () => {
      await sextant.tracing.forceFlush();
      return sextant.tracing.finishedSpans().find((s) => s.spanContext().spanId === spanId);
    });
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    const exception = span.events.find((event) => event.name === 'exception');
    expect(exception?.attributes?.['exception.message']).toBe('this route always fails');
    const logged = await until(async () =>
      lines
        .map((line) => JSON.parse(line) as Record<string, any>)
        .find((r) => r.request_id === 'fail-1' && r.level === 'error'),
    );
    expect(JSON.stringify(logged)).toContain('this route always fails');
  });

  it('answers a store error that is not an outage with a generic 500, not a 503 saying the store is away', async () => {
    await backends.sql('ALTER TABLE "Job" RENAME TO "Job_moved"');
    try {
      const read = await fetch(`${url}/jobs/00000000-0000-4000-8000-000000000000`);
      expect(read.status).toBe(500);
      expect(await read.json()).toEqual({
        statusCode: 500,
        error: 'Internal Server Error',
        message: 'internal server error',
      });
      expect((await postJob(SQUARE_JOB)).status).toBe(500);
      expect((await fetch(`${url}/health/ready`)).status).toBe(200);
    } finally {
      await backends.sql('ALTER TABLE "Job_moved" RENAME TO "Job"');
    }
  });

  it('on shutdown, answers readiness 503 at once, finishes in-flight requests, then closes', async () => {
    const inFlight = fetch(`${url}/slow?ms=300`).then((response) => response.status);
    await until(async () => (sextant.inFlight.count > 0 ? true : undefined));
    const shutdown = sextant.shutdown();
    expect((await fetch(`${url}/health/ready`)).status).toBe(503);
    expect(await inFlight).toBe(200);
    await shutdown;
    expect(app.server.listening).toBe(false);
  });
});
