import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AppProcess, startApp } from './app-process.ts';
import { sampleSum } from './exposition.ts';
import { type OtlpReceiver, startOtlpReceiver } from './otlp-receiver.ts';
import { promtoolCheck, promtoolCheckOpenMetrics } from './promtool.ts';

/**
 * The end-to-end contract every HTTP sample app (and so every HTTP adapter) must pass unchanged:
 * the app runs as its own process, exporting OTLP to a real receiver in this process.
 */
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const PROBES = ['/health', '/health/ready', '/health/detailed'];
const REQUEST_COUNT = 'http_server_request_duration_seconds_count';
/** The `http_route` of requests that matched no route (core's `UNMATCHED_ROUTE`). */
const UNMATCHED_ROUTE = '_unmatched';

/** A valid job: max-cut on a 4-cycle. */
export const SQUARE_JOB = {
  type: 'maxcut' as const,
  edges: [
    [0, 1],
    [1, 2],
    [2, 3],
    [3, 0],
  ] as [number, number][],
};

/** The most vertices a job may hold (job-store's `MAX_VARIABLES`), and so the most edges. */
const MAX_VERTICES = 64;
const MAX_EDGES = (MAX_VERTICES * (MAX_VERTICES - 1)) / 2;

/** Every edge between `n` vertices: with 64, the largest max-cut problem a job may hold. */
export function completeGraph(n: number): number[][] {
  const edges: number[][] = [];
  for (let a = 0; a < n; a++) for (let b = a + 1; b < n; b++) edges.push([a, b]);
  return edges;
}

/** `POST /jobs` bodies every app answers 400, each with the message naming what is wrong and what is allowed. */
const INVALID_JOBS: Array<[string, unknown, string]> = [
  ['an unknown problem type', { type: 'sudoku' }, '"type" must be "maxcut" or "qubo", got "sudoku"'],
  [
    'an unknown problem type, with edges',
    { type: 'sudoku', edges: SQUARE_JOB.edges },
    '"type" must be "maxcut" or "qubo", got "sudoku"',
  ],
  ['no edges', { type: 'maxcut' }, '"edges" must be an array of [vertex, vertex] pairs'],
  ['an empty edge list', { type: 'maxcut', edges: [] }, '"edges" must hold at least one edge'],
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
    'vertex 64, one past the last',
    {
      type: 'maxcut',
      edges: [
        [0, 1],
        [64, 1],
      ],
    },
    '"edges[1]" names vertex 64: vertices are numbered from 0 to 63 (at most 64 vertices)',
  ],
  [
    'a negative vertex',
    {
      type: 'maxcut',
      edges: [
        [0, 1],
        [1, -2],
      ],
    },
    '"edges[1]" must be a pair of non-negative integers, like [0, 1]',
  ],
  [
    'a fractional vertex',
    { type: 'maxcut', edges: [[0.5, 1]] },
    '"edges[0]" must be a pair of non-negative integers, like [0, 1]',
  ],
  [
    'an edge with one end',
    { type: 'maxcut', edges: [[0]] },
    '"edges[0]" must be a pair of non-negative integers, like [0, 1]',
  ],
  [
    'a triple',
    { type: 'maxcut', edges: [[0, 1, 2]] },
    '"edges[0]" must be a pair of non-negative integers, like [0, 1]',
  ],
  [
    'a string vertex',
    { type: 'maxcut', edges: [['0', 1]] },
    '"edges[0]" must be a pair of non-negative integers, like [0, 1]',
  ],
  [
    'too many edges',
    { type: 'maxcut', edges: [...completeGraph(MAX_VERTICES), [0, 1]] },
    `"edges" may hold at most ${MAX_EDGES} edges, got ${MAX_EDGES + 1}`,
  ],
  [
    'weights not one per edge',
    { ...SQUARE_JOB, weights: [1, 2] },
    '"weights" must be an array of numbers, one per edge (4)',
  ],
  [
    'a QUBO matrix that is not square',
    { type: 'qubo', matrix: [[1, 2], [3]] },
    '"matrix[1]" must be an array of 2 numbers: the matrix must be square',
  ],
  [
    'an array body',
    [SQUARE_JOB],
    'the problem must be a JSON object, like {"type": "maxcut", "edges": [[0, 1]]}',
  ],
  [
    'options that are not an object',
    { ...SQUARE_JOB, options: 5 },
    '"options" must be an object like { "delayMs": 500, "failAttempts": 2 }',
  ],
  [
    'a negative delay',
    { ...SQUARE_JOB, options: { delayMs: -1 } },
    '"options.delayMs" must be an integer from 0 to 60000',
  ],
  [
    'a delay too long',
    { ...SQUARE_JOB, options: { delayMs: 60_001 } },
    '"options.delayMs" must be an integer from 0 to 60000',
  ],
  [
    'too many failed attempts',
    { ...SQUARE_JOB, options: { failAttempts: 4 } },
    '"options.failAttempts" must be an integer from 0 to 3',
  ],
  [
    'an unknown option',
    { ...SQUARE_JOB, options: { priority: 1 } },
    '"options" may hold "delayMs" and "failAttempts" only, got "priority"',
  ],
];

/** The largest a request body may be in every app: 1 MiB (Fastify's default, express-api's `1mb`). */
const BODY_LIMIT_BYTES = 1024 * 1024;

/** The smallest normal double, negated: as JSON, `-2.2250738585072014e-308`, as long as a number gets. */
const LONGEST_NUMBER = -(2 ** -1022);

/** The largest valid problem as JSON: 64 variables, every coefficient written with the most characters. */
const LARGEST_QUBO = {
  type: 'qubo' as const,
  matrix: Array.from({ length: MAX_VERTICES }, () =>
    Array.from({ length: MAX_VERTICES }, () => LONGEST_NUMBER),
  ),
};

/** `POST /jobs` problems every app accepts, up to the largest. */
const VALID_JOBS: Array<[string, { type: string } & Record<string, unknown>]> = [
  ['a 20-vertex ring', { type: 'maxcut', edges: Array.from({ length: 20 }, (_, i) => [i, (i + 1) % 20]) }],
  ['every edge of 64 vertices, the largest problem', { type: 'maxcut', edges: completeGraph(MAX_VERTICES) }],
  ['weighted edges', { ...SQUARE_JOB, weights: [1, 2, 0.5, -1] }],
  ['a 64-variable QUBO of full-precision coefficients, the longest valid body', LARGEST_QUBO],
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
];

const postJob = (url: string, body: unknown, init: RequestInit = {}) =>
  fetch(`${url}/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });

/** A port nothing listens on: connections to it are refused. */
async function refusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function traceIdOf(response: Response): string {
  const header = response.headers.get('traceresponse');
  expect(header).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
  return header!.split('-')[1]!;
}

/** The label sets of every series of the request counter, read from Prometheus text. */
function requestSeries(exposition: string): Array<Record<string, string>> {
  return [...exposition.matchAll(new RegExp(`^${REQUEST_COUNT}\\{(.*)\\} \\S+$`, 'gm'))].map((match) =>
    Object.fromEntries(
      [...match[1]!.matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]),
    ),
  );
}

export interface HttpConformanceOptions {
  cwd: string;
  env?: Record<string, string>;
  /** The script `node` runs, relative to `cwd` (default `src/main.ts`), for apps with a build step. */
  entry?: string;
  /** Job rows by status in the store that `env` names (job-store/testing's `countJobs`). */
  countJobs(): Promise<Record<string, number>>;
}

export function describeHttpConformance(name: string, options: HttpConformanceOptions) {
  const appEnv = (receiver: OtlpReceiver): Record<string, string> => ({
    OTEL_SERVICE_NAME: name,
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: '50',
    ...options.env,
  });

  describe(`${name}: HTTP conformance`, () => {
    let receiver: OtlpReceiver;
    let app: AppProcess;

    beforeAll(async () => {
      receiver = await startOtlpReceiver();
      app = await startApp({ cwd: options.cwd, entry: options.entry, env: appEnv(receiver) });
    });
    afterAll(async () => {
      await app?.stop();
      await receiver?.close();
    });

    it('continues an incoming trace: span, every log record of the request and the response share its id', async () => {
      const response = await fetch(`${app.url}/slow?ms=5`, {
        headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, 'x-request-id': 'conformance-1' },
      });
      expect(response.status).toBe(200);
      expect(traceIdOf(response)).toBe(TRACE_ID);
      expect(response.headers.get('x-request-id')).toBe('conformance-1');
      const body = (await response.json()) as { request_id: string; trace_id: string };
      expect(body).toEqual({ request_id: 'conformance-1', trace_id: TRACE_ID });

      const [span] = await receiver.waitForSpans((s) => s.traceId === TRACE_ID && s.kind === 2, 1);
      expect(span!.name).toBe('GET /slow');
      expect(span!.parentSpanId).toBe(PARENT_ID);
      expect(span!.resource['service.name']).toBe(name);

      await app.waitForRecord((r) => r.request_id === 'conformance-1' && r.msg === 'request completed');
      const records = app.records().filter((r) => r.request_id === 'conformance-1');
      expect(records.length).toBeGreaterThanOrEqual(2);
      for (const record of records) expect(record.trace_id).toBe(TRACE_ID);
      expect(app.strayLines()).toEqual([]);
    });

    it('starts a fresh trace without a traceparent, and for a malformed one: a root server span', async () => {
      const fresh = traceIdOf(await fetch(`${app.url}/slow?ms=1`));
      const malformed = traceIdOf(
        await fetch(`${app.url}/slow?ms=1`, { headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-0g` } }),
      );
      expect(fresh).not.toBe(TRACE_ID);
      expect(malformed).not.toBe(TRACE_ID);
      expect(malformed).not.toBe(fresh);
      for (const traceId of [fresh, malformed]) {
        const [span] = await receiver.waitForSpans((s) => s.traceId === traceId && s.kind === 2, 1);
        expect(span!.name).toBe('GET /slow');
        // No parent at all: not the malformed header's parent id, nor any other.
        expect(span!.parentSpanId, `server span of trace ${traceId}`).toBe('');
      }
    });

    it('answers 500 for a throwing handler, with the exception on the span and an error record with the ids', async () => {
      const response = await fetch(`${app.url}/fail`, { headers: { 'x-request-id': 'conformance-fail' } });
      expect(response.status).toBe(500);
      const traceId = traceIdOf(response);
      const [span] = await receiver.waitForSpans((s) => s.traceId === traceId && s.kind === 2, 1);
      expect(span!.name).toBe('GET /fail');
      expect(span!.status.code).toBe(2);
      expect(span!.events.some((event) => event.name === 'exception')).toBe(true);
      const errorRecord = await app.waitForRecord(
        (r) => r.request_id === 'conformance-fail' && r.level === 'error' && r.msg !== 'request completed',
      );
      expect(errorRecord.trace_id).toBe(traceId);
    });

    it('records route templates only, right status codes, and leaves probes and /metrics out; promtool passes', async () => {
      const scrape = async (accept?: string) => {
        const response = await fetch(`${app.url}/metrics`, accept ? { headers: { accept } } : {});
        expect(response.status).toBe(200);
        return response;
      };
      // Earlier tests' requests are in the registry already: every count below is a difference.
      const before = await (await scrape()).text();
      // The application requests this test sends: the only ones that may be counted.
      let sent = 0;
      const send = (path: string, init?: RequestInit) => {
        sent++;
        return fetch(`${app.url}${path}`, init);
      };
      const post = (body: unknown) => {
        sent++;
        return postJob(app.url, body);
      };

      const created = await post(SQUARE_JOB);
      expect(created.status).toBe(202);
      const { id } = (await created.json()) as { id: string };
      expect((await send(`/jobs/${id}`)).status).toBe(200);
      for (let i = 0; i < 25; i++) expect((await send(`/jobs/missing-${i}`)).status).toBe(404);
      expect((await post({ type: 'sudoku' })).status).toBe(400);
      const unmatchedSent = 10;
      for (let i = 0; i < unmatchedSent; i++) expect((await send(`/no/such/path/${i}`)).status).toBe(404);

      // Probes and scrapes, several times and in both formats: none of them may be counted.
      for (let round = 0; round < 3; round++) {
        for (const probe of PROBES) expect((await fetch(`${app.url}${probe}`)).status).toBe(200);
        await scrape();
        const openMetrics = await scrape('application/openmetrics-text;version=1.0.0');
        expect(openMetrics.headers.get('content-type')).toContain('application/openmetrics-text');
        const text = await openMetrics.text();
        if (round === 0) expect(promtoolCheckOpenMetrics(text)).toEqual({ eof: true, problems: [] });
      }

      const exposition = await (await scrape()).text();
      expect(promtoolCheck(exposition)).toEqual({ status: 0, problems: '' });
      const series = requestSeries(exposition);
      const routes = new Set(series.map((labels) => labels.http_route));
      expect(routes.has('/jobs/:id')).toBe(true);
      expect([...routes].filter((route) => /missing|no\/such|health|metrics/.test(route ?? ''))).toEqual([]);
      const counted = (labels: Record<string, string> = {}) =>
        sampleSum(exposition, REQUEST_COUNT, labels) - sampleSum(before, REQUEST_COUNT, labels);
      expect(counted({ http_route: '/jobs/:id', http_response_status_code: '404' })).toBe(25);
      expect(
        counted({ http_route: '/jobs', http_request_method: 'POST', http_response_status_code: '202' }),
      ).toBe(1);
      expect(
        counted({ http_route: '/jobs', http_request_method: 'POST', http_response_status_code: '400' }),
      ).toBe(1);
      expect(
        sampleSum(exposition, REQUEST_COUNT, { http_route: '/fail', http_response_status_code: '500' }),
      ).toBeGreaterThanOrEqual(1);

      // A probe or scrape answered outside any route would land here, with status 200.
      const unmatched = series.filter((labels) => labels.http_route === UNMATCHED_ROUTE);
      expect(
        unmatched.filter((labels) => labels.http_response_status_code !== '404'),
        `only the unknown paths, all 404, under http_route="${UNMATCHED_ROUTE}"`,
      ).toEqual([]);
      expect(counted({ http_route: UNMATCHED_ROUTE })).toBe(unmatchedSent);
      expect(counted({ http_route: UNMATCHED_ROUTE, http_response_status_code: '404' })).toBe(unmatchedSent);
      expect(counted(), 'requests counted: the application requests sent, nothing else').toBe(sent);
    });

    it('keeps 500 concurrent requests apart: every record carries its own request and trace', async () => {
      const responses = await Promise.all(
        Array.from({ length: 500 }, async (_, i) => {
          const requestId = `concurrent-${i}`;
          const response = await fetch(`${app.url}/slow?ms=${i % 20}`, {
            headers: { 'x-request-id': requestId },
          });
          const body = (await response.json()) as { request_id: string; trace_id: string };
          return { requestId, status: response.status, traceId: traceIdOf(response), body };
        }),
      );
      const traceByRequest = new Map<string, string>();
      for (const { requestId, status, traceId, body } of responses) {
        expect(status).toBe(200);
        expect(body).toEqual({ request_id: requestId, trace_id: traceId });
        traceByRequest.set(requestId, traceId);
      }
      expect(new Set(traceByRequest.values()).size).toBe(500);
      // Requests end in any order (their delays differ), so no one record is the last: wait for the count.
      const concurrentRecords = () =>
        app.records().filter((r) => String(r.request_id).startsWith('concurrent-'));
      await expect.poll(() => concurrentRecords().length, { timeout: 10_000 }).toBeGreaterThanOrEqual(1000);
      const records = concurrentRecords();
      expect(records.length).toBeGreaterThanOrEqual(1000);
      for (const record of records) expect(record.trace_id).toBe(traceByRequest.get(record.request_id));
    });

    it.each(INVALID_JOBS)(
      'answers 400 naming what is wrong and what is allowed for %s',
      async (_case, body, message) => {
        const response = await postJob(app.url, body);
        expect(response.status).toBe(400);
        expect(await response.json()).toEqual({ statusCode: 400, error: 'Bad Request', message });
      },
    );

    it('answers 404 for ids that cannot be job ids, without a server error or an outage answer', async () => {
      // `%00` once reached PostgreSQL, which refuses a NUL in text: answered 503 while the store was fine.
      for (const [path, id] of [
        ['%00', '\0'],
        ['a%00b', 'a\0b'],
        ['%20', ' '],
        ['not-a-job', 'not-a-job'],
        ['00000000-0000-4000-8000-000000000000', '00000000-0000-4000-8000-000000000000'],
      ]) {
        const response = await fetch(`${app.url}/jobs/${path}`);
        expect(response.status, `GET /jobs/${path}`).toBe(404);
        expect(await response.json()).toEqual({
          statusCode: 404,
          error: 'Not Found',
          message: `no job with id ${JSON.stringify(id)}`,
        });
      }
      expect((await fetch(`${app.url}/health/ready`)).status).toBe(200);
    });

    it('takes bodies up to 1 MiB however the problem is written, and answers a larger one 413 in the shared shape', async () => {
      // Over Nest's Express default of 100 kB even compact; 129 KiB pretty-printed.
      expect(JSON.stringify(LARGEST_QUBO).length).toBeGreaterThan(100 * 1024);
      const problem = { ...LARGEST_QUBO, options: { delayMs: 60_000 } };
      const pretty = JSON.stringify(problem, null, 2);
      expect(pretty.length).toBeGreaterThan(128 * 1024);
      const prettyCreated = await postJob(app.url, pretty);
      expect(prettyCreated.status).toBe(202);
      // Trailing white space is valid JSON: a body just under the limit.
      const padded = pretty.padEnd(BODY_LIMIT_BYTES - 1024, ' ');
      expect((await postJob(app.url, padded)).status).toBe(202);

      const tooLarge = await postJob(app.url, pretty.padEnd(BODY_LIMIT_BYTES + 1024, ' '));
      expect(tooLarge.status).toBe(413);
      expect(await tooLarge.json()).toMatchObject({
        statusCode: 413,
        error: 'Payload Too Large',
        message: expect.any(String),
      });
    });

    it.each(VALID_JOBS)('accepts %s: 202, stored for the worker', async (_case, body) => {
      // Delayed a minute: stays queued whether a worker runs or not.
      const created = await postJob(app.url, { ...body, options: { delayMs: 60_000 } });
      expect(created.status).toBe(202);
      const { id } = (await created.json()) as { id: string };
      const job = await fetch(`${app.url}/jobs/${id}`);
      expect(await job.json()).toMatchObject({ id, type: body.type, status: 'queued' });
    });
  });

  describe(`${name}: Redis unreachable since start-up`, () => {
    it('answers POST /jobs 503 within seconds, leaves no row queued, and still shuts down by itself', async () => {
      const app = await startApp({
        cwd: options.cwd,
        entry: options.entry,
        env: {
          ...options.env,
          OTEL_TRACES_EXPORTER: 'none',
          REDIS_URL: `redis://127.0.0.1:${await refusedPort()}`,
        },
      });
      try {
        const before = await options.countJobs();
        const started = performance.now();
        // A queue that never connected used to hold the request for as long as Redis stayed away.
        const response = await postJob(app.url, SQUARE_JOB, { signal: AbortSignal.timeout(15_000) });
        expect(response.status).toBe(503);
        expect(performance.now() - started).toBeLessThan(5000);
        expect(await response.json()).toEqual({
          statusCode: 503,
          error: 'Service Unavailable',
          message: 'the job queue is unavailable, try again later',
        });
        const after = await options.countJobs();
        expect(after).toEqual({ ...before, failed: (before.failed ?? 0) + 1 });
        expect((await fetch(`${app.url}/health/ready`)).status).toBe(503);

        app.child.kill('SIGTERM');
        expect(await app.exited).toEqual({ code: 0, signal: null });
        expect(app.strayLines()).toEqual([]);
      } finally {
        await app.stop();
      }
    });
  });

  describe(`${name}: shutdown under load`, () => {
    it('answers readiness 503 at once, completes in-flight requests, flushes spans and exits by itself', async () => {
      const receiver = await startOtlpReceiver();
      const app = await startApp({
        cwd: options.cwd,
        entry: options.entry,
        env: { ...appEnv(receiver), OTEL_BSP_SCHEDULE_DELAY: '60000' },
      });
      try {
        expect((await fetch(`${app.url}/health/ready`)).status).toBe(200);
        const inFlight = Array.from({ length: 20 }, (_, i) =>
          fetch(`${app.url}/slow?ms=800`, { headers: { 'x-request-id': `drain-${i}` } }).then(async (r) => ({
            status: r.status,
            traceId: traceIdOf(r),
          })),
        );
        await sleep(300);
        app.child.kill('SIGTERM');
        await app.waitForRecord((r) => /shutting down/.test(String(r.msg)));
        expect((await fetch(`${app.url}/health/ready`)).status).toBe(503);

        const finished = await Promise.all(inFlight);
        expect(finished.every((r) => r.status === 200)).toBe(true);
        const exit = await app.exited;
        expect(exit).toEqual({ code: 0, signal: null });
        // The batch delay is a minute: these spans arrived only because shutdown flushed them.
        const exported = new Set(receiver.spans().map((span) => span.traceId));
        for (const { traceId } of finished) expect(exported.has(traceId)).toBe(true);
      } finally {
        await app.stop();
        await receiver.close();
      }
    });
  });
}
