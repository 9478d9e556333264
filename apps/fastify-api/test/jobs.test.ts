import type { AddressInfo } from 'node:net';
import { createSextant, type Sextant } from '@sextant/core';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.ts';
import { solveMaxCut } from '../src/jobs.ts';

const SQUARE = [
  [0, 1],
  [1, 2],
  [2, 3],
  [3, 0],
];

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('solveMaxCut', () => {
  it.each([
    ['a square', SQUARE, 4],
    [
      'a triangle',
      [
        [0, 1],
        [1, 2],
        [2, 0],
      ],
      2,
    ],
    [
      'K4',
      [
        [0, 1],
        [0, 2],
        [0, 3],
        [1, 2],
        [1, 3],
        [2, 3],
      ],
      4,
    ],
  ])('finds the maximum cut of %s', (_name, edges, expected) => {
    const result = solveMaxCut(edges as Array<[number, number]>);
    expect(result.cut_value).toBe(expected);
    const crossing = edges.filter(([a, b]) => result.partition[a!] !== result.partition[b!]).length;
    expect(crossing).toBe(expected);
  });
});

describe('fastify-api', () => {
  let sextant: Sextant;
  let app: FastifyInstance;
  let url: string;

  beforeAll(async () => {
    sextant = createSextant({
      serviceName: 'fastify-api-test',
      tracing: { exporter: 'memory' },
      logs: { level: 'silent' },
      env: {},
    });
    app = await createApp(sextant);
    sextant.onShutdown(() => app.close());
    await app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await sextant?.shutdown();
  });

  const postJob = (body: unknown) =>
    fetch(`${url}/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('accepts a max-cut job with 202 and an id, then completes it with its result', async () => {
    const created = await postJob({ type: 'maxcut', edges: SQUARE });
    expect(created.status).toBe(202);
    const { id } = (await created.json()) as { id: string };
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    const job = await until(async () => {
      const response = await fetch(`${url}/jobs/${id}`);
      expect(response.status).toBe(200);
      const body = (await response.json()) as { status: string; result?: unknown };
      expect(['queued', 'running', 'completed']).toContain(body.status);
      return body.status === 'completed' ? body : undefined;
    });
    expect(job).toMatchObject({ id, type: 'maxcut', status: 'completed' });
    expect(job.result).toEqual({ cut_value: 4, partition: [0, 1, 0, 1], solver: 'exhaustive' });
  });

  it('answers 404 for an unknown job', async () => {
    const response = await fetch(`${url}/jobs/no-such-job`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: 'job not found', id: 'no-such-job' });
  });

  it.each([
    ['an unknown problem type', { type: 'sudoku', edges: SQUARE }, 'body/type must be one of: maxcut'],
    ['no edges', { type: 'maxcut' }, "body must have required property 'edges'"],
    ['a vertex out of range', { type: 'maxcut', edges: [[0, 99]] }, 'body/edges/0/1 must be <= 15'],
    [
      'an edge with one end',
      { type: 'maxcut', edges: [[0]] },
      'body/edges/0 must NOT have fewer than 2 items',
    ],
  ])('answers 400 naming what is wrong for %s', async (_case, body, message) => {
    const response = await postJob(body);
    expect(response.status).toBe(400);
    const error = (await response.json()) as { message: string };
    expect(error.message).toContain(`invalid job: ${message}`);
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
        'maxcut.solve',
      ];
      return expected.every((name) => names.has(name)) ? true : undefined;
    });
  });

  it('answers /slow with the request and trace ids its handler saw', async () => {
    const response = await fetch(`${url}/slow?ms=5`, { headers: { 'x-request-id': 'slow-1' } });
    const traceId = response.headers.get('traceresponse')!.split('-')[1];
    expect(await response.json()).toEqual({ request_id: 'slow-1', trace_id: traceId });
  });

  it('answers /fail with a 500 JSON error', async () => {
    const response = await fetch(`${url}/fail`);
    expect(response.status).toBe(500);
    expect(await response.json()).toMatchObject({ statusCode: 500, message: 'this route always fails' });
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
