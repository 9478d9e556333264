import { ROOT_CONTEXT, type SpanContext, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanExporter,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig, type SextantOptions } from './config.ts';
import { createInternalErrorSink, type InternalErrorSink } from './internal-errors.ts';
import { createTracing, TRACER_NAME, type Tracing } from './tracing.ts';

const created: Tracing[] = [];
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const tracing of created.splice(0)) await tracing.shutdown();
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

function quietSink(): InternalErrorSink {
  return createInternalErrorSink({ intervalMs: 0, writer: () => undefined });
}

function start(options: SextantOptions = {}, sink: InternalErrorSink = quietSink()): Tracing {
  const { config } = resolveConfig({
    serviceName: 'tracing-test',
    ...options,
    tracing: { exporter: 'memory', ...options.tracing },
    env: {},
  });
  const tracing = createTracing(config, sink);
  created.push(tracing);
  return tracing;
}

function remoteParent(sampled: boolean): SpanContext {
  return {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    isRemote: true,
  };
}

function startChildOf(tracing: Tracing, parent: SpanContext) {
  return tracing.tracer.startSpan('child', {}, trace.setSpanContext(ROOT_CONTEXT, parent));
}

/** Whether the global API currently hands out recording spans. */
function globalRecords(): boolean {
  const span = trace.getTracer('probe').startSpan('probe');
  span.end();
  return span.isRecording() || trace.isSpanContextValid(span.spanContext());
}

describe('createTracing', () => {
  it('exports to memory as each span ends, counting them', () => {
    const tracing = start();
    expect(tracing).toMatchObject({ enabled: true, ownsProvider: true });
    tracing.tracer.startSpan('first').end();
    tracing.tracer.startSpan('second').end();
    expect(tracing.finishedSpans().map((s) => s.name)).toEqual(['first', 'second']);
    expect(tracing.finishedSpans()[0]!.instrumentationScope.name).toBe(TRACER_NAME);
    expect(tracing.stats()).toEqual({
      ended: 2,
      exported: 2,
      dropped: 0,
      droppedByReason: { queue_full: 0, export_failed: 0, shutdown: 0 },
    });
    tracing.resetFinishedSpans();
    expect(tracing.finishedSpans()).toEqual([]);
  });

  it('describes the service in the resource, with the SDK attributes', () => {
    const tracing = start({
      serviceName: 'quantum-api',
      serviceVersion: '1.4.2',
      environment: 'production',
      serviceInstanceId: 'pod-7',
      resourceAttributes: { 'team.name': 'optimisers', 'service.name': 'ignored-name' },
    });
    tracing.tracer.startSpan('s').end();
    const attributes = tracing.finishedSpans()[0]!.resource.attributes;
    expect(attributes).toMatchObject({
      'service.name': 'quantum-api',
      'service.version': '1.4.2',
      'deployment.environment.name': 'production',
      'service.instance.id': 'pod-7',
      'team.name': 'optimisers',
      'telemetry.sdk.language': 'nodejs',
      'telemetry.sdk.name': 'opentelemetry',
    });
    expect(typeof attributes['telemetry.sdk.version']).toBe('string');
  });

  it('lets resource attributes name the environment and instance where no option or variable does', () => {
    const tracing = start({
      resourceAttributes: { 'deployment.environment.name': 'staging', 'service.instance.id': 'vm-3' },
    });
    tracing.tracer.startSpan('s').end();
    expect(tracing.finishedSpans()[0]!.resource.attributes).toMatchObject({
      'deployment.environment.name': 'staging',
      'service.instance.id': 'vm-3',
    });
  });

  it('samples nothing with traceidratio 0', () => {
    const tracing = start({ tracing: { sampler: 'traceidratio', samplerRatio: 0 } });
    const span = tracing.tracer.startSpan('never');
    expect(span.isRecording()).toBe(false);
    span.end();
    expect(tracing.finishedSpans()).toEqual([]);
    expect(tracing.stats().ended).toBe(0);
  });

  it('samples nothing with always_off, even under a sampled parent', () => {
    const tracing = start({ tracing: { sampler: 'always_off' } });
    expect(startChildOf(tracing, remoteParent(true)).isRecording()).toBe(false);
  });

  it('follows a sampled parent with parentbased_always_off', () => {
    const tracing = start({ tracing: { sampler: 'parentbased_always_off' } });
    expect(tracing.tracer.startSpan('root').isRecording()).toBe(false);
    const child = startChildOf(tracing, remoteParent(true));
    expect(child.isRecording()).toBe(true);
    child.end();
    expect(tracing.finishedSpans()[0]!.spanContext().traceId).toBe(remoteParent(true).traceId);
    expect(tracing.finishedSpans()[0]!.parentSpanContext?.spanId).toBe(remoteParent(true).spanId);
  });

  it('follows an unsampled parent with parentbased_always_on', () => {
    const tracing = start({ tracing: { sampler: 'parentbased_always_on' } });
    expect(tracing.tracer.startSpan('root').isRecording()).toBe(true);
    expect(startChildOf(tracing, remoteParent(false)).isRecording()).toBe(false);
  });

  it('uses the ratio only for roots with parentbased_traceidratio', () => {
    const tracing = start({ tracing: { sampler: 'parentbased_traceidratio', samplerRatio: 0 } });
    expect(tracing.tracer.startSpan('root').isRecording()).toBe(false);
    expect(startChildOf(tracing, remoteParent(true)).isRecording()).toBe(true);
  });

  it('caps attribute values at attributeValueLengthLimit', () => {
    const tracing = start({ tracing: { attributeValueLengthLimit: 8 } });
    const span = tracing.tracer.startSpan('capped');
    span.setAttribute('long', 'abcdefghijklmnop');
    span.setAttribute('short', 'abc');
    span.end();
    expect(tracing.finishedSpans()[0]!.attributes).toEqual({ long: 'abcdefgh', short: 'abc' });
  });

  it('keeps start attributes as the SDK would: capped, checked, undefined dropped', () => {
    const tracing = start({ tracing: { attributeValueLengthLimit: 8 } });
    const span = tracing.tracer.startSpan('start attributes', {
      attributes: {
        long: 'abcdefghijklmnop',
        short: 'abc',
        count: 3,
        flag: false,
        list: ['abcdefghijk', 'x'],
        missing: undefined,
        '': 'no key',
        // Not an attribute value: the SDK drops it with a warning.
        invalid: { fn: () => 1 } as never,
      },
    });
    span.end();
    expect(tracing.finishedSpans()[0]!.attributes).toEqual({
      long: 'abcdefgh',
      short: 'abc',
      count: 3,
      flag: false,
      list: ['abcdefgh', 'x'],
    });
  });

  it("counts start attributes against the SDK's attribute count limit", () => {
    const tracing = start();
    const attributes: Record<string, string> = {};
    for (let i = 0; i < 10; i++) attributes[`start.${i}`] = 'value';
    const span = tracing.tracer.startSpan('limited', { attributes });
    for (let i = 0; i < 130; i++) span.setAttribute(`later.${i}`, i);
    span.end();
    const [finished] = tracing.finishedSpans();
    // The SDK's default limit, 128: 10 at start, 118 later, the other 12 dropped and counted.
    expect(Object.keys(finished!.attributes)).toHaveLength(128);
    expect(finished!.attributes['start.9']).toBe('value');
    expect(finished!.droppedAttributesCount).toBe(12);
  });

  it('starts active spans with start attributes, under the given parent', () => {
    const tracing = start();
    const parent = trace.setSpanContext(ROOT_CONTEXT, remoteParent(true));
    const given = tracing.tracer.startActiveSpan('active', { attributes: { a: 'b' } }, parent, (span) => {
      span.end();
      return span;
    });
    const [finished] = tracing.finishedSpans();
    expect(given.spanContext().spanId).toBe(finished!.spanContext().spanId);
    expect(finished!.parentSpanContext?.spanId).toBe(remoteParent(true).spanId);
    expect(finished!.attributes).toEqual({ a: 'b' });
  });

  it("skips the SDK's self-metrics work on every tracer of its provider (they would go to a no-op meter)", () => {
    start();
    for (const tracer of [trace.getTracer(TRACER_NAME), trace.getTracer('someone-else')]) {
      const sdkTracer = (tracer as unknown as { _delegate?: unknown })._delegate ?? tracer;
      // The SDK's own field: if a release renames it, this fails and the shortcut needs a look.
      const metrics = (sdkTracer as { _tracerMetrics?: { startSpan(...args: unknown[]): unknown } })
        ._tracerMetrics;
      expect(metrics?.startSpan).toBeTypeOf('function');
      expect(metrics!.startSpan(undefined, 2)).toBeTypeOf('function');
      expect(metrics!.constructor.name).not.toBe('TracerMetrics');
    }
  });

  it('redacts error text in exported spans as in logs, whoever recorded it: exception events and the status message', () => {
    const tracing = start();
    const span = trace.getTracer('an-instrumentation').startSpan('charge');
    const error = new Error('cannot charge bob@example.com: password: "hunter2" rejected');
    span.recordException(error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    span.end();
    const [exported] = tracing.finishedSpans();
    const exception = exported!.events[0]!.attributes!;
    expect(exception['exception.message']).toBe('cannot charge [EMAIL]: password: [REDACTED] rejected');
    expect(exception['exception.stacktrace']).not.toContain('hunter2');
    expect(exception['exception.stacktrace']).not.toContain('bob@example.com');
    expect(exported!.status).toEqual({
      code: SpanStatusCode.ERROR,
      message: 'cannot charge [EMAIL]: password: [REDACTED] rejected',
    });
  });

  it('generates ids that are lowercase hex of the right length, never all zeros, and do not repeat', () => {
    const tracing = start();
    const traceIds = new Set<string>();
    const spanIds = new Set<string>();
    // More than one pool of random bytes (4 KiB holds 170 trace and span id pairs).
    for (let i = 0; i < 1000; i++) {
      const { traceId, spanId } = tracing.tracer.startSpan('root').spanContext();
      expect(traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(spanId).toMatch(/^[0-9a-f]{16}$/);
      traceIds.add(traceId);
      spanIds.add(spanId);
    }
    expect(traceIds.size).toBe(1000);
    expect(spanIds.size).toBe(1000);
  });

  it('registers its provider globally and unregisters it on shutdown', async () => {
    const tracing = start();
    trace.getTracer('someone-else').startSpan('via-global').end();
    expect(tracing.finishedSpans().map((s) => s.name)).toEqual(['via-global']);
    await tracing.shutdown();
    expect(globalRecords()).toBe(false);
    const again = start();
    expect(again.ownsProvider).toBe(true);
  });

  it('uses a provider the application registered first instead of installing its own', async () => {
    const appExporter = new InMemorySpanExporter();
    const appProvider = new TracerProvider({
      spanProcessors: [new SimpleSpanProcessor({ exporter: appExporter })],
    });
    expect(trace.setGlobalTracerProvider(appProvider)).toBe(true);
    cleanups.push(async () => {
      trace.disable();
      await appProvider.shutdown();
    });

    const tracing = start();
    expect(tracing).toMatchObject({ enabled: true, ownsProvider: false });
    tracing.tracer.startSpan('joins-the-app').end();
    expect(appExporter.getFinishedSpans().map((s) => s.name)).toEqual(['joins-the-app']);
    expect(appExporter.getFinishedSpans()[0]!.instrumentationScope.name).toBe(TRACER_NAME);
    expect(tracing.finishedSpans()).toEqual([]);
    expect(tracing.stats().ended).toBe(0);

    await tracing.shutdown();
    trace.getTracer('app').startSpan('still-registered').end();
    expect(appExporter.getFinishedSpans().map((s) => s.name)).toContain('still-registered');
  });

  it('installs nothing and hands out a no-op tracer when disabled', () => {
    const tracing = start({ tracing: { enabled: false } });
    expect(tracing).toMatchObject({ enabled: false, ownsProvider: false });
    const span = tracing.tracer.startSpan('nothing');
    expect(span.isRecording()).toBe(false);
    span.end();
    expect(globalRecords()).toBe(false);
    expect(tracing.stats().ended).toBe(0);
  });

  it('still creates real span contexts with exporter none, for log correlation', () => {
    const tracing = start({ tracing: { exporter: 'none' } });
    const span = tracing.tracer.startSpan('unexported');
    expect(span.isRecording()).toBe(true);
    expect(trace.isSpanContextValid(span.spanContext())).toBe(true);
    span.end();
    expect(tracing.stats().ended).toBe(0);
  });

  it('batches into a SpanExporter instance and never rejects when it fails', async () => {
    const received: ReadableSpan[][] = [];
    let answer = ExportResultCode.SUCCESS;
    let shutdowns = 0;
    const exporter: SpanExporter = {
      export(spans: ReadableSpan[], done: (result: ExportResult) => void) {
        received.push(spans);
        done({ code: answer });
      },
      async shutdown() {
        shutdowns++;
      },
    };
    const sink = quietSink();
    const tracing = start({ tracing: { exporter, batch: { maxExportBatchSize: 10 } } }, sink);
    tracing.tracer.startSpan('a').end();
    tracing.tracer.startSpan('b').end();
    expect(received).toHaveLength(0);
    await tracing.forceFlush();
    expect(received.map((batch) => batch.map((s) => s.name))).toEqual([['a', 'b']]);

    answer = ExportResultCode.FAILED;
    tracing.tracer.startSpan('c').end();
    await expect(tracing.forceFlush()).resolves.toBeUndefined();
    const stats = tracing.stats();
    expect(stats).toMatchObject({ ended: 3, exported: 2, dropped: 1 });
    expect(stats.droppedByReason.export_failed).toBe(1);
    expect(sink.counts().get('span_export')).toBe(1);

    const first = tracing.shutdown();
    await expect(tracing.shutdown()).resolves.toBeUndefined();
    await first;
    expect(shutdowns).toBe(1);
  });
});
