import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { afterEach, describe, expect, it } from 'vitest';
import { type OtlpReceiver, startOtlpReceiver } from '../../../tooling/testing/otlp-receiver.ts';
import { resolveConfig, type SextantTracingOptions } from '../src/config.ts';
import { createInternalErrorSink, type InternalErrorSink } from '../src/internal-errors.ts';
import { createTracing, type Tracing } from '../src/tracing.ts';

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function receiver(): Promise<OtlpReceiver> {
  const started = await startOtlpReceiver();
  cleanups.push(() => started.close());
  return started;
}

function countingSink(): InternalErrorSink {
  return createInternalErrorSink({ intervalMs: 60_000, writer: () => undefined });
}

function start(tracingOptions: SextantTracingOptions, sink: InternalErrorSink = countingSink()): Tracing {
  const { config } = resolveConfig({
    serviceName: 'otlp-export-test',
    serviceVersion: '2.0.0',
    environment: 'test',
    tracing: { exporter: 'otlp', ...tracingOptions },
    env: {},
  });
  const tracing = createTracing(config, sink);
  cleanups.push(() => tracing.shutdown());
  return tracing;
}

/** A port on loopback that was just listening and is now closed: connections are refused. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
  return port;
}

/** A server span with a child that failed, as an instrumented request would produce. */
function emitRequestSpans(tracing: Tracing) {
  const parent = tracing.tracer.startSpan('GET /jobs/:id', {
    kind: SpanKind.SERVER,
    attributes: { 'http.route': '/jobs/:id', 'http.response.status_code': 200 },
  });
  const child = tracing.tracer.startSpan('solve maxcut', {}, trace.setSpan(ROOT_CONTEXT, parent));
  child.recordException(new Error('solver diverged'));
  child.setStatus({ code: SpanStatusCode.ERROR, message: 'solver diverged' });
  child.end();
  parent.end();
  return { parent: parent.spanContext(), child: child.spanContext() };
}

describe.each([
  ['http/protobuf', 'application/x-protobuf'],
  ['http/json', 'application/json'],
] as const)('OTLP export over %s', (protocol, contentType) => {
  it('delivers spans that decode with their ids, names, attributes, status and resource', async () => {
    const otlp = await receiver();
    const tracing = start({
      endpoint: otlp.url,
      protocol,
      headers: { 'x-collector-token': 'secret-token' },
      batch: { scheduledDelayMillis: 10 },
    });
    const ids = emitRequestSpans(tracing);
    await tracing.forceFlush();
    const spans = await otlp.waitForSpans(2, 5000);

    expect(otlp.requests().every((r) => r.contentType === contentType)).toBe(true);
    expect(otlp.requests()[0]!.headers['x-collector-token']).toBe('secret-token');
    const parent = spans.find((s) => s.name === 'GET /jobs/:id')!;
    const child = spans.find((s) => s.name === 'solve maxcut')!;
    expect(parent).toMatchObject({
      traceId: ids.parent.traceId,
      spanId: ids.parent.spanId,
      parentSpanId: '',
      kind: 2,
      attributes: { 'http.route': '/jobs/:id', 'http.response.status_code': 200 },
      status: { code: 0 },
      scope: { name: '@sextant/core' },
    });
    expect(child).toMatchObject({
      traceId: ids.parent.traceId,
      spanId: ids.child.spanId,
      parentSpanId: ids.parent.spanId,
      kind: 1,
      status: { code: 2, message: 'solver diverged' },
    });
    expect(child.events.map((e) => e.name)).toEqual(['exception']);
    expect(child.events[0]!.attributes['exception.message']).toBe('solver diverged');
    expect(BigInt(parent.endTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(parent.startTimeUnixNano));
    expect(parent.resource).toMatchObject({
      'service.name': 'otlp-export-test',
      'service.version': '2.0.0',
      'deployment.environment.name': 'test',
      'telemetry.sdk.language': 'nodejs',
    });
    expect(tracing.stats()).toMatchObject({ ended: 2, exported: 2, dropped: 0 });
  });
});

describe('OTLP export with the collector down', () => {
  it('never throws, and counts every span it could not deliver', async () => {
    const port = await closedPort();
    const sink = countingSink();
    const tracing = start(
      { endpoint: `http://127.0.0.1:${port}`, batch: { scheduledDelayMillis: 10, exportTimeoutMillis: 500 } },
      sink,
    );
    expect(() => {
      for (let i = 0; i < 5; i++) tracing.tracer.startSpan(`lost-${i}`).end();
    }).not.toThrow();
    await expect(tracing.forceFlush()).resolves.toBeUndefined();

    const stats = tracing.stats();
    expect(stats.ended).toBe(5);
    expect(stats.exported).toBe(0);
    expect(stats.dropped).toBe(stats.ended - stats.exported);
    expect(stats.dropped).toBeGreaterThan(0);
    expect(stats.droppedByReason.export_failed).toBe(5);
    expect(sink.counts().get('span_export')).toBeGreaterThanOrEqual(1);
    await expect(tracing.shutdown()).resolves.toBeUndefined();
  });
});

describe('OTLP export with more spans than the queue holds', () => {
  it('counts the overflow as queue_full and delivers the rest', async () => {
    const otlp = await receiver();
    const tracing = start({
      endpoint: otlp.url,
      batch: { maxQueueSize: 4, maxExportBatchSize: 4, scheduledDelayMillis: 60_000 },
    });
    // Span 4 fills a batch that goes out over HTTP; spans 5-8 wait in the queue meanwhile,
    // and spans 9-10 find it full.
    for (let i = 1; i <= 10; i++) tracing.tracer.startSpan(`burst-${i}`).end();
    await tracing.forceFlush();

    const stats = tracing.stats();
    expect(stats.droppedByReason.queue_full).toBe(2);
    expect(stats).toMatchObject({ ended: 10, exported: 8, dropped: 2 });
    const names = (await otlp.waitForSpans(8, 5000)).map((s) => s.name);
    expect(names).toEqual(Array.from({ length: 8 }, (_, i) => `burst-${i + 1}`));
  });
});

describe('the OTLP test receiver', () => {
  it('answers 400 to a body that is not valid protobuf, and fails the reads that follow', async () => {
    const otlp = await receiver();
    const response = await fetch(`${otlp.url}/v1/traces`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-protobuf' },
      // Field 1, length-delimited, claiming 127 bytes that never come.
      body: new Uint8Array([0x0a, 0x7f, 0x01]),
    });
    expect(response.status).toBe(400);
    expect(otlp.decodeErrors()).toHaveLength(1);
    expect(() => otlp.spans()).toThrow(/could not decode/);
    await expect(otlp.waitForSpans(1, 1000)).rejects.toThrow(/could not decode/);
  });
});
