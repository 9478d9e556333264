import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import { PrismaLibSql } from '@prisma/adapter-libsql';
import { PrismaPg } from '@prisma/adapter-pg';
import { createSextant, type Sextant, type SextantOptions } from '@sextant/core';
import pg from 'pg';
import { collectLines } from '../../../tooling/testing/log-collector.ts';
import { PrismaClient as PostgresClient } from './generated/postgresql/client.ts';
import { PrismaClient as SqliteClient } from './generated/sqlite/client.ts';
import { migrations } from './readback.ts';

export const POSTGRES_URL =
  process.env.SEXTANT_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';

export interface PostgresDatabase {
  readonly prisma: PostgresClient;
  readonly pool: pg.Pool;
  readonly schema: string;
  close(): Promise<void>;
}

/** A fresh schema in the test database, migrated; `close` drops it. */
export async function openPostgres(): Promise<PostgresDatabase> {
  const schema = `sextant_prisma_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE SCHEMA "${schema}"`);
    await admin.query(`SET search_path TO "${schema}"`);
    for (const sql of migrations('postgresql')) await admin.query(sql);
  } finally {
    await admin.end();
  }
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 4 });
  const prisma = new PostgresClient({ adapter: new PrismaPg(pool, { schema }) });
  return {
    prisma,
    pool,
    schema,
    async close() {
      await prisma.$disconnect();
      await pool.end();
      const dropper = new pg.Client({ connectionString: POSTGRES_URL });
      await dropper.connect();
      await dropper.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await dropper.end();
    },
  };
}

export interface SqliteDatabase {
  readonly prisma: SqliteClient;
  close(): Promise<void>;
}

/** A migrated SQLite file in the temp directory; `close` removes it. */
export async function openSqlite(): Promise<SqliteDatabase> {
  const file = join(tmpdir(), `sextant-prisma-${randomBytes(6).toString('hex')}.db`);
  const url = `file:${file}`;
  const migrator = createClient({ url });
  for (const sql of migrations('sqlite')) await migrator.executeMultiple(sql);
  migrator.close();
  const prisma = new SqliteClient({ adapter: new PrismaLibSql({ url }) });
  return {
    prisma,
    async close() {
      await prisma.$disconnect();
      for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${file}${suffix}`, { force: true });
    },
  };
}

export { collectLines };

export function testSextant(options: SextantOptions = {}): {
  sextant: Sextant;
  logs: ReturnType<typeof collectLines>;
} {
  const logs = collectLines();
  const sextant = createSextant({
    serviceName: 'prisma-adapter-test',
    env: {},
    ...options,
    tracing: { exporter: 'memory', ...options.tracing },
    logs: { destination: logs, ...options.logs },
    metrics: { defaultMetrics: false, ...options.metrics },
  });
  return { sextant, logs };
}
