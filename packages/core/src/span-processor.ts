import { setTimeout as sleep } from 'node:timers/promises';
import { type Context, context, ROOT_CONTEXT, TraceFlags } from '@opentelemetry/api';
import { type ExportResult, ExportResultCode, suppressTracing } from '@opentelemetry/core';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace';
import type { BatchOptions } from './config.ts';
import type { InternalErrorSink } from './internal-errors.ts';

export type SpanDropReason = 'queue_full' | 'export_failed' | 'shutdown';

export interface SpanProcessorStats {
  /** Sampled spans that ended and reached the processor. */
  readonly ended: number;
  /** Spans the exporter confirmed. */
  readonly exported: number;
  /** Spans that will never be exported; after a flush, `ended === exported + dropped`. */
  readonly dropped: number;
  readonly droppedByReason: Readonly<Record<SpanDropReason, number>>;
}

/** Exports one batch as its queue built it. */
export interface BatchExporter<Batch> {
  export(batch: Batch, resultCallback: (result: ExportResult) => void): void;
  shutdown(): Promise<void>;
}

/** Where ended spans wait for export, as batches of at most the batch size. */
export interface SpanQueue<Batch> {
  /** Spans waiting, in all batches. */
  readonly length: number;
  /** Throws when the span cannot be queued; the queue is then unchanged. */
  push(span: ReadableSpan): void;
  /** Removes the oldest batch (at most the batch size, at least one span: `length > 0`). */
  take(): { batch: Batch; size: number };
}

/** Spans kept as SDK span objects, for any SpanExporter. */
export class SpanObjectQueue implements SpanQueue<ReadableSpan[]> {
  readonly #batchSize: number;
  #spans: ReadableSpan[] = [];

  constructor(batchSize: number) {
    this.#batchSize = batchSize;
  }

  get length(): number {
    return this.#spans.length;
  }

  push(span: ReadableSpan): void {
    this.#spans.push(span);
  }

  take(): { batch: ReadableSpan[]; size: number } {
    let batch: ReadableSpan[];
    if (this.#spans.length <= this.#batchSize) {
      batch = this.#spans;
      this.#spans = [];
    } else {
      batch = this.#spans.splice(0, this.#batchSize);
    }
    return { batch, size: batch.length };
  }
}

export interface CountingBatchSpanProcessorOptions<Batch> extends BatchOptions {
  exporter: BatchExporter<Batch>;
  /** Builds the queue for batches of the given size; the default keeps span objects. */
  createQueue?: (batchSize: number) => SpanQueue<Batch>;
  sink: InternalErrorSink;
  /** Rewrites what an ended span quotes of its errors before it is queued; see `redactSpanErrors`. */
  redact?: (span: ReadableSpan) => void;
  /**
   * Hand each batch to the exporter on the next turn of the event loop rather than inside the
   * call that ended the span filling it: an exporter serialises the whole batch synchronously (the
   * JSON one encodes every span then), which would otherwise land on one unlucky request (a p99
   * stall). The batch still leaves the queue at once, so queue limits count the same. Default
   * `false`.
   */
  deferExport?: boolean;
}

interface FlushWaiter {
  /** The flush is done once this many queued spans have settled. */
  readonly target: number;
  readonly resolve: () => void;
}

/** How a batch given up on at shutdown is settled (see #exportBatch's `finish`). */
const ABANDONED = Symbol('abandoned at shutdown');

// The exporter's own HTTP calls must not be traced, and must not inherit the request that
// happened to end the span that filled a batch.
const EXPORT_CONTEXT: Context = suppressTracing(ROOT_CONTEXT);

/**
 * A batch span processor that accounts for every sampled span: each one is either exported
 * (the exporter answered SUCCESS) or dropped for a named reason. The SDK's BatchSpanProcessor
 * drops silently, which makes an unreachable collector invisible.
 *
 * Exports are serialised, one batch at a time, so a slow collector costs at most the bounded
 * queue in memory. Nothing here throws into the application: export failures go to the sink.
 */
export class CountingBatchSpanProcessor<Batch = ReadableSpan[]> implements SpanProcessor {
  readonly #exporter: BatchExporter<Batch>;
  readonly #sink: InternalErrorSink;
  readonly #maxQueueSize: number;
  readonly #maxExportBatchSize: number;
  readonly #scheduledDelayMillis: number;
  readonly #exportTimeoutMillis: number;

  readonly #queue: SpanQueue<Batch>;
  #timer: NodeJS.Timeout | undefined;
  /** The scheduled delay ran out: the next batch goes out even if it is not full. */
  #due = false;
  /** A batch is with the exporter. */
  #exporting = false;
  /** #pump is on the stack; a synchronous exporter calls back inside it. */
  #pumping = false;
  #closing = false;
  /** Counts the batch with the exporter as dropped (shutdown) and ignores its later answer. */
  #abandonInFlight: (() => void) | undefined;
  #shutdownPromise: Promise<void> | undefined;
  #waiters: FlushWaiter[] = [];
  readonly #deferExport: boolean;
  readonly #redact: ((span: ReadableSpan) => void) | undefined;

  /** Spans ever put in the queue, and those whose batch has since settled (either way). */
  #enqueued = 0;
  #settled = 0;

  #ended = 0;
  #exported = 0;
  #droppedQueueFull = 0;
  #droppedExportFailed = 0;
  #droppedShutdown = 0;

  constructor(options: CountingBatchSpanProcessorOptions<Batch>) {
    this.#exporter = options.exporter;
    this.#sink = options.sink;
    this.#maxQueueSize = options.maxQueueSize;
    this.#maxExportBatchSize = Math.min(options.maxExportBatchSize, options.maxQueueSize);
    this.#scheduledDelayMillis = options.scheduledDelayMillis;
    this.#exportTimeoutMillis = options.exportTimeoutMillis;
    this.#deferExport = options.deferExport === true;
    this.#redact = options.redact;
    this.#queue =
      options.createQueue?.(this.#maxExportBatchSize) ??
      (new SpanObjectQueue(this.#maxExportBatchSize) as unknown as SpanQueue<Batch>);
  }

  onStart(_span: Span, _parentContext: Context): void {}

  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    this.#ended++;
    if (this.#closing) {
      this.#droppedShutdown++;
      return;
    }
    if (this.#queue.length >= this.#maxQueueSize) {
      this.#droppedQueueFull++;
      return;
    }
    try {
      this.#redact?.(span);
      this.#queue.push(span);
    } catch (error) {
      this.#droppedExportFailed++;
      this.#sink.report('span_export', error);
      return;
    }
    this.#enqueued++;
    if (this.#queue.length >= this.#maxExportBatchSize) this.#pump();
    else if (this.#timer === undefined && !this.#exporting) this.#startTimer();
  }

  /** Exports every span queued before the call. Never rejects. */
  forceFlush(): Promise<void> {
    if (this.#settled >= this.#enqueued) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiters.push({ target: this.#enqueued, resolve });
      this.#pump();
    });
  }

  /**
   * Exports what is queued, then shuts the exporter down; spans that end afterwards are
   * dropped (reason `shutdown`). With `timeoutMs`, it stops waiting after that long: the spans
   * still queued are dropped (reason `shutdown`) instead of holding the process, since each
   * batch to an unreachable collector is retried until the export timeout. Idempotent (the
   * first call's limit holds), never rejects.
   */
  shutdown(timeoutMs?: number): Promise<void> {
    this.#shutdownPromise ??= this.#shutdown(timeoutMs);
    return this.#shutdownPromise;
  }

  stats(): SpanProcessorStats {
    const dropped = this.#droppedQueueFull + this.#droppedExportFailed + this.#droppedShutdown;
    return {
      ended: this.#ended,
      exported: this.#exported,
      dropped,
      droppedByReason: {
        queue_full: this.#droppedQueueFull,
        export_failed: this.#droppedExportFailed,
        shutdown: this.#droppedShutdown,
      },
    };
  }

  async #shutdown(timeoutMs: number | undefined): Promise<void> {
    this.#closing = true;
    const deadline = timeoutMs === undefined ? undefined : performance.now() + timeoutMs;
    if (!(await withinDeadline(this.forceFlush(), deadline))) this.#dropQueued();
    this.#clearTimer();
    try {
      // The exporter's shutdown waits for a batch still in flight.
      await withinDeadline(this.#exporter.shutdown(), deadline);
    } catch (error) {
      this.#sink.report('span_export', error);
    }
  }

  /**
   * Drops every queued span and the batch with the exporter (reason `shutdown`): a process that
   * exits once shutdown resolves never learns how that batch ended, so it is counted now.
   */
  #dropQueued(): void {
    while (this.#queue.length > 0) {
      const { size } = this.#queue.take();
      this.#droppedShutdown += size;
      this.#settled += size;
    }
    this.#abandonInFlight?.();
    this.#resolveWaiters();
  }

  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    while (!this.#exporting && this.#queue.length > 0 && this.#shouldExportNow()) {
      this.#due = false;
      this.#clearTimer();
      const { batch, size } = this.#queue.take();
      this.#exportBatch(batch, size);
    }
    this.#pumping = false;
    if (!this.#exporting && this.#queue.length > 0 && this.#timer === undefined) this.#startTimer();
  }

  #shouldExportNow(): boolean {
    return (
      this.#due || this.#closing || this.#waiters.length > 0 || this.#queue.length >= this.#maxExportBatchSize
    );
  }

  #exportBatch(batch: Batch, size: number): void {
    this.#exporting = true;
    let finished = false;
    let timeout: NodeJS.Timeout | undefined;
    /** `error` undefined: exported; ABANDONED: given up on at shutdown; anything else: failed. */
    const finish = (error: unknown): void => {
      // An exporter may answer after the timeout, or the shutdown limit, already counted the batch.
      if (finished) return;
      finished = true;
      this.#abandonInFlight = undefined;
      if (timeout !== undefined) clearTimeout(timeout);
      if (error === undefined) this.#exported += size;
      else if (error === ABANDONED) this.#droppedShutdown += size;
      else {
        this.#droppedExportFailed += size;
        this.#sink.report('span_export', error);
      }
      this.#settled += size;
      this.#exporting = false;
      this.#resolveWaiters();
      this.#pump();
    };
    this.#abandonInFlight = () => finish(ABANDONED);
    if (this.#exportTimeoutMillis > 0) {
      timeout = setTimeout(
        () => finish(new Error(`span export timed out after ${this.#exportTimeoutMillis} ms`)),
        this.#exportTimeoutMillis,
      );
      timeout.unref();
    }
    const hand = () => {
      try {
        context.with(EXPORT_CONTEXT, () => {
          this.#exporter.export(batch, (result: ExportResult) => {
            finish(
              result.code === ExportResultCode.SUCCESS
                ? undefined
                : (result.error ?? new Error('span exporter answered FAILED')),
            );
          });
        });
      } catch (error) {
        finish(error);
      }
    };
    if (this.#deferExport) setImmediate(hand);
    else hand();
  }

  #resolveWaiters(): void {
    if (this.#waiters.length === 0) return;
    const pending: FlushWaiter[] = [];
    for (const waiter of this.#waiters) {
      if (this.#settled >= waiter.target) waiter.resolve();
      else pending.push(waiter);
    }
    this.#waiters = pending;
  }

  #startTimer(): void {
    this.#timer = setTimeout(this.#onTimer, this.#scheduledDelayMillis);
    // A pending batch must not keep the process alive; shutdown() flushes it.
    this.#timer.unref();
  }

  #clearTimer(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    this.#due = true;
    this.#pump();
  };
}

/** Whether `work` settled before `deadline` (a `performance.now()` time; none: it waits). */
async function withinDeadline(work: Promise<unknown>, deadline: number | undefined): Promise<boolean> {
  if (deadline === undefined) {
    await work;
    return true;
  }
  const remaining = Math.max(0, deadline - performance.now());
  return Promise.race([work.then(() => true), sleep(remaining, false, { ref: false })]);
}
