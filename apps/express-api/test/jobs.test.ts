import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { SpanStatusCode } from '@opentelemetry/api';
import { createSextant, type Sextant } from '@sextant/core';
import { SQUARE_JOB } from '@sextant/testing/http-conformance';
import { createJobQueue, createJobStore, type JobQueue } from 'job-store';
import { createTestBackends } from 'job-store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.ts';

const badRequest = (message: string) => ({ statusCode: 400, error: 'Bad Request', message });

describe('express-api jobs API, in process', () => {
  let sextant: Sextant;
  let server: Server;
  let url: string;
  let queue: JobQueue;
  const lines: string[] = [];
  const backends = createTestBackends('express_jobs');

  beforeAll(async () => {
    sextant = createSextant({
      serviceName: 'express-api-test',
      tracing: { exporter: 'memory' },
      logs: { destination: { write: (line: string) => void lines.push(line) } },
      env: {},
    });
    const store = await createJobStore(sextant, { databaseUrl: backends.env.DATABASE_URL });
    queue = createJobQueue(sextant, {
      redisUrl: backends.env.REDIS_URL,
      prefix: backends.env.SEXTANT_QUEUE_PREFIX,
    });
    server = createApp(sextant, { store, queue }).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await sextant?.shutdown();
    await backends.cleanup();
  });

  const post = (body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    fetch(`${url}/jobs`, {
      method: 'POST',
      headers,
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  async function spanOf(response: Response) {
    const spanId = response.headers.get('traceresponse')!.split('-')[2];
    for (let attempt = 0; attempt < 100; attempt++) {
      const span = sextant.tracing.finishedSpans().find((s) => s.spanContext().spanId === spanId);
      if (span) return span;
      await sleep(10);
    }
    throw new Error('span did not end');
  }

  it('stores a max-cut job as queued, enqueues its id only, and answers 202 with the id', async () => {
    const created = await post(SQUARE_JOB);
    expect(created.status).toBe(202);
    const { id } = (await created.json()) as { id: string };
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await spanOf(created)).name).toBe('POST /jobs');

    const response = await fetch(`${url}/jobs/${id}`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ id, type: 'maxcut', status: 'queued', attempts: 0 });
    const queued = await queue.getJob(id);
    expect(queued?.data).toEqual({ jobId: id });
    expect(queued?.opts.attempts).toBe(3);

    const attempts = await fetch(`${url}/admin/jobs/${id}/attempts`);
    expect(await attempts.json()).toEqual({ id, status: 'queued', attempts: 0, error: null });
    expect((await spanOf(attempts)).attributes['http.route']).toBe('/admin/jobs/:id/attempts');
    const counts = (await (await fetch(`${url}/admin/jobs`)).json()) as { jobs: Record<string, number> };
    expect(counts.jobs.queued).toBeGreaterThanOrEqual(1);
  });

  it('passes options.delayMs to the queue as the job delay', async () => {
    const created = await post({ ...SQUARE_JOB, options: { delayMs: 5000, failAttempts: 2 } });
    expect(created.status).toBe(202);
    const { id } = (await created.json()) as { id: string };
    const queued = await queue.getJob(id);
    expect(queued?.opts.delay).toBe(5000);
    expect(await queued?.getState()).toBe('delayed');
  });

  it('answers 404 for an unknown id, recorded under the route template', async () => {
    const response = await fetch(`${url}/jobs/does-not-exist`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({
      statusCode: 404,
      error: 'Not Found',
      message: 'no job with id "does-not-exist"',
    });
    const span = await spanOf(response);
    expect(span.attributes['http.route']).toBe('/jobs/:id');
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('answers 400 for malformed JSON and for a body that is not JSON, without a server error', async () => {
    const malformed = await post('{"type": "maxcut", "edges": [[0,1]');
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toEqual(badRequest('the body is not valid JSON'));
    expect((await spanOf(malformed)).status.code).toBe(SpanStatusCode.UNSET);
    const plain = await post('type=maxcut', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(plain.status).toBe(400);
    expect(await plain.json()).toEqual(
      badRequest('the problem must be a JSON object, like {"type": "maxcut", "edges": [[0, 1]]}'),
    );
  });

  it('answers /slow with the request and trace ids seen inside the handler, after one log record', async () => {
    const response = await fetch(`${url}/slow?ms=3`, { headers: { 'x-request-id': 'slow-1' } });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { request_id: string; trace_id: string };
    expect(body).toEqual({
      request_id: 'slow-1',
      trace_id: response.headers.get('traceresponse')!.split('-')[1],
    });
    const records = lines.map((line) => JSON.parse(line) as Record<string, any>);
    const done = records.filter((r) => r.request_id === 'slow-1' && r.msg === 'slow request done');
    expect(done).toHaveLength(1);
    expect(done[0]!.trace_id).toBe(body.trace_id);
    const soon = await fetch(`${url}/slow?ms=soon`);
    expect(soon.status).toBe(400);
    expect(await soon.json()).toEqual(badRequest('"ms" must be an integer from 0 to 10000'));
    expect((await fetch(`${url}/slow?ms=10001`)).status).toBe(400);
  });

  it('answers /fail with a generic 500 JSON body, the error on the span and in the log', async () => {
    const response = await fetch(`${url}/fail`, { headers: { 'x-request-id': 'fail-1' } });
    expect(response.status).toBe(500);
    // The client learns nothing about the internals: not the exception's message.
    expect(await response.json()).toEqual({
      statusCode: 500,
      error: 'Internal Server Error',
      message: 'internal server error',
    });
    const span = await spanOf(response);
    expect(span.name).toBe('GET /fail');
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    const exception = span.events.find((event) => event.name === 'exception');
    expect(exception?.attributes?.['exception.message']).toBe('this route always fails');
    const records = lines.map((line) => JSON.parse(line) as Record<string, any>);
    const logged = records.find((r) => r.request_id === 'fail-1' && r.level === 'error');
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
      expect((await post(SQUARE_JOB)).status).toBe(500);
      expect((await fetch(`${url}/health/ready`)).status).toBe(200);
    } finally {
      await backends.sql('ALTER TABLE "Job_moved" RENAME TO "Job"');
    }
  });

  it('answers JSON 404 for unknown paths, shared under one route label', async () => {
    const response = await fetch(`${url}/nothing/here`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ statusCode: 404, error: 'Not Found', message: 'not found' });
    expect((await spanOf(response)).attributes['http.route']).toBeUndefined();
  });
});
