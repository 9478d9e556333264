/**
 * One candidate of the BullMQ benches, in a process of its own: a producer and worker pair that
 * runs a round of jobs per message and answers with what the round cost.
 *
 *   child.ts <candidate> <processor> <OTLP sink URL> <jobs per round> <Redis key prefix> [phased]
 */

import { createSextant } from '@sextant/core';
import type { Job } from 'bullmq';
import {
  type CandidateName,
  createCandidate,
  type Instrumentation,
  type ProcessorName,
  type RoundResult,
  runRound,
  tracingOf,
} from './candidates.ts';
import { type SpanCounts, startPeerStack } from './peer.ts';

/** A round's result, and how many spans each job ended (all of them exported). */
export interface MeasuredRound extends RoundResult {
  spansPerJob: number;
}
export type ChildMessage = { type: 'ready' } | ({ type: 'done' } & MeasuredRound);

const [candidateName, processorName, sinkUrl, jobs, prefix, mode] = process.argv.slice(2) as [
  CandidateName,
  ProcessorName,
  string,
  string,
  string,
  string | undefined,
];
const url = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const connection = { host: url.hostname, port: Number(url.port || 6379) };

interface Stack {
  instrumentation: Instrumentation;
  forceFlush(): Promise<void>;
  spanCounts(): SpanCounts;
  shutdown(): Promise<void>;
}

/** The peer candidate runs without Sextant: its SDK registers the global tracer provider instead. */
function startStack(): Stack {
  if (candidateName === 'peer') {
    const peer = startPeerStack(sinkUrl);
    return { ...peer, instrumentation: { peer: peer.telemetry } };
  }
  const sextant = createSextant({
    serviceName: 'bullmq-bench',
    tracing: tracingOf(candidateName, sinkUrl),
    logs: { level: 'warn' },
    env: {},
  });
  return {
    instrumentation: { sextant },
    forceFlush: () => sextant.tracing.forceFlush(),
    spanCounts: () => {
      const { ended, exported } = sextant.tracing.stats();
      return { ended, exported };
    },
    shutdown: () => sextant.shutdown(),
  };
}
const stack = startStack();

let processor: (job: Job) => Promise<unknown> = async (job) => job.data.n;
let closeProcessor = async () => {};
if (processorName === 'postgres') {
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({
    connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    max: 16,
  });
  processor = async (job) => (await pool.query('SELECT $1::int AS n', [job.data.n])).rows[0];
  closeProcessor = () => pool.end();
}

const candidate = createCandidate(candidateName, stack.instrumentation, connection, prefix, processor);
await candidate.worker.waitUntilReady();
const send = (message: ChildMessage) => process.send!(message);

process.on('message', async (message: 'round' | 'close') => {
  if (message === 'close') {
    await candidate.worker.close();
    await candidate.queue.close();
    await closeProcessor();
    await stack.shutdown();
    // A span dropped (queue full) is work the candidate did not pay for: its numbers would flatter it.
    const { ended, exported } = stack.spanCounts();
    if (ended !== exported) {
      console.error(`bullmq bench: ${candidateName} ended ${ended} spans and exported ${exported}`);
      process.exit(1);
    }
    process.disconnect();
    return;
  }
  const endedBefore = stack.spanCounts().ended;
  const result = await runRound(candidate, Number(jobs), mode === 'phased', () => stack.forceFlush());
  send({ type: 'done', ...result, spansPerJob: (stack.spanCounts().ended - endedBefore) / Number(jobs) });
});
send({ type: 'ready' });
