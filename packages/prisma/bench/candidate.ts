/**
 * One candidate of the Prisma benchmark, alone in its own process: `node candidate.ts '<json>'`
 * (a `CandidateSpec`), forked by prisma.bench.ts (timed, pinned to one core) or instructions.ts
 * (under callgrind). It opens its own Prisma client on the bench's database, says `ready`, then
 * answers each `run` message by running that many `findUnique` queries one after the other (and,
 * for the sampled candidate, flushing their spans to the sink), and reports the CPU time they took.
 * It exits when the parent disconnects.
 *
 * Every candidate loads the same modules and creates the same Sextant instance (tracing to the
 * sink, metrics, logs), used or not, so that the processes differ only in the client they query.
 */
import { context } from '@opentelemetry/api';
import { PrismaLibSql } from '@prisma/adapter-libsql';
import { PrismaPg } from '@prisma/adapter-pg';
import { createSextant } from '@sextant/core';
import pg from 'pg';
import { pinToCore } from '../../../tooling/bench/harness.ts';
import { sextantPrisma } from '../src/index.ts';
import { PrismaClient as PostgresClient } from '../test/generated/postgresql/client.ts';
import { PrismaClient as SqliteClient } from '../test/generated/sqlite/client.ts';
import { unsampledParent } from '../test/readback.ts';
import {
  BENCH_ROW_ID,
  type CandidateMessage,
  type CandidateSpec,
  type ParentMessage,
  POSTGRES_APPLICATION_NAME,
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
  tracing: { endpoint: `${spec.sinkUrl}/${spec.database}-${spec.candidate}` },
  metrics: { defaultMetrics: false },
  logs: { level: 'warn' },
  env: {},
});

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
let client: BenchClient = bare;
if (spec.candidate === 'empty') {
  // Prisma's own cost of any query extension, whatever it does: the floor for every extension.
  client = bare.$extends({
    query: { $allOperations: ({ args, query }: PassThroughParams) => query(args) },
  }) as BenchClient;
} else if (spec.candidate === 'sampled' || spec.candidate === 'unsampled') {
  // Under callgrind a query can take longer than the default 500 ms: the slow-query log stays off there.
  const options = spec.slowQueryLog === false ? { slowQueryMs: false as const } : undefined;
  client = bare.$extends(sextantPrisma(sextant, options)) as BenchClient;
}
// Prisma queries are lazy thenables: `then` runs them.
const once = () => client.job.findUnique(args).then(ignore);
const settle = spec.candidate === 'sampled' ? () => sextant.tracing.forceFlush() : async () => {};

// Unsampled: the queries run under a remote parent that was not sampled, entered once, as a
// request's context would be; the others run in the root context.
const queryContext = spec.candidate === 'unsampled' ? unsampledParent() : context.active();
// `then` inside the context: a Prisma query runs when `then` is called, in the context of that call.
const found = await context.with(queryContext, () => client.job.findUnique(args).then((row) => row));
if ((found as { id?: string } | null)?.id !== BENCH_ROW_ID)
  throw new Error(`prisma bench: ${spec.candidate} on ${spec.database} did not find row ${BENCH_ROW_ID}`);

const pause = () => new Promise<void>((resolve) => setImmediate(resolve));

async function runQueries(queries: number, yieldEvery: number): Promise<void> {
  for (let i = 0; i < queries; i++) {
    await once();
    // Background work the queries cause (span export on timers) only runs when the loop yields;
    // yielding inside the window counts it.
    if (i % yieldEvery === yieldEvery - 1) await pause();
  }
  // The spans still queued are exported inside the window, counted.
  await settle();
}

function cpuMicros(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

async function measure(queries: number, yieldEvery: number) {
  const cpuBefore = cpuMicros();
  const wallBefore = process.hrtime.bigint();
  await context.with(queryContext, runQueries, undefined, queries, yieldEvery);
  const cpu = cpuMicros() - cpuBefore;
  const wall = Number(process.hrtime.bigint() - wallBefore) / 1000;
  return { cpuMicros: cpu, wallMicros: wall };
}

process.on('message', (message: ParentMessage) => {
  if (message.type === 'gc') {
    if (typeof globalThis.gc !== 'function') throw new Error('prisma bench: gc needs node --expose-gc');
    globalThis.gc();
    send({ type: 'collected' });
    return;
  }
  measure(message.queries, message.yieldEvery).then(
    (result) => send({ type: 'ran', queries: message.queries, ...result }),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
});
process.on('disconnect', () => {
  void (async () => {
    await sextant.shutdown();
    await bare.$disconnect();
    await pool?.end();
    process.exit(0);
  })();
});
send({ type: 'ready', backendsPinned });
