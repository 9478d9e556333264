/**
 * The span pipeline of the benches' peer stacks: an OpenTelemetry SDK batch processor with
 * Sextant's default limits, exporting over OTLP/protobuf, with the spans ended and exported
 * counted. A span the batch processor dropped would be work the peer did not pay for, so the
 * benches check that both counts agree.
 */
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import {
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';

/** Sextant's defaults (`tracing.batch`, the SDK's own), so that both stacks queue and send alike. */
const BATCH = {
  maxQueueSize: 2048,
  maxExportBatchSize: 512,
  scheduledDelayMillis: 5000,
  exportTimeoutMillis: 30000,
};

export interface CountedSpans {
  /** The batch processor and the counter of ended spans, for the peer's tracer provider. */
  readonly processors: SpanProcessor[];
  forceFlush(): Promise<void>;
  ended(): number;
  exported(): number;
  /** The names of the spans ended so far, in the order first seen. */
  spanNames(): string[];
}

/** `otlpBase` is the sink's base URL; spans go to `<otlpBase>/v1/traces`. */
export function createCountedSpans(otlpBase: string): CountedSpans {
  let ended = 0;
  let exported = 0;
  const names = new Set<string>();
  const otlp = new OTLPTraceExporter({ url: `${otlpBase}/v1/traces` });
  const exporter: SpanExporter = {
    export(spans, done) {
      exported += spans.length;
      otlp.export(spans, done);
    },
    shutdown: () => otlp.shutdown(),
    forceFlush: () => otlp.forceFlush(),
  };
  const batch = new BatchSpanProcessor({ exporter, ...BATCH });
  const endCounter: SpanProcessor = {
    onStart() {},
    onEnd(span: ReadableSpan) {
      ended += 1;
      names.add(span.name);
    },
    forceFlush: async () => {},
    shutdown: async () => {},
  };
  return {
    processors: [batch, endCounter],
    forceFlush: () => batch.forceFlush(),
    ended: () => ended,
    exported: () => exported,
    spanNames: () => [...names],
  };
}
