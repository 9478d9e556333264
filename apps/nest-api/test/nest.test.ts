import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { type AppProcess, startApp } from '@sextant/testing/app-process';
import { type OtlpReceiver, startOtlpReceiver } from '@sextant/testing/otlp-receiver';
import { MAX_EDGES, MAX_VARIABLES } from 'job-store';
import { createTestBackends } from 'job-store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const cwd = fileURLToPath(new URL('..', import.meta.url));
const backends = createTestBackends('nest_pipeline');
afterAll(() => backends.cleanup());
const SQUARE = {
  type: 'maxcut',
  edges: [
    [0, 1],
    [1, 2],
    [2, 3],
    [3, 0],
  ],
};

/** Every edge between `n` vertices: with 64, the largest max-cut problem a job may hold. */
function complete(n: number): number[][] {
  const edges: number[][] = [];
  for (let a = 0; a < n; a++) for (let b = a + 1; b < n; b++) edges.push([a, b]);
  return edges;
}

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
      body: JSON.stringify(SQUARE),
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

  it.each([
    [
      'a self-loop',
      { type: 'maxcut', edges: [[5, 5]] },
      '"edges[0]" joins vertex 5 to itself: an edge must join two different vertices',
    ],
    [
      'a vertex out of range',
      { type: 'maxcut', edges: [[0, 1000]] },
      '"edges[0]" names vertex 1000: vertices are numbered from 0 to 63 (at most 64 vertices)',
    ],
    [
      'too many edges',
      { type: 'maxcut', edges: [...complete(MAX_VARIABLES), [0, 1]] },
      `"edges" may hold at most ${MAX_EDGES} edges, got ${MAX_EDGES + 1}`,
    ],
    ['an unknown problem type', { type: 'sudoku' }, '"type" must be "maxcut" or "qubo", got "sudoku"'],
  ])('answers 400 naming what is wrong and what is allowed for %s', async (_case, body, message) => {
    const response = await post(body);
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ statusCode: 400, error: 'Bad Request', message });
  });

  it.each([
    ['a 20-vertex ring', { type: 'maxcut', edges: Array.from({ length: 20 }, (_, i) => [i, (i + 1) % 20]) }],
    ['every edge of 64 vertices, the largest problem', { type: 'maxcut', edges: complete(MAX_VARIABLES) }],
    [
      'a QUBO matrix',
      {
        type: 'qubo',
        matrix: [
          [1, -2],
          [0, 1],
        ],
      },
    ],
  ])('accepts %s: 202, stored for the worker', async (_case, body) => {
    const created = await post({ ...body, options: { delayMs: 60_000 } });
    expect(created.status).toBe(202);
    const { id } = (await created.json()) as { id: string };
    const job = await fetch(`${app.url}/jobs/${id}`);
    expect(await job.json()).toMatchObject({ id, type: body.type, status: 'queued' });
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
});

describe('nest-api start-up', () => {
  // `Number('')` is 0 (a random port) and `Number('0x50')` 80: neither may start a server.
  it.each(['', 'abc', '0x50', '65536'])(
    'refuses PORT=%j: exits with code 1 after a fatal record naming the variable, the value and what is allowed',
    async (value) => {
      const child = spawn(process.execPath, ['--conditions=sextant-source', 'dist/main.js'], {
        cwd,
        env: { ...process.env, ...backends.env, OTEL_TRACES_EXPORTER: 'none', PORT: value },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const [code] = await once(child, 'exit');
      clearTimeout(timer);
      expect(code).toBe(1);
      const records = stdout
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(records).toContainEqual(
        expect.objectContaining({
          level: 'fatal',
          port: value,
          msg: `PORT must be an integer from 0 to 65535, got ${JSON.stringify(value)}`,
        }),
      );
    },
  );
});
