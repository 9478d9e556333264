/** The parent's side of the BullMQ benches: the candidate processes, and cleanup of their keys. */
import { type ChildProcess, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { CandidateName, ProcessorName } from './candidates.ts';
import type { ChildMessage, MeasuredRound } from './child.ts';

const CHILD_SCRIPT = fileURLToPath(new URL('./child.ts', import.meta.url));
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface CandidateProcess {
  readonly child: ChildProcess;
  /** Runs one round of jobs in the child. */
  round(): Promise<MeasuredRound>;
  /** Closes the child's queue and worker, lets it exit, and deletes its keys from Redis. */
  close(): Promise<void>;
}

export interface StartOptions {
  candidate: CandidateName;
  processor: ProcessorName;
  sinkUrl: string;
  jobs: number;
  phased?: boolean;
  /** Runs the child under this program (valgrind) with these arguments before Node's own. */
  wrapper?: { execPath: string; args: string[] };
  nodeArgs?: string[];
}

export async function startCandidate(options: StartOptions): Promise<CandidateProcess> {
  const prefix = `sextant-bench-${randomUUID().slice(0, 8)}`;
  const args = [
    options.candidate,
    options.processor,
    options.sinkUrl,
    String(options.jobs),
    prefix,
    ...(options.phased ? ['phased'] : []),
  ];
  const nodeArgs = ['--conditions=sextant-source', ...(options.nodeArgs ?? [])];
  const child = fork(CHILD_SCRIPT, args, {
    execPath: options.wrapper?.execPath ?? process.execPath,
    execArgv: options.wrapper ? [...options.wrapper.args, process.execPath, ...nodeArgs] : nodeArgs,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = once(child, 'exit').then(([code, signal]) => {
    throw new Error(`bullmq bench: the ${options.candidate} process exited (${code ?? signal}) mid-round`);
  });
  exited.catch(() => {});
  const next = async (): Promise<ChildMessage> => {
    const [message] = (await Promise.race([once(child, 'message'), exited])) as [ChildMessage];
    return message;
  };
  const ready = await next();
  if (ready.type !== 'ready') throw new Error(`bullmq bench: ${options.candidate} sent ${ready.type}`);
  return {
    child,
    async round() {
      child.send('round');
      const message = await next();
      if (message.type !== 'done') throw new Error(`bullmq bench: ${options.candidate} sent ${message.type}`);
      const { jobsPerSecond, cpuMicrosPerJob, spansPerJob } = message;
      return { jobsPerSecond, cpuMicrosPerJob, spansPerJob };
    },
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        if (child.connected) child.send('close');
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        const [code] = await exited;
        clearTimeout(timer);
        // A child killed by a signal was stopped by this side (instructions.ts, or the timeout above).
        if (code !== null && code !== 0) {
          await deleteKeys(prefix);
          throw new Error(`bullmq bench: the ${options.candidate} process exited with code ${code}`);
        }
      }
      await deleteKeys(prefix);
    },
  };
}

async function deleteKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}
