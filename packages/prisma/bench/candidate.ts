/**
 * The Prisma benchmark's candidates in a process of their own: `node candidate.ts '<json>'` (a
 * `CandidateSpec`), forked by prisma.bench.ts (timed, all candidates in one process, pinned to
 * one core) or instructions.ts (one candidate, under callgrind). It opens one Prisma client on the
 * bench's database, extends it once per candidate that needs it (an application's extended client
 * shares its base client's engine and pool the same way), says `ready`, then answers each `run`
 * message by running that many `findUnique` queries of the named candidate one after the other
 * (flushing their sampled spans to the sink) and reports the CPU time they
 * took. It exits when the parent disconnects.
 *
 * Every process creates the same Sextant instance (tracing to the sink, metrics, logs), used or
 * not. A run fails (the process exits) unless its queries ended exactly as many sampled spans as
 * the candidate should: all of `sampled`'s, a tenth of `one-in-ten`'s, none of the others'.
 */
import { type Context, context, ROOT_CONTEXT } from '@opentelemetry/api';
import { PrismaLibSql } from '@prisma/adapter-libsql';
import { PrismaPg } from '@prisma/adapter-pg';
import { createSextant } from '@sextant/core';
import pg from 'pg';
import { pinToCore } from '../../../tooling/bench/harness.ts';
import { sextantPrisma } from '../src/index.ts';
import { PrismaClient as PostgresClient } from '../test/generated/postgresql/client.ts';
import { PrismaClient as SqliteClient } from '../test/generated/sqlite/client.ts';
import { unsampledParent } from '../test/readback.ts';
import { createPrismaPeer } from './peer.ts';
import {
  BENCH_ROW_ID,
  type CandidateMessage,
  type CandidateName,
  type CandidateSpec,
  type ParentMessage,
  PEER_CANDIDATES,
  POSTGRES_APPLICATION_NAME,
  sinkPath,
} from './protocol.ts';

const spec = JSON.parse(process.argv[2] ?? '') as CandidateSpec;

function send(message: CandidateMessage): void {
  process.send!(message);
}

interface PassThroughParams {
  args: unknown;
  query: (args: unknown) => Promise<unknown>;
}

interface BenchClient {
  job: { findUnique(args: { where: { id: string } }): PromiseLike<unknown> };
  $extends(extension: unknown): unknown;
  $disconnect(): Promise<void>;
}

/** The pool's connections, all opened now; their PostgreSQL backends go to `core`. */
async function openPool(url: string, core: string | undefined): Promise<{ pool: pg.Pool; pinned: boolean }> {
  // No idle timeout: a backend that closed and reopened mid-run would not be pinned.
  const pool = new pg.Pool({
    connectionString: url,
    max: 4,
    idleTimeoutMillis: 0,
    application_name: POSTGRES_APPLICATION_NAME,
  });
  const clients = await Promise.all(Array.from({ length: 4 }, () => pool.connect()));
  const pids = await Promise.all(
    clients.map(
      async (client) => (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid,
    ),
  );
  for (const client of clients) client.release();
  return { pool, pinned: core === undefined ? false : pinToCore(pids, core) };
}

const sextant = createSextant({
  serviceName: 'prisma-bench',
  tracing: { endpoint: `${spec.sinkUrl}/${sinkPath(spec)}` },
  metrics: { defaultMetrics: false },
  logs: { level: 'warn' },
  env: {},
});
const isPeer = (name: CandidateName) => PEER_CANDIDATES.includes(name);
const peer = spec.candidates.some(isPeer)
  ? createPrismaPeer(`${spec.sinkUrl}/${sinkPath(spec)}-peer`)
  : undefined;

let bare: BenchClient;
let pool: pg.Pool | undefined;
let backendsPinned = false;
if (spec.database === 'postgresql') {
  ({ pool, pinned: backendsPinned } = await openPool(spec.url, spec.backendCore));
  bare = new PostgresClient({
    adapter: new PrismaPg(pool, { schema: spec.schema }),
  }) as unknown as BenchClient;
} else {
  bare = new SqliteClient({ adapter: new PrismaLibSql({ url: spec.url }) }) as unknown as BenchClient;
}

const args = { where: { id: BENCH_ROW_ID } };
function ignore(): void {}

interface Candidate {
  client: BenchClient;
  /** One query; the promise settles when its span (if any) has ended. */
  once(): PromiseLike<void>;
  /**
   * A run's queries, by the context they run in (each entered once around its share, as a
   * request's context would be), and how many of them end sampled spans.
   */
  plan(queries: number): { parts: Array<[Context, number]>; sampled: number };
  /** After a run: the sampled spans go to the sink, inside the measured window. */
  settle(): Promise<void>;
  /** Spans ended so far by the candidate's instrumentation (Sextant's or the peer's). */
  ended(): number;
  /** Before and after the candidate's queries: the peer's instrumentation is on only in between. */
  enter(): void;
  leave(): void;
}

/** Sampled parents: 1 query in 10 of the `one-in-ten` candidate. */
const ONE_IN = 10;

function candidateOf(name: CandidateName): Candidate {
  let client: BenchClient = bare;
  if (name === 'empty') {
    // Prisma's own cost of any query extension, whatever it does: the floor for every extension.
    client = bare.$extends({
      query: { $allOperations: ({ args, query }: PassThroughParams) => query(args) },
    }) as BenchClient;
  } else if (name !== 'bare' && !isPeer(name)) {
    // Under callgrind a query can take longer than the default 500 ms: the slow-query log stays off there.
    const options = {
      ...(spec.slowQueryLog === false ? { slowQueryMs: false as const } : {}),
      ...(name === 'no-spans' ? { spans: false } : {}),
    };
    client = bare.$extends(sextantPrisma(sextant, options)) as BenchClient;
  }
  return {
    client,
    // Prisma queries are lazy thenables: `then` runs them.
    once: () => client.job.findUnique(args).then(ignore),
    plan: (queries) => planOf(name, queries),
    settle: isPeer(name)
      ? () => peer!.forceFlush()
      : name === 'sampled' || name === 'one-in-ten'
        ? () => sextant.tracing.forceFlush()
        : async () => {},
    ended: isPeer(name) ? () => peer!.ended() : () => sextant.tracing.stats().ended,
    enter: isPeer(name) ? () => peer!.enable() : () => {},
    leave: isPeer(name) ? () => peer!.disable() : () => {},
  };
}

/**
 * Unsampled: the queries run under a remote parent that was not sampled; one-in-ten: a tenth in
 * the root context (sampled, as the `sampled` candidate's), the rest as `unsampled`'s; the others
 * in the root context, where no-spans would start a sampled span if it started any.
 */
function planOf(name: CandidateName, queries: number): { parts: Array<[Context, number]>; sampled: number } {
  switch (name) {
    case 'unsampled':
      return { parts: [[unsampledParent(), queries]], sampled: 0 };
    case 'one-in-ten':
    case 'peer-one-in-ten': {
      const sampled = Math.round(queries / ONE_IN);
      return {
        parts: [
          [ROOT_CONTEXT, sampled],
          [unsampledParent(), queries - sampled],
        ],
        sampled,
      };
    }
    case 'sampled':
    case 'peer':
      return { parts: [[ROOT_CONTEXT, queries]], sampled: queries };
    default:
      return { parts: [[ROOT_CONTEXT, queries]], sampled: 0 };
  }
}

const candidates = new Map(spec.candidates.map((name) => [name, candidateOf(name)]));
for (const [name, candidate] of candidates) {
  candidate.enter();
  // `then` inside the context: a Prisma query runs when `then` is called, in the context of that call.
  const found = await context.with(candidate.plan(1).parts.at(-1)![0], () =>
    candidate.client.job.findUnique(args).then((row) => row),
  );
  candidate.leave();
  if ((found as { id?: string } | null)?.id !== BENCH_ROW_ID)
    throw new Error(`prisma bench: ${name} on ${spec.database} did not find row ${BENCH_ROW_ID}`);
}

const pause = () => new Promise<void>((resolve) => setImmediate(resolve));

async function runQueries(candidate: Candidate, queries: number, yieldEvery: number): Promise<void> {
  for (let i = 0; i < queries; i++) {
    await candidate.once();
    // Background work the queries cause (span export on timers) only runs when the loop yields;
    // yielding inside the window counts it.
    if (i % yieldEvery === yieldEvery - 1) await pause();
  }
}

function cpuMicros(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

/** This thread's CPU time: the event loop's, without V8's compiler and garbage collector threads. */
function threadCpuMicros(): number {
  const usage = process.threadCpuUsage();
  return usage.user + usage.system;
}

async function measure(name: CandidateName, queries: number, yieldEvery: number) {
  const candidate = candidates.get(name);
  if (candidate === undefined) throw new Error(`prisma bench: this process has no candidate ${name}`);
  const spansBefore = candidate.ended();
  const sextantSpansBefore = sextant.tracing.stats().ended;
  candidate.enter();
  const cpuBefore = cpuMicros();
  const threadBefore = threadCpuMicros();
  const { parts, sampled } = candidate.plan(queries);
  for (const [parent, count] of parts) {
    await context.with(parent, runQueries, undefined, candidate, count, yieldEvery);
  }
  await candidate.settle();
  const threadCpu = threadCpuMicros() - threadBefore;
  const cpu = cpuMicros() - cpuBefore;
  candidate.leave();
  const spans = candidate.ended() - spansBefore;
  // Sextant's candidates end one span per sampled query; Prisma's instrumentation several, none unsampled.
  const expected = isPeer(name) ? sampled > 0 && spans >= sampled : spans === sampled;
  if (!expected || (sampled === 0 && spans > 0))
    throw new Error(
      `prisma bench: ${queries} queries of ${name} on ${spec.database} (${sampled} sampled) ended ${spans} spans`,
    );
  if (isPeer(name) && sextant.tracing.stats().ended !== sextantSpansBefore)
    throw new Error(`prisma bench: the peer's queries on ${spec.database} ended spans of Sextant's`);
  return {
    cpuMicros: cpu,
    threadCpuMicros: threadCpu,
    spansPerSampledQuery: sampled === 0 ? 0 : spans / sampled,
    spanNames: isPeer(name) ? peer!.spanNames() : [],
  };
}

process.on('message', (message: ParentMessage) => {
  if (message.type === 'gc') {
    if (typeof globalThis.gc !== 'function') throw new Error('prisma bench: gc needs node --expose-gc');
    globalThis.gc();
    send({ type: 'collected' });
    return;
  }
  measure(message.candidate, message.queries, message.yieldEvery).then(
    (result) => send({ type: 'ran', ...result }),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
});
process.on('disconnect', () => {
  void (async () => {
    await sextant.shutdown();
    await peer?.shutdown();
    // A span the peer's batch processor dropped would be work it did not pay for.
    if (peer !== undefined && peer.exported() !== peer.ended()) {
      console.error(`prisma bench: the peer ended ${peer.ended()} spans and exported ${peer.exported()}`);
      process.exit(1);
    }
    await bare.$disconnect();
    await pool?.end();
    process.exit(0);
  })();
});
send({ type: 'ready', backendsPinned });
