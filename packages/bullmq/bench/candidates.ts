/**
 * The producer and worker pairs both BullMQ benches run: the same queue and worker bare, with a
 * do-nothing `telemetry` option, with Sextant's (every job traced, one in ten, no spans), and with
 * the peer stack's (peer.ts).
 */
import type { Sextant, SextantOptions } from '@sextant/core';
import { type ConnectionOptions, type Job, Queue, type Telemetry, Worker } from 'bullmq';
import { createBullMQTelemetry, observeWorker } from '../src/index.ts';

export const CANDIDATE_NAMES = ['bare', 'do-nothing', 'sextant', 'one-in-ten', 'no-spans', 'peer'] as const;
export type CandidateName = (typeof CANDIDATE_NAMES)[number];
/** What each job does: nothing (the worst case for any instrumentation), or one PostgreSQL query. */
export const PROCESSOR_NAMES = ['empty', 'postgres'] as const;
export type ProcessorName = (typeof PROCESSOR_NAMES)[number];

export interface RoundResult {
  jobsPerSecond: number;
  /** CPU time of the process (producer and worker) per job. */
  cpuMicrosPerJob: number;
}

export const CONCURRENCY = 16;
/** Adds in flight at once: a producer that does not wait for each add, as a web tier would. */
export const PRODUCER_WINDOW = 64;

export interface Candidate {
  readonly name: CandidateName;
  readonly queue: Queue;
  readonly worker: Worker;
}

/**
 * A telemetry option that does nothing: what BullMQ's own telemetry code path costs (its `trace`
 * wrapper around each operation, the extra awaits), before any instrumentation does any work.
 */
const DO_NOTHING_SPAN = {
  setSpanOnContext: (ctx: unknown) => ctx,
  setAttribute() {},
  setAttributes() {},
  addEvent() {},
  recordException() {},
  end() {},
};
const DO_NOTHING_TELEMETRY: Telemetry<unknown> = {
  tracer: { startSpan: () => DO_NOTHING_SPAN },
  contextManager: {
    with: (_ctx, fn) => fn(),
    active: () => undefined,
    getMetadata: () => '',
    fromMetadata: (ctx) => ctx,
  },
};

/**
 * How the candidate's Sextant samples: every trace, except for `one-in-ten`, which keeps the
 * traces of one job in ten as a production service under load would (jobs follow their
 * producer's decision, so 1 in 10 jobs has its two spans).
 */
export function tracingOf(name: CandidateName, sinkUrl: string): SextantOptions['tracing'] {
  return name === 'one-in-ten'
    ? { endpoint: sinkUrl, sampler: 'parentbased_traceidratio', samplerRatio: 0.1 }
    : { endpoint: sinkUrl };
}

/** What instruments a candidate's queue and worker: Sextant, or the peer stack's own telemetry. */
export type Instrumentation = { sextant: Sextant } | { peer: Telemetry<never> };

function telemetryOf(name: CandidateName, instrumentation: Instrumentation): Telemetry<never> | undefined {
  if ('peer' in instrumentation) return instrumentation.peer;
  const { sextant } = instrumentation;
  switch (name) {
    case 'bare':
      return undefined;
    case 'do-nothing':
      return DO_NOTHING_TELEMETRY as Telemetry<never>;
    case 'sextant':
    case 'one-in-ten':
      return createBullMQTelemetry(sextant);
    case 'no-spans':
      return createBullMQTelemetry(sextant, { spanOperations: [] });
    case 'peer':
      throw new Error('bullmq bench: the peer candidate runs on the peer stack, not on Sextant');
  }
}

export function createCandidate(
  name: CandidateName,
  instrumentation: Instrumentation,
  connection: ConnectionOptions,
  prefix: string,
  processor: (job: Job) => Promise<unknown>,
): Candidate {
  const telemetry = telemetryOf(name, instrumentation);
  const options = telemetry ? { connection, prefix, telemetry } : { connection, prefix };
  const queueName = `bench-${name}`;
  const queue = new Queue(queueName, options);
  const worker = new Worker(queueName, processor, { ...options, concurrency: CONCURRENCY });
  if (telemetry !== undefined && 'sextant' in instrumentation && name !== 'do-nothing') {
    observeWorker(instrumentation.sextant, worker);
  }
  return { name, queue, worker };
}

/**
 * Enqueues `jobs` jobs, PRODUCER_WINDOW in flight, waits until the worker has finished them all
 * and `flush` (the export of their spans) is done; all of it is timed. `phased`: the queue is
 * paused while the jobs are added and resumed after, so the worker drains a full queue and how
 * producer and worker interleave does not depend on their speeds (under callgrind, Node runs some
 * 50 times slower than Redis).
 */
export async function runRound(
  candidate: Candidate,
  jobs: number,
  phased: boolean,
  flush: () => Promise<void>,
): Promise<RoundResult> {
  let processed = 0;
  let onDrained!: () => void;
  const drained = new Promise<void>((resolve) => {
    onDrained = resolve;
  });
  const onCompleted = () => {
    processed += 1;
    if (processed === jobs) onDrained();
  };
  candidate.worker.on('completed', onCompleted);
  const cpu = process.cpuUsage();
  const started = performance.now();
  try {
    if (phased) await candidate.queue.pause();
    for (let sent = 0; sent < jobs; sent += PRODUCER_WINDOW) {
      const batch: Promise<unknown>[] = [];
      for (let n = sent; n < Math.min(sent + PRODUCER_WINDOW, jobs); n++) {
        batch.push(candidate.queue.add('bench', { n }, { removeOnComplete: true }));
      }
      await Promise.all(batch);
    }
    if (phased) await candidate.queue.resume();
    await drained;
    await flush();
  } finally {
    candidate.worker.off('completed', onCompleted);
  }
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { jobsPerSecond: jobs / seconds, cpuMicrosPerJob: (used.user + used.system) / jobs };
}
