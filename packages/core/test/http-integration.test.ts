import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOtlpReceiver } from '../../../tooling/testing/otlp-receiver.ts';
import { promtoolCheck, promtoolCheckOpenMetrics } from '../../../tooling/testing/promtool.ts';
import { createSextant, type Sextant } from '../src/index.ts';
import { type CoreServer, collectLines, route, startCoreServer } from './node-http-server.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

function routes(sextant: Sextant) {
  return [
    route('GET', '/users/:id', async (_req, res, params) => {
      sextant.logger.info({ user: params.id }, 'loading user');
      await sleep(5);
      sextant.logger.info('user loaded');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: params.id }));
    }),
    route('GET', '/boom', () => {
      throw new Error('kaboom');
    }),
    route('GET', '/teapot', (_req, res) => {
      res.writeHead(418).end();
    }),
    route('GET', '/hang', async (_req, res) => {
      await sleep(2000);
      if (!res.destroyed) res.writeHead(200).end();
    }),
  ];
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('a node:http service on core primitives, exporting to a real OTLP receiver', () => {
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let sextant: Sextant;
  let server: CoreServer;
  const logs = collectLines();

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    sextant = createSextant({
      serviceName: 'integration-service',
      serviceVersion: '1.2.3',
      tracing: { endpoint: receiver.url, batch: { scheduledDelayMillis: 20 } },
      logs: { destination: logs },
      env: {},
    });
    server = await startCoreServer(sextant, routes(sextant));
  });

  afterAll(async () => {
    await server?.close();
    await sextant?.shutdown();
    await receiver?.close();
  });

  it('continues an incoming trace: server span, every log record and the response carry its id', async () => {
    const response = await fetch(`${server.url}/users/42?expand=all`, {
      headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, 'x-request-id': 'req-abc-123' },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-request-id')).toBe('req-abc-123');
    expect(response.headers.get('traceresponse')).toMatch(new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`));

    await sextant.tracing.forceFlush();
    const spans = await receiver.waitForSpans((span) => span.traceId === TRACE_ID, 1);
    const serverSpan = spans[0]!;
    expect(serverSpan.name).toBe('GET /users/:id');
    expect(serverSpan.parentSpanId).toBe(PARENT_ID);
    expect(serverSpan.attributes['http.route']).toBe('/users/:id');
    expect(serverSpan.attributes['http.response.status_code']).toBe(200);
    expect(serverSpan.attributes['url.path']).toBe('/users/42');
    expect(serverSpan.resource['service.name']).toBe('integration-service');
    expect(serverSpan.resource['service.version']).toBe('1.2.3');

    const records = logs.records().filter((record) => record.request_id === 'req-abc-123');
    expect(records.map((record) => record.msg)).toEqual(['loading user', 'user loaded', 'request completed']);
    for (const record of records) {
      expect(record.trace_id).toBe(TRACE_ID);
      expect(record.span_id).toBe(serverSpan.spanId);
      expect(record.service).toBe('integration-service');
    }
  });

  it('starts a fresh trace for a malformed traceparent and replaces an unsafe request id', async () => {
    const response = await fetch(`${server.url}/users/7`, {
      headers: { traceparent: `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`, 'x-request-id': 'a b\tc' },
    });
    expect(response.status).toBe(200);
    const requestId = response.headers.get('x-request-id')!;
    expect(requestId).not.toBe('a b\tc');
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    const traceresponse = response.headers.get('traceresponse')!;
    expect(traceresponse.split('-')[1]).not.toBe(TRACE_ID);
    const record = logs.records().find((r) => r.request_id === requestId && r.msg === 'request completed');
    expect(record?.trace_id).toBe(traceresponse.split('-')[1]);
  });

  it('marks a thrown exception on the span, answers 500 and logs it with the ids', async () => {
    const response = await fetch(`${server.url}/boom`, { headers: { 'x-request-id': 'boom-1' } });
    expect(response.status).toBe(500);
    await sextant.tracing.forceFlush();
    const traceId = response.headers.get('traceresponse')!.split('-')[1]!;
    const [span] = await receiver.waitForSpans((s) => s.traceId === traceId, 1);
    expect(span!.name).toBe('GET /boom');
    expect(span!.status.code).toBe(2);
    expect(span!.events.map((event) => event.name)).toContain('exception');
    const errorRecord = logs.records().find((r) => r.request_id === 'boom-1' && r.msg === 'request failed');
    expect(errorRecord?.trace_id).toBe(traceId);
    expect(errorRecord?.err?.message).toBe('kaboom');
  });

  it('does not mark a 4xx as a server error', async () => {
    const response = await fetch(`${server.url}/teapot`);
    expect(response.status).toBe(418);
    await sextant.tracing.forceFlush();
    const traceId = response.headers.get('traceresponse')!.split('-')[1]!;
    const [span] = await receiver.waitForSpans((s) => s.traceId === traceId, 1);
    expect(span!.status.code).toBe(0);
  });

  it('serves /metrics that promtool accepts, in both formats, with route templates only', async () => {
    for (let id = 0; id < 20; id++) await fetch(`${server.url}/users/${id}`);
    await fetch(`${server.url}/no/such/${Math.random()}`);
    await fetch(`${server.url}/health/ready`);

    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(promtoolCheck(text)).toEqual({ status: 0, problems: '' });
    const routeSeries = text
      .split('\n')
      .filter((line) => line.startsWith('http_server_request_duration_seconds_count{'));
    expect(routeSeries.some((line) => line.includes('http_route="/users/:id"'))).toBe(true);
    expect(routeSeries.some((line) => line.includes('http_route="_unmatched"'))).toBe(true);
    expect(routeSeries.every((line) => !/http_route="\/users\/\d/.test(line))).toBe(true);
    expect(routeSeries.every((line) => !line.includes('/health') && !line.includes('/metrics'))).toBe(true);

    const openMetrics = await fetch(`${server.url}/metrics`, {
      headers: { accept: 'application/openmetrics-text; version=1.0.0' },
    });
    expect(openMetrics.headers.get('content-type')).toContain('application/openmetrics-text');
    expect(promtoolCheckOpenMetrics(await openMetrics.text())).toEqual({ eof: true, problems: [] });
  });

  it('ends the span and the active-request gauge of a request the client abandons', async () => {
    const gauge = async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      return Number(/^http_server_active_requests\{http_request_method="GET"\} (\d+)/m.exec(text)?.[1] ?? 0);
    };
    const controller = new AbortController();
    const pending = fetch(`${server.url}/hang`, {
      signal: controller.signal,
      headers: { 'x-request-id': 'abandoned-1' },
    }).catch((error: Error) => error);
    await sleep(100);
    expect(await gauge()).toBe(1);
    controller.abort();
    expect(await pending).toBeInstanceOf(Error);
    await sleep(100);
    expect(await gauge()).toBe(0);
    const record = logs.records().find((r) => r.request_id === 'abandoned-1');
    expect(record).toMatchObject({ http_route: '/hang', http_request_aborted: true });
    await sextant.tracing.forceFlush();
    const [span] = await receiver.waitForSpans((s) => s.traceId === record!.trace_id, 1);
    expect(span!.name).toBe('GET /hang');
    expect(span!.attributes['error.type']).toBe('aborted');
    expect(span!.attributes['http.response.status_code']).toBeUndefined();
  });

  it('exports valid OTLP protobuf to the receiver', async () => {
    expect(receiver.decodeErrors()).toEqual([]);
    expect(receiver.requests().length).toBeGreaterThan(0);
    expect(receiver.requests().every((request) => request.contentType === 'application/x-protobuf')).toBe(
      true,
    );
  });
});

describe('with the collector unreachable', () => {
  it('serves every request and counts each span it could not export', async () => {
    const port = await freePort();
    const logs = collectLines();
    const sextant = createSextant({
      serviceName: 'collector-down',
      tracing: {
        endpoint: `http://127.0.0.1:${port}`,
        batch: { scheduledDelayMillis: 10, exportTimeoutMillis: 2000 },
      },
      logs: { destination: logs },
      env: {},
    });
    const server = await startCoreServer(sextant, routes(sextant));
    try {
      const statuses = await Promise.all(
        Array.from({ length: 30 }, (_, i) => fetch(`${server.url}/users/${i}`).then((r) => r.status)),
      );
      expect(statuses.every((status) => status === 200)).toBe(true);
      await sextant.tracing.forceFlush();
      const stats = sextant.tracing.stats();
      expect(stats.ended).toBeGreaterThanOrEqual(30);
      expect(stats.exported).toBe(0);
      expect(stats.dropped).toBe(stats.ended - stats.exported);

      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      const dropped = metrics
        .split('\n')
        .filter((line) => line.startsWith('sextant_spans_dropped_total{'))
        .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
      expect(dropped).toBe(stats.dropped);
    } finally {
      await server.close();
      await sextant.shutdown();
    }
  });
});
