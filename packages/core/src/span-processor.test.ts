import type { Tracer } from '@opentelemetry/api';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import {
  AlwaysOffSampler,
  createAlwaysRecordSampler,
  type ReadableSpan,
  type SpanExporter,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { decodeTraceRequest } from '@sextant/testing/otlp-receiver';
import { describe, expect, it } from 'vitest';
import type { BatchOptions } from './config.ts';
import { createInternalErrorSink, type InternalErrorSink } from './internal-errors.ts';
import { EncodedSpanQueue, type EncodedSpans } from './otlp-protobuf.ts';
import { type BatchExporter, CountingBatchSpanProcessor } from './span-processor.ts';

type Behaviour = 'succeed' | 'fail' | 'hold' | 'throw';

/** A SpanExporter whose answer the test chooses; held exports are answered by `release`. */
class ScriptedExporter implements SpanExporter {
  behaviour: Behaviour = 'succeed';
  readonly batches: ReadableSpan[][] = [];
  readonly held: Array<(result: ExportResult) => void> = [];
  shutdownCalls = 0;
  #exportListeners: Array<() => void> = [];

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.batches.push(spans);
    for (const listener of this.#exportListeners.splice(0)) listener();
    switch (this.behaviour) {
      case 'succeed':
        resultCallback({ code: ExportResultCode.SUCCESS });
        return;
      case 'fail':
        resultCallback({ code: ExportResultCode.FAILED, error: new Error('collector said no') });
        return;
      case 'hold':
        this.held.push(resultCallback);
        return;
      case 'throw':
        throw new Error('exporter bug');
    }
  }

  release(code: ExportResultCode = ExportResultCode.SUCCESS): void {
    for (const answer of this.held.splice(0)) answer({ code });
  }

  nextExport(): Promise<void> {
    return new Promise((resolve) => this.#exportListeners.push(resolve));
  }

  async shutdown(): Promise<void> {
    this.shutdownCalls++;
  }
}

const BATCH: BatchOptions = {
  maxQueueSize: 100,
  maxExportBatchSize: 10,
  scheduledDelayMillis: 60_000,
  exportTimeoutMillis: 30_000,
};

interface Setup {
  processor: CountingBatchSpanProcessor;
  exporter: ScriptedExporter;
  sink: InternalErrorSink;
  reported: unknown[];
  tracer: Tracer;
  endSpans(count: number): void;
}

function setup(
  batch: Partial<BatchOptions> & { deferExport?: boolean } = {},
  provider: { alwaysRecordUnsampled?: boolean } = {},
): Setup {
  const exporter = new ScriptedExporter();
  const reported: unknown[] = [];
  const sink = createInternalErrorSink({ intervalMs: 0, writer: ({ error }) => reported.push(error) });
  const processor = new CountingBatchSpanProcessor({ exporter, sink, ...BATCH, ...batch });
  const tracer = new TracerProvider({
    spanProcessors: [processor],
    ...(provider.alwaysRecordUnsampled ? { sampler: createAlwaysRecordSampler(new AlwaysOffSampler()) } : {}),
  }).getTracer('test');
  const endSpans = (count: number) => {
    for (let i = 0; i < count; i++) tracer.startSpan(`span-${i}`).end();
  };
  return { processor, exporter, sink, reported, tracer, endSpans };
}

function expectBalanced(processor: CountingBatchSpanProcessor): void {
  const stats = processor.stats();
  expect(stats.ended).toBe(stats.exported + stats.dropped);
  const byReason = stats.droppedByReason;
  expect(stats.dropped).toBe(byReason.queue_full + byReason.export_failed + byReason.shutdown);
}

describe('CountingBatchSpanProcessor', () => {
  it('exports a batch as soon as it is full, and the rest on flush', async () => {
    const { processor, exporter, endSpans } = setup({ maxExportBatchSize: 3 });
    endSpans(7);
    expect(exporter.batches.map((b) => b.length)).toEqual([3, 3]);
    await processor.forceFlush();
    expect(exporter.batches.map((b) => b.length)).toEqual([3, 3, 1]);
    expect(exporter.batches.flat().map((s) => s.name)).toEqual([
      'span-0',
      'span-1',
      'span-2',
      'span-3',
      'span-4',
      'span-5',
      'span-6',
    ]);
    expect(processor.stats()).toEqual({
      ended: 7,
      exported: 7,
      dropped: 0,
      droppedByReason: { queue_full: 0, export_failed: 0, shutdown: 0 },
    });
  });

  it('exports a partial batch once the scheduled delay runs out', async () => {
    const { processor, exporter, endSpans } = setup({ scheduledDelayMillis: 5 });
    const exported = exporter.nextExport();
    endSpans(2);
    expect(exporter.batches).toHaveLength(0);
    await exported;
    expect(exporter.batches.map((b) => b.length)).toEqual([2]);
    expect(processor.stats().exported).toBe(2);
  });

  it('with deferExport, encodes a full batch on the next turn, off the call that ended its last span', async () => {
    const { processor, exporter, endSpans } = setup({
      maxQueueSize: 4,
      maxExportBatchSize: 2,
      deferExport: true,
    });
    exporter.behaviour = 'hold';
    endSpans(10);
    // The batch left the queue at once, so the queue limit counts exactly as without deferral.
    expect(exporter.batches).toEqual([]);
    expect(processor.stats().droppedByReason.queue_full).toBe(4);
    await new Promise((resolve) => setImmediate(resolve));
    expect(exporter.batches.map((batch) => batch.length)).toEqual([2]);
    exporter.behaviour = 'succeed';
    exporter.release();
    await processor.forceFlush();
    expect(processor.stats()).toMatchObject({ ended: 10, exported: 6, dropped: 4 });
    expectBalanced(processor);
  });

  it('counts spans refused by a full queue as queue_full', async () => {
    const { processor, exporter, endSpans } = setup({ maxQueueSize: 4, maxExportBatchSize: 2 });
    exporter.behaviour = 'hold';
    // 2 go to the (stalled) exporter, 4 fill the queue, 4 are refused.
    endSpans(10);
    expect(processor.stats().droppedByReason.queue_full).toBe(4);
    exporter.behaviour = 'succeed';
    exporter.release();
    await processor.forceFlush();
    expect(processor.stats()).toMatchObject({ ended: 10, exported: 6, dropped: 4 });
    expectBalanced(processor);
  });

  it('counts a FAILED export as export_failed and reports it to the sink', async () => {
    const { processor, exporter, sink, reported, endSpans } = setup();
    exporter.behaviour = 'fail';
    endSpans(3);
    await processor.forceFlush();
    expect(processor.stats()).toMatchObject({ ended: 3, exported: 0, dropped: 3 });
    expect(processor.stats().droppedByReason.export_failed).toBe(3);
    expect(sink.counts().get('span_export')).toBe(1);
    expect((reported[0] as Error).message).toBe('collector said no');
  });

  it('keeps an exporter that throws away from the application', async () => {
    const { processor, exporter, sink, tracer } = setup({ maxExportBatchSize: 1 });
    exporter.behaviour = 'throw';
    // A batch of one exports inside span.end(), so a throw would surface right here.
    expect(() => tracer.startSpan('boom').end()).not.toThrow();
    await processor.forceFlush();
    expect(processor.stats().droppedByReason.export_failed).toBe(1);
    expect(sink.counts().get('span_export')).toBe(1);
  });

  it('fails a batch the exporter does not answer within the export timeout, ignoring a late answer', async () => {
    const { processor, exporter, reported, endSpans } = setup({ exportTimeoutMillis: 10 });
    exporter.behaviour = 'hold';
    endSpans(2);
    await processor.forceFlush();
    expect(processor.stats()).toMatchObject({ ended: 2, exported: 0, dropped: 2 });
    expect(String((reported[0] as Error).message)).toContain('timed out');
    exporter.release();
    expect(processor.stats()).toMatchObject({ exported: 0, dropped: 2 });
    expectBalanced(processor);
  });

  it('ignores spans that were recorded but not sampled', async () => {
    const { processor, exporter, tracer } = setup({}, { alwaysRecordUnsampled: true });
    const span = tracer.startSpan('recorded-only');
    expect(span.isRecording()).toBe(true);
    span.end();
    await processor.forceFlush();
    expect(exporter.batches).toHaveLength(0);
    expect(processor.stats().ended).toBe(0);
  });

  it('flushes on shutdown, shuts the exporter down once, and counts later spans as shutdown', async () => {
    const { processor, exporter, endSpans } = setup();
    endSpans(3);
    const first = processor.shutdown();
    const second = processor.shutdown();
    expect(second).toBe(first);
    await first;
    expect(exporter.shutdownCalls).toBe(1);
    expect(processor.stats().exported).toBe(3);
    endSpans(2);
    expect(processor.stats()).toMatchObject({ ended: 5, exported: 3, dropped: 2 });
    expect(processor.stats().droppedByReason.shutdown).toBe(2);
    await processor.forceFlush();
    expectBalanced(processor);
  });

  it('stops waiting at the shutdown limit and counts what was never sent as dropped (shutdown)', async () => {
    const { processor, exporter, endSpans } = setup({ maxExportBatchSize: 2 });
    // A collector that never answers: the first batch is held, three more wait behind it.
    exporter.behaviour = 'hold';
    endSpans(8);
    await processor.shutdown(50);
    expect(exporter.batches).toHaveLength(1);
    // All of it, the batch with the exporter included: a process that exits now never learns more.
    expect(processor.stats()).toMatchObject({
      ended: 8,
      exported: 0,
      droppedByReason: { queue_full: 0, export_failed: 0, shutdown: 8 },
    });
    expectBalanced(processor);
    // A late answer for that batch changes nothing: it is counted once.
    exporter.release();
    await processor.forceFlush();
    expect(processor.stats()).toMatchObject({ exported: 0, dropped: 8 });
    expectBalanced(processor);
  });

  it('waits in forceFlush for the batch already with the exporter', async () => {
    const { processor, exporter, endSpans } = setup({ maxExportBatchSize: 2 });
    exporter.behaviour = 'hold';
    endSpans(3);
    let flushed = false;
    const flush = processor.forceFlush().then(() => {
      flushed = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(flushed).toBe(false);
    exporter.behaviour = 'succeed';
    exporter.release();
    await flush;
    expect(processor.stats()).toMatchObject({ ended: 3, exported: 3, dropped: 0 });
  });

  it('resolves forceFlush at once when nothing is queued', async () => {
    const { processor, exporter } = setup();
    await expect(processor.forceFlush()).resolves.toBeUndefined();
    expect(exporter.batches).toHaveLength(0);
  });
});

/** The part of a decoded `ExportTraceServiceRequest` these tests read. */
interface DecodedBatch {
  resourceSpans: Array<{ scopeSpans: Array<{ scope?: { name: string }; spans: Array<{ name: string }> }> }>;
}

/** Captures the encoded batches the processor hands over, decoded as a collector would. */
class EncodedBatchExporter implements BatchExporter<EncodedSpans> {
  readonly requests: DecodedBatch[] = [];
  readonly sizes: number[] = [];
  /** While set, answers wait here. */
  held: Array<() => void> | undefined;

  export(batch: EncodedSpans, resultCallback: (result: ExportResult) => void): void {
    this.sizes.push(batch.size);
    this.requests.push(decodeTraceRequest(batch.request()) as unknown as DecodedBatch);
    const answer = () => resultCallback({ code: ExportResultCode.SUCCESS });
    if (this.held) this.held.push(answer);
    else answer();
  }

  async shutdown(): Promise<void> {}
}

function spanNamesOf(request: DecodedBatch): string[] {
  return request.resourceSpans.flatMap((resource) =>
    resource.scopeSpans.flatMap((scope) => scope.spans.map((span) => span.name)),
  );
}

describe('CountingBatchSpanProcessor with spans encoded as they end', () => {
  function encodedSetup(batch: Partial<BatchOptions> = {}) {
    const exporter = new EncodedBatchExporter();
    const reported: unknown[] = [];
    const sink = createInternalErrorSink({ intervalMs: 0, writer: ({ error }) => reported.push(error) });
    const processor = new CountingBatchSpanProcessor<EncodedSpans>({
      exporter,
      sink,
      createQueue: (batchSize) => new EncodedSpanQueue(batchSize),
      ...BATCH,
      ...batch,
    });
    const provider = new TracerProvider({ spanProcessors: [processor] });
    return { exporter, processor, reported, provider };
  }

  it('exports full batches in the order the spans ended, grouped by scope, and the rest on flush', async () => {
    const { exporter, processor, provider } = encodedSetup();
    const first = provider.getTracer('first');
    const second = provider.getTracer('second');
    for (let i = 0; i < 25; i++) (i % 2 === 0 ? first : second).startSpan(`span-${i}`).end();
    expect(exporter.sizes).toEqual([10, 10]);
    await processor.forceFlush();
    expect(exporter.sizes).toEqual([10, 10, 5]);
    const names = exporter.requests.map(spanNamesOf);
    expect(names.map((batch) => batch.length)).toEqual([10, 10, 5]);
    // Within a batch, each scope's spans keep their order; across batches, nothing is lost or repeated.
    const scopes = exporter.requests[0]!.resourceSpans[0]!.scopeSpans.map((scope) => scope.scope?.name);
    expect(scopes).toEqual(['first', 'second']);
    expect(names.flat().sort()).toEqual(Array.from({ length: 25 }, (_, i) => `span-${i}`).sort());
    expect(processor.stats()).toMatchObject({ ended: 25, exported: 25, dropped: 0 });
  });

  it('counts spans refused by a full queue as queue_full, as for span objects', async () => {
    const { exporter, processor, provider } = encodedSetup({ maxQueueSize: 20, maxExportBatchSize: 10 });
    const tracer = provider.getTracer('t');
    exporter.held = [];
    // The first batch goes to the exporter and waits there; twenty more fill the queue.
    for (let i = 0; i < 33; i++) tracer.startSpan(`span-${i}`).end();
    const answers = exporter.held;
    exporter.held = undefined;
    for (const answer of answers) answer();
    await processor.forceFlush();
    expect(exporter.sizes).toEqual([10, 10, 10]);
    expect(processor.stats().droppedByReason.queue_full).toBe(3);
    expectBalanced(processor as never);
  });

  it('drops a span it cannot encode, counts it as export_failed, and keeps the batch intact', async () => {
    const { exporter, processor, provider, reported } = encodedSetup();
    const tracer = provider.getTracer('t');
    tracer.startSpan('before').end();
    const broken = tracer.startSpan('broken') as unknown as { attributes: object; end(): void };
    broken.attributes = new Proxy(
      { 'a.key': 'value' },
      {
        get() {
          throw new Error('unreadable attribute');
        },
      },
    );
    broken.end();
    tracer.startSpan('after').end();
    await processor.forceFlush();
    expect(exporter.requests.map(spanNamesOf)).toEqual([['before', 'after']]);
    expect(processor.stats()).toMatchObject({ ended: 3, exported: 2, dropped: 1 });
    expect(processor.stats().droppedByReason.export_failed).toBe(1);
    expect(String(reported[0])).toMatch(/unreadable attribute/);
  });
});
