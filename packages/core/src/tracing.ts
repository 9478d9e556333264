import { setTimeout as sleep } from 'node:timers/promises';
import {
  type TracerProvider as ApiTracerProvider,
  type Attributes,
  type Context,
  context,
  ProxyTracerProvider,
  type Span,
  type SpanOptions,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import { OTLPExporterBase, type OTLPExporterConfigBase } from '@opentelemetry/otlp-exporter-base';
import {
  convertLegacyHttpOptions,
  createOtlpHttpExportDelegate,
} from '@opentelemetry/otlp-exporter-base/node-http';
import {
  JsonTraceSerializer,
  ProtobufTraceSerializer,
  TraceExporterMetricsHelper,
} from '@opentelemetry/otlp-transformer';
import { defaultResource, type Resource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  ConsoleSpanExporter,
  ParentBasedSampler,
  type ReadableSpan,
  type Sampler,
  type SpanExporter,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import {
  ATTR_DEPLOYMENT_ENVIRONMENT_NAME,
  ATTR_SERVICE_INSTANCE_ID,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
} from '@opentelemetry/semantic-conventions';
import type { ResolvedConfig } from './config.ts';
import { contextWithSpan } from './context.ts';
import { PooledIdGenerator } from './ids.ts';
import type { InternalErrorSink } from './internal-errors.ts';
import { EncodedSpanQueue, type EncodedSpans } from './otlp-protobuf.ts';
import { createRedactor, type Redactor } from './redact.ts';
import { CountingBatchSpanProcessor, type SpanProcessorStats } from './span-processor.ts';

/** Instrumentation scope of every span Sextant creates. */
export const TRACER_NAME = '@sextant/core';

/** Counts of sampled spans that reached Sextant's processor: `ended === exported + dropped` after a flush. */
export type TracingStats = SpanProcessorStats;

export interface Tracing {
  /** The tracer Sextant's instrumentation uses, scope `@sextant/core`. */
  readonly tracer: Tracer;
  readonly enabled: boolean;
  /** False when the application already registered a tracer provider (it is used instead), or tracing is off. */
  readonly ownsProvider: boolean;
  stats(): TracingStats;
  /** Spans exported so far with exporter `memory`; otherwise empty. */
  finishedSpans(): readonly ReadableSpan[];
  resetFinishedSpans(): void;
  /** Exports the spans ended so far. Never rejects: failures are counted and reported to the sink. */
  forceFlush(): Promise<void>;
  /**
   * Flushes and stops exporting; unregisters Sextant's global provider. With `timeoutMs`, stops
   * waiting for the flush after that long and counts the spans not sent as dropped (reason
   * `shutdown`). Idempotent (the first call's limit holds), never rejects.
   */
  shutdown(timeoutMs?: number): Promise<void>;
}

const ZERO_STATS: TracingStats = Object.freeze({
  ended: 0,
  exported: 0,
  dropped: 0,
  droppedByReason: Object.freeze({ queue_full: 0, export_failed: 0, shutdown: 0 }),
});
const NO_SPANS: readonly ReadableSpan[] = Object.freeze([]);
// The API's own placeholder: the delegate of a proxy that nothing was registered on.
const NOOP_PROVIDER: ApiTracerProvider = new ProxyTracerProvider().getDelegate();

/**
 * Sets up the OpenTelemetry SDK from the resolved config and registers it globally, unless
 * the application (or auto-instrumentation) already registered a provider: then that one is
 * used and Sextant installs nothing. The global propagator and context manager are not
 * touched here.
 */
export function createTracing(
  config: ResolvedConfig,
  sink: InternalErrorSink,
  redactor: Redactor = createRedactor({ extraKeys: config.logs.redactKeys }),
): Tracing {
  if (!config.tracing.enabled) return createUnownedTracing(NOOP_PROVIDER.getTracer(TRACER_NAME), false, sink);
  const existing = registeredProvider();
  if (existing) return createUnownedTracing(trace.getTracer(TRACER_NAME), true, sink, existing);

  const exporter = createExporter(config);
  const redact = (span: ReadableSpan) => redactSpanErrors(span, redactor);
  const processor = exporter === undefined ? undefined : createProcessor(exporter, config, sink, redact);
  const provider = new SextantTracerProvider({
    resource: createResource(config),
    idGenerator: new PooledIdGenerator(),
    sampler: createSampler(config.tracing.sampler, config.tracing.samplerRatio),
    spanLimits: { attributeValueLengthLimit: config.tracing.attributeValueLengthLimit },
    spanProcessors: processor ? [processor] : [],
  });
  if (!trace.setGlobalTracerProvider(provider)) {
    // Another API copy holds the global slot; a second provider would split traces in two.
    provider.shutdown().catch((error: unknown) => sink.report('span_shutdown', error));
    return createUnownedTracing(trace.getTracer(TRACER_NAME), true, sink);
  }

  const memory = exporter instanceof MemorySpanExporter ? exporter : undefined;
  let shutdownPromise: Promise<void> | undefined;
  return {
    tracer: new OwnProviderTracer(provider.getTracer(TRACER_NAME), config.tracing.attributeValueLengthLimit),
    enabled: true,
    ownsProvider: true,
    stats: () => processor?.stats() ?? ZERO_STATS,
    finishedSpans: () => memory?.getFinishedSpans() ?? NO_SPANS,
    resetFinishedSpans: () => memory?.reset(),
    // The processor's flush never rejects and is bounded by the export timeout per batch.
    forceFlush: () => processor?.forceFlush() ?? Promise.resolve(),
    shutdown(timeoutMs?: number) {
      // The processor's own shutdown first, with the limit; the provider's then finds it done.
      shutdownPromise ??= (processor?.shutdown(timeoutMs) ?? Promise.resolve())
        .then(() => provider.shutdown())
        .catch((error: unknown) => sink.report('span_shutdown', error))
        .then(() => {
          // Frees the global slot so a later createTracing (tests, a restart in-process) can install again.
          if (registeredProvider() === provider) trace.disable();
        });
      return shutdownPromise;
    },
  };
}

const NO_SELF_METRICS = Object.freeze({ startSpan: () => noop });
function noop(): void {}

/**
 * The SDK's tracer records its own `otel.sdk.span.*` metrics through the provider's meter. Sextant
 * gives it none, so they go to a no-op meter, yet preparing them still costs every span two
 * objects with computed keys and a closure (about 5 k instructions, a sixth of a server span's
 * start). Tracers from Sextant's provider skip that work; nothing observable changes.
 */
class SextantTracerProvider extends TracerProvider {
  override getTracer(name: string, version?: string, options?: { schemaUrl?: string }): Tracer {
    const tracer = super.getTracer(name, version, options);
    const internals = tracer as Tracer & { _tracerMetrics?: { startSpan?: unknown } };
    if (typeof internals._tracerMetrics?.startSpan === 'function') internals._tracerMetrics = NO_SELF_METRICS;
    return tracer;
  }
}

/** More start attributes than this take the SDK's path, which also applies the count limit. */
const MAX_DIRECT_ATTRIBUTES = 32;

/**
 * Sextant's tracer on a provider Sextant owns: the SDK's tracer, except that start attributes
 * holding strings, numbers or booleans are written into the new span directly. The SDK checks
 * each start attribute twice and allocates a WeakSet for every check, about 0.1 µs per value
 * (a server span has seven, a job attempt a dozen; `pnpm --filter @sextant/core bench`). Those
 * types need no check beyond the value length limit, applied here as the SDK would; any other
 * value goes through `setAttribute`, with the SDK's checks and warnings. The samplers Sextant
 * configures never read start attributes, so starting the span first loses nothing; an
 * application's own provider is never handed this tracer.
 */
class OwnProviderTracer implements Tracer {
  readonly #sdk: Tracer;
  readonly #valueLengthLimit: number;

  constructor(sdk: Tracer, valueLengthLimit: number) {
    this.#sdk = sdk;
    this.#valueLengthLimit = valueLengthLimit > 0 ? valueLengthLimit : Number.POSITIVE_INFINITY;
  }

  startSpan(name: string, options?: SpanOptions, parent?: Context): Span {
    const attributes = options?.attributes;
    if (attributes === undefined) return this.#sdk.startSpan(name, options, parent);
    const span = this.#sdk.startSpan(
      name,
      { kind: options!.kind, links: options!.links, startTime: options!.startTime, root: options!.root },
      parent,
    );
    if (span.isRecording()) addStartAttributes(span, attributes, this.#valueLengthLimit);
    return span;
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    options: SpanOptions,
    fn: F,
  ): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    options: SpanOptions,
    parent: Context,
    fn: F,
  ): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    ...rest: [F] | [SpanOptions, F] | [SpanOptions, Context, F]
  ): ReturnType<F> {
    const fn = rest[rest.length - 1] as F;
    const options = rest.length > 1 ? (rest[0] as SpanOptions) : undefined;
    const parent = rest.length > 2 ? (rest[1] as Context) : context.active();
    const span = this.startSpan(name, options, parent);
    return context.with(contextWithSpan(parent, span), fn as (span: Span) => ReturnType<F>, undefined, span);
  }
}

/** The SDK span's own attribute map and count: written together, as its `setAttribute` does. */
interface SdkSpanInternals {
  attributes?: unknown;
  _attributesCount?: unknown;
}

function addStartAttributes(span: Span, attributes: Attributes, valueLengthLimit: number): void {
  const internals = span as Span & SdkSpanInternals;
  const target = internals.attributes;
  const keys = Object.keys(attributes);
  if (
    typeof target !== 'object' ||
    target === null ||
    !Object.isExtensible(target) ||
    typeof internals._attributesCount !== 'number' ||
    keys.length > MAX_DIRECT_ATTRIBUTES
  ) {
    span.setAttributes(attributes);
    return;
  }
  const map = target as Attributes;
  // Keys from Object.keys are distinct: into an empty map (no sampler added any), each one is new.
  const empty = internals._attributesCount === 0;
  let added = 0;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const value = attributes[key];
    const type = typeof value;
    if (key === '' || (type !== 'string' && type !== 'number' && type !== 'boolean')) {
      // undefined is dropped, anything else is the SDK's to check (and warn about).
      if (value !== undefined) span.setAttribute(key, value);
      continue;
    }
    if (empty || !Object.hasOwn(map, key)) added++;
    map[key] =
      type === 'string' && (value as string).length > valueLengthLimit
        ? (value as string).slice(0, valueLengthLimit)
        : value;
  }
  internals._attributesCount = (internals._attributesCount as number) + added;
}

function createUnownedTracing(
  tracer: Tracer,
  enabled: boolean,
  sink: InternalErrorSink,
  provider?: ApiTracerProvider,
): Tracing {
  // The application's provider is not ours to shut down, but Sextant's shutdown promises to
  // flush spans, so it flushes that provider when it can.
  const flushable = provider as { forceFlush?: () => Promise<unknown> } | undefined;
  const forceFlush = (): Promise<void> => {
    if (typeof flushable?.forceFlush !== 'function') return Promise.resolve();
    try {
      return flushable.forceFlush().then(
        () => undefined,
        (error: unknown) => sink.report('span_flush', error),
      );
    } catch (error) {
      sink.report('span_flush', error);
      return Promise.resolve();
    }
  };
  const shutdown = (timeoutMs?: number): Promise<void> =>
    timeoutMs === undefined
      ? forceFlush()
      : Promise.race([forceFlush(), sleep(timeoutMs, undefined, { ref: false })]);
  return {
    tracer,
    enabled,
    ownsProvider: false,
    stats: () => ZERO_STATS,
    finishedSpans: () => NO_SPANS,
    resetFinishedSpans: () => undefined,
    forceFlush,
    shutdown,
  };
}

/** The provider registered in the global API, if any (the global is always a proxy around it). */
function registeredProvider(): ApiTracerProvider | undefined {
  const global = trace.getTracerProvider() as ApiTracerProvider & { getDelegate?: () => ApiTracerProvider };
  const delegate = typeof global.getDelegate === 'function' ? global.getDelegate() : global;
  // A proxy from another copy of the API has its own no-op instance, hence the name check too.
  if (delegate === NOOP_PROVIDER || delegate.constructor?.name === 'NoopTracerProvider') return undefined;
  return delegate;
}

function createResource(config: ResolvedConfig): Resource {
  return defaultResource().merge(
    resourceFromAttributes({
      ...config.resourceAttributes,
      // Resolved from the options, the environment and the attributes above, in that order: the
      // same values the logs and health report carry.
      [ATTR_SERVICE_INSTANCE_ID]: config.serviceInstanceId,
      [ATTR_DEPLOYMENT_ENVIRONMENT_NAME]: config.environment,
      [ATTR_SERVICE_NAME]: config.serviceName,
      ...(config.serviceVersion === undefined ? {} : { [ATTR_SERVICE_VERSION]: config.serviceVersion }),
    }),
  );
}

function createSampler(name: ResolvedConfig['tracing']['sampler'], ratio: number): Sampler {
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}

type Exporter = SpanExporter | OtlpProtobufTraceExporter;

function createProcessor(
  exporter: Exporter,
  config: ResolvedConfig,
  sink: InternalErrorSink,
  redact: (span: ReadableSpan) => void,
): CountingBatchSpanProcessor<ReadableSpan[]> | CountingBatchSpanProcessor<EncodedSpans> {
  if (exporter instanceof OtlpProtobufTraceExporter) {
    return new CountingBatchSpanProcessor<EncodedSpans>({
      exporter,
      sink,
      redact,
      createQueue: (batchSize) => new EncodedSpanQueue(batchSize),
      ...config.tracing.batch,
      deferExport: true,
    });
  }
  // The memory exporter is read back right after a span ends (tests, debug pages), so it gets
  // each span as it ends instead of waiting for a batch.
  return new CountingBatchSpanProcessor({
    exporter,
    sink,
    redact,
    ...(exporter instanceof MemorySpanExporter
      ? { ...config.tracing.batch, maxExportBatchSize: 1, scheduledDelayMillis: 0 }
      : { ...config.tracing.batch, deferExport: true }),
  });
}

function createExporter(config: ResolvedConfig): Exporter | undefined {
  const { exporter, tracesUrl, otlpTimeoutMillis, protocol, headers, batch } = config.tracing;
  if (typeof exporter === 'object') return exporter;
  switch (exporter) {
    case 'none':
      return undefined;
    case 'memory':
      return new MemorySpanExporter();
    case 'console':
      return new ConsoleSpanExporter();
    case 'otlp': {
      const options: OTLPExporterConfigBase = {
        url: tracesUrl,
        headers: { ...headers },
        // Equal to the processor's limit, so a hung collector fails the batch rather than retrying
        // past it. 0 (no processor limit) leaves the exporter its own default: it refuses 0.
        // One request never outlives the batch it carries.
        timeoutMillis:
          batch.exportTimeoutMillis > 0
            ? Math.min(otlpTimeoutMillis, batch.exportTimeoutMillis)
            : otlpTimeoutMillis,
      };
      return protocol === 'http/json'
        ? new OtlpJsonTraceExporter(options)
        : new OtlpProtobufTraceExporter(options);
    }
  }
}

/**
 * OTLP over HTTP with upstream's transport (retries, compression, headers, timeouts, the
 * environment variables). Protobuf batches arrive already encoded (see EncodedSpans): the
 * request is assembled from them. Responses decode as upstream does.
 */
class OtlpProtobufTraceExporter extends OTLPExporterBase<EncodedSpans> {
  constructor(options: OTLPExporterConfigBase) {
    super(
      createOtlpHttpExportDelegate(
        convertLegacyHttpOptions(options, 'TRACES', 'v1/traces', {
          'Content-Type': 'application/x-protobuf',
        }),
        {
          serializeRequest: (batch: EncodedSpans) => batch.request(),
          deserializeResponse: ProtobufTraceSerializer.deserializeResponse,
        },
        'otlp_http_span_exporter',
        { name: 'span', countItems: (batch: EncodedSpans) => batch.size },
        undefined,
      ),
    );
  }
}

class OtlpJsonTraceExporter extends OTLPExporterBase<ReadableSpan[]> implements SpanExporter {
  constructor(options: OTLPExporterConfigBase) {
    super(
      createOtlpHttpExportDelegate(
        convertLegacyHttpOptions(options, 'TRACES', 'v1/traces', { 'Content-Type': 'application/json' }),
        JsonTraceSerializer,
        'otlp_http_json_span_exporter',
        TraceExporterMetricsHelper,
        undefined,
      ),
    );
  }
}

/**
 * Keeps exported spans in memory. Unlike the SDK's InMemorySpanExporter it answers at once
 * (so a span is readable as soon as it ends, even several in one tick) and keeps its spans
 * through shutdown, so they can be read after `sextant.shutdown()`.
 */
class MemorySpanExporter implements SpanExporter {
  #spans: ReadableSpan[] = [];

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    for (const span of spans) this.#spans.push(span);
    resultCallback({ code: ExportResultCode.SUCCESS });
  }

  async shutdown(): Promise<void> {}

  getFinishedSpans(): readonly ReadableSpan[] {
    return this.#spans;
  }

  reset(): void {
    this.#spans = [];
  }
}

const EXCEPTION_EVENT = 'exception';
const EXCEPTION_TEXT_ATTRIBUTES = ['exception.message', 'exception.stacktrace'] as const;

/**
 * Error text in a span quotes whatever the error quoted (a request's query string in a bad-URL
 * error, a Prisma validation error's arguments, a job's data in its failure): the same redaction
 * as logged errors, applied to the exception events and the status message of every span the
 * provider Sextant owns exports, whoever recorded them (Sextant, BullMQ, an instrumentation).
 * Spans without an error pay for one length check.
 */
export function redactSpanErrors(span: ReadableSpan, redactor: Redactor): void {
  const message = span.status.message;
  if (message !== undefined && message !== '') {
    (span as { status: ReadableSpan['status'] }).status = {
      code: span.status.code,
      message: redactor.errorText(message),
    };
  }
  const events = span.events;
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!;
    if (event.name !== EXCEPTION_EVENT || event.attributes === undefined) continue;
    for (const key of EXCEPTION_TEXT_ATTRIBUTES) {
      const text = event.attributes[key];
      if (typeof text === 'string') event.attributes[key] = redactor.errorText(text);
    }
  }
}
