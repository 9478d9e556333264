import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { SpanStatusCode } from '@opentelemetry/api';
import { createSextant, type Sextant } from '@sextant/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.ts';
import { MAX_EDGES } from '../src/problem.ts';

const SQUARE = {
  type: 'maxcut',
  edges: [
    [0, 1],
    [1, 2],
    [2, 3],
    [3, 0],
  ],
};

describe('express-api jobs API, in process', () => {
  let sextant: Sextant;
  let server: Server;
  let url: string;
  const lines: string[] = [];

  beforeAll(async () => {
    sextant = createSextant({
      serviceName: 'express-api-test',
      tracing: { exporter: 'memory' },
      logs: { destination: { write: (line: string) => void lines.push(line) } },
      env: {},
    });
    server = createApp(sextant).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await sextant?.shutdown();
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

  it('accepts a max-cut job with 202 and an id, then completes it with its result', async () => {
    const created = await post(SQUARE);
    expect(created.status).toBe(202);
    const { id } = (await created.json()) as { id: string };
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await spanOf(created)).name).toBe('POST /jobs');

    let job: Record<string, any> = {};
    for (let attempt = 0; attempt < 100 && job.status !== 'completed'; attempt++) {
      const response = await fetch(`${url}/jobs/${id}`);
      expect(response.status).toBe(200);
      job = (await response.json()) as Record<string, any>;
      expect(['queued', 'running', 'completed']).toContain(job.status);
      if (job.status !== 'completed') await sleep(5);
    }
    expect(job).toMatchObject({ id, type: 'maxcut', status: 'completed', result: { cut_value: 4 } });
    const { partition } = job.result as { partition: Record<string, number> };
    // The square's only maximum cuts alternate sides.
    expect(partition['0']).toBe(partition['2']);
    expect(partition['1']).toBe(partition['3']);
    expect(partition['0']).not.toBe(partition['1']);

    const timeline = await fetch(`${url}/admin/jobs/${id}/timeline`);
    expect(
      ((await timeline.json()) as { timeline: Array<{ status: string }> }).timeline.map((t) => t.status),
    ).toEqual(['queued', 'running', 'completed']);
    expect((await spanOf(timeline)).attributes['http.route']).toBe('/admin/jobs/:id/timeline');
  });

  it('solves a graph too large for the exhaustive search with the local search', async () => {
    const ring = Array.from({ length: 40 }, (_, i) => [i, (i + 1) % 40]);
    const { id } = (await (await post({ type: 'maxcut', edges: ring })).json()) as { id: string };
    let job: Record<string, any> = {};
    for (let attempt = 0; attempt < 100 && job.status !== 'completed'; attempt++) {
      job = (await (await fetch(`${url}/jobs/${id}`)).json()) as Record<string, any>;
      if (job.status !== 'completed') await sleep(5);
    }
    expect(job.result.method).toBe('local_search');
    expect(job.result.cut_value).toBeGreaterThanOrEqual(20);
  });

  it('answers 404 for an unknown id, recorded under the route template', async () => {
    const response = await fetch(`${url}/jobs/does-not-exist`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: 'no job with id "does-not-exist"' });
    const span = await spanOf(response);
    expect(span.attributes['http.route']).toBe('/jobs/:id');
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
  });

  it.each([
    ['a wrong type', { type: 'sudoku' }, '"type" must be "maxcut"'],
    ['no edges', { type: 'maxcut' }, '"edges" must be an array of [node, node] pairs'],
    ['an empty edge list', { type: 'maxcut', edges: [] }, '"edges" must hold at least one edge'],
    [
      'a negative node',
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
      'a fractional node',
      { type: 'maxcut', edges: [[0.5, 1]] },
      '"edges[0]" must be a pair of non-negative integers, like [0, 1]',
    ],
    [
      'a triple',
      { type: 'maxcut', edges: [[0, 1, 2]] },
      '"edges[0]" must be a pair of non-negative integers, like [0, 1]',
    ],
    [
      'a string node',
      { type: 'maxcut', edges: [['0', 1]] },
      '"edges[0]" must be a pair of non-negative integers, like [0, 1]',
    ],
    ['an array body', [SQUARE], 'the body must be a JSON object sent with content-type application/json'],
    [
      'too many edges',
      { type: 'maxcut', edges: Array.from({ length: MAX_EDGES + 1 }, (_, i) => [i, i + 1]) },
      `"edges" may hold at most ${MAX_EDGES} edges, got ${MAX_EDGES + 1}`,
    ],
  ])('answers 400 with a clear message for %s', async (_case, body, message) => {
    const response = await post(body);
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: message });
  });

  it('accepts exactly the maximum number of edges', async () => {
    const edges = Array.from({ length: MAX_EDGES }, (_, i) => [i, i + 1]);
    expect((await post({ type: 'maxcut', edges })).status).toBe(202);
  });

  it('answers 400 for malformed JSON and for a body that is not JSON, without a server error', async () => {
    const malformed = await post('{"type": "maxcut", "edges": [[0,1]');
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toEqual({ error: 'the body is not valid JSON' });
    expect((await spanOf(malformed)).status.code).toBe(SpanStatusCode.UNSET);
    const plain = await post('type=maxcut', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(plain.status).toBe(400);
    expect(await plain.json()).toEqual({
      error: 'the body must be a JSON object sent with content-type application/json',
    });
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
    expect((await fetch(`${url}/slow?ms=soon`)).status).toBe(400);
    expect((await fetch(`${url}/slow?ms=10001`)).status).toBe(400);
  });

  it('answers /fail with a 500 JSON body and an errored span', async () => {
    const response = await fetch(`${url}/fail`);
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ error: 'internal server error' });
    const span = await spanOf(response);
    expect(span.name).toBe('GET /fail');
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.events.some((event) => event.name === 'exception')).toBe(true);
  });

  it('answers JSON 404 for unknown paths, shared under one route label', async () => {
    const response = await fetch(`${url}/nothing/here`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: 'not found' });
    expect((await spanOf(response)).attributes['http.route']).toBeUndefined();
  });
});
