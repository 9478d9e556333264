import { fileURLToPath } from 'node:url';
import { type AppProcess, startApp } from '@sextant/testing/app-process';
import { SQUARE_JOB } from '@sextant/testing/http-conformance';
import { type OtlpReceiver, startOtlpReceiver } from '@sextant/testing/otlp-receiver';
import { createTestBackends } from 'job-store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const cwd = fileURLToPath(new URL('..', import.meta.url));
const backends = createTestBackends('nest_pipeline');
afterAll(() => backends.cleanup());

describe.each(['express', 'fastify'])('nest-api on %s: the Nest pipeline inside the request', (platform) => {
  let receiver: OtlpReceiver;
  let app: AppProcess;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    app = await startApp({
      cwd,
      entry: 'dist/main.js',
      env: {
        ...backends.env,
        NEST_PLATFORM: platform,
        OTEL_SERVICE_NAME: `nest-api-${platform}`,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: '50',
      },
    });
  });
  afterAll(async () => {
    await app?.stop();
    await receiver?.close();
  });

  const submit = (requestId: string) =>
    fetch(`${app.url}/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': requestId },
      body: JSON.stringify(SQUARE_JOB),
    });

  it("writes the guard's log record with the request's ids", async () => {
    const response = await submit(`${platform}-guarded`);
    expect(response.status).toBe(202);
    const traceId = response.headers.get('traceresponse')!.split('-')[1];
    const record = await app.waitForRecord(
      (r) => r.msg === 'job submission admitted' && r.request_id === `${platform}-guarded`,
    );
    expect(record).toMatchObject({ trace_id: traceId, context: 'SubmissionsGuard' });
    expect(record.span_id).toMatch(/^[0-9a-f]{16}$/);
  });

  it('makes the traced provider method a child of the request span', async () => {
    const response = await submit(`${platform}-traced`);
    expect(response.status).toBe(202);
    const traceId = response.headers.get('traceresponse')!.split('-')[1];
    const spans = await receiver.waitForSpans((s) => s.traceId === traceId, 2);
    const server = spans.find((s) => s.kind === 2)!;
    const submitSpan = spans.find((s) => s.name === 'JobsService.submit')!;
    expect(server.name).toBe('POST /jobs');
    expect(submitSpan.parentSpanId).toBe(server.spanId);
  });

  const post = (body: unknown) =>
    fetch(`${app.url}/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('answers /fail with a generic 500: the error only on the span and in the log', async () => {
    const response = await fetch(`${app.url}/fail`, { headers: { 'x-request-id': `${platform}-fail` } });
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ statusCode: 500, message: 'Internal server error' });
    const traceId = response.headers.get('traceresponse')!.split('-')[1];
    const [span] = await receiver.waitForSpans((s) => s.traceId === traceId && s.kind === 2, 1);
    const exception = span!.events.find((event) => event.name === 'exception');
    expect(exception?.attributes['exception.message']).toBe('this route always fails');
    const record = await app.waitForRecord((r) => r.request_id === `${platform}-fail` && r.level === 'error');
    expect(JSON.stringify(record)).toContain('this route always fails');
  });

  it('answers an invalid body 400 through the pipe, and an unknown job 404, neither a server error', async () => {
    const invalid = await post({ type: 'maxcut', edges: [] });
    expect(invalid.status).toBe(400);
    expect(await invalid.json()).toEqual({
      statusCode: 400,
      error: 'Bad Request',
      message: '"edges" must hold at least one edge',
    });
    const missing = await fetch(`${app.url}/jobs/nope`);
    expect(missing.status).toBe(404);
    const traceId = missing.headers.get('traceresponse')!.split('-')[1];
    const [span] = await receiver.waitForSpans((s) => s.traceId === traceId && s.kind === 2, 1);
    expect(span!.name).toBe('GET /jobs/:id');
    expect(span!.status.code).not.toBe(2);
  });

  it('answers a store error that is not an outage with a 500, not a 503 saying the store is away', async () => {
    await backends.sql('ALTER TABLE "Job" RENAME TO "Job_moved"');
    try {
      const read = await fetch(`${app.url}/jobs/00000000-0000-4000-8000-000000000000`);
      expect(read.status).toBe(500);
      expect(((await read.json()) as { message: string }).message).toBe('Internal server error');
      expect((await submit(`${platform}-broken-store`)).status).toBe(500);
      expect((await fetch(`${app.url}/health/ready`)).status).toBe(200);
    } finally {
      await backends.sql('ALTER TABLE "Job_moved" RENAME TO "Job"');
    }
  });
});
