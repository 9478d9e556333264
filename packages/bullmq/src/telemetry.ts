import { createHash } from 'node:crypto';
import {
  type Attributes,
  type AttributeValue,
  type Context,
  context,
  createContextKey,
  type Exception,
  INVALID_SPAN_CONTEXT,
  type Link,
  type Span as OtelSpan,
  propagation,
  ROOT_CONTEXT,
  type SpanContext,
  SpanKind,
  type SpanStatus,
  SpanStatusCode,
  type TimeInput,
  TraceFlags,
  trace,
} from '@opentelemetry/api';
import {
  contextWithSpan,
  contextWithValue,
  createRequestContext,
  createRequestState,
  extractContext,
  generateRequestId,
  getRequestState,
  injectContext,
  METRICS,
  type RequestState,
  type Sextant,
  type SextantCounterChild,
  type SextantHistogram,
  sanitizeRequestId,
} from '@sextant/core';
import type {
  Attributes as BullMQAttributes,
  AttributeValue as BullMQAttributeValue,
  Span as BullMQSpan,
  SpanOptions as BullMQSpanOptions,
  Tracer as BullMQTracer,
  ContextManager,
  Telemetry,
} from 'bullmq';
import {
  ATTR,
  BULLMQ_ATTR,
  ERROR_TYPE_OTHER,
  type JobOutcome,
  MESSAGING_SYSTEM,
  OUTCOMES,
} from './attributes.ts';
import { type ResolvedOptions, resolveOptions } from './options.ts';
import type { ProducerRelation, SextantBullMQOptions } from './types.ts';

/** BullMQ's `Telemetry`, backed by Sextant's tracer, propagation and metrics. */
export interface SextantBullMQTelemetry extends Telemetry<Context> {
  readonly tracer: BullMQTracer<Context>;
  readonly contextManager: ContextManager<Context>;
}

/** A job's metadata, parked on the context by `fromMetadata` and read only if a span needs it. */
const kMetadata = createContextKey('sextant.bullmq.metadata');
/** Set by the retry bookkeeping: the job keeps the metadata it arrived with, not the attempt's. */
const kKeepSourceMetadata = createContextKey('sextant.bullmq.keep_source_metadata');
/** The `addBulkFlows` span whose call runs in this context (see `ProducerSpan.noteFlowQueue`). */
const kBulkFlows = createContextKey('sextant.bullmq.bulk_flows');

const REQUEST_ID_FIELD = 'x-request-id';
const JOB_FAILED_EVENT = 'job failed';
const JOB_COMPLETED_EVENT = 'job completed';
const SCHEDULER_JOB_ID_PREFIX = 'repeat:';
const PROCESS = 'process';
const ADD_NODE = 'addNode';
const ADD_BULK_FLOWS = 'addBulkFlows';
/** The queue of an `addBulkFlows` whose flows start in more than one queue. */
const SEVERAL_QUEUES = Symbol('several queues');
/** For `runInJobContext` outside any attempt: the defaults (a scheduler's runs are linked). */
const DEFAULT_OPTIONS = resolveOptions({});
/** Operations BullMQ runs to settle an attempt; they mark its outcome once they succeed. */
const OUTCOME_OF_OPERATION: ReadonlyMap<string, JobOutcome> = new Map([
  ['complete', OUTCOMES.COMPLETED],
  ['retry', OUTCOMES.RETRIED],
  ['delay', OUTCOMES.RETRIED],
  ['fail', OUTCOMES.FAILED],
]);
/** Producer calls an application makes; `addNode` runs inside `addFlow`, so it is not timed again. */
const PUBLISH_OPERATIONS: ReadonlySet<string> = new Set(['add', 'addBulk', 'addFlow', 'addBulkFlows']);
/** Producer calls whose context ends up in jobs (the flow calls' through their `addNode`s). */
const ENQUEUE_OPERATIONS: ReadonlySet<string> = new Set([...PUBLISH_OPERATIONS, 'addNode']);
const OPERATION_TYPE: Readonly<Record<string, string>> = Object.freeze({
  add: 'send',
  addNode: 'send',
  addBulk: 'send',
  addFlow: 'send',
  addBulkFlows: 'send',
  process: 'process',
});

const NO_LINKS: Link[] = [];
type HistogramSeries = ReturnType<SextantHistogram<string>['child']>;
const now = (): number => performance.timeOrigin + performance.now();

interface Runtime {
  readonly sextant: Sextant;
  readonly report: ReportError;
  readonly options: ResolvedOptions;
  readonly processDuration: DurationMetric;
  readonly publishDuration: DurationMetric;
  /** The outcome counter's series by queue then outcome. */
  readonly outcomes: SeriesByQueue<SextantCounterChild>;
}

/**
 * Metric series by queue, then by one more label value, made on first use: the hot path finds its
 * series with two map reads instead of resolving its label values each time.
 */
class SeriesByQueue<S> {
  readonly #byQueue = new Map<string, Map<string, S>>();
  readonly #make: (queue: string, value: string) => S;

  constructor(make: (queue: string, value: string) => S) {
    this.#make = make;
  }

  get(queue: string, value: string): S {
    let byValue = this.#byQueue.get(queue);
    if (byValue === undefined) {
      byValue = new Map();
      this.#byQueue.set(queue, byValue);
    }
    let series = byValue.get(value);
    if (series === undefined) {
      series = this.#make(queue, value);
      byValue.set(value, series);
    }
    return series;
  }
}

/** A duration histogram, with its success series (by queue, then operation) kept. */
interface DurationMetric {
  readonly histogram: SextantHistogram<string>;
  readonly success: SeriesByQueue<HistogramSeries>;
}

function durationMetric(histogram: SextantHistogram<string>): DurationMetric {
  return {
    histogram,
    success: new SeriesByQueue((queue, operation) => histogram.child(MESSAGING_SYSTEM, queue, operation, '')),
  };
}

function errorTypeOf(exception: unknown): string {
  if (exception instanceof Error) return exception.constructor?.name || exception.name || ERROR_TYPE_OTHER;
  if (typeof exception === 'object' && exception !== null) {
    const name = (exception as { name?: unknown }).name;
    if (typeof name === 'string' && name !== '') return name;
  }
  return ERROR_TYPE_OTHER;
}

/** An exception's message: BullMQ hands some over as the message string alone. */
function exceptionMessage(exception: Exception): string {
  if (typeof exception === 'string') return exception;
  const message = (exception as { message?: unknown }).message;
  return typeof message === 'string' ? message : '';
}

function observeDuration(
  metric: DurationMetric,
  queue: string,
  operation: string,
  errorType: string | undefined,
  seconds: number,
): void {
  if (errorType === undefined) metric.success.get(queue, operation).observe(seconds);
  else metric.histogram.child(MESSAGING_SYSTEM, queue, operation, errorType).observe(seconds);
}

/** A span BullMQ does not get to record: it passes the context through untouched. */
const NOOP_SPAN: BullMQSpan<Context> = Object.freeze({
  setSpanOnContext: (ctx: Context) => ctx,
  setAttribute() {},
  setAttributes() {},
  addEvent() {},
  recordException() {},
  end() {},
});

/**
 * The span of an attempt's retry bookkeeping. BullMQ 6 writes the retry's context into the job
 * hash's `tm` field and does not read it back (every attempt reads `opts.telemetry.metadata`, the
 * producer's); what it writes is made the producer's metadata too, so that a release that reads it
 * keeps retries the producer's children instead of chaining each to the attempt before.
 */
const KEEP_SOURCE_SPAN: BullMQSpan<Context> = Object.freeze({
  ...NOOP_SPAN,
  setSpanOnContext: (ctx: Context) => ctx.setValue(kKeepSourceMetadata, true),
});

/**
 * The span of a step that settles an attempt (`complete`, `retry`, `delay`, `fail`): the attempt
 * takes the step's outcome only if the step succeeds, i.e. ends without an exception (BullMQ's
 * `trace` records the exception before it ends the span). A step fails when the attempt lost its
 * lock (a processor that blocked the event loop past `lockDuration`: the stalled-jobs checker gave
 * the job to another attempt, which may have completed it); BullMQ then tries the failure step,
 * which fails the same way, and the attempt ends `other`, its error the lost lock.
 */
class OutcomeStepSpan implements BullMQSpan<Context> {
  readonly #step: BullMQSpan<Context>;
  readonly #attempt: AttemptSpan;
  readonly #outcome: JobOutcome;
  #failed = false;

  constructor(step: BullMQSpan<Context>, attempt: AttemptSpan, outcome: JobOutcome) {
    this.#step = step;
    this.#attempt = attempt;
    this.#outcome = outcome;
  }

  setSpanOnContext(ctx: Context): Context {
    return this.#step.setSpanOnContext(ctx);
  }

  setAttribute(key: string, value: BullMQAttributeValue): void {
    this.#step.setAttribute(key, value);
  }

  setAttributes(attributes: BullMQAttributes): void {
    this.#step.setAttributes(attributes);
  }

  addEvent(name: string, attributes?: BullMQAttributes): void {
    this.#step.addEvent(name, attributes);
  }

  recordException(exception: Exception, time?: TimeInput): void {
    this.#failed = true;
    this.#step.recordException(exception, time);
  }

  end(): void {
    this.#step.end();
    if (!this.#failed) this.#attempt.markOutcome(this.#outcome);
  }
}

/**
 * A producer span (`add`, `addBulk`, `addFlow`, ...). It starts once BullMQ names the queue,
 * which BullMQ does right after creating it, so the span is named `{operation} {queue}`. A
 * detached one (BullMQ's own scheduling of a job scheduler's next run, see `SextantTracer`) starts
 * from the empty context and lends BullMQ nothing of the context it was started in.
 */
class ProducerSpan implements BullMQSpan<Context> {
  readonly #runtime: Runtime;
  readonly #operation: string;
  readonly #kind: SpanKind;
  readonly #parent: Context;
  readonly #recorded: boolean;
  readonly #detached: boolean;
  readonly #startTime = now();
  #span: OtelSpan | undefined;
  #queue = '';
  /** `addBulkFlows`: the queue its flows start in (see `noteFlowQueue`). */
  #flowsQueue: string | typeof SEVERAL_QUEUES | undefined;
  /** `addBulkFlows`: the context its call runs in, where its flows' root nodes start. */
  #callContext: Context | undefined;
  #errorType: string | undefined;
  #ended = false;

  constructor(
    runtime: Runtime,
    operation: string,
    kind: SpanKind,
    parent: Context,
    recorded: boolean,
    detached: boolean,
  ) {
    this.#runtime = runtime;
    this.#operation = operation;
    this.#kind = kind;
    this.#parent = parent;
    this.#recorded = recorded;
    this.#detached = detached;
  }

  /** `named`: BullMQ's first attributes, which name the queue; they start the span with the rest. */
  #start(named?: BullMQAttributes): OtelSpan {
    if (!this.#recorded) {
      // No span of its own: the job carries the caller's context, and nothing touches the caller's span.
      this.#span = trace.wrapSpanContext(trace.getSpanContext(this.#parent) ?? INVALID_SPAN_CONTEXT);
      return this.#span;
    }
    const operation = this.#operation;
    // Start attributes are the cheap way in: Sextant's tracer writes plain values directly,
    // where each later setAttribute goes through the SDK's checks.
    const attributes: Attributes = named === undefined ? {} : producerAttributes(named);
    attributes[ATTR.MESSAGING_SYSTEM] = MESSAGING_SYSTEM;
    attributes[ATTR.MESSAGING_OPERATION_NAME] = operation;
    const type = OPERATION_TYPE[operation];
    if (type !== undefined) attributes[ATTR.MESSAGING_OPERATION_TYPE] = type;
    if (this.#queue !== '') attributes[ATTR.MESSAGING_DESTINATION_NAME] = this.#queue;
    this.#span = this.#runtime.sextant.tracer.startSpan(
      this.#queue === '' ? operation : `${operation} ${this.#queue}`,
      { kind: this.#kind, attributes, startTime: this.#startTime },
      this.#parent,
    );
    return this.#span;
  }

  /**
   * The context BullMQ runs the call in and writes into the job (when it has none of its own). A
   * detached span keeps the finished attempt's baggage and request id out of both. An enqueue
   * outside any request gets a request id of its own here, so that every attempt of its jobs (all
   * the jobs of one `addBulk` or flow) logs the same one. The worker cannot keep an id it made up
   * for a job: BullMQ reads every attempt's context from the job's options, never the one it
   * stores for a retry.
   */
  setSpanOnContext(ctx: Context): Context {
    const base = this.#detached ? ROOT_CONTEXT : ctx;
    const span = this.#span ?? this.#start();
    const callContext =
      getRequestState(base) === undefined && ENQUEUE_OPERATIONS.has(this.#operation)
        ? createRequestContext(base, span, createRequestState(generateRequestId()))
        : contextWithSpan(base, span);
    if (this.#operation !== ADD_BULK_FLOWS) return callContext;
    this.#callContext = contextWithValue(callContext, kBulkFlows, this);
    return this.#callContext;
  }

  /**
   * An `addNode` started in `ctx`, for `queue`. BullMQ names no queue for `addBulkFlows` (its flows
   * may go to several); when the root nodes of all its flows are in one queue, that queue is the
   * call's destination, as a flow's root queue is `addFlow`'s. Nodes started elsewhere (a root
   * node's children, in its context) do not count.
   */
  static noteFlowQueue(ctx: Context, queue: string): void {
    const bulk = ctx.getValue(kBulkFlows);
    if (!(bulk instanceof ProducerSpan) || bulk.#callContext !== ctx) return;
    if (bulk.#flowsQueue === undefined) bulk.#flowsQueue = queue;
    else if (bulk.#flowsQueue !== queue) bulk.#flowsQueue = SEVERAL_QUEUES;
  }

  setAttribute(key: string, value: AttributeValue): void {
    (this.#span ?? this.#start()).setAttribute(key, value);
  }

  setAttributes(attributes: BullMQAttributes): void {
    if (this.#span === undefined) {
      const queue = attributes[BULLMQ_ATTR.QUEUE_NAME];
      if (typeof queue === 'string') this.#queue = queue;
      this.#start(attributes);
      return;
    }
    this.#span.setAttributes(producerAttributes(attributes));
  }

  addEvent(name: string, attributes?: BullMQAttributes): void {
    (this.#span ?? this.#start()).addEvent(name, attributes as Attributes);
  }

  recordException(exception: Exception, time?: TimeInput): void {
    const span = this.#span ?? this.#start();
    this.#errorType = errorTypeOf(exception);
    span.recordException(exception, time);
    span.setAttribute(ATTR.ERROR_TYPE, this.#errorType);
    span.setStatus({ code: SpanStatusCode.ERROR, message: exceptionMessage(exception) });
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const span = this.#span ?? this.#start();
    const flowsQueue = this.#flowsQueue;
    if (this.#queue === '' && typeof flowsQueue === 'string' && flowsQueue !== '') {
      this.#queue = flowsQueue;
      span.setAttribute(ATTR.MESSAGING_DESTINATION_NAME, flowsQueue);
      span.updateName(`${this.#operation} ${flowsQueue}`);
    }
    const endTime = now();
    span.end(endTime);
    if (PUBLISH_OPERATIONS.has(this.#operation)) {
      observeDuration(
        this.#runtime.publishDuration,
        this.#queue,
        this.#operation,
        this.#errorType,
        (endTime - this.#startTime) / 1000,
      );
    }
  }
}

/** BullMQ's attributes of a producer call, with the messaging conventions' names for its job id and bulk count. */
function producerAttributes(bullmq: BullMQAttributes): Attributes {
  const attributes: Attributes = {};
  for (const key in bullmq) attributes[key] = bullmq[key];
  const jobId = bullmq[BULLMQ_ATTR.JOB_ID];
  if (jobId !== undefined && jobId !== null) attributes[ATTR.MESSAGING_MESSAGE_ID] = String(jobId);
  const count = bullmq[BULLMQ_ATTR.BULK_COUNT];
  if (typeof count === 'number') attributes[ATTR.MESSAGING_BATCH_MESSAGE_COUNT] = count;
  return attributes;
}

/**
 * What a job's metadata carried, read once when its attempt starts. A class, not an object
 * literal: it lives as long as the attempt, and V8 may pretenure a literal's allocation site
 * (see core's http.ts), which would keep every attempt's context alive until a full GC.
 */
class Arrival {
  /** What the producer sent (baggage, its span if it came) on an empty base. */
  readonly extracted: Context;
  /** The producer's request id, or a new one when it sent none. */
  readonly requestId: string;
  readonly producer: SpanContext | undefined;
  constructor(extracted: Context, requestId: string, producer: SpanContext | undefined) {
    this.extracted = extracted;
    this.requestId = requestId;
    this.producer = producer;
  }
}

/**
 * An attempt's request state. BullMQ takes the context the processor runs in before it names the
 * job, so the state starts with the job's request id and the attempt replaces it when the job
 * turns out to be a job scheduler's run of its own (see `AttemptSpan.setAttributes`), before the
 * processor runs. Readers (logs, `getRequestId`, the context of the jobs the processor adds) read
 * `requestId` then, as core's own state's.
 */
class AttemptRequestState implements RequestState {
  requestId: string;
  userId: string | undefined = undefined;
  tenantId: string | undefined = undefined;
  constructor(requestId: string) {
    this.requestId = requestId;
  }
}

/**
 * What an attempt's span and request state sit on: the job's context (its baggage, the producer's
 * span), or the empty context for a job scheduler's run of its own, which is known only once
 * BullMQ names the job, after the processor's context was made. Nothing derives a context from it
 * before that (the processor has not run), so switching it then is safe.
 */
class AttemptBaseContext implements Context {
  current: Context;
  constructor(current: Context) {
    this.current = current;
  }
  getValue(key: symbol): unknown {
    return this.current.getValue(key);
  }
  setValue(key: symbol, value: unknown): Context {
    return this.current.setValue(key, value);
  }
  deleteValue(key: symbol): Context {
    return this.current.deleteValue(key);
  }
}

/**
 * Whether `jobId` is a job scheduler's run that starts a request of its own: one whose relation is
 * `link` (the default). Such a run is a trace of its own, and gets a request id of its own too:
 * the scheduler's stored context would give every run of its whole life the creator's request id
 * and baggage.
 */
function isOwnRun(options: ResolvedOptions, queue: string, jobId: string): boolean {
  return jobId.startsWith(SCHEDULER_JOB_ID_PREFIX) && options.repeatRelationOf(queue) === 'link';
}

/**
 * A job scheduler's run's own request id: a UUID (version 8, RFC 9562) hashed from the queue, the
 * run's job id and the scheduler's stored context, so that every attempt of the run, its `active`
 * listeners and a sandboxed processor all get the same one, and runs of like-named schedulers of
 * other queues or deployments do not.
 */
function runRequestId(queue: string, jobId: string, metadata: string): string {
  const hex = createHash('sha256').update(`${queue}\n${jobId}\n${metadata}`).digest('hex');
  const variant = ((Number.parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

type ReportError = (kind: string, error: unknown) => void;

function parseCarrier(
  metadata: unknown,
  report: ReportError | undefined,
): Record<string, unknown> | undefined {
  if (typeof metadata !== 'string' || metadata === '') return undefined;
  try {
    const parsed: unknown = JSON.parse(metadata);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch (error) {
    report?.('bullmq_metadata', error);
    return undefined;
  }
}

/**
 * Always on the empty context, never on the active one: the worker's loop may have been started
 * inside a request or an earlier job, and an attempt must not inherit that.
 */
function arrivalOf(metadata: unknown, report: ReportError | undefined): Arrival {
  const carrier = parseCarrier(metadata, report);
  const extracted = carrier === undefined ? ROOT_CONTEXT : extractContext(carrier, ROOT_CONTEXT);
  const requestId = sanitizeRequestId(carrier?.[REQUEST_ID_FIELD]) ?? generateRequestId();
  return new Arrival(extracted, requestId, trace.getSpanContext(extracted));
}

/**
 * One processing attempt. The OpenTelemetry span starts once BullMQ has named the job (right
 * after this object is created, before the processor runs): by then the job id tells a scheduler's
 * job from others, and the relation to the producer (parent or link) can be chosen. This object
 * is the active span inside the processor, delegating to that span.
 */
export class AttemptSpan implements BullMQSpan<Context>, OtelSpan {
  readonly #runtime: Runtime;
  readonly #arrival: Arrival;
  /** The metadata the job arrived with, handed back when BullMQ stores a retry's context. */
  readonly sourceMetadata: string | undefined;
  readonly #startTime = now();
  readonly #endInFlight: () => void;
  readonly #pending: Attributes = {};
  readonly #recorded: boolean;
  readonly #state: AttemptRequestState;
  readonly #base: AttemptBaseContext;
  #span: OtelSpan | undefined;
  #queue = '';
  #jobId = '';
  /** A job scheduler's run with a request of its own (see `isOwnRun`), once BullMQ named the job. */
  #ownRun = false;
  #outcome: JobOutcome | undefined;
  #errorType: string | undefined;
  /** The first error BullMQ's bookkeeping reported (see recordException). */
  #bookkeepingError: Exception | undefined;
  #settled = false;
  #ended = false;

  constructor(runtime: Runtime, metadata: unknown, recorded: boolean) {
    this.#runtime = runtime;
    this.#recorded = recorded;
    this.sourceMetadata = typeof metadata === 'string' && metadata !== '' ? metadata : undefined;
    this.#arrival = arrivalOf(metadata, runtime.report);
    this.#state = new AttemptRequestState(this.#arrival.requestId);
    this.#base = new AttemptBaseContext(this.#arrival.extracted);
    this.#endInFlight = runtime.sextant.inFlight.start();
  }

  #start(): OtelSpan {
    if (!this.#recorded) {
      // Not a span, but the processor still runs in the producer's trace, with its ids in the logs.
      this.#span = trace.wrapSpanContext(this.#arrival.producer ?? INVALID_SPAN_CONTEXT);
      return this.#span;
    }
    const runtime = this.#runtime;
    const queue = this.#queue;
    const attributes = this.#pending;
    attributes[ATTR.MESSAGING_SYSTEM] = MESSAGING_SYSTEM;
    attributes[ATTR.MESSAGING_OPERATION_NAME] = PROCESS;
    attributes[ATTR.MESSAGING_OPERATION_TYPE] = PROCESS;
    attributes[ATTR.MESSAGING_DESTINATION_NAME] = queue;
    const producer = this.#arrival.producer;
    const scheduled = this.#jobId.startsWith(SCHEDULER_JOB_ID_PREFIX);
    const relation: ProducerRelation = scheduled
      ? runtime.options.repeatRelationOf(queue)
      : runtime.options.relationOf(queue);
    const linked = relation === 'link' && producer !== undefined;
    if (linked && !scheduled && (producer.traceFlags & TraceFlags.SAMPLED) === 0) {
      // The producer's trace was not sampled, so neither is its fan-out, whatever the root sampler
      // says. Logs keep the producer's ids, which the unsampled request's own logs carry too. A job
      // scheduler's runs are exempt: the scheduler's context is its creator's, one decision long
      // past, and each run is sampled on its own.
      this.#span = trace.wrapSpanContext(producer);
      return this.#span;
    }
    // A run of its own roots a trace, with nothing of its creator's context but the link.
    const parent = this.#ownRun
      ? ROOT_CONTEXT
      : linked
        ? trace.deleteSpan(createRequestContext(this.#arrival.extracted, undefined, this.#state))
        : createRequestContext(this.#arrival.extracted, undefined, this.#state);
    this.#span = runtime.sextant.tracer.startSpan(
      `${PROCESS} ${queue}`,
      {
        kind: SpanKind.CONSUMER,
        attributes,
        links: linked ? [{ context: producer }] : NO_LINKS,
        startTime: this.#startTime,
      },
      parent,
    );
    return this.#span;
  }

  #otel(): OtelSpan {
    return this.#span ?? this.#start();
  }

  /**
   * BullMQ runs the processor in the context this returns: the job's, never the worker loop's.
   * BullMQ names the job only after this (see `AttemptRequestState`).
   */
  setSpanOnContext(_ctx: Context): Context {
    return createRequestContext(this.#base, this, this.#state);
  }

  /** The attempt ended this way (BullMQ's completion or failure step succeeded). */
  markOutcome(outcome: JobOutcome): void {
    this.#outcome = outcome;
  }

  /** Whether `jobId` of `queue` is a job scheduler's run of its own under this attempt's options. */
  isOwnRun(queue: string, jobId: string): boolean {
    return isOwnRun(this.#runtime.options, queue, jobId);
  }

  /**
   * BullMQ has settled the attempt (moved the job, emitted `completed` or `failed`): what still runs
   * in its context is BullMQ taking the worker's next job (scheduling a job scheduler's next run,
   * emitting `active` for that job), which belongs to no attempt.
   */
  get settled(): boolean {
    return this.#settled;
  }

  /** The job id BullMQ named this attempt with (`''` before it did). */
  get jobId(): string {
    return this.#jobId;
  }

  /** Records the processor's error (the worker's `failed` event hands it over: BullMQ's span only sees its message). */
  recordFailure(error: unknown): void {
    this.#errorType = errorTypeOf(error);
    const span = this.#otel();
    if (error instanceof Error) span.recordException(error);
    span.setAttribute(ATTR.ERROR_TYPE, this.#errorType);
  }

  // ---- OpenTelemetry Span, for code inside the processor ----

  spanContext(): SpanContext {
    return this.#otel().spanContext();
  }

  setAttribute(key: string, value: AttributeValue): this {
    if (this.#span === undefined) this.#pending[key] = value;
    else this.#span.setAttribute(key, value);
    return this;
  }

  setAttributes(attributes: BullMQAttributes): this {
    const span = this.#span;
    if (span !== undefined) {
      span.setAttributes(attributes as Attributes);
      return this;
    }
    const pending = this.#pending;
    for (const key in attributes) pending[key] = attributes[key];
    const queue = attributes[BULLMQ_ATTR.QUEUE_NAME];
    if (typeof queue === 'string') this.#queue = queue;
    const jobId = attributes[BULLMQ_ATTR.JOB_ID];
    if (jobId !== undefined && jobId !== null) {
      this.#jobId = String(jobId);
      pending[ATTR.MESSAGING_MESSAGE_ID] = this.#jobId;
      if (isOwnRun(this.#runtime.options, this.#queue, this.#jobId)) {
        // Before the processor runs: its context (see setSpanOnContext) reads these from now on.
        this.#ownRun = true;
        this.#state.requestId = runRequestId(this.#queue, this.#jobId, this.sourceMetadata ?? '');
        this.#base.current = ROOT_CONTEXT;
      }
      this.#start();
    }
    return this;
  }

  addEvent(name: string, attributesOrTime?: Attributes | TimeInput, time?: TimeInput): this {
    if (name === JOB_COMPLETED_EVENT) {
      // It carries the job's return value as JSON: results may hold personal data, and the
      // outcome is already an attribute. BullMQ adds it after the `completed` listeners and
      // before it takes the next job.
      this.#settled = true;
      return this;
    }
    if (name === JOB_FAILED_EVENT) {
      this.#settled = true;
      const reason = (attributesOrTime as BullMQAttributes | undefined)?.[BULLMQ_ATTR.JOB_FAILED_REASON];
      this.#outcome ??= OUTCOMES.FAILED;
      this.#errorType ??= ERROR_TYPE_OTHER;
      this.#otel().setStatus({
        code: SpanStatusCode.ERROR,
        message: typeof reason === 'string' ? reason : '',
      });
      return this;
    }
    this.#otel().addEvent(name, attributesOrTime, time);
    return this;
  }

  addLink(link: Link): this {
    this.#otel().addLink(link);
    return this;
  }

  addLinks(links: Link[]): this {
    this.#otel().addLinks(links);
    return this;
  }

  setStatus(status: SpanStatus): this {
    this.#otel().setStatus(status);
    return this;
  }

  updateName(name: string): this {
    this.#otel().updateName(name);
    return this;
  }

  isRecording(): boolean {
    return this.#otel().isRecording();
  }

  /**
   * BullMQ calls this when its own bookkeeping after the processor threw (moving the job to
   * completed or failed, with the error's message as a string), and then retries that step. It is
   * an event on the attempt; it becomes the attempt's error only if the attempt does not complete
   * (see `end`): a completion that succeeded on a retry is no error.
   */
  recordException(exception: Exception, time?: TimeInput): void {
    this.#otel().recordException(exception, time);
    this.#bookkeepingError ??= exception;
  }

  end(endTime?: TimeInput): void {
    if (this.#ended) return;
    this.#ended = true;
    const span = this.#otel();
    const runtime = this.#runtime;
    const outcome = this.#outcome ?? OUTCOMES.OTHER;
    span.setAttribute(ATTR.JOB_OUTCOME, outcome);
    const bookkeepingError = this.#bookkeepingError;
    if (bookkeepingError !== undefined && outcome !== OUTCOMES.COMPLETED && this.#errorType === undefined) {
      this.#errorType = errorTypeOf(bookkeepingError);
      span.setAttribute(ATTR.ERROR_TYPE, this.#errorType);
      span.setStatus({ code: SpanStatusCode.ERROR, message: exceptionMessage(bookkeepingError) });
    }
    const finished = typeof endTime === 'number' ? endTime : now();
    span.end(endTime ?? finished);
    this.#endInFlight();
    const queue = this.#queue;
    observeDuration(
      runtime.processDuration,
      queue,
      PROCESS,
      this.#errorType,
      (finished - this.#startTime) / 1000,
    );
    runtime.outcomes.get(queue, outcome).inc();
  }
}

function activeAttempt(): AttemptSpan | undefined {
  const span = trace.getSpan(context.active());
  return span instanceof AttemptSpan ? span : undefined;
}

/** The part of a job that carries its context (a `Job`, or the job a sandboxed processor gets). */
export interface JobWithContext {
  readonly id?: string | undefined;
  /** A job scheduler's run's own request id is derived from it (BullMQ's jobs all have it). */
  readonly queueName?: string | undefined;
  readonly opts?: { readonly telemetry?: { readonly metadata?: string } };
}

/**
 * Runs `fn` in `job`'s context: for a sandboxed processor, whose process (or thread) BullMQ's
 * telemetry does not reach, and for a worker's `active` listeners (BullMQ emits `active` for the
 * next job inside the attempt that fetched it). Inside, logs carry the producer's trace id and span
 * id, its baggage and its request id (a new one when it sent none). Inside the job's own attempt,
 * whose context is already active, it just calls `fn`.
 */
export function runInJobContext<T>(job: JobWithContext, fn: () => T): T {
  const attempt = activeAttempt();
  if (attempt !== undefined && !attempt.settled && (job?.id === undefined || job.id === attempt.jobId)) {
    return fn();
  }
  const metadata = job?.opts?.telemetry?.metadata;
  const arrival = arrivalOf(metadata, undefined);
  const jobId = job?.id === undefined || job.id === null ? '' : String(job.id);
  const queue = typeof job?.queueName === 'string' ? job.queueName : '';
  // A job scheduler's run of its own: its request id (the attempt's), none of the creator's
  // baggage. The options are the worker's when an attempt of its is active (an `active`
  // listener), else the defaults (a sandboxed processor).
  const ownRun =
    attempt === undefined ? isOwnRun(DEFAULT_OPTIONS, queue, jobId) : attempt.isOwnRun(queue, jobId);
  const ctx = ownRun
    ? createRequestContext(
        propagation.deleteBaggage(arrival.extracted),
        undefined,
        createRequestState(runRequestId(queue, jobId, typeof metadata === 'string' ? metadata : '')),
      )
    : createRequestContext(arrival.extracted, undefined, createRequestState(arrival.requestId));
  return context.with(ctx, fn);
}

class SextantTracer implements BullMQTracer<Context> {
  readonly #runtime: Runtime;

  constructor(runtime: Runtime) {
    this.#runtime = runtime;
  }

  startSpan(name: string, options?: BullMQSpanOptions, ctx?: Context): BullMQSpan<Context> {
    const runtime = this.#runtime;
    try {
      const space = name.indexOf(' ');
      const operation = space === -1 ? name : name.slice(0, space);
      const outcome = OUTCOME_OF_OPERATION.get(operation);
      if (outcome === undefined) return this.#span(name, space, operation, options, ctx);
      const step =
        outcome === OUTCOMES.COMPLETED ? this.#span(name, space, operation, options, ctx) : KEEP_SOURCE_SPAN;
      const attempt = activeAttempt();
      return attempt === undefined ? step : new OutcomeStepSpan(step, attempt, outcome);
    } catch (error) {
      runtime.sextant.errors.report('bullmq_span', error);
      return NOOP_SPAN;
    }
  }

  /** `name` is `operation` then, after `space` (-1: none), the destination. */
  #span(
    name: string,
    space: number,
    operation: string,
    options: BullMQSpanOptions | undefined,
    ctx: Context | undefined,
  ): BullMQSpan<Context> {
    const runtime = this.#runtime;
    if (operation === ADD_NODE && ctx === undefined && space !== -1) {
      ProducerSpan.noteFlowQueue(context.active(), name.slice(space + 1));
    }
    const recorded = runtime.options.spanOperations.has(operation);
    const kind = (options?.kind ?? SpanKind.INTERNAL) as number as SpanKind;
    // Attempts and publishes are measured whether or not they become spans.
    if (!recorded && operation !== PROCESS && !PUBLISH_OPERATIONS.has(operation)) return NOOP_SPAN;
    const base = ctx ?? context.active();
    if (kind === SpanKind.CONSUMER) return new AttemptSpan(runtime, base.getValue(kMetadata), recorded);
    if (ctx === undefined) {
      // BullMQ takes the worker's next job from inside the attempt that just ended, and there
      // schedules a job scheduler's next run (`add`, from `upsertJobScheduler`): that belongs to
      // the scheduler, not to whatever job happened to finish before, so it starts a trace of its
      // own (the run itself carries the scheduler's stored context). An application's `add` in
      // its processor runs before the attempt settles and stays the attempt's child.
      const active = trace.getSpan(base);
      if (active instanceof AttemptSpan && active.settled) {
        return new ProducerSpan(runtime, operation, kind, ROOT_CONTEXT, recorded, true);
      }
    }
    const metadata = base.getValue(kMetadata);
    const parent =
      metadata === undefined ? base : extractContext(parseCarrier(metadata, runtime.report) ?? {}, base);
    return new ProducerSpan(runtime, operation, kind, parent, recorded, false);
  }
}

class SextantContextManager implements ContextManager<Context> {
  readonly #runtime: Runtime;

  constructor(runtime: Runtime) {
    this.#runtime = runtime;
  }

  with<A extends (...args: any[]) => any>(ctx: Context, fn: A): ReturnType<A> {
    // BullMQ wraps every operation, spans or not, in `with`; entering the context already active
    // changes nothing, and skipping it spares the async-context bookkeeping on every Redis call.
    return ctx === context.active() ? fn() : context.with(ctx, fn);
  }

  active(): Context {
    return context.active();
  }

  /** BullMQ runs its background loops (the stalled-jobs checker) here, so they belong to no job. */
  root(): Context {
    return ROOT_CONTEXT;
  }

  /** The W3C trace context, baggage and correlation id, as JSON (what bullmq-otel writes too). */
  getMetadata(ctx: Context): string {
    try {
      if (ctx.getValue(kKeepSourceMetadata) === true) {
        const source = trace.getSpan(ctx);
        if (source instanceof AttemptSpan && source.sourceMetadata !== undefined)
          return source.sourceMetadata;
      }
      const carrier: Record<string, string> = {};
      injectContext(carrier, ctx);
      for (const _ in carrier) return JSON.stringify(carrier);
      return '';
    } catch (error) {
      this.#runtime.sextant.errors.report('bullmq_metadata', error);
      return '';
    }
  }

  /**
   * Parks the metadata: only a span that is recorded pays for reading it. BullMQ asks for one per
   * job it handles, so the parent's values are not copied.
   */
  fromMetadata(activeContext: Context, metadata: string): Context {
    return contextWithValue(activeContext, kMetadata, metadata);
  }
}

/**
 * BullMQ's `telemetry` option, backed by Sextant: pass the same object to every `Queue`, `Worker`
 * and `FlowProducer`. Producers carry the trace context, baggage and correlation id inside each
 * job's options (never its data); each processing attempt is a CONSUMER span with the messaging
 * attributes, its duration and outcome are recorded, and the processor runs in the job's context
 * (its logs carry `trace_id`, `span_id` and the producer's `request_id`). Throws a
 * `SextantConfigError` for an invalid option.
 */
export function createBullMQTelemetry(
  sextant: Sextant,
  options: SextantBullMQOptions = {},
): SextantBullMQTelemetry {
  const outcomes = sextant.metrics.counter(METRICS.messagingJobOutcomes);
  const runtime: Runtime = {
    sextant,
    report: (kind, error) => sextant.errors.report(kind, error),
    options: resolveOptions(options),
    processDuration: durationMetric(sextant.metrics.histogram(METRICS.messagingProcessDuration)),
    publishDuration: durationMetric(sextant.metrics.histogram(METRICS.messagingClientOperationDuration)),
    outcomes: new SeriesByQueue((queue, outcome) => outcomes.child(MESSAGING_SYSTEM, queue, outcome)),
  };
  return { tracer: new SextantTracer(runtime), contextManager: new SextantContextManager(runtime) };
}
