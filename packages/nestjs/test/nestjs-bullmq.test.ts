/**
 * @sextant/bullmq inside a Nest application through @nestjs/bullmq, configured the way the BullMQ
 * README says: the telemetry once in `BullModule.forRoot` (Nest hands those options to every queue
 * and to every `@Processor` worker), `observeWorker` once Nest has created the worker. Real Redis
 * (REDIS_URL, default 127.0.0.1:6379).
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { BullModule, InjectQueue, Processor, WorkerHost } from '@nestjs/bullmq';
import { Injectable, Module, type OnApplicationBootstrap } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { SpanKind, trace } from '@opentelemetry/api';
import { createBullMQTelemetry, observeWorker } from '@sextant/bullmq';
import { createSextant, getRequestId, runWithRequestId } from '@sextant/core';
import { type Job, type Queue, QueueEvents } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import { collectLines } from '../../../tooling/testing/log-collector.ts';
import { waitFor } from '../../bullmq/test/helpers.ts';

const url = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const connection = { host: url.hostname, port: Number(url.port || 6379) };
const prefix = `sextant-nest-bullmq-${randomUUID().slice(0, 8)}`;
const QUEUE = 'orders';

const logs = collectLines();
const sextant = createSextant({
  serviceName: 'nest-bullmq-test',
  tracing: { exporter: 'memory' },
  logs: { destination: logs },
  env: {},
});
const telemetry = createBullMQTelemetry(sextant);

interface Seen {
  traceId: string | undefined;
  requestId: string | undefined;
}

@Processor(QUEUE)
class OrdersProcessor extends WorkerHost implements OnApplicationBootstrap {
  readonly seen: Seen[] = [];

  // The worker exists once Nest's BullMQ explorer has run (module init); bootstrap comes after.
  onApplicationBootstrap(): void {
    observeWorker(sextant, this.worker);
  }

  async process(job: Job<{ n: number }>): Promise<number> {
    sextant.logger.info({ job_id: job.id }, 'processing order');
    this.seen.push({
      traceId: trace.getActiveSpan()?.spanContext().traceId,
      requestId: getRequestId(),
    });
    return job.data.n * 2;
  }
}

@Injectable()
class OrdersService {
  readonly queue: Queue;

  constructor(@InjectQueue(QUEUE) queue: Queue) {
    this.queue = queue;
  }
}

@Module({
  imports: [BullModule.forRoot({ connection, prefix, telemetry }), BullModule.registerQueue({ name: QUEUE })],
  providers: [OrdersProcessor, OrdersService],
})
class OrdersModule {}

afterAll(async () => {
  await sextant.shutdown();
});

describe('@nestjs/bullmq', () => {
  it('carries the request trace and request id from a queue Nest injects into a WorkerHost processor', async () => {
    const app = await NestFactory.createApplicationContext(OrdersModule, { logger: false });
    const events = new QueueEvents(QUEUE, { connection, prefix });
    try {
      await events.waitUntilReady();
      const { queue } = app.get(OrdersService);
      const processor = app.get(OrdersProcessor);
      let requestTraceId = '';
      const job = await runWithRequestId('req-nest-bullmq-1', () =>
        sextant.tracer.startActiveSpan('POST /orders', { kind: SpanKind.SERVER }, async (span) => {
          requestTraceId = span.spanContext().traceId;
          try {
            return await queue.add('order', { n: 21 });
          } finally {
            span.end();
          }
        }),
      );
      expect(await job.waitUntilFinished(events, 10_000)).toBe(42);

      expect(processor.seen).toEqual([{ traceId: requestTraceId, requestId: 'req-nest-bullmq-1' }]);
      const spans = sextant.tracing.finishedSpans();
      const publish = await waitFor(() => spans.find((span) => span.name === `add ${QUEUE}`), 'the add span');
      const attempt = await waitFor(
        () => spans.find((span) => span.name === `process ${QUEUE}`),
        'the attempt span',
      );
      expect(publish.spanContext().traceId).toBe(requestTraceId);
      expect(attempt.kind).toBe(SpanKind.CONSUMER);
      expect(attempt.parentSpanContext?.spanId).toBe(publish.spanContext().spanId);
      expect(attempt.attributes).toMatchObject({
        'messaging.system': 'bullmq',
        'messaging.destination.name': QUEUE,
        'messaging.message.id': job.id,
        'bullmq.job.outcome': 'completed',
      });
      const record = logs.records().find((line) => line.msg === 'processing order');
      expect(record).toMatchObject({
        trace_id: requestTraceId,
        span_id: attempt.spanContext().spanId,
        request_id: 'req-nest-bullmq-1',
        job_id: job.id,
      });
      const metrics = await sextant.metrics.render();
      expect(metrics.body).toMatch(
        new RegExp(
          `messaging_process_duration_seconds_count\\{[^}]*messaging_destination_name="${QUEUE}"[^}]*\\} 1`,
        ),
      );
    } finally {
      await events.close();
      await app.get(OrdersService).queue.obliterate({ force: true });
      await app.close();
    }
  });
});
