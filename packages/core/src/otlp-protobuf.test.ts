import {
  type Attributes,
  context,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
} from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { decodeTraceRequest } from '@sextant/testing/otlp-receiver';
import { describe, expect, it } from 'vitest';
import { encodeTraceExportRequest } from './otlp-protobuf.ts';

async function recordSpans(
  build: (provider: TracerProvider) => void,
  resourceAttributes: Attributes = {},
): Promise<ReadableSpan[]> {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'encoder-test', ...resourceAttributes }),
    spanProcessors: [new SimpleSpanProcessor({ exporter })],
  });
  build(provider);
  await provider.forceFlush();
  return exporter.getFinishedSpans();
}

/** Both encodings read back by an independent protobuf decoder must be the same message. */
function expectSameAsUpstream(spans: ReadableSpan[]): Record<string, unknown> {
  expect(spans.length).toBeGreaterThan(0);
  const ours = encodeTraceExportRequest(spans);
  const upstream = ProtobufTraceSerializer.serializeRequest(spans)!;
  const decoded = decodeTraceRequest(ours);
  expect(decoded).toEqual(decodeTraceRequest(upstream));
  return decoded;
}

const EVERY_VALUE_TYPE: Attributes = {
  'string.ascii': 'GET',
  'string.empty': '',
  'string.unicode': 'zürich ✓ 東京 🚀',
  'string.long': 'x'.repeat(300),
  // Around the one-byte length prefix: 42 units is the longest string that fits it whatever its characters.
  'string.ascii.127': 'a'.repeat(127),
  'string.ascii.128': 'a'.repeat(128),
  'string.euro.42': '€'.repeat(42),
  'string.euro.50': '€'.repeat(50),
  'string.long.unicode': 'é'.repeat(5000),
  'int.zero': 0,
  'int.small': 200,
  'int.large': 2 ** 40 + 7,
  'int.max.safe': Number.MAX_SAFE_INTEGER,
  'int.negative': -1,
  'int.negative.large': -(2 ** 45) - 3,
  'double.fraction': 0.25,
  'double.negative': -1234.5678,
  'double.nan': Number.NaN,
  'double.infinity': Number.POSITIVE_INFINITY,
  'bool.true': true,
  'bool.false': false,
  'array.strings': ['a', 'bé', ''],
  'array.numbers': [1, -2, 3.5],
  'array.booleans': [true, false],
  'array.empty': [],
};

describe('encodeTraceExportRequest', () => {
  it('encodes every attribute value type as the upstream serializer does', async () => {
    const spans = await recordSpans((provider) => {
      provider.getTracer('scope-a').startSpan('all values', { attributes: EVERY_VALUE_TYPE }).end();
    });
    const decoded = expectSameAsUpstream(spans) as {
      resourceSpans: Array<{ scopeSpans: Array<{ spans: unknown[] }> }>;
    };
    expect(decoded.resourceSpans[0]!.scopeSpans[0]!.spans).toHaveLength(1);
  });

  it('encodes events, links, trace state, remote parents, kinds, statuses and flags', async () => {
    const spans = await recordSpans((provider) => {
      const tracer = provider.getTracer('scope-b', '1.2.3');
      const remoteParent = trace.setSpanContext(ROOT_CONTEXT, {
        traceId: '0af7651916cd43dd8448eb211c80319c',
        spanId: 'b7ad6b7169203331',
        traceFlags: TraceFlags.SAMPLED,
        isRemote: true,
        traceState: new TraceState('vendor=value,other=1'),
      });
      const server = tracer.startSpan('GET /users/:id', { kind: SpanKind.SERVER }, remoteParent);
      server.addEvent('exception', { 'exception.type': 'Error', 'exception.message': 'boom' });
      server.addEvent('plain');
      server.setStatus({ code: SpanStatusCode.ERROR, message: 'failed: ✗' });
      const child = tracer.startSpan(
        'publish',
        {
          kind: SpanKind.PRODUCER,
          links: [
            {
              context: {
                traceId: 'ffffffffffffffffffffffffffffffff',
                spanId: '0123456789abcdef',
                traceFlags: TraceFlags.NONE,
                isRemote: false,
              },
              attributes: { 'link.reason': 'fan-out', count: 3 },
            },
          ],
        },
        trace.setSpan(context.active(), server),
      );
      child.setStatus({ code: SpanStatusCode.OK });
      child.end();
      server.end();
      for (const kind of [SpanKind.INTERNAL, SpanKind.CLIENT, SpanKind.CONSUMER]) {
        tracer.startSpan(`kind ${kind}`, { kind }).end();
      }
    });
    expectSameAsUpstream(spans);
  });

  it('groups spans by resource and scope, and keeps lengths right above 127 bytes and 16 KiB', async () => {
    const first = await recordSpans((provider) => {
      provider.getTracer('scope-a').startSpan('a1').end();
      provider
        .getTracer('scope-b')
        .startSpan('b1', { attributes: { big: 'y'.repeat(20_000) } })
        .end();
      provider.getTracer('scope-a').startSpan('a2').end();
    });
    const second = await recordSpans(
      (provider) => provider.getTracer('scope-a').startSpan('other resource').end(),
      { 'service.name': 'second', 'deployment.environment.name': 'test' },
    );
    const many = await recordSpans((provider) => {
      const tracer = provider.getTracer('many');
      for (let i = 0; i < 600; i++)
        tracer.startSpan(`span ${i}`, { attributes: { i, path: `/items/${i}` } }).end();
    });
    expectSameAsUpstream([...first, ...second]);
    expectSameAsUpstream(many);
  });

  it('encodes attribute values that repeat, alternate, change, or repeat again, as upstream does, batch after batch', async () => {
    const attributesOf = (i: number): Attributes => ({
      'http.request.method': 'GET',
      // A new value on every span: more than a key keeps, so it is given up on, then tried again.
      'url.path': `/users/${i}`,
      'http.response.status_code': i % 3 === 0 ? 404 : 200,
      'test.flag': i % 2 === 0,
      // Two kinds of span, one after the other, as a producer's and a worker's.
      'messaging.operation.name': i % 2 === 0 ? 'send' : 'process',
      // Changes on every span for a while, then settles on one value.
      'test.settles': i < 100 ? `value-${i}` : 'settled',
      'test.ratio': i < 10 ? 0.5 : i / 7,
      'test.zero': i % 2 === 0 ? 0 : -0,
      'test.long': 'x'.repeat(300 + (i % 2)),
    });
    const spans = await recordSpans((provider) => {
      const tracer = provider.getTracer('repeats');
      for (let i = 0; i < 400; i++) tracer.startSpan(`span-${i}`, { attributes: attributesOf(i) }).end();
    });
    // Several batches through the same encoder: what it remembers from one batch serves the next.
    for (let from = 0; from < spans.length; from += 15) expectSameAsUpstream(spans.slice(from, from + 15));
    const decoded = decodeTraceRequest(encodeTraceExportRequest(spans.slice(380))) as {
      resourceSpans: Array<{
        scopeSpans: Array<{
          spans: Array<{ attributes: Array<{ key: string; value: Record<string, unknown> }> }>;
        }>;
      }>;
    };
    const encoded = decoded.resourceSpans[0]!.scopeSpans[0]!.spans;
    const value = (index: number, key: string) =>
      encoded.at(index)!.attributes.find((attribute) => attribute.key === key)?.value;
    expect(value(-1, 'url.path')).toMatchObject({ stringValue: '/users/399' });
    expect(value(-1, 'test.settles')).toMatchObject({ stringValue: 'settled' });
    expect(value(-1, 'messaging.operation.name')).toMatchObject({ stringValue: 'process' });
    expect(value(-2, 'messaging.operation.name')).toMatchObject({ stringValue: 'send' });
  });

  it('writes start and end times to the nanosecond', async () => {
    const spans = await recordSpans((provider) => {
      const tracer = provider.getTracer('times');
      for (const seconds of [0, 1, 65_535, 65_536, 1_764_000_000, 4_294_967_295]) {
        const span = tracer.startSpan(`at ${seconds}`, { startTime: [seconds, 999_999_999] });
        span.end([seconds + 1, 1]);
      }
    });
    const decoded = expectSameAsUpstream(spans) as {
      resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<{ startTimeUnixNano: string }> }> }>;
    };
    const starts = decoded.resourceSpans[0]!.scopeSpans[0]!.spans.map((span) => span.startTimeUnixNano);
    expect(starts).toContain(String(1_764_000_000n * 1_000_000_000n + 999_999_999n));
    expect(starts).toContain(String(4_294_967_295n * 1_000_000_000n + 999_999_999n));
  });

  it('encodes an empty batch as an empty request', () => {
    expect(encodeTraceExportRequest([])).toHaveLength(0);
  });
});
