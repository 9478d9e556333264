/**
 * The peer stack of the BullMQ benches: what a BullMQ user reaches for today without Sextant.
 * BullMQ's own OpenTelemetry add-on (`bullmq-otel`, metrics on) on the OpenTelemetry Node SDK:
 * spans batched with Sextant's default limits and exported over OTLP/protobuf to the same sink,
 * metrics recorded into a Prometheus reader that nothing scrapes during a round (as Sextant's are).
 */
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { Telemetry } from 'bullmq';
import { BullMQOtel } from 'bullmq-otel';
import { createCountedSpans } from '../../../tooling/bench/peer-spans.ts';

export interface SpanCounts {
  ended: number;
  exported: number;
}

export interface PeerStack {
  telemetry: Telemetry<never>;
  forceFlush(): Promise<void>;
  spanCounts(): SpanCounts;
  shutdown(): Promise<void>;
}

export function startPeerStack(sinkUrl: string): PeerStack {
  const spans = createCountedSpans(sinkUrl);
  const sdk = new NodeSDK({
    serviceName: 'bullmq-bench',
    spanProcessors: spans.processors,
    metricReaders: [new PrometheusExporter({ preventServerStart: true })],
    instrumentations: [],
  });
  sdk.start();
  return {
    telemetry: new BullMQOtel({
      tracerName: 'bullmq-bench',
      enableMetrics: true,
    }) as unknown as Telemetry<never>,
    forceFlush: () => spans.forceFlush(),
    spanCounts: () => ({ ended: spans.ended(), exported: spans.exported() }),
    shutdown: () => sdk.shutdown(),
  };
}
