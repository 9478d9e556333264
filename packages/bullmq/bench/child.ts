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
  type ProcessorName,
  type RoundResult,
  runRound,
  tracingOf,
} from './candidates.ts';

export type ChildMessage = { type: 'ready' } | ({ type: 'done' } & RoundResult);

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
const sextant = createSextant({
  serviceName: 'bullmq-bench',
  tracing: tracingOf(candidateName, sinkUrl),
  logs: { level: 'warn' },
  env: {},
});

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

const candidate = createCandidate(candidateName, sextant, connection, prefix, processor);
await candidate.worker.waitUntilReady();
const send = (message: ChildMessage) => process.send!(message);

process.on('message', async (message: 'round' | 'close') => {
  if (message === 'close') {
    await candidate.worker.close();
    await candidate.queue.close();
    await closeProcessor();
    await sextant.shutdown();
    process.disconnect();
    return;
  }
  const result = await runRound(candidate, Number(jobs), mode === 'phased', () =>
    sextant.tracing.forceFlush(),
  );
  send({ type: 'done', ...result });
});
send({ type: 'ready' });
