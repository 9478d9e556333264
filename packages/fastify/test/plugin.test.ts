import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { getRequestId, type Sextant } from '@sextant/core';
import fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sextantFastify, sextantServerOptions } from '../src/index.ts';
import { collectLogs, createTestSextant, sampleSum, traceIdOf, waitFor, waitForSpan } from './helpers.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

/** What the code of a request sees of its own context. */
function seen() {
  const spanContext = trace.getActiveSpan()?.spanContext();
  return { request_id: getRequestId(), trace_id: spanContext?.traceId, span_id: spanContext?.spanId };
}

async function deepest(depth: number): Promise<ReturnType<typeof seen>> {
  if (depth === 0) return seen();
  await sleep(1);
  await readFile(new URL(import.meta.url));
  await nextTurn();
  return deepest(depth - 1);
}

/** `/api` → `/api/v1`: two levels of encapsulated plugins, each with its own prefix and hooks. */
const versionedRoutes: FastifyPluginAsync = async (v1) => {
  v1.get('/things/:thingId', async (request) => ({ id: (request.params as { thingId: string }).thingId }));
};

const apiRoutes: FastifyPluginAsync = async (api) => {
  api.addHook('preHandler', async (request) => {
    request.log.info('api preHandler');
  });
  api.get('/', async () => ({ root: true }));
  api.get('/items/:itemId', async (request) => ({ id: (request.params as { itemId: string }).itemId }));
  await api.register(versionedRoutes, { prefix: '/v1' });
};

async function start(sextant: Sextant, routes: (app: FastifyInstance) => void | Promise<void>) {
  const app = fastify({ ...sextantServerOptions(sextant) });
  await app.register(sextantFastify, { sextant });
  await routes(app);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}` };
}

describe('sextantFastify on a real server', () => {
  const logs = collectLogs();
  let sextant: Sextant;
  let app: FastifyInstance;
  let url: string;

  beforeAll(async () => {
    sextant = createTestSextant(logs);
    ({ app, url } = await start(sextant, async (app) => {
      app.get('/users/:id', async (request) => {
        request.log.info('loading user');
        return { id: (request.params as { id: string }).id };
      });
      app.get('/deep', async () => deepest(3));
      app.get('/teapot', async (request, reply) => {
        request.log.info({ req: request }, 'brewing');
        return reply.code(418).send({ short: 'and stout' });
      });
      app.get('/unavailable', async (_request, reply) => reply.code(503).send({ retry: true }));
      app.get('/boom', async () => {
        throw new Error('kaboom');
      });
      app.get('/bad-input', async () => {
        throw Object.assign(new Error('id must be a number'), { statusCode: 400 });
      });
      app.get('/private', { config: { sextant: false } }, async () => seen());
      app.post('/echo', async (request) => ({ body: request.body, ...seen() }));
      app.get(
        '/hooked',
        {
          preHandler: (request, _reply, done) => {
            request.log.info('route preHandler');
            done();
          },
          onSend: async (request, _reply, payload) => {
            request.log.info('route onSend');
            return payload;
          },
        },
        async () => {
          await sleep(2);
          return seen();
        },
      );
      app.get('/destroyed', async (_request, reply) => {
        reply.hijack();
        reply.raw.destroy();
      });
      app.get('/hijacked', (_request, reply) => {
        reply.hijack();
        reply.raw.writeHead(200, { 'content-type': 'text/plain' });
        reply.raw.end('hijacked');
      });
      // Server-sent events as often written: straight to the raw response, without hijack().
      app.get('/events', (_request, reply) => {
        reply.raw.writeHead(200, { 'content-type': 'text/event-stream' });
        reply.raw.end('data: one\n\n');
      });
      app.get('/hang', async () => {
        await sleep(60_000);
        return 'too late';
      });
      await app.register(apiRoutes, { prefix: '/api' });
    }));
  });

  afterAll(async () => {
    await app?.close();
    await sextant?.shutdown();
  });

  it('names the span after the route template, with the semantic-convention attributes', async () => {
    const response = await fetch(`${url}/users/42?expand=all`);
    expect(response.status).toBe(200);
    const span = await waitForSpan(sextant, (s) => s.spanContext().traceId === traceIdOf(response));
    expect(span.name).toBe('GET /users/:id');
    expect(span.kind).toBe(SpanKind.SERVER);
    expect(span.attributes['http.route']).toBe('/users/:id');
    expect(span.attributes['http.request.method']).toBe('GET');
    expect(span.attributes['http.response.status_code']).toBe(200);
    expect(span.attributes['url.path']).toBe('/users/42');
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('includes the prefixes of encapsulated plugins, two levels deep, in the template', async () => {
    const cases = [
      ['/api/items/7', 'GET /api/items/:itemId'],
      ['/api/v1/things/9', 'GET /api/v1/things/:thingId'],
      ['/api', 'GET /api'],
      ['/api/', 'GET /api'],
    ] as const;
    for (const [path, name] of cases) {
      const response = await fetch(`${url}${path}`);
      expect(response.status, path).toBe(200);
      const span = await waitForSpan(sextant, (s) => s.spanContext().traceId === traceIdOf(response));
      expect(span.name, path).toBe(name);
      expect(span.attributes['url.path']).toBe(path);
    }
  });

  it('marks a 5xx as an error of the span and leaves a 4xx alone', async () => {
    const unavailable = await fetch(`${url}/unavailable`);
    const teapot = await fetch(`${url}/teapot`);
    expect([unavailable.status, teapot.status]).toEqual([503, 418]);
    const failed = await waitForSpan(sextant, (s) => s.spanContext().traceId === traceIdOf(unavailable));
    expect(failed.status.code).toBe(SpanStatusCode.ERROR);
    expect(failed.attributes['error.type']).toBe('503');
    const teapotSpan = await waitForSpan(sextant, (s) => s.spanContext().traceId === traceIdOf(teapot));
    expect(teapotSpan.status.code).toBe(SpanStatusCode.UNSET);
    expect(teapotSpan.attributes['http.response.status_code']).toBe(418);
  });

  it('records a thrown exception on the span and writes the access record at error with the ids', async () => {
    const response = await fetch(`${url}/boom`, { headers: { 'x-request-id': 'boom-1' } });
    expect(response.status).toBe(500);
    expect(await response.json()).toMatchObject({ statusCode: 500, message: 'kaboom' });
    const span = await waitForSpan(sextant, (s) => s.spanContext().traceId === traceIdOf(response));
    expect(span.name).toBe('GET /boom');
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    const exception = span.events.find((event) => event.name === 'exception');
    expect(exception?.attributes?.['exception.message']).toBe('kaboom');
    const access = await waitFor(() =>
      logs.records().find((r) => r.request_id === 'boom-1' && r.msg === 'request completed'),
    );
    expect(access.level).toBe('error');
    expect(access.trace_id).toBe(traceIdOf(response));
    expect(access.http_route).toBe('/boom');
  });

  it('does not make a thrown client error (4xx) an error of the span', async () => {
    const response = await fetch(`${url}/bad-input`);
    expect(response.status).toBe(400);
    const span = await waitForSpan(sextant, (s) => s.spanContext().traceId === traceIdOf(response));
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
    expect(span.events.map((event) => event.name)).toContain('exception');
  });

  it('gives unmatched requests no route: the span keeps the bare method, metrics share one label', async () => {
    const response = await fetch(`${url}/no/such/${Date.now()}`);
    expect(response.status).toBe(404);
    const span = await waitForSpan(sextant, (s) => s.spanContext().traceId === traceIdOf(response));
    expect(span.name).toBe('GET');
    expect(span.attributes['http.route']).toBeUndefined();
    const exposition = await (await fetch(`${url}/metrics`)).text();
    expect(
      sampleSum(exposition, 'http_server_request_duration_seconds_count', {
        http_route: '_unmatched',
        http_response_status_code: '404',
      }),
    ).toBeGreaterThanOrEqual(1);
    expect(exposition).not.toMatch(/http_route="\/no\/such/);
  });

  it('keeps a route with config { sextant: false } out entirely: no span, metric, access record or header', async () => {
    await sextant.tracing.forceFlush();
    sextant.tracing.resetFinishedSpans();
    const response = await fetch(`${url}/private`, { headers: { 'x-request-id': 'private-1' } });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({});
    expect(response.headers.get('traceresponse')).toBeNull();
    expect(response.headers.get('x-request-id')).toBeNull();
    // A recorded request after it: once its span is out, the private one would be too.
    const marker = await fetch(`${url}/users/1`);
    await waitForSpan(sextant, (s) => s.spanContext().traceId === traceIdOf(marker));
    expect(sextant.tracing.finishedSpans().map((s) => s.name)).toEqual(['GET /users/:id']);
    const exposition = await (await fetch(`${url}/metrics`)).text();
    expect(exposition).not.toContain('http_route="/private"');
    expect(logs.records().some((r) => r.msg === 'request completed' && r.http_route === '/private')).toBe(
      false,
    );
  });

  it('sets x-request-id and traceresponse on hijacked and raw-written responses too', async () => {
    for (const path of ['/hijacked', '/events']) {
      const response = await fetch(`${url}${path}`, {
        headers: { 'x-request-id': `raw${path.replace('/', '-')}` },
      });
      expect(response.status, path).toBe(200);
      await response.text();
      expect(response.headers.get('x-request-id'), path).toBe(`raw${path.replace('/', '-')}`);
      expect(response.headers.get('traceresponse'), path).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      const span = await waitForSpan(sextant, (s) => s.spanContext().traceId === traceIdOf(response));
      expect(span.name, path).toBe(`GET ${path}`);
      expect(response.headers.get('traceresponse')).toContain(span.spanContext().spanId);
    }
  });

  it("keeps Fastify's own request lines, with the access log on, for a route with config { sextant: false }", async () => {
    const response = await fetch(`${url}/private`, { headers: { 'x-request-id': 'private-lines' } });
    expect(response.status).toBe(200);
    await waitFor(() =>
      logs.records().find((r) => r.reqId === 'private-lines' && r.msg === 'request completed'),
    );
    expect(
      logs
        .records()
        .filter((r) => r.reqId === 'private-lines')
        .map((r) => r.msg),
    ).toEqual(['incoming request', 'request completed']);
  });

  it('echoes a sane x-request-id, replaces an unsafe one, and Fastify reqId is the same id', async () => {
    const echoed = await fetch(`${url}/users/5`, { headers: { 'x-request-id': 'req-abc-123' } });
    expect(echoed.headers.get('x-request-id')).toBe('req-abc-123');
    const replaced = await fetch(`${url}/users/6`, { headers: { 'x-request-id': 'a b"c' } });
    const generated = replaced.headers.get('x-request-id')!;
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    const missing = await fetch(`${url}/users/7`);
    const generatedToo = missing.headers.get('x-request-id')!;
    expect(generatedToo).toMatch(/^[0-9a-f-]{36}$/);
    for (const requestId of ['req-abc-123', generated, generatedToo]) {
      const record = await waitFor(() =>
        logs.records().find((r) => r.msg === 'loading user' && r.request_id === requestId),
      );
      expect(record.reqId).toBe(requestId);
    }
  });

  it('continues an incoming traceparent and answers a traceresponse', async () => {
    const response = await fetch(`${url}/users/8`, {
      headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, 'x-request-id': 'continued-1' },
    });
    expect(response.headers.get('traceresponse')).toMatch(new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`));
    const span = await waitForSpan(sextant, (s) => s.spanContext().traceId === TRACE_ID);
    expect(span.parentSpanContext?.spanId).toBe(PARENT_ID);
    const records = await waitFor(() => {
      const found = logs.records().filter((r) => r.request_id === 'continued-1');
      return found.some((r) => r.msg === 'request completed') ? found : undefined;
    });
    for (const record of records) {
      expect(record.trace_id).toBe(TRACE_ID);
      expect(record.span_id).toBe(span.spanContext().spanId);
    }
  });

  it.each([
    ['no traceparent', undefined],
    ['a malformed traceparent', `00-${TRACE_ID}-not-a-span-id-01`],
    ['a traceparent with an all-zero trace id', `00-${'0'.repeat(32)}-${PARENT_ID}-01`],
  ])('starts a fresh trace, with no parent span, on %s', async (_case, traceparent) => {
    const response = await fetch(`${url}/hooked`, { headers: traceparent ? { traceparent } : {} });
    expect(response.status).toBe(200);
    const body = (await response.json()) as ReturnType<typeof seen>;
    const traceId = traceIdOf(response);
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(traceId).not.toBe(TRACE_ID);
    expect(traceId).not.toBe('0'.repeat(32));
    expect(body.trace_id).toBe(traceId);
    const span = await waitForSpan(sextant, (s) => s.spanContext().traceId === traceId);
    expect(span.spanContext().spanId).toBe(body.span_id);
    expect(span.parentSpanContext).toBeUndefined();
  });

  it('carries the context into a handler three awaits deep (timers, fs, setImmediate)', async () => {
    const response = await fetch(`${url}/deep`, { headers: { 'x-request-id': 'deep-1' } });
    const body = await response.json();
    const span = await waitForSpan(sextant, (s) => s.spanContext().traceId === traceIdOf(response));
    expect(body).toEqual({
      request_id: 'deep-1',
      trace_id: span.spanContext().traceId,
      span_id: span.spanContext().spanId,
    });
  });

  it('carries the context into preHandler and onSend hooks, global, encapsulated and per route', async () => {
    const hooked = await fetch(`${url}/hooked`, { headers: { 'x-request-id': 'hooked-1' } });
    const body = (await hooked.json()) as ReturnType<typeof seen>;
    expect(body.request_id).toBe('hooked-1');
    const encapsulated = await fetch(`${url}/api/items/3`, { headers: { 'x-request-id': 'hooked-2' } });
    expect(encapsulated.status).toBe(200);
    const records = await waitFor(() => {
      const found = logs
        .records()
        .filter((r) => ['route preHandler', 'route onSend', 'api preHandler'].includes(r.msg));
      return found.length >= 3 ? found : undefined;
    });
    const byMessage = Object.fromEntries(records.map((r) => [r.msg, r]));
    expect(byMessage['route preHandler']).toMatchObject({
      request_id: 'hooked-1',
      trace_id: body.trace_id,
      span_id: body.span_id,
    });
    expect(byMessage['route onSend']).toMatchObject({
      request_id: 'hooked-1',
      trace_id: body.trace_id,
      span_id: body.span_id,
    });
    expect(byMessage['api preHandler']).toMatchObject({
      request_id: 'hooked-2',
      trace_id: traceIdOf(encapsulated),
    });
  });

  it('keeps the context when the body arrives after the headers, in separate chunks', async () => {
    const { port } = app.server.address() as AddressInfo;
    const body = await new Promise<any>((resolve, reject) => {
      const request = httpRequest(
        {
          port,
          host: '127.0.0.1',
          method: 'POST',
          path: '/echo',
          headers: { 'content-type': 'application/json', 'x-request-id': 'chunked-1' },
        },
        (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (chunk) => {
            text += chunk;
          });
          response.on('end', () => resolve(JSON.parse(text)));
        },
      );
      request.on('error', reject);
      request.flushHeaders();
      request.write('{"hello":');
      setTimeout(() => request.end('"world"}'), 30);
    });
    expect(body).toMatchObject({ body: { hello: 'world' }, request_id: 'chunked-1' });
    expect(body.trace_id).toMatch(/^[0-9a-f]{32}$/);
  });

  it('keeps 100 concurrent requests apart', async () => {
    const results = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const response = await fetch(`${url}/deep`, { headers: { 'x-request-id': `concurrent-${i}` } });
        return { i, traceId: traceIdOf(response), body: (await response.json()) as ReturnType<typeof seen> };
      }),
    );
    for (const { i, traceId, body } of results) {
      expect(body.request_id).toBe(`concurrent-${i}`);
      expect(body.trace_id).toBe(traceId);
    }
    expect(new Set(results.map((r) => r.traceId)).size).toBe(100);
  });

  it('serves the endpoints as GET and HEAD routes, kept out of spans and request metrics', async () => {
    await sextant.tracing.forceFlush();
    sextant.tracing.resetFinishedSpans();
    for (const path of ['/health', '/health/ready', '/health/detailed']) {
      const response = await fetch(`${url}${path}`, { headers: { 'x-request-id': 'probe-1' } });
      expect(response.status, path).toBe(200);
      expect(response.headers.get('content-type')).toContain('application/json');
      expect((await fetch(`${url}${path}`, { method: 'HEAD' })).status).toBe(200);
    }
    const metrics = await fetch(`${url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    const exposition = await metrics.text();
    expect(exposition).toContain('http_server_request_duration_seconds_bucket');
    expect(exposition).not.toMatch(/http_route="[^"]*(health|metrics)/);
    const marker = await fetch(`${url}/users/2`, { headers: { 'x-request-id': 'after-probes' } });
    await waitForSpan(sextant, (s) => s.spanContext().traceId === traceIdOf(marker));
    expect(sextant.tracing.finishedSpans().map((s) => s.name)).toEqual(['GET /users/:id']);
    // Probes and scrapes stay out of the logs, Fastify's request lines included.
    await waitFor(() =>
      logs.records().find((r) => r.request_id === 'after-probes' && r.msg === 'request completed'),
    );
    expect(logs.records().filter((r) => r.reqId === 'probe-1')).toEqual([]);
  });

  it('ends the exchange of a request whose client went away, marked aborted', async () => {
    const { port } = app.server.address() as AddressInfo;
    await sextant.tracing.forceFlush();
    sextant.tracing.resetFinishedSpans();
    const request = httpRequest({
      port,
      host: '127.0.0.1',
      path: '/hang',
      headers: { 'x-request-id': 'gone-1' },
    });
    request.on('error', () => {});
    request.end();
    await waitFor(() => (sextant.inFlight.count > 0 ? true : undefined));
    request.destroy();
    const span = await waitForSpan(sextant, (s) => s.name === 'GET /hang');
    expect(span.attributes['error.type']).toBe('aborted');
    expect(span.attributes['http.response.status_code']).toBeUndefined();
    const access = await waitFor(() =>
      logs.records().find((r) => r.request_id === 'gone-1' && r.msg === 'request completed'),
    );
    expect(access.http_request_aborted).toBe(true);
    await waitFor(() => (sextant.inFlight.count === 0 ? true : undefined));
  });

  it('ends the exchange of a response the handler destroyed', async () => {
    await expect(fetch(`${url}/destroyed`)).rejects.toThrow();
    const span = await waitForSpan(sextant, (s) => s.name === 'GET /destroyed');
    expect(span.attributes['error.type']).toBe('aborted');
    await waitFor(() => (sextant.inFlight.count === 0 ? true : undefined));
  });

  it("leaves Fastify's own request lines to Sextant's access record: one completion record per request", async () => {
    const response = await fetch(`${url}/users/11`, { headers: { 'x-request-id': 'fastify-logs-1' } });
    expect(response.status).toBe(200);
    const traceId = traceIdOf(response);
    await waitFor(() =>
      logs.records().find((r) => r.request_id === 'fastify-logs-1' && r.msg === 'request completed'),
    );
    const records = logs.records().filter((r) => r.reqId === 'fastify-logs-1');
    expect(records.map((r) => r.msg)).toEqual(['loading user']);
    expect(records[0]).toMatchObject({ request_id: 'fastify-logs-1', trace_id: traceId });
    expect(records[0]!.span_id).toMatch(/^[0-9a-f]{16}$/);
    const completed = logs
      .records()
      .filter((r) => r.request_id === 'fastify-logs-1' && r.msg === 'request completed');
    expect(completed).toHaveLength(1);
    expect(completed[0]).toMatchObject({
      trace_id: traceId,
      http_route: '/users/:id',
      http_response_status_code: 200,
    });
  });

  it("keeps what Fastify's req and res serializers make of the request and reply", async () => {
    const response = await fetch(`${url}/teapot`, { headers: { 'x-request-id': 'serialized-1' } });
    expect(response.status).toBe(418);
    const incoming = await waitFor(() =>
      logs.records().find((r) => r.reqId === 'serialized-1' && r.msg === 'brewing'),
    );
    expect(incoming.req).toMatchObject({
      method: 'GET',
      url: '/teapot',
      host: expect.stringContaining('127.0.0.1'),
    });
  });
});

describe('requests the router rejects before any hook runs', () => {
  const logs = collectLogs();
  let sextant: Sextant;
  let app: FastifyInstance;
  let url: string;
  // The same routes on a Fastify without Sextant: the answers must not change.
  let bare: FastifyInstance;
  let bareUrl: string;

  beforeAll(async () => {
    sextant = createTestSextant(logs);
    ({ app, url } = await start(sextant, (app) => {
      app.get('/users/:id', async () => 'user');
    }));
    bare = fastify();
    bare.get('/users/:id', async () => 'user');
    await bare.listen({ port: 0, host: '127.0.0.1' });
    bareUrl = `http://127.0.0.1:${(bare.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await app?.close();
    await bare?.close();
    await sextant?.shutdown();
  });

  it.each([
    ['a malformed percent-encoding', '/users/%E0%A4%A', 400],
    ['a parameter over maxParamLength', `/users/${'x'.repeat(120)}`, 414],
  ])('records %s as an unmatched request, answered as Fastify answers it', async (_case, path, status) => {
    const requestId = `rejected-${status}`;
    const response = await fetch(`${url}${path}`, { headers: { 'x-request-id': requestId } });
    const expected = await fetch(`${bareUrl}${path}`);
    expect(response.status).toBe(status);
    expect(await response.text()).toBe(await expected.text());
    expect(response.headers.get('content-type')).toBe(expected.headers.get('content-type'));
    expect(response.headers.get('x-request-id')).toBe(requestId);

    const span = await waitForSpan(sextant, (s) => s.spanContext().traceId === traceIdOf(response));
    expect(span.name).toBe('GET');
    expect(span.attributes['http.route']).toBeUndefined();
    expect(span.attributes['http.response.status_code']).toBe(status);
    expect(span.attributes['url.path']).toBe(path);
    expect(span.status.code).toBe(SpanStatusCode.UNSET);

    const access = await waitFor(() =>
      logs.records().find((r) => r.request_id === requestId && r.msg === 'request completed'),
    );
    expect(access).toMatchObject({
      http_route: '_unmatched',
      http_response_status_code: status,
      trace_id: traceIdOf(response),
    });
    // As for every recorded request while the access log is on, Fastify's own lines are left to it.
    expect(logs.records().filter((r) => r.reqId === requestId)).toEqual([]);
    const exposition = await (await fetch(`${url}/metrics`)).text();
    expect(
      sampleSum(exposition, 'http_server_request_duration_seconds_count', {
        http_route: '_unmatched',
        http_response_status_code: String(status),
      }),
    ).toBe(1);
    expect(sextant.inFlight.count).toBe(0);
  });
});
