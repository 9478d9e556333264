import { createServer } from 'node:net';
import { context, SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';
import { PrismaPg } from '@prisma/adapter-pg';
import { type Sextant, traced } from '@sextant/core';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { promtoolCheck } from '../../../tooling/testing/promtool.ts';
import { prismaHealthCheck, registerPgPoolMetrics, sextantPrisma } from '../src/index.ts';
import { PrismaClient as PostgresClient, Prisma as PostgresPrisma } from './generated/postgresql/client.ts';
import { Prisma as SqlitePrisma } from './generated/sqlite/client.ts';
import { type collectLines, openPostgres, openSqlite, POSTGRES_URL, testSextant } from './helpers.ts';
import { dbSpans, metricLines, unsampledParent } from './readback.ts';

type Database = Awaited<ReturnType<typeof openPostgres>> | Awaited<ReturnType<typeof openSqlite>>;

const SECRET_EMAIL = 'ada.lovelace@example.com';
const SECRET_TOKEN = 'tok-8c1f77d2e4a9';

const databases = [
  { system: 'postgresql', open: openPostgres, KnownError: PostgresPrisma.PrismaClientKnownRequestError },
  { system: 'sqlite', open: openSqlite, KnownError: SqlitePrisma.PrismaClientKnownRequestError },
] as const;

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe.each(databases)('on $system', ({ system, open, KnownError }) => {
  let sextant: Sextant;
  let logs: ReturnType<typeof collectLines>;
  let db: Database;

  beforeAll(async () => {
    ({ sextant, logs } = testSextant());
    db = await open();
  });
  afterAll(async () => {
    await db?.close();
    await sextant?.shutdown();
  });
  beforeEach(() => {
    sextant.tracing.resetFinishedSpans();
  });

  function extend(options?: Parameters<typeof sextantPrisma>[1]) {
    return (db.prisma as PostgresClient).$extends(sextantPrisma(sextant, options));
  }

  it('gives each operation a CLIENT span, child of the active span, with the DB semantic conventions', async () => {
    const prisma = extend();
    await prisma.job.create({ data: { id: 'span-1', status: 'queued' } });
    const found = await sextant.tracer.startActiveSpan('process job', async (parent) => {
      try {
        return {
          job: await prisma.job.findUnique({ where: { id: 'span-1' } }),
          parent: parent.spanContext(),
        };
      } finally {
        parent.end();
      }
    });
    expect(found.job?.status).toBe('queued');

    const spans = dbSpans(sextant);
    expect(spans.map((span) => span.name)).toEqual(['create Job', 'findUnique Job']);
    const findUnique = spans[1]!;
    expect(findUnique.kind).toBe(SpanKind.CLIENT);
    expect(findUnique.attributes).toEqual({
      'db.system.name': system,
      'db.operation.name': 'findUnique',
      'db.collection.name': 'Job',
    });
    expect(findUnique.status.code).toBe(SpanStatusCode.UNSET);
    expect(findUnique.spanContext().traceId).toBe(found.parent.traceId);
    expect(findUnique.parentSpanContext?.spanId).toBe(found.parent.spanId);
    expect(findUnique.instrumentationScope.name).toBe('@sextant/core');
  });

  it('starts no span under an unsampled parent, but still records the duration', async () => {
    const prisma = extend();
    const before = await metricLines(sextant, 'db_client_operation_duration_seconds_count');
    const unsampled = unsampledParent();
    // Prisma queries are lazy: they run when awaited, so the await belongs inside the context.
    await context.with(unsampled, async () => await prisma.job.count());
    await context.with(unsampled, async () => await prisma.job.findFirst({ where: { status: 'none' } }));
    expect(dbSpans(sextant)).toEqual([]);
    const after = await metricLines(sextant, 'db_client_operation_duration_seconds_count');
    const series = `db_client_operation_duration_seconds_count{db_system_name="${system}",db_operation_name="count",db_collection_name="Job",error_type=""}`;
    expect(before.find((line) => line.startsWith(series))).toBeUndefined();
    expect(after).toContain(`${series} 1`);
  });

  it('treats an invalid unsampled parent as no parent: the operation gets a root span', async () => {
    const prisma = extend();
    const invalid = trace.setSpanContext(context.active(), {
      traceId: '00000000000000000000000000000000',
      spanId: '0000000000000000',
      traceFlags: TraceFlags.NONE,
    });
    await context.with(unsampledParent(), async () => await prisma.job.count());
    await context.with(invalid, async () => await prisma.job.count());
    const [count] = dbSpans(sextant);
    expect(dbSpans(sextant)).toHaveLength(1);
    expect(count?.parentSpanContext).toBeUndefined();
    expect(count?.spanContext().traceFlags).toBe(TraceFlags.SAMPLED);
  });

  it('records the duration metric by system, operation and model, in promtool-valid output', async () => {
    const prisma = extend();
    await prisma.job.findMany({ where: { status: 'queued' } });
    await prisma.job.findMany({ where: { status: 'done' } });
    const lines = await metricLines(sextant, 'db_client_operation_duration_seconds_count');
    expect(lines).toContain(
      `db_client_operation_duration_seconds_count{db_system_name="${system}",db_operation_name="findMany",db_collection_name="Job",error_type=""} 2`,
    );
    const { body } = await sextant.metrics.render();
    expect(promtoolCheck(body)).toEqual({ status: 0, problems: '' });
  });

  it('uses the buckets the README documents for the duration', async () => {
    const prisma = extend();
    await prisma.job.count({ where: { status: 'buckets' } });
    const series = `db_system_name="${system}",db_operation_name="count",db_collection_name="Job",error_type=""`;
    const bounds = (await metricLines(sextant, 'db_client_operation_duration_seconds_bucket'))
      .filter((line) => line.includes(series))
      .map((line) => /le="([^"]+)"/.exec(line)?.[1]);
    expect(bounds).toEqual(['0.001', '0.005', '0.01', '0.05', '0.1', '0.5', '1', '5', '10', '+Inf']);
  });

  it('uses dbSystemName, when given, instead of the provider', async () => {
    const prisma = extend({ dbSystemName: 'cockroachdb' });
    await prisma.job.findFirst({ where: { status: 'override' } });
    const [span] = dbSpans(sextant);
    expect(span?.attributes['db.system.name']).toBe('cockroachdb');
    expect(
      await metricLines(sextant, 'db_client_operation_duration_seconds_count{db_system_name="cockroachdb"'),
    ).toEqual([
      'db_client_operation_duration_seconds_count{db_system_name="cockroachdb",db_operation_name="findFirst",db_collection_name="Job",error_type=""} 1',
    ]);
  });

  it('marks a unique violation with its Prisma code on the span and the metric, and rethrows it unchanged', async () => {
    const prisma = extend();
    const bare = db.prisma as PostgresClient;
    await prisma.account.create({ data: { email: 'dup@example.com', name: 'first' } });
    const extendedError = await prisma.account
      .create({ data: { email: 'dup@example.com', name: 'second' } })
      .catch((error: unknown) => error);
    const bareError = await bare.account
      .create({ data: { email: 'dup@example.com', name: 'second' } })
      .catch((error: unknown) => error);

    expect(extendedError).toBeInstanceOf(KnownError);
    expect((extendedError as { code: string }).code).toBe('P2002');
    expect((extendedError as { meta: unknown }).meta).toEqual((bareError as { meta: unknown }).meta);

    const failed = dbSpans(sextant).find((span) => span.status.code === SpanStatusCode.ERROR)!;
    expect(failed.name).toBe('create Account');
    expect(failed.attributes['error.type']).toBe('P2002');
    // The database's own code: SQLSTATE unique_violation, SQLITE_CONSTRAINT_UNIQUE.
    expect(failed.attributes['db.response.status_code']).toBe(system === 'postgresql' ? '23505' : '2067');
    expect(failed.status.message).toBe('P2002');
    const exception = failed.events.find((event) => event.name === 'exception')!;
    expect(exception.attributes?.['exception.type']).toBe('P2002');
    expect(exception.attributes?.['exception.message']).toBe('Unique constraint failed');
    // Neither the message's code frame (the caller's source lines) nor its summary reach the span.
    expect(JSON.stringify(failed.events)).not.toContain('invocation in');
    expect(JSON.stringify(failed.events)).not.toContain("name: 'second'");
    expect(JSON.stringify(failed.events)).not.toContain('email');
    expect(await metricLines(sextant, 'db_client_operation_duration_seconds_count')).toContain(
      `db_client_operation_duration_seconds_count{db_system_name="${system}",db_operation_name="create",db_collection_name="Account",error_type="P2002"} 1`,
    );
  });

  it('logs an operation past the slow-query threshold, with the span ids and no arguments', async () => {
    const prisma = extend({ slowQueryMs: 0 });
    await prisma.account.findFirst({ where: { email: SECRET_EMAIL } });
    const span = dbSpans(sextant).at(-1)!;
    const record = logs
      .records()
      .find((r) => r.msg === 'slow database operation' && r.span_id === span.spanContext().spanId);
    expect(record).toMatchObject({
      level: 'warn',
      trace_id: span.spanContext().traceId,
      db_system_name: system,
      db_operation_name: 'findFirst',
      db_collection_name: 'Account',
      slow_query_threshold_ms: 0,
    });
    expect(typeof record?.duration_ms).toBe('number');
    expect(record).not.toHaveProperty('args');
  });

  it('reads SEXTANT_PRISMA_SLOW_QUERY_MS from the environment Sextant was created with, not process.env', async () => {
    const configured = testSextant({ env: { SEXTANT_PRISMA_SLOW_QUERY_MS: '0' } });
    try {
      const prisma = (db.prisma as PostgresClient).$extends(
        sextantPrisma(configured.sextant, { slowQueryMs: false }),
      );
      await prisma.job.count();
      expect(configured.logs.records().filter((r) => r.msg === 'slow database operation')).toEqual([
        expect.objectContaining({ db_operation_name: 'count', slow_query_threshold_ms: 0 }),
      ]);
    } finally {
      await configured.sextant.shutdown();
    }
  });

  it("with spans: false, records the duration and logs slow operations under the caller's span, starting none", async () => {
    const prisma = extend({ spans: false, slowQueryMs: 0 });
    const series = `db_client_operation_duration_seconds_count{db_system_name="${system}",db_operation_name="aggregate",db_collection_name="Job",error_type=""}`;
    const parent = await sextant.tracer.startActiveSpan('handle request', async (span) => {
      try {
        await prisma.job.aggregate({ _count: true });
        return span.spanContext();
      } finally {
        span.end();
      }
    });
    expect(dbSpans(sextant)).toEqual([]);
    expect(await metricLines(sextant, series)).toEqual([`${series} 1`]);
    const record = logs
      .records()
      .find((r) => r.msg === 'slow database operation' && r.db_operation_name === 'aggregate');
    expect(record).toMatchObject({ trace_id: parent.traceId, span_id: parent.spanId });
  });

  it('keeps parameter values out of spans and logs by default, raw queries included', async () => {
    const prisma = extend({ slowQueryMs: 0 });
    await prisma.job.create({ data: { id: 'secret-1', status: 'queued', result: { token: SECRET_TOKEN } } });
    const rows = await prisma.$queryRaw<Array<{ email: string }>>`SELECT ${SECRET_EMAIL} AS email`;
    expect(rows[0]?.email).toBe(SECRET_EMAIL);
    const spans = dbSpans(sextant);
    expect(spans.map((span) => span.name)).toEqual(['create Job', '$queryRaw']);
    expect(spans[1]!.attributes).toEqual({ 'db.system.name': system, 'db.operation.name': '$queryRaw' });
    const records = spans.map((span) =>
      logs
        .records()
        .find((r) => r.msg === 'slow database operation' && r.span_id === span.spanContext().spanId),
    );
    expect(records).toEqual([
      expect.objectContaining({ db_operation_name: 'create', db_collection_name: 'Job' }),
      expect.objectContaining({ db_operation_name: '$queryRaw', db_collection_name: '' }),
    ]);
    const everything = JSON.stringify(spans.map((s) => [s.attributes, s.events])) + JSON.stringify(records);
    expect(everything).not.toContain(SECRET_TOKEN);
    expect(everything).not.toContain(SECRET_EMAIL);
  });

  it('with includeArgs, adds the arguments redacted, and raw SQL without its values', async () => {
    const prisma = extend({ includeArgs: true });
    await prisma.job.create({
      data: { id: 'args-1', status: 'queued', result: { token: SECRET_TOKEN, owner: SECRET_EMAIL } },
    });
    await prisma.$queryRaw`SELECT ${SECRET_EMAIL} AS email`;
    const [create, raw] = dbSpans(sextant);
    const args = JSON.parse(String(create!.attributes['prisma.args']));
    expect(args).toEqual({
      data: { id: 'args-1', status: 'queued', result: { token: '[REDACTED]', owner: expect.any(String) } },
    });
    expect(args.data.result.owner).not.toContain(SECRET_EMAIL);
    expect(raw!.attributes['db.query.text']).toBe('SELECT $1 AS email');
    expect(JSON.stringify(raw!.attributes)).not.toContain(SECRET_EMAIL);
  });

  it('traces the operations of a batch transaction', async () => {
    const prisma = extend();
    const [created, count] = await prisma.$transaction([
      prisma.job.create({ data: { id: 'batch-1', status: 'queued' } }),
      prisma.job.count({ where: { id: 'batch-1' } }),
    ]);
    expect(created.id).toBe('batch-1');
    expect(count).toBe(1);
    expect(dbSpans(sextant).map((span) => span.name)).toEqual(['create Job', 'count Job']);
  });

  it('traces the operations of an interactive transaction, children of the active span', async () => {
    const prisma = extend();
    const parentId = await sextant.tracer.startActiveSpan('checkout', async (parent) => {
      try {
        await prisma.$transaction(async (tx) => {
          await tx.job.create({ data: { id: 'itx-1', status: 'queued' } });
          await tx.job.update({ where: { id: 'itx-1' }, data: { status: 'running' } });
        });
        return parent.spanContext().spanId;
      } finally {
        parent.end();
      }
    });
    const spans = dbSpans(sextant);
    expect(spans.map((span) => span.name)).toEqual(['create Job', 'update Job']);
    expect(spans.map((span) => span.parentSpanContext?.spanId)).toEqual([parentId, parentId]);
  });

  it('keeps the message of an uncoded error, which quotes the arguments, off the span by default', async () => {
    const prisma = extend();
    const error = await prisma.job
      .create({ data: { id: 'invalid-1', status: SECRET_TOKEN, unknownField: 1 } as never })
      .catch((caught: unknown) => caught);
    expect((error as Error).name).toBe('PrismaClientValidationError');
    expect((error as Error).message).toContain(SECRET_TOKEN);
    const [span] = dbSpans(sextant);
    expect(span?.attributes['error.type']).toBe('PrismaClientValidationError');
    expect(JSON.stringify([span?.attributes, span?.events, span?.status])).not.toContain(SECRET_TOKEN);
  });

  it('reports the database up through a health check that adds no span or metric', async () => {
    const prisma = extend();
    const unregister = sextant.health.register(prismaHealthCheck(prisma));
    try {
      const before = await metricLines(sextant, 'db_client_operation_duration_seconds_count');
      const { statusCode, body } = await sextant.health.readiness();
      expect(statusCode).toBe(200);
      expect(body.checks?.find((check) => check.name === 'prisma')).toMatchObject({
        status: 'up',
        critical: true,
      });
      expect(dbSpans(sextant)).toEqual([]);
      expect(await metricLines(sextant, 'db_client_operation_duration_seconds_count')).toEqual(before);
    } finally {
      unregister();
    }
  });

  it('never lets its own failure reach the query', async () => {
    const failures = sextant.errors.counts().get('prisma') ?? 0;
    const broken: Sextant = {
      ...sextant,
      tracer: {
        ...sextant.tracer,
        startSpan() {
          throw new Error('tracer failure');
        },
      },
    };
    const prisma = (db.prisma as PostgresClient).$extends(sextantPrisma(broken));
    expect(await prisma.job.count({ where: { id: 'none' } })).toBe(0);
    expect(sextant.errors.counts().get('prisma')).toBe(failures + 1);
  });

  // Last: its queries add to the metric series the tests above count.
  it("keeps a query returned through core's traced() a Prisma query: awaited inside its span, or batched in $transaction", async () => {
    const prisma = extend();
    await prisma.job.create({ data: { id: 'traced-1', status: 'queued' } });
    const count = () => traced('JobRepository.count', () => prisma.job.count({ where: { id: 'traced-1' } }));
    expect(await count()).toBe(1);
    const [operation] = dbSpans(sextant).filter((span) => span.name.startsWith('count'));
    const wrapper = sextant.tracing.finishedSpans().find((span) => span.name === 'JobRepository.count')!;
    expect(operation!.parentSpanContext?.spanId).toBe(wrapper.spanContext().spanId);
    // A batch transaction takes Prisma queries only: the traced one must still be one.
    const [inBatch, jobs] = await (db.prisma as PostgresClient).$transaction([
      count(),
      prisma.job.findMany({ where: { id: 'traced-1' } }),
    ]);
    expect(inBatch).toBe(1);
    expect(jobs).toHaveLength(1);
  });
});

describe('error messages on postgresql', () => {
  // PostgreSQL quotes a rejected value in its message (22P02: `invalid input syntax for type
  // uuid: "..."`), and Prisma copies that message into its own (P2007, P2010).
  const MARKER = 'SECRET123';
  const MALFORMED_ID = `not-a-uuid-${MARKER}`;
  let sextant: Sextant;
  let logs: ReturnType<typeof collectLines>;
  let db: Awaited<ReturnType<typeof openPostgres>>;

  beforeAll(async () => {
    ({ sextant, logs } = testSextant());
    db = await openPostgres();
  });
  afterAll(async () => {
    await db?.close();
    await sextant?.shutdown();
  });
  beforeEach(() => {
    sextant.tracing.resetFinishedSpans();
  });

  function extend(options?: Parameters<typeof sextantPrisma>[1]) {
    return db.prisma.$extends(sextantPrisma(sextant, { slowQueryMs: 0, ...options }));
  }

  /** The failed span, and everything exported for it (span and log records) as one string. */
  function exported(code: string, statusCode: string) {
    const span = dbSpans(sextant).find((candidate) => candidate.status.code === SpanStatusCode.ERROR)!;
    expect(span.attributes['error.type']).toBe(code);
    expect(span.status.message).toBe(code);
    expect(span.attributes['db.response.status_code']).toBe(statusCode);
    const records = logs.records().filter((record) => record.span_id === span.spanContext().spanId);
    expect(records).toEqual([
      expect.objectContaining({
        msg: 'slow database operation',
        error_type: code,
        db_response_status_code: statusCode,
      }),
    ]);
    const exception = span.events.find((event) => event.name === 'exception')!;
    expect(exception.attributes?.['exception.type']).toBe(code);
    return {
      span,
      exception: exception.attributes ?? {},
      everything: JSON.stringify([span.name, span.attributes, span.status, span.events, records]),
    };
  }

  async function failure(pending: Promise<unknown>, code: string): Promise<Error> {
    const error = (await pending.catch((caught: unknown) => caught)) as Error & { code?: string };
    expect(error.code).toBe(code);
    // The point of these tests: Prisma's own message carries the value.
    expect(error.message).toContain(MARKER);
    return error;
  }

  it("keeps the value out of what the caller's span and error log record show when the error bubbles up", async () => {
    const prisma = extend();
    const caught = await failure(
      traced('SessionRepository.find', () =>
        prisma.session.findUnique({ where: { id: MALFORMED_ID } }),
      ) as unknown as Promise<unknown>,
      'P2007',
    );
    // The application still sees Prisma's own message; what leaves the process does not.
    sextant.logger.error({ err: caught }, 'request failed');
    const wrapper = sextant.tracing.finishedSpans().find((span) => span.name === 'SessionRepository.find')!;
    const exported = JSON.stringify([wrapper.status, wrapper.events]);
    expect(exported).not.toContain(MARKER);
    expect(wrapper.status.message).toBe('Data validation error');
    const record = logs.records().find((r) => r.msg === 'request failed')!;
    expect(JSON.stringify(record)).not.toContain(MARKER);
    expect(record.err).toMatchObject({
      type: 'PrismaClientKnownRequestError',
      message: 'Data validation error',
    });
  });

  it('keeps a rejected value out of the span and logs of a P2007, keeping the code and a fixed description', async () => {
    const prisma = extend();
    await failure(prisma.session.findUnique({ where: { id: MALFORMED_ID } }), 'P2007');
    const { span, exception, everything } = exported('P2007', '22P02');
    expect(everything).not.toContain(MARKER);
    expect(span.name).toBe('findUnique Session');
    expect(span.attributes['db.collection.name']).toBe('Session');
    expect(exception['exception.message']).toBe('Data validation error');
    expect(String(exception['exception.stacktrace'])).toMatch(/^ {4}at /);
  });

  it('keeps a rejected value out of the span and logs of a failed raw query (P2010)', async () => {
    const prisma = extend();
    await failure(prisma.$queryRaw`SELECT ${MALFORMED_ID}::uuid AS id`, 'P2010');
    const { exception, everything } = exported('P2010', '22P02');
    expect(everything).not.toContain(MARKER);
    expect(exception['exception.message']).toBe('Raw query failed');
  });

  it('keeps a value out of the stack trace, even one that looks like a stack frame', async () => {
    const prisma = extend();
    const id = `not-a-uuid\n    at ${MARKER} (file:///app/evil.js:1:1)`;
    const error = await failure(prisma.session.findUnique({ where: { id } }), 'P2007');
    expect(error.stack).toContain(`\n    at ${MARKER}`);
    const { exception, everything } = exported('P2007', '22P02');
    expect(String(exception['exception.stacktrace'])).toMatch(/^ {4}at /);
    expect(String(exception['exception.stacktrace'])).not.toContain(MARKER);
    expect(everything).not.toContain(MARKER);
  });

  it('describes a unique violation by its code only, not the constraint or the value', async () => {
    const prisma = extend();
    const id = '7d444840-9dc0-11d1-b245-5ffdce74fad2';
    await prisma.session.create({ data: { id, label: MARKER } });
    const error = (await prisma.session
      .create({ data: { id, label: MARKER } })
      .catch((caught: unknown) => caught)) as Error & { code?: string };
    expect(error.code).toBe('P2002');
    const { exception, everything } = exported('P2002', '23505');
    expect(everything).not.toContain(MARKER);
    expect(exception['exception.message']).toBe('Unique constraint failed');
    expect(everything).not.toContain('Session_pkey');
    expect(everything).not.toContain(id);
  });

  it('with includeArgs, keeps the last line of the message, value included', async () => {
    const prisma = extend({ includeArgs: true });
    await failure(prisma.session.findUnique({ where: { id: MALFORMED_ID } }), 'P2007');
    const { exception } = exported('P2007', '22P02');
    expect(exception['exception.message']).toBe(
      `Invalid input value: invalid input syntax for type uuid: "${MALFORMED_ID}"`,
    );
  });
});

describe('raw query text on postgresql', () => {
  // Values written straight into the SQL, and a parameter's value: none may leave the process.
  const LITERAL = 'customer-Jane-Doe';
  const NUMBER = '987654';
  let sextant: Sextant;
  let logs: ReturnType<typeof collectLines>;
  let db: Awaited<ReturnType<typeof openPostgres>>;

  beforeAll(async () => {
    ({ sextant, logs } = testSextant());
    db = await openPostgres();
  });
  afterAll(async () => {
    await db?.close();
    await sextant?.shutdown();
  });
  beforeEach(() => {
    sextant.tracing.resetFinishedSpans();
  });

  function extend() {
    return db.prisma.$extends(sextantPrisma(sextant, { includeArgs: true, slowQueryMs: 0 }));
  }

  /** The query text of the only raw span, after checking that nothing exported quotes a value. */
  function exportedText(...values: string[]): unknown {
    const [span, ...others] = dbSpans(sextant);
    expect(others).toEqual([]);
    const records = logs.records().filter((record) => record.span_id === span!.spanContext().spanId);
    expect(records).toEqual([expect.objectContaining({ msg: 'slow database operation' })]);
    // Ids, times, durations and the pid are left out: their digits could match a value by chance.
    const { time, trace_id, span_id, duration_ms, pid, ...logged } = records[0]!;
    const everything = JSON.stringify([span!.name, span!.attributes, span!.events, logged]);
    for (const value of values) expect(everything).not.toContain(value);
    return span!.attributes['db.query.text'];
  }

  it('replaces the literals of a $queryRawUnsafe text with ?, and never carries its parameters', async () => {
    const prisma = extend();
    const rows = await prisma.$queryRawUnsafe<Array<Record<string, unknown>>>(
      `SELECT $1::text AS email, '${LITERAL}' AS owner, ${NUMBER} AS pin, $tag$${LITERAL}-2$tag$ AS note, E'it\\'s' AS e WHERE 'a''b' <> 'c'`,
      SECRET_EMAIL,
    );
    expect(rows).toEqual([
      { email: SECRET_EMAIL, owner: LITERAL, pin: Number(NUMBER), note: `${LITERAL}-2`, e: "it's" },
    ]);
    expect(exportedText(SECRET_EMAIL, LITERAL, NUMBER, "it's")).toBe(
      'SELECT $1::text AS email, ? AS owner, ? AS pin, ? AS note, ? AS e WHERE ? <> ?',
    );
  });

  it('replaces the literals of $executeRawUnsafe', async () => {
    const prisma = extend();
    await prisma.$executeRawUnsafe(`SELECT set_config('application_name', '${LITERAL}', true) -- ${NUMBER}`);
    expect(exportedText(LITERAL, NUMBER)).toBe('SELECT set_config(?, ?, true) ');
  });

  it('replaces the literals of a Prisma.raw text', async () => {
    const prisma = extend();
    await prisma.$queryRaw(PostgresPrisma.raw(`SELECT 1 AS one WHERE '${LITERAL}' <> 'x' AND ${NUMBER} > 0`));
    expect(exportedText(LITERAL, NUMBER)).toBe('SELECT ? AS one WHERE ? <> ? AND ? > ?');
  });

  it("keeps a template's $n placeholders, replacing the literals of its own strings", async () => {
    const prisma = extend();
    const statuses = PostgresPrisma.join([LITERAL, 'done']);
    await prisma.$queryRaw`SELECT ${SECRET_EMAIL} AS email, 42 AS answer WHERE 'queued' NOT IN (${statuses})`;
    expect(exportedText(SECRET_EMAIL, LITERAL, '42', 'queued')).toBe(
      'SELECT $1 AS email, ? AS answer WHERE ? NOT IN ($2,$3)',
    );
    await prisma.$queryRaw(PostgresPrisma.sql`SELECT ${NUMBER}::int AS n`);
    expect(dbSpans(sextant).at(-1)!.attributes['db.query.text']).toBe('SELECT $1::int AS n');
  });
});

describe("the README's pool set-up on postgresql", () => {
  let sextant: Sextant;
  let logs: ReturnType<typeof collectLines>;
  beforeAll(() => {
    ({ sextant, logs } = testSextant());
  });
  afterAll(async () => {
    await sextant?.shutdown();
  });

  it('survives the server dropping an idle connection, and ends the pool at shutdown', async () => {
    const applicationName = `sextant-readme-${process.pid}-${Date.now()}`;
    // As in the README's usage section.
    const pool = new pg.Pool({ connectionString: POSTGRES_URL, application_name: applicationName });
    pool.on('error', (error) =>
      sextant.logger.warn(
        { err: { type: error.name, message: error.message } },
        'idle database connection lost',
      ),
    );
    const prisma = new PostgresClient({ adapter: new PrismaPg(pool) }).$extends(sextantPrisma(sextant));
    sextant.onShutdown(async () => {
      await prisma.$disconnect();
      await pool.end();
    });

    await prisma.$queryRawUnsafe('SELECT 1');
    expect(pool.idleCount).toBe(1);
    const lost = new Promise((resolve) => pool.once('error', resolve));
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    try {
      await admin.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
        [applicationName],
      );
    } finally {
      await admin.end();
    }
    await lost;
    expect(logs.records().find((record) => record.msg === 'idle database connection lost')).toMatchObject({
      level: 'warn',
      err: { message: expect.stringContaining('terminating connection') },
    });
    // The next query opens a new connection.
    expect(await prisma.$queryRawUnsafe('SELECT 1 AS one')).toEqual([{ one: 1 }]);

    await sextant.shutdown();
    expect(pool.ended).toBe(true);
    expect(pool.totalCount).toBe(0);
  });
});

describe('health check against an unreachable database', () => {
  let sextant: Sextant;
  beforeAll(() => {
    ({ sextant } = testSextant({ health: { checkTimeoutMs: 2000 } }));
  });
  afterAll(async () => {
    await sextant?.shutdown();
  });

  it('is down with the reason, and readiness answers 503', async () => {
    const port = await closedPort();
    const pool = new pg.Pool({ connectionString: `postgresql://postgres@127.0.0.1:${port}/test` });
    const prisma = new PostgresClient({ adapter: new PrismaPg(pool) });
    try {
      sextant.health.register(prismaHealthCheck(prisma, { name: 'orders-db' }));
      const { statusCode, body } = await sextant.health.readiness();
      expect(statusCode).toBe(503);
      const check = body.checks?.find((c) => c.name === 'orders-db');
      expect(check?.status).toBe('down');
      expect(check?.reason).toMatch(/Can't reach database server at 127\.0\.0\.1:\d+/);
      expect(check?.reason).not.toContain('Invalid');
    } finally {
      await prisma.$disconnect();
      await pool.end();
    }
  });
});

describe('pg pool gauges', () => {
  let sextant: Sextant;
  let db: Awaited<ReturnType<typeof openPostgres>>;
  beforeAll(async () => {
    ({ sextant } = testSextant());
    db = await openPostgres();
  });
  afterAll(async () => {
    await db?.close();
    await sextant?.shutdown();
  });

  it('reads idle, used, waiting and max connections at scrape time', async () => {
    const unregister = registerPgPoolMetrics(sextant, db.pool, { poolName: 'main' });
    await db.prisma.job.count();
    const held = await Promise.all([1, 2, 3, 4].map(() => db.pool.connect()));
    const waiting = db.pool.connect();
    try {
      const lines = await metricLines(sextant, 'db_client_connection');
      expect(lines).toEqual(
        expect.arrayContaining([
          'db_client_connections{db_client_connection_pool_name="main",db_client_connection_state="idle"} 0',
          'db_client_connections{db_client_connection_pool_name="main",db_client_connection_state="used"} 4',
          'db_client_connection_pending_requests{db_client_connection_pool_name="main"} 1',
          'db_client_connection_max{db_client_connection_pool_name="main"} 4',
        ]),
      );
      const { body } = await sextant.metrics.render();
      expect(promtoolCheck(body)).toEqual({ status: 0, problems: '' });
    } finally {
      for (const client of held) client.release();
      (await waiting).release();
    }
    const idle = await metricLines(
      sextant,
      'db_client_connections{db_client_connection_pool_name="main",db_client_connection_state="idle"}',
    );
    expect(idle).toEqual([expect.stringMatching(/ [1-4]$/)]);
    unregister();
    // The pool's series are gone, not left behind at 0.
    expect(await metricLines(sextant, 'db_client_connection')).toEqual([]);
  });

  it('names connection-string pools by host, port and database, leaving out credentials and parameters', async () => {
    const url = new URL(POSTGRES_URL);
    const password = 'pw-Secret-123';
    const address = `${url.hostname}:${url.port || 5432}`;
    const testUrl = new URL(POSTGRES_URL);
    testUrl.password = password;
    testUrl.search = '?application_name=orders-api';
    const otherUrl = new URL(POSTGRES_URL);
    otherUrl.pathname = '/postgres';
    const pools = [
      new pg.Pool({ connectionString: testUrl.href, max: 1 }),
      new pg.Pool({ connectionString: otherUrl.href, max: 1 }),
    ];
    const unregister = pools.map((pool) => registerPgPoolMetrics(sextant, pool));
    try {
      const databases = await Promise.all(
        pools.map((pool) => pool.query('SELECT current_database() AS name')),
      );
      expect(databases.map(({ rows }) => rows[0].name)).toEqual([url.pathname.slice(1), 'postgres']);
      const lines = await metricLines(sextant, 'db_client_connection_max');
      expect(lines).toEqual(
        expect.arrayContaining([
          `db_client_connection_max{db_client_connection_pool_name="${address}${url.pathname}"} 1`,
          `db_client_connection_max{db_client_connection_pool_name="${address}/postgres"} 1`,
        ]),
      );
      const { body } = await sextant.metrics.render();
      expect(body).not.toContain(password);
      expect(body).not.toContain('application_name');
      expect(body).not.toContain(`${url.username}@`);
    } finally {
      for (const stop of unregister) stop();
      await Promise.all(pools.map((pool) => pool.end()));
    }
  });

  it('names a socket pool by its host parameter, and falls back on the options for a string that is not a URL', async () => {
    const socket = new pg.Pool({
      connectionString: 'postgresql://app:secret@/orders?host=/var/run/postgresql',
    });
    const keywords = new pg.Pool({
      connectionString: '/var/run/postgresql billing',
      host: 'db.internal',
      port: 6432,
    });
    const unregister = [registerPgPoolMetrics(sextant, socket), registerPgPoolMetrics(sextant, keywords)];
    try {
      expect(await metricLines(sextant, 'db_client_connection_max')).toEqual(
        expect.arrayContaining([
          'db_client_connection_max{db_client_connection_pool_name="/var/run/postgresql:5432/orders"} 10',
          'db_client_connection_max{db_client_connection_pool_name="db.internal:6432/"} 10',
        ]),
      );
    } finally {
      for (const stop of unregister) stop();
      await Promise.all([socket.end(), keywords.end()]);
    }
  });

  it('refuses a second pool under the same name', () => {
    const other = new pg.Pool({ connectionString: POSTGRES_URL });
    registerPgPoolMetrics(sextant, other, { poolName: 'replica' });
    expect(() => registerPgPoolMetrics(sextant, other, { poolName: 'replica' })).toThrow(
      '@sextant/prisma: registerPgPoolMetrics(): a pool named "replica" is already registered',
    );
    return other.end();
  });
});

describe('the driver on postgresql', () => {
  let sextant: Sextant;
  let db: Awaited<ReturnType<typeof openPostgres>>;
  let pool: pg.Pool;
  /** The span active where the driver sends each statement (what a pg instrumentation would parent its spans to). */
  const activeAtSend: Array<string | undefined> = [];
  let prisma: PostgresClient;
  beforeAll(async () => {
    ({ sextant } = testSextant());
    db = await openPostgres();
    pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
    pool.on('connect', (client) => {
      const send = client.query;
      client.query = function (this: pg.PoolClient, ...args: unknown[]) {
        activeAtSend.push(trace.getActiveSpan()?.spanContext().spanId);
        return (send as (...given: unknown[]) => unknown).apply(this, args);
      } as typeof client.query;
    });
    prisma = new PostgresClient({ adapter: new PrismaPg(pool, { schema: db.schema }) });
  });
  afterAll(async () => {
    await prisma?.$disconnect();
    await pool?.end();
    await db?.close();
    await sextant?.shutdown();
  });

  it("runs inside the operation's span, so spans of a pg instrumentation would be its children", async () => {
    const extended = prisma.$extends(sextantPrisma(sextant));
    await extended.job.count();
    activeAtSend.length = 0;
    sextant.tracing.resetFinishedSpans();
    await sextant.tracer.startActiveSpan('handle request', async (parent) => {
      try {
        await extended.job.findMany({ where: { status: 'queued' } });
      } finally {
        parent.end();
      }
    });
    const [findMany] = dbSpans(sextant);
    expect(findMany?.name).toBe('findMany Job');
    expect(activeAtSend.length).toBeGreaterThan(0);
    expect(new Set(activeAtSend)).toEqual(new Set([findMany!.spanContext().spanId]));
  });

  it("runs in the parent's context when the operation has no span", async () => {
    const extended = prisma.$extends(sextantPrisma(sextant));
    const unsampled = unsampledParent();
    activeAtSend.length = 0;
    await context.with(unsampled, async () => await extended.job.count());
    expect(activeAtSend.length).toBeGreaterThan(0);
    expect(new Set(activeAtSend)).toEqual(new Set([trace.getSpanContext(unsampled)!.spanId]));
  });
});

describe('with a sampler that ignores the parent', () => {
  let sextant: Sextant;
  let db: Awaited<ReturnType<typeof openSqlite>>;
  beforeAll(async () => {
    ({ sextant } = testSextant({ tracing: { sampler: 'always_on' } }));
    db = await openSqlite();
  });
  afterAll(async () => {
    await db?.close();
    await sextant?.shutdown();
  });

  it('leaves the decision to the tracer: an unsampled parent still gets a sampled DB span', async () => {
    const prisma = db.prisma.$extends(sextantPrisma(sextant));
    const unsampled = unsampledParent();
    await context.with(unsampled, async () => await prisma.job.count());
    const [span] = dbSpans(sextant);
    expect(span?.name).toBe('count Job');
    expect(span?.spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
  });
});
