/**
 * @sextant/prisma on Prisma 6 (6.19, the Rust-free `engineType = "client"` with driver adapters),
 * the previous major its peer range covers, on PostgreSQL and SQLite: the behaviours users rely
 * on, checked against a real database. The full suite runs on Prisma 7 in packages/prisma.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import { context, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { PrismaLibSQL } from '@prisma/adapter-libsql';
import { PrismaPg } from '@prisma/adapter-pg';
import { createSextant, type Sextant } from '@sextant/core';
import { prismaHealthCheck, sextantPrisma } from '@sextant/prisma';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { dbSpans, metricLines, migrations, unsampledParent } from '../../../packages/prisma/test/readback.ts';
import { collectLines } from '../../testing/log-collector.ts';
import { PrismaClient as PostgresClient, Prisma as PostgresPrisma } from './generated/postgresql/client.ts';
import { PrismaClient as SqliteClient, Prisma as SqlitePrisma } from './generated/sqlite/client.ts';

const POSTGRES_URL = process.env.SEXTANT_TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';

interface Database {
  readonly prisma: PostgresClient;
  close(): Promise<void>;
}

async function openPostgres(): Promise<Database> {
  const schema = `sextant_prisma6_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`SET search_path TO "${schema}"`);
  for (const sql of migrations('postgresql')) await admin.query(sql);
  const prisma = new PostgresClient({
    adapter: new PrismaPg({ connectionString: POSTGRES_URL }, { schema }),
  });
  return {
    prisma,
    async close() {
      await prisma.$disconnect();
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    },
  };
}

async function openSqlite(): Promise<Database> {
  const file = join(tmpdir(), `sextant-prisma6-${randomBytes(6).toString('hex')}.db`);
  const url = `file:${file}`;
  const migrator = createClient({ url });
  for (const sql of migrations('sqlite')) await migrator.executeMultiple(sql);
  migrator.close();
  const prisma = new SqliteClient({ adapter: new PrismaLibSQL({ url }) });
  return {
    prisma: prisma as unknown as PostgresClient,
    async close() {
      await prisma.$disconnect();
      for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${file}${suffix}`, { force: true });
    },
  };
}

const databases = [
  { system: 'postgresql', open: openPostgres, KnownError: PostgresPrisma.PrismaClientKnownRequestError },
  { system: 'sqlite', open: openSqlite, KnownError: SqlitePrisma.PrismaClientKnownRequestError },
] as const;

it('runs the generated clients of Prisma 6, not 7', () => {
  expect(PostgresPrisma.prismaVersion.client).toMatch(/^6\./);
  expect(SqlitePrisma.prismaVersion.client).toMatch(/^6\./);
});

describe.each(databases)('Prisma 6 on $system', ({ system, open, KnownError }) => {
  const logs = collectLines();
  let sextant: Sextant;
  let db: Database;

  beforeAll(async () => {
    sextant = createSextant({
      serviceName: 'prisma6-check',
      env: {},
      tracing: { exporter: 'memory' },
      logs: { destination: logs },
      metrics: { defaultMetrics: false },
    });
    db = await open();
  });
  afterAll(async () => {
    await db?.close();
    await sextant?.shutdown();
  });
  beforeEach(() => sextant.tracing.resetFinishedSpans());

  const extend = (options?: Parameters<typeof sextantPrisma>[1]) =>
    db.prisma.$extends(sextantPrisma(sextant, options));

  it('gives each operation a CLIENT span, child of the active span, with the DB semantic conventions', async () => {
    const prisma = extend();
    await prisma.job.create({ data: { id: 'p6-1', status: 'queued' } });
    const parent = await sextant.tracer.startActiveSpan('process job', async (span) => {
      try {
        expect((await prisma.job.findUnique({ where: { id: 'p6-1' } }))?.status).toBe('queued');
        return span.spanContext();
      } finally {
        span.end();
      }
    });
    const spans = dbSpans(sextant);
    expect(spans.map((span) => span.name)).toEqual(['create Job', 'findUnique Job']);
    expect(spans[1]!.kind).toBe(SpanKind.CLIENT);
    expect(spans[1]!.attributes).toEqual({
      'db.system.name': system,
      'db.operation.name': 'findUnique',
      'db.collection.name': 'Job',
    });
    expect(spans[1]!.parentSpanContext?.spanId).toBe(parent.spanId);
    expect(await metricLines(sextant, 'db_client_operation_duration_seconds_count')).toContain(
      `db_client_operation_duration_seconds_count{db_system_name="${system}",db_operation_name="findUnique",db_collection_name="Job",error_type=""} 1`,
    );
  });

  it('starts no span under an unsampled parent, but still records the duration', async () => {
    const prisma = extend();
    const unsampled = unsampledParent();
    await context.with(unsampled, async () => await prisma.job.count());
    expect(dbSpans(sextant)).toEqual([]);
    expect(await metricLines(sextant, 'db_client_operation_duration_seconds_count')).toContain(
      `db_client_operation_duration_seconds_count{db_system_name="${system}",db_operation_name="count",db_collection_name="Job",error_type=""} 1`,
    );
  });

  it('marks a unique violation with its Prisma code and rethrows it unchanged', async () => {
    const prisma = extend();
    await prisma.account.create({ data: { email: 'dup@example.com', name: 'first' } });
    const error = await prisma.account
      .create({ data: { email: 'dup@example.com', name: 'second' } })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(KnownError);
    expect((error as { code: string }).code).toBe('P2002');
    const failed = dbSpans(sextant).find((span) => span.status.code === SpanStatusCode.ERROR)!;
    expect(failed.name).toBe('create Account');
    expect(failed.attributes['error.type']).toBe('P2002');
    expect(JSON.stringify(failed.events)).not.toContain('second');
  });

  it('logs a slow operation with the span ids and no arguments, and reports the database up', async () => {
    const prisma = extend({ slowQueryMs: 0 });
    await prisma.account.findFirst({ where: { email: 'ada@example.com' } });
    const span = dbSpans(sextant).at(-1)!;
    const record = logs.records().find((line) => line.msg === 'slow database operation');
    expect(record).toMatchObject({
      level: 'warn',
      span_id: span.spanContext().spanId,
      db_operation_name: 'findFirst',
      db_collection_name: 'Account',
    });
    expect(JSON.stringify(record)).not.toContain('ada@example.com');

    const unregister = sextant.health.register(prismaHealthCheck(prisma));
    try {
      const { statusCode, body } = await sextant.health.readiness();
      expect(statusCode).toBe(200);
      expect(body.checks?.find((check) => check.name === 'prisma')).toMatchObject({ status: 'up' });
    } finally {
      unregister();
    }
  });
});
