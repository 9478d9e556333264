import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { context, ROOT_CONTEXT, type SpanContext, TraceFlags, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type { Logger } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig, type SextantOptions } from './config.ts';
import { createRequestState, ensureContextManager, setRequestState, setTenant, setUser } from './context.ts';
import { createInternalErrorSink, type InternalErrorSink } from './internal-errors.ts';
import { createLogger, formatMillis, logBusinessEvent, writeAccessLog } from './logger.ts';

type LogRecord = Record<string, any>;

const SPAN_CONTEXT: SpanContext = {
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  spanId: '00f067aa0ba902b7',
  traceFlags: TraceFlags.SAMPLED,
};

/** The keys of the outermost JSON object, in order, duplicates included (JSON.parse would hide them). */
function topLevelKeys(line: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < line.length; i++) {
    const char = line[i];
    if (char === '"') {
      const start = i;
      for (i++; line[i] !== '"'; i++) if (line[i] === '\\') i++;
      if (depth === 1 && line[i + 1] === ':') keys.push(JSON.parse(line.slice(start, i + 1)));
    } else if (char === '{' || char === '[') depth++;
    else if (char === '}' || char === ']') depth--;
  }
  return keys;
}

interface Harness {
  logger: Logger;
  sink: InternalErrorSink;
  lines: string[];
  records(): LogRecord[];
  last(): LogRecord;
}

function harness(options: SextantOptions = {}, write?: (line: string) => void): Harness {
  const lines: string[] = [];
  const destination = { write: write ?? ((line: string) => void lines.push(line)) };
  const { config } = resolveConfig({
    serviceName: 'checkout',
    serviceVersion: '1.4.2',
    environment: 'test',
    env: {},
    ...options,
    logs: { level: 'debug', destination, ...options.logs },
  });
  const sink = createInternalErrorSink({ intervalMs: 0 });
  const logger = createLogger(config, sink);
  const records = () =>
    lines.map((line) => {
      // One record per line: the only newline is the terminator.
      expect(line.endsWith('\n')).toBe(true);
      expect(line.indexOf('\n')).toBe(line.length - 1);
      const keys = topLevelKeys(line);
      expect(new Set(keys).size, `duplicate keys in ${line}`).toBe(keys.length);
      return JSON.parse(line) as LogRecord;
    });
  return { logger, sink, lines, records, last: () => records().at(-1)! };
}

function inRequest<T>(fn: () => T, spanContext: SpanContext = SPAN_CONTEXT): T {
  const state = createRequestState('req-7f3a');
  const ctx = setRequestState(trace.setSpan(ROOT_CONTEXT, trace.wrapSpanContext(spanContext)), state);
  return context.with(ctx, fn);
}

beforeAll(() => {
  ensureContextManager();
});

describe('record shape', () => {
  it('writes one JSON line with the level, time, message and service fields', () => {
    const { logger, last, lines } = harness();
    logger.info('started');
    const record = last();
    expect(record).toMatchObject({
      level: 'info',
      msg: 'started',
      service: 'checkout',
      service_version: '1.4.2',
      deployment_environment: 'test',
      pid: process.pid,
    });
    expect(typeof record.hostname).toBe('string');
    expect(Math.abs(record.time - Date.now())).toBeLessThan(60_000);
    expect(topLevelKeys(lines[0]!).slice(0, 2)).toEqual(['level', 'time']);
  });

  it('honours the configured level', () => {
    const { logger, records } = harness({ logs: { level: 'warn' } });
    logger.info('hidden');
    logger.warn('shown');
    expect(records().map((r) => r.msg)).toEqual(['shown']);
  });

  it('leaves ids out outside any request or span', () => {
    const { logger, last } = harness();
    logger.info({ a: 1 }, 'plain');
    const record = last();
    expect(record).not.toHaveProperty('trace_id');
    expect(record).not.toHaveProperty('request_id');
    expect(record.a).toBe(1);
  });
});

describe('correlation', () => {
  it('carries the active span and request ids, and the user and tenant once named', () => {
    const { logger, records } = harness();
    inRequest(() => {
      logger.info('before login');
      setUser('user-42');
      setTenant('acme');
      logger.info('after login');
    });
    const [before, after] = records();
    expect(before).toMatchObject({
      trace_id: SPAN_CONTEXT.traceId,
      span_id: SPAN_CONTEXT.spanId,
      trace_flags: '01',
      request_id: 'req-7f3a',
    });
    expect(before).not.toHaveProperty('user_id');
    expect(after).toMatchObject({ request_id: 'req-7f3a', user_id: 'user-42', tenant_id: 'acme' });
  });

  it('writes a numeric user or tenant id as text, and ignores a value that is no id, keeping every record', () => {
    const { logger, records, sink } = harness();
    inRequest(() => {
      // What an untyped `req.user.id` from a database hands over.
      setUser(42);
      setTenant(7n);
      logger.info('numeric ids');
      setUser({ id: 1 } as never);
      setTenant(undefined as never);
      logger.info('ignored values');
      writeAccessLog(logger, {
        method: 'GET',
        route: '/me',
        path: '/me',
        status: 200,
        duration_ms: 1,
        bytes: 2,
        user_agent: undefined,
      });
    });
    expect(records().map((r) => [r.msg, r.user_id, r.tenant_id])).toEqual([
      ['numeric ids', '42', '7'],
      ['ignored values', '42', '7'],
      ['request completed', '42', '7'],
    ]);
    expect(sink.counts().size).toBe(0);
  });

  it("writes a child logger's own user_id and tenant_id once, not again from the request", () => {
    const { logger, lines } = harness();
    inRequest(() => {
      setUser('u-42');
      setTenant('t-1');
      logger.child({ user_id: 'child-user', tenant_id: 'tt' }).info('bound');
      writeAccessLog(logger.child({ user_id: 'child-user' }) as never, {
        method: 'GET',
        route: '/me',
        path: '/me',
        status: 200,
        duration_ms: 1,
        bytes: 2,
        user_agent: undefined,
      });
    });
    for (const line of lines) {
      // JSON.parse keeps the last of two equal keys; count them in the text itself.
      expect(line.match(/"user_id":/g)).toHaveLength(1);
    }
    expect(lines[0]!.match(/"tenant_id":/g)).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      user_id: 'child-user',
      tenant_id: 'tt',
      request_id: 'req-7f3a',
    });
  });

  it('formats an Error for %s as its name and message, as pino does, and redacts it', () => {
    const { logger, records } = harness();
    logger.error(
      'failed: %s, user %s, data %j',
      new Error('db down for bob@example.com'),
      { toString: () => 'alice' },
      { a: 1 },
    );
    expect(records()[0]!.msg).toBe('failed: Error: db down for [EMAIL], user alice, data {"a":1}');
  });

  it('follows the context across awaits, and matches the exported span', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
    const tracer = provider.getTracer('logger-test');
    const { logger, last } = harness();
    await tracer.startActiveSpan('job', async (span) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      logger.info('inside the job');
      span.end();
    });
    const [exported] = exporter.getFinishedSpans();
    expect(last()).toMatchObject({
      trace_id: exported!.spanContext().traceId,
      span_id: exported!.spanContext().spanId,
      trace_flags: '01',
    });
    await provider.shutdown();
  });

  it('writes the request id without a span, and no ids for an invalid span context', () => {
    const { logger, records } = harness();
    context.with(setRequestState(ROOT_CONTEXT, createRequestState('job-1')), () => logger.info('no span'));
    inRequest(
      () => logger.info('invalid span'),
      trace.wrapSpanContext({ ...SPAN_CONTEXT, traceId: '0'.repeat(32) }).spanContext(),
    );
    const [noSpan, invalid] = records();
    expect(noSpan).toMatchObject({ request_id: 'job-1' });
    expect(noSpan).not.toHaveProperty('trace_id');
    expect(invalid).toMatchObject({ request_id: 'req-7f3a' });
    expect(invalid).not.toHaveProperty('trace_id');
  });
});

describe('reserved fields', () => {
  it('keeps logged values that collide with reserved keys under fields_<key>, never twice', () => {
    const { logger, last } = harness();
    inRequest(() =>
      logger.info(
        {
          level: 'fatal',
          time: 0,
          trace_id: 'forged',
          span_id: 'forged',
          request_id: 'forged',
          service: 'other',
          pid: 1,
          hostname: 'elsewhere',
          fields_level: 'taken already',
        },
        'real message',
      ),
    );
    const record = last();
    expect(record).toMatchObject({
      level: 'info',
      msg: 'real message',
      trace_id: SPAN_CONTEXT.traceId,
      span_id: SPAN_CONTEXT.spanId,
      request_id: 'req-7f3a',
      service: 'checkout',
      pid: process.pid,
      fields_time: 0,
      fields_trace_id: 'forged',
      fields_span_id: 'forged',
      fields_request_id: 'forged',
      fields_service: 'other',
      fields_pid: 1,
      fields_hostname: 'elsewhere',
      fields_level: 'taken already',
      fields_fields_level: 'fatal',
    });
    expect(record.time).not.toBe(0);
  });

  it('forbids ids even outside a request, so a logged body cannot pass for another trace', () => {
    const { logger, last } = harness();
    logger.info({ trace_id: 'forged' }, 'x');
    expect(last()).toMatchObject({ fields_trace_id: 'forged' });
    expect(last()).not.toHaveProperty('trace_id');
  });

  it('keeps a logged user_id unless the request names its own user', () => {
    const { logger, records } = harness();
    logger.info({ user_id: 'u-1' }, 'outside');
    inRequest(() => {
      logger.info({ user_id: 'u-2' }, 'anonymous request');
      setUser('u-3');
      logger.info({ user_id: 'u-2' }, 'named request');
    });
    const [outside, anonymous, named] = records();
    expect(outside!.user_id).toBe('u-1');
    expect(anonymous!.user_id).toBe('u-2');
    expect(named).toMatchObject({ user_id: 'u-3', fields_user_id: 'u-2' });
  });

  it("uses an object's msg as the message when none is given, as pino does", () => {
    const { logger, records } = harness();
    logger.info({ msg: 'from object', a: 1 });
    logger.info({ msg: 'shadowed' }, 'explicit');
    const [lifted, explicit] = records();
    expect(lifted).toMatchObject({ msg: 'from object', a: 1 });
    expect(lifted).not.toHaveProperty('fields_msg');
    expect(explicit).toMatchObject({ msg: 'explicit', fields_msg: 'shadowed' });
  });
});

describe('redaction', () => {
  it('redacts keys at any depth and value patterns in fields and messages', () => {
    const { logger, last } = harness({ logs: { redactKeys: ['x-internal-pin'] } });
    logger.info(
      {
        user: { profile: { contact: { Email: 'alice@example.com', PASSWORD: 'hunter2' } } },
        headers: { Authorization: 'Bearer abcdefgh12345678', 'X-Internal-Pin': '0000', accept: 'json' },
        note: 'card 4111 1111 1111 1111 on file',
      },
      'charged %s with %j',
      'bob@example.org',
      { apiKey: 'k', amount: 3 },
    );
    const record = last();
    expect(record.user.profile.contact).toEqual({ Email: '[EMAIL]', PASSWORD: '[REDACTED]' });
    expect(record.headers).toEqual({
      Authorization: '[REDACTED]',
      'X-Internal-Pin': '[REDACTED]',
      accept: 'json',
    });
    expect(record.note).toBe('card [CARD] on file');
    expect(record.msg).toBe('charged [EMAIL] with {"apiKey":"[REDACTED]","amount":3}');
  });

  it('serialises errors like pino, redacted', () => {
    const { logger, records } = harness();
    logger.error(new Error('no account for alice@example.com'));
    logger.error(
      { err: new TypeError('token sk_live_4eC39HqLyjWDarjtT1zdp7dc rejected'), order: 7 },
      'payment failed',
    );
    const [direct, nested] = records();
    expect(direct).toMatchObject({
      level: 'error',
      msg: 'no account for [EMAIL]',
      err: { type: 'Error', message: 'no account for [EMAIL]' },
    });
    expect(direct!.err.stack).toContain('no account for [EMAIL]');
    expect(nested).toMatchObject({
      msg: 'payment failed',
      order: 7,
      err: { type: 'TypeError', message: 'token [API_KEY] rejected' },
    });
  });

  it("uses the error's message when only an object with err is given", () => {
    const { logger, last } = harness();
    logger.warn({ err: new Error('disk full') });
    expect(last().msg).toBe('disk full');
  });
});

describe('hostile payloads', () => {
  it('keeps control characters, newlines and line separators inside one escaped line', () => {
    const { logger, records, lines } = harness();
    const nasty = 'a\nb\r\nc\u0000d\u0007e\u001bf\u2028g\u2029h"i\\j';
    logger.info({ [nasty]: nasty, nested: { value: nasty } }, nasty);
    logger.info(`forged line\n{"level":"fatal","msg":"injected"}`);
    const [first, second] = records();
    expect(first!.msg).toBe(nasty);
    expect(first![nasty]).toBe(nasty);
    expect(first!.nested.value).toBe(nasty);
    expect(second!.msg).toBe('forged line\n{"level":"fatal","msg":"injected"}');
    for (const line of lines) {
      expect(line).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u2028\u2029]/);
    }
    expect(lines).toHaveLength(2);
  });

  it('survives circular objects, throwing getters, hostile proxies and huge arrays without throwing', () => {
    const { logger, records } = harness();
    const circular: any = { name: 'loop' };
    circular.self = circular;
    const getter = {
      fine: true,
      get explode(): never {
        throw new Error('getter');
      },
    };
    const noKeys = new Proxy(
      {},
      {
        ownKeys: () => {
          throw new Error('ownKeys');
        },
      },
    );
    const noGet = new Proxy(
      { msg: 'x', err: 1 },
      {
        get: () => {
          throw new Error('get');
        },
      },
    );
    const { proxy: revoked, revoke } = Proxy.revocable({}, {});
    revoke();
    const huge = Array.from({ length: 200_000 }, (_, i) => ({ i }));
    const deep = JSON.parse(`${'{"a":'.repeat(1000)}1${'}'.repeat(1000)}`);

    expect(() => {
      logger.info(circular, 'circular');
      logger.info(getter, 'getter');
      logger.info(noKeys, 'ownKeys');
      logger.info(noGet);
      logger.info(revoked, 'revoked');
      logger.info({ huge, deep }, 'big');
      logger.info('interpolated %j %j', circular, noKeys);
      logger.child(noKeys).info('child of a proxy');
      logBusinessEvent(logger, 'hostile', getter as any);
    }).not.toThrow();

    const [c, g, k, p, r, big, interpolated, child, event] = records();
    expect(c!.self).toBe('[Circular]');
    expect(g).toMatchObject({ fine: true, explode: '[Unreadable]' });
    expect(k!.fields).toBe('[Unreadable]');
    expect(p!.fields).toBe('[Unreadable]');
    expect(r!.fields).toBe('[Unreadable]');
    expect(big!.huge).toHaveLength(101);
    expect(JSON.stringify(big!.deep)).toContain('[Truncated]');
    expect(interpolated!.msg).toBe(`interpolated {"name":"loop","self":"[Circular]"} '[Unreadable]'`);
    expect(child).toMatchObject({ fields: '[Unreadable]', msg: 'child of a proxy' });
    expect(event).toMatchObject({ event: 'hostile', fine: true, explode: '[Unreadable]' });
  });

  it('reports a failing destination to the internal error sink instead of throwing', () => {
    const { logger, sink } = harness({}, () => {
      throw new Error('disk gone');
    });
    expect(() => logger.info('lost')).not.toThrow();
    expect(sink.counts().get('log_write')).toBeGreaterThanOrEqual(1);
  });
});

describe('Node HTTP objects', () => {
  it('are summarised as pino does, with their headers redacted, instead of walked', async () => {
    const { logger, last } = harness();
    const server = createServer((request, response) => {
      logger.info(request, 'incoming');
      response.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await fetch(`http://127.0.0.1:${port}/orders?coupon=x`, {
      headers: { authorization: 'Bearer abcdefgh12345678', 'x-trace-note': 'bob@example.org' },
    });
    await new Promise((resolve) => server.close(resolve));
    const record = last();
    expect(record.req).toMatchObject({ method: 'GET', url: '/orders?coupon=x', remoteAddress: '127.0.0.1' });
    expect(record.req.headers).toMatchObject({ authorization: '[REDACTED]', 'x-trace-note': '[EMAIL]' });
    expect(Object.keys(record)).not.toContain('socket');
  });
});

describe('child loggers', () => {
  it('keep the bindings, the correlation and the redaction of their parent', () => {
    const { logger, records } = harness();
    const db = logger.child({ component: 'db' });
    const users = db.child({ table: 'users', password: 'leaked?' });
    inRequest(() => {
      db.info({ query: 'select 1', dsn: 'postgres://app:pw@db/app' }, 'query');
      users.warn({ component: 'forged' }, 'slow');
    });
    const [query, slow] = records();
    expect(query).toMatchObject({
      component: 'db',
      trace_id: SPAN_CONTEXT.traceId,
      request_id: 'req-7f3a',
      dsn: 'postgres://[REDACTED]@db/app',
      service: 'checkout',
    });
    expect(slow).toMatchObject({
      level: 'warn',
      component: 'db',
      table: 'users',
      password: '[REDACTED]',
      fields_component: 'forged',
      span_id: SPAN_CONTEXT.spanId,
    });
  });

  it('redact bindings set later, and move their reserved keys aside', () => {
    const { logger, last } = harness();
    const child = logger.child({ component: 'queue' });
    child.setBindings({ apiKey: 'k', level: 'fatal' });
    child.info({ apiKey: 'again' }, 'x');
    expect(last()).toMatchObject({
      component: 'queue',
      apiKey: '[REDACTED]',
      fields_level: 'fatal',
      fields_apiKey: '[REDACTED]',
    });
  });

  it('move reserved keys out of bindings too', () => {
    const { logger, last } = harness();
    logger.child({ level: 'fatal', trace_id: 'forged' }).info('x');
    expect(last()).toMatchObject({ level: 'info', fields_level: 'fatal', fields_trace_id: 'forged' });
  });
});

describe('business events', () => {
  it('writes one info record named by the event, with its fields and the request ids', () => {
    const { logger, records } = harness();
    inRequest(() =>
      logBusinessEvent(logger, 'order.placed', { order_id: 'o-1', total: 42.5, email: 'a@b.io' }),
    );
    logBusinessEvent(logger, 'nightly.report');
    logBusinessEvent(logger, 'clash', { event: 'forged', event_kind: 'technical' });
    const [placed, report, clash] = records();
    expect(placed).toMatchObject({
      level: 'info',
      event: 'order.placed',
      event_kind: 'business',
      order_id: 'o-1',
      total: 42.5,
      email: '[EMAIL]',
      request_id: 'req-7f3a',
    });
    expect(report).toMatchObject({ event: 'nightly.report', event_kind: 'business' });
    expect(clash).toMatchObject({
      event: 'clash',
      event_kind: 'business',
      fields_event: 'forged',
      fields_event_kind: 'technical',
    });
  });
});

describe('formatMillis', () => {
  it.each([
    [12.5, '12.5'],
    [3, '3'],
    [0.1 + 0.2, '0.3'],
    [312.456 / 1000, '0.312'],
    [0.0004, '0'],
    [0.0005, '0.001'],
    [1.05, '1.05'],
    [10.1, '10.1'],
    [999.9996, '1000'],
    [2_000_000.25, '2000000.25'],
    [-1.5, '-1.5'],
  ])('writes %d ms as %s', (ms, text) => {
    expect(formatMillis(ms)).toBe(text);
    expect(JSON.parse(text)).toBe(Math.round(ms * 1000) / 1000);
  });
});

describe('access log', () => {
  it('writes the request with span-attribute names, redacting only client strings', () => {
    const { logger, records } = harness();
    inRequest(() => {
      writeAccessLog(logger, {
        method: 'GET',
        route: '/users/:email',
        path: '/users/alice@example.com',
        status: 200,
        duration_ms: 12.5,
        bytes: 512,
        user_agent: 'bot Bearer abcdefgh12345678',
        remote_address: '10.0.0.1',
      });
      writeAccessLog(logger, {
        method: 'POST',
        route: '/jobs',
        path: '/jobs',
        status: 503,
        duration_ms: 3.0004999999999997,
        bytes: undefined,
        user_agent: undefined,
        error: new Error('queue down'),
      });
    });
    const [ok, failed] = records();
    expect(ok).toEqual({
      level: 'info',
      time: ok!.time,
      pid: process.pid,
      hostname: ok!.hostname,
      service: 'checkout',
      service_version: '1.4.2',
      deployment_environment: 'test',
      trace_id: SPAN_CONTEXT.traceId,
      span_id: SPAN_CONTEXT.spanId,
      trace_flags: '01',
      request_id: 'req-7f3a',
      http_request_method: 'GET',
      http_route: '/users/:email',
      url_path: '/users/[EMAIL]',
      http_response_status_code: 200,
      duration_ms: 12.5,
      http_response_body_size: 512,
      user_agent_original: 'bot Bearer [REDACTED]',
      client_address: '10.0.0.1',
      msg: 'request completed',
    });
    expect(failed).toMatchObject({
      level: 'error',
      http_response_status_code: 503,
      duration_ms: 3,
      err: { type: 'Error', message: 'queue down' },
    });
  });
});

describe('internal errors', () => {
  it("log Sextant's own failures as one warn record with kind and occurrences", () => {
    const { sink, last } = harness();
    sink.report('span_export', new Error('collector refused token=abc'));
    expect(last()).toMatchObject({
      level: 'warn',
      component: 'sextant',
      kind: 'span_export',
      occurrences: 1,
      msg: 'sextant internal error',
      err: { type: 'Error', message: 'collector refused token=[REDACTED]' },
    });
  });
});

describe('stdout', () => {
  const loggerUrl = new URL('./logger.ts', import.meta.url).href;
  const internalErrorsUrl = new URL('./internal-errors.ts', import.meta.url).href;
  const configUrl = new URL('./config.ts', import.meta.url).href;
  const logThenEnd = (options: string, ending: string) =>
    promisify(execFile)(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `
      const { createLogger } = await import(${JSON.stringify(loggerUrl)});
      const { createInternalErrorSink } = await import(${JSON.stringify(internalErrorsUrl)});
      const { resolveConfig } = await import(${JSON.stringify(configUrl)});
      const { config } = resolveConfig({ serviceName: 'ending', env: {}, ${options} });
      const logger = createLogger(config, createInternalErrorSink({ intervalMs: 0 }));
      for (let i = 0; i < 2000; i++) logger.info({ i, email: 'a@b.io' }, 'record');
      ${ending}
    `,
      ],
      { cwd: fileURLToPath(new URL('..', import.meta.url)), maxBuffer: 64 * 1024 * 1024 },
    )
      .then(({ stdout }) => stdout)
      .catch((error: { stdout: string }) => error.stdout);

  it('with logs.sync, has every record on stdout even when the process is killed right after logging', async () => {
    const lines = (await logThenEnd('logs: { sync: true }', "process.kill(process.pid, 'SIGKILL');"))
      .split('\n')
      .filter(Boolean);
    expect(lines).toHaveLength(2000);
    expect(JSON.parse(lines[1999]!)).toMatchObject({ i: 1999, email: '[EMAIL]', service: 'ending' });
  });

  it('by default buffers writes, and still flushes every record when the process exits or crashes', async () => {
    for (const ending of ['process.exit(3);', "throw new Error('crash');"]) {
      const lines = (await logThenEnd('', ending)).split('\n').filter(Boolean);
      expect(lines).toHaveLength(2000);
      expect(JSON.parse(lines[1999]!)).toMatchObject({ i: 1999, service: 'ending' });
    }
  });
});

describe('access log fast path', () => {
  it('honours the level, marks aborted requests and keeps child bindings', () => {
    const quiet = harness({ logs: { level: 'warn' } });
    quiet.logger.info('ignored');
    writeAccessLog(quiet.logger, {
      method: 'GET',
      route: '/a',
      path: '/a',
      status: 200,
      duration_ms: 1,
      bytes: undefined,
      user_agent: undefined,
    });
    expect(quiet.records()).toEqual([]);

    const { logger, records } = harness();
    const child = logger.child({ component: 'http' });
    writeAccessLog(child, {
      method: 'GET',
      route: '/a',
      path: '/a\u2028b',
      status: undefined,
      duration_ms: 2,
      bytes: Number.NaN,
      user_agent: 'agent "quoted"',
      aborted: true,
    });
    const [record] = records();
    expect(record).toMatchObject({
      level: 'info',
      component: 'http',
      http_route: '/a',
      url_path: '/a\u2028b',
      duration_ms: 2,
      user_agent_original: 'agent "quoted"',
      http_request_aborted: true,
      msg: 'request completed',
    });
    expect(record).not.toHaveProperty('http_response_status_code');
    expect(record).not.toHaveProperty('http_response_body_size');
  });
});
