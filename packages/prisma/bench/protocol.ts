/**
 * What the Prisma benchmark's parent processes (prisma.bench.ts, instructions.ts) and each
 * candidate's process (candidate.ts) share: the candidates, the databases, the messages, and the
 * forking of a candidate and the setup of the databases it queries.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CANDIDATES = [
  'bare',
  'empty',
  'sampled',
  'unsampled',
  'one-in-ten',
  'no-spans',
  'peer',
  'peer-one-in-ten',
] as const;
export type CandidateName = (typeof CANDIDATES)[number];

export const CANDIDATE_LABELS: Record<CandidateName, string> = {
  bare: 'bare Prisma client',
  empty: 'with an empty query extension',
  sampled: 'with @sextant/prisma (sampled, exported)',
  unsampled: 'with @sextant/prisma (unsampled parent)',
  'one-in-ten': 'with @sextant/prisma, 1 query in 10 sampled (the rest under an unsampled parent)',
  'no-spans': 'with @sextant/prisma, `spans: false`',
  peer: "with Prisma's `@prisma/instrumentation` on the OpenTelemetry SDK (sampled, exported)",
  'peer-one-in-ten': "with Prisma's `@prisma/instrumentation`, 1 query in 10 sampled",
};

/** The peer's candidates: Prisma's own instrumentation instead of @sextant/prisma (peer.ts). */
export const PEER_CANDIDATES: readonly CandidateName[] = ['peer', 'peer-one-in-ten'];

export const DATABASES = ['postgresql', 'sqlite'] as const;
export type DatabaseName = (typeof DATABASES)[number];

export const DATABASE_LABELS: Record<DatabaseName, string> = {
  postgresql: 'PostgreSQL (adapter-pg), findUnique by id',
  sqlite: 'SQLite (adapter-libsql), findUnique by id',
};

/** The row every candidate reads. */
export const BENCH_ROW_ID = 'bench-1';
/** How the candidates' PostgreSQL connections are named (`pg_stat_activity.application_name`). */
export const POSTGRES_APPLICATION_NAME = 'sextant-prisma-bench';

export const BENCH_CORE = '1';
export const SERVER_CORE = '0';

export type CandidateSpec = {
  /** The candidates this process runs, each with its own client. */
  candidates: readonly CandidateName[];
  /** OTLP base URL; the process posts to `<sinkUrl>/<sinkPath(spec)>/v1/traces`. */
  sinkUrl: string;
  /** Where the candidate pins its PostgreSQL backends; not pinned when undefined. */
  backendCore?: string;
  /** False turns @sextant/prisma's slow-query log off (`slowQueryMs: false`); the threshold is still compared. */
  slowQueryLog?: boolean;
} & ({ database: 'postgresql'; url: string; schema: string } | { database: 'sqlite'; url: string });

export type ParentMessage =
  | { type: 'run'; candidate: CandidateName; queries: number; yieldEvery: number }
  | { type: 'gc' };

export type CandidateMessage =
  | { type: 'ready'; backendsPinned: boolean }
  | {
      type: 'ran';
      cpuMicros: number;
      threadCpuMicros: number;
      /** Spans ended per sampled query (0 when none was sampled), by Sextant or the peer. */
      spansPerSampledQuery: number;
      /** The peer's span names, in the order first seen; empty for Sextant's candidates. */
      spanNames: string[];
    }
  | { type: 'collected' };

/** Where a candidate process sends its spans on the sink: its database and candidates. */
export function sinkPath(spec: Pick<CandidateSpec, 'database' | 'candidates'>): string {
  return `${spec.database}-${spec.candidates.join('+')}`;
}

const CANDIDATE_SCRIPT = fileURLToPath(new URL('./candidate.ts', import.meta.url));
const running = new Set<ChildProcess>();

/** Kills every candidate still running (when the bench is interrupted). */
export function killCandidates(): void {
  for (const child of running) child.kill('SIGKILL');
}

export interface CandidateProcess {
  child: ChildProcess;
  backendsPinned: boolean;
  /** Runs `queries` queries of `candidate` (and the flush of its sampled spans); the CPU time they took. */
  run(
    candidate: CandidateName,
    queries: number,
    yieldEvery?: number,
  ): Promise<Extract<CandidateMessage, { type: 'ran' }>>;
  /** A full garbage collection (the candidate must run with --expose-gc). */
  collectGarbage(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Forks a candidate through `launcher` (e.g. `taskset -c 1`, or valgrind): `launcher[0]` is run with
 * the rest of it, then Node and its flags. Resolves once the candidate has connected and read the row.
 */
export async function startCandidate(
  spec: CandidateSpec,
  launcher: readonly string[],
  nodeFlags: readonly string[] = [],
): Promise<CandidateProcess> {
  const [command, ...launcherArgs] = launcher;
  const child = fork(CANDIDATE_SCRIPT, [JSON.stringify(spec)], {
    execPath: command ?? process.execPath,
    execArgv: [
      ...(command === undefined ? [] : [...launcherArgs, process.execPath]),
      '--conditions=sextant-source',
      ...nodeFlags,
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(
      `prisma bench: candidates ${spec.candidates.join(', ')} on ${spec.database} exited with code ${code}`,
    );
  });
  // Only the races below read it.
  exited.catch(() => {});
  const next = async () => {
    const [message] = (await Promise.race([once(child, 'message'), exited])) as [CandidateMessage];
    return message;
  };
  const ready = await next();
  if (ready.type !== 'ready') throw new Error(`prisma bench: candidate sent ${ready.type} before ready`);
  return {
    child,
    backendsPinned: ready.backendsPinned,
    async run(candidate, queries, yieldEvery = 100) {
      const answer = next();
      child.send({ type: 'run', candidate, queries, yieldEvery } satisfies ParentMessage);
      const message = await answer;
      if (message.type !== 'ran') throw new Error(`prisma bench: candidate sent ${message.type}`);
      return message;
    },
    async collectGarbage() {
      const answer = next();
      child.send({ type: 'gc' } satisfies ParentMessage);
      const message = await answer;
      if (message.type !== 'collected') throw new Error(`prisma bench: candidate sent ${message.type}`);
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = once(child, 'exit');
      child.disconnect();
      await gone;
    },
  };
}

export interface BenchDatabases {
  postgresql: { url: string; schema: string };
  sqlite: { url: string };
  close(): Promise<void>;
}

/**
 * The databases the candidates query, each migrated and holding the one row: a fresh PostgreSQL
 * schema in the test database and a SQLite file in the temp directory. Generates the clients first.
 */
export async function openBenchDatabases(): Promise<BenchDatabases> {
  const { generateClients } = await import('../test/generate.ts');
  await generateClients();
  const { openPostgres, POSTGRES_URL } = await import('../test/helpers.ts');
  const { createClient } = await import('@libsql/client');
  const { PrismaLibSql } = await import('@prisma/adapter-libsql');
  const { PrismaClient: SqliteClient } = await import('../test/generated/sqlite/client.ts');
  const { migrations } = await import('../test/readback.ts');

  const postgres = await openPostgres();
  await postgres.prisma.job.create({ data: { id: BENCH_ROW_ID, status: 'queued', result: { n: 1 } } });
  await postgres.prisma.$disconnect();

  const file = join(tmpdir(), `sextant-prisma-bench-${randomBytes(6).toString('hex')}.db`);
  const sqliteUrl = `file:${file}`;
  const migrator = createClient({ url: sqliteUrl });
  for (const sql of migrations('sqlite')) await migrator.executeMultiple(sql);
  migrator.close();
  const sqlite = new SqliteClient({ adapter: new PrismaLibSql({ url: sqliteUrl }) });
  await sqlite.job.create({ data: { id: BENCH_ROW_ID, status: 'queued', result: { n: 1 } } });
  await sqlite.$disconnect();

  let closed: Promise<void> | undefined;
  return {
    postgresql: { url: POSTGRES_URL, schema: postgres.schema },
    sqlite: { url: sqliteUrl },
    // Once, whether the run ends or is interrupted (both may ask).
    close() {
      closed ??= (async () => {
        for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${file}${suffix}`, { force: true });
        await postgres.close();
      })();
      return closed;
    },
  };
}

/** The spec of a process running `candidates` on `database`. */
export function specFor(
  databases: BenchDatabases,
  database: DatabaseName,
  candidates: readonly CandidateName[],
  sinkUrl: string,
  backendCore?: string,
): CandidateSpec {
  return database === 'postgresql'
    ? { database, candidates, sinkUrl, backendCore, ...databases.postgresql }
    : { database, candidates, sinkUrl, ...databases.sqlite };
}
