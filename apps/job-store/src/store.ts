import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createClient } from '@libsql/client';
import { PrismaLibSql } from '@prisma/adapter-libsql';
import { PrismaPg } from '@prisma/adapter-pg';
import type { BusinessUnit, Sextant } from '@sextant/core';
import { prismaHealthCheck, registerPgPoolMetrics, sextantPrisma } from '@sextant/prisma';
import pg from 'pg';
import type * as PostgresModule from '../generated/postgresql/client.ts';
import { clientEntry, ensureClients, type Provider } from './generate.ts';

export type JobStatus = 'queued' | 'running' | 'completed' | 'failed';

export const JOB_STATUSES: readonly JobStatus[] = Object.freeze(['queued', 'running', 'completed', 'failed']);

export interface JobStoreOptions {
  /**
   * A `postgres://` or `postgresql://` URL (a `schema` query parameter selects the schema, created
   * when missing), or `file:PATH` for SQLite. Default: `DATABASE_URL`, else {@link DEFAULT_SQLITE_FILE}.
   */
  databaseUrl?: string;
}

/** The embedded database used when `DATABASE_URL` is unset: one file that the API and the worker share. */
export const DEFAULT_SQLITE_FILE = fileURLToPath(new URL('../.data/sextant-demo.db', import.meta.url));

function extend(sextant: Sextant, client: PostgresModule.PrismaClient) {
  return client.$extends(sextantPrisma(sextant));
}

/**
 * The job store's Prisma client, extended with `sextantPrisma`. Both providers generate the same
 * model API, so one type serves both.
 */
export type JobStore = ReturnType<typeof extend>;

const MIGRATIONS_TABLE = '_sextant_migrations';
// Any constant works: it only serialises the processes migrating the same database.
const MIGRATION_LOCK_KEY = 74_657_001;

interface Migration {
  name: string;
  sql: string;
}

function migrationsOf(provider: Provider): Migration[] {
  const directory = fileURLToPath(new URL(`../prisma/${provider}/migrations/`, import.meta.url));
  return readdirSync(directory)
    .filter((name) => !name.includes('.'))
    .sort()
    .map((name) => ({ name, sql: readFileSync(join(directory, name, 'migration.sql'), 'utf8') }));
}

function providerOf(url: string): Provider {
  if (/^postgres(ql)?:\/\//.test(url)) return 'postgresql';
  if (url.startsWith('file:')) return 'sqlite';
  throw new Error(
    `DATABASE_URL must be a postgres:// or postgresql:// URL, or file:PATH for SQLite; got ${JSON.stringify(url.slice(0, 20))}...`,
  );
}

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Splits Prisma's `schema` parameter off the URL: node-postgres does not know it. */
function splitSchema(url: string): { connectionString: string; schema: string } {
  const parsed = new URL(url);
  const schema = parsed.searchParams.get('schema') ?? 'public';
  if (!SCHEMA_NAME.test(schema)) {
    throw new Error(`DATABASE_URL: schema must be a plain SQL identifier, got ${JSON.stringify(schema)}`);
  }
  parsed.searchParams.delete('schema');
  return { connectionString: parsed.toString(), schema };
}

/** Applies the committed migrations not applied yet; concurrent starts wait on an advisory lock. */
/** How long a new PostgreSQL connection may take before the attempt fails. */
const CONNECT_TIMEOUT_MS = 5_000;

async function migratePostgres(pool: pg.Pool, schema: string): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await client.query(`SET LOCAL search_path TO "${schema}"`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS "${MIGRATIONS_TABLE}" (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`,
    );
    const { rows } = await client.query<{ name: string }>(`SELECT name FROM "${MIGRATIONS_TABLE}"`);
    const applied = new Set(rows.map((row) => row.name));
    for (const migration of migrationsOf('postgresql')) {
      if (applied.has(migration.name)) continue;
      await client.query(migration.sql);
      await client.query(`INSERT INTO "${MIGRATIONS_TABLE}" (name) VALUES ($1)`, [migration.name]);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

const SQLITE_BUSY_RETRY_MS = 50;
const SQLITE_BUSY_WAIT_MS = 10_000;

/**
 * The same for SQLite, in one write transaction. SQLite serialises writers across processes, but
 * a second one starting meanwhile gets SQLITE_BUSY at once: it waits and tries again.
 */
async function migrateSqlite(url: string): Promise<void> {
  const deadline = Date.now() + SQLITE_BUSY_WAIT_MS;
  for (;;) {
    try {
      return await migrateSqliteOnce(url);
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw error;
      await sleep(SQLITE_BUSY_RETRY_MS);
    }
  }
}

const SQLITE_BUSY_TIMEOUT_MS = 5000;

async function migrateSqliteOnce(url: string): Promise<void> {
  const migrator = createClient({ url });
  try {
    // WAL lets the API read while the worker writes; the setting stays with the file.
    await migrator.execute('PRAGMA journal_mode = WAL');
    await migrator.execute(`PRAGMA busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    const tx = await migrator.transaction('write');
    try {
      await tx.execute(
        `CREATE TABLE IF NOT EXISTS "${MIGRATIONS_TABLE}" (name TEXT PRIMARY KEY, applied_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)`,
      );
      const { rows } = await tx.execute(`SELECT name FROM "${MIGRATIONS_TABLE}"`);
      const applied = new Set(rows.map((row) => String(row.name)));
      for (const migration of migrationsOf('sqlite')) {
        if (applied.has(migration.name)) continue;
        await tx.executeMultiple(migration.sql);
        await tx.execute({
          sql: `INSERT INTO "${MIGRATIONS_TABLE}" (name) VALUES (?)`,
          args: [migration.name],
        });
      }
      await tx.commit();
    } finally {
      tx.close();
    }
  } finally {
    migrator.close();
  }
}

async function loadClientClass(provider: Provider): Promise<typeof PostgresModule.PrismaClient> {
  await ensureClients();
  const module = (await import(clientEntry(provider).href)) as typeof PostgresModule;
  return module.PrismaClient;
}

/**
 * Opens the job store: PostgreSQL when `databaseUrl` (or `DATABASE_URL`) is set, else the embedded
 * SQLite file; applies the committed migrations; returns the Prisma client extended with
 * `sextantPrisma` (a span and `db_client_operation_duration_seconds` per operation). Registers the
 * `prisma` health check (critical), the pool gauges for PostgreSQL, and a shutdown hook that
 * disconnects once in-flight work has finished.
 */
/** The business unit whose operations the user-facing job calls are, by the store they use. */
const optimisationUnits = new WeakMap<object, BusinessUnit>();

export function optimisationUnitOf(store: JobStore): BusinessUnit | undefined {
  return optimisationUnits.get(store);
}

export async function createJobStore(sextant: Sextant, options: JobStoreOptions = {}): Promise<JobStore> {
  const url = options.databaseUrl || process.env.DATABASE_URL || `file:${DEFAULT_SQLITE_FILE}`;
  const provider = providerOf(url);
  const PrismaClient = await loadClientClass(provider);

  let base: PostgresModule.PrismaClient;
  let closePool: () => Promise<void> = async () => {};
  if (provider === 'postgresql') {
    const { connectionString, schema } = splitSchema(url);
    // A host that stops answering (no refusal) fails a connection attempt after 5 s rather than
    // the OS's TCP timeout (minutes), so the worker's outage handling and the health check see it.
    const pool = new pg.Pool({ connectionString, max: 10, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
    // An idle client's error (the server restarting) must not crash the process; the next query reconnects.
    // pg attaches the whole client to the error; the message and code are what an operator needs.
    pool.on('error', (error: Error & { code?: string }) =>
      sextant.logger.warn(
        { err: { type: error.name, message: error.message, code: error.code } },
        'database connection lost',
      ),
    );
    await migratePostgres(pool, schema);
    base = new PrismaClient({ adapter: new PrismaPg(pool, { schema }) });
    // The package's default name reads host and database from the pool's options, which a
    // connection-string pool does not fill in.
    const { host, pathname } = new URL(connectionString);
    registerPgPoolMetrics(sextant, pool, { poolName: `${host}${pathname}/${schema}`.slice(0, 128) });
    closePool = () => pool.end();
  } else {
    const file = url.slice('file:'.length);
    mkdirSync(dirname(file), { recursive: true });
    await migrateSqlite(url);
    base = new PrismaClient({ adapter: new PrismaLibSql({ url }) });
    // The API and the worker write the same file: wait for the other's lock instead of failing.
    await base.$queryRawUnsafe(`PRAGMA busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
  }

  const store = extend(sextant, base);
  optimisationUnits.set(store, sextant.business.unit('optimisation'));
  sextant.health.register(prismaHealthCheck(store));
  sextant.onShutdown(async () => {
    await store.$disconnect();
    await closePool();
  });
  return store;
}
