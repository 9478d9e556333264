import type { AddressInfo } from 'node:net';
import { trace } from '@opentelemetry/api';
import { getRequestId, type Sextant, SextantConfigError } from '@sextant/core';
import fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SextantFastifyOptions, sextantFastify, sextantServerOptions } from '../src/index.ts';
import { collectLogs, createTestSextant, sampleSum, traceIdOf, waitFor, waitForSpan } from './helpers.ts';

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

describe('plugin options', () => {
  const logs = collectLogs();
  let sextant: Sextant;

  beforeAll(() => {
    sextant = createTestSextant(logs);
  });
  afterAll(async () => {
    await sextant?.shutdown();
  });

  async function registrationError(options: unknown): Promise<unknown> {
    const app = fastify();
    app.register(sextantFastify, options as SextantFastifyOptions);
    try {
      await app.ready();
      return undefined;
    } catch (error) {
      return error;
    } finally {
      await app.close();
    }
  }

  const cases: Array<[string, (sextant: Sextant) => unknown, string]> = [
    [
      'no options',
      () => undefined,
      'the sextant option is required: pass the instance returned by createSextant() from @sextant/core',
    ],
    [
      'no sextant',
      () => ({ endpoints: false }),
      'the sextant option is required: pass the instance returned by createSextant() from @sextant/core',
    ],
    [
      'something else as sextant',
      () => ({ sextant: { logger: {} } }),
      'sextant must be the instance returned by createSextant() from @sextant/core, got an object',
    ],
    [
      'a string as sextant',
      () => ({ sextant: 'orders-api' }),
      'sextant must be the instance returned by createSextant() from @sextant/core, got string orders-api',
    ],
    [
      'endpoints not a boolean',
      (sextant) => ({ sextant, endpoints: 'yes' }),
      'endpoints must be a boolean, got string yes',
    ],
    [
      'an unknown option',
      (sextant) => ({ sextant, endpoint: false }),
      'unknown option "endpoint"; expected one of: sextant, endpoints, logLevel, logSerializers',
    ],
    [
      'a prefix',
      (sextant) => ({ sextant, prefix: '/internal' }),
      'prefix "/internal" does not apply to this plugin (it instruments the whole app); to move the endpoints, use createSextant({ endpoints: { prefix } })',
    ],
  ];

  it.each(cases)(
    'refuses %s at registration, with a coded and prefixed error',
    async (_case, options, message) => {
      const error = await registrationError(options(sextant));
      expect(error).toBeInstanceOf(SextantConfigError);
      expect((error as SextantConfigError).code).toBe('SEXTANT_INVALID_OPTION');
      expect((error as Error).message).toBe(`@sextant/fastify: ${message}`);
    },
  );

  it("accepts the options Fastify's register takes for any plugin", async () => {
    expect(await registrationError({ sextant, logLevel: 'warn', logSerializers: {} })).toBeUndefined();
  });

  it('refuses to be registered inside a prefixed context, naming the fix', async () => {
    const app = fastify();
    app.register(
      async (api) => {
        await api.register(sextantFastify, { sextant });
        api.get('/users/:id', async () => 'user');
      },
      { prefix: '/api' },
    );
    const error = await app.ready().then(
      () => undefined,
      (failure: unknown) => failure,
    );
    await app.close();
    expect(error).toBeInstanceOf(SextantConfigError);
    expect((error as SextantConfigError).code).toBe('SEXTANT_INVALID_OPTION');
    expect((error as Error).message).toBe(
      '@sextant/fastify: registered inside a context with prefix "/api", where its endpoints would move ' +
        'under the prefix and be counted as traffic, and requests outside the context would not be seen; ' +
        'register it at the root, before your routes, and to move the endpoints use ' +
        'createSextant({ endpoints: { prefix } })',
    );
  });

  it.each<[string, () => unknown, string]>([
    [
      'no Sextant instance',
      () => sextantServerOptions({} as Sextant),
      'sextantServerOptions() expects the instance returned by createSextant() from @sextant/core, got an object',
    ],
    [
      'logging that is not an object',
      () => sextantServerOptions(sextant, true as never),
      'logging must be an object { disableRequestLogging?, requestIdLogLabel? }, got boolean true',
    ],
    [
      'an unknown logging option',
      () => sextantServerOptions(sextant, { disableRequestLoging: true } as never),
      'unknown logging option "disableRequestLoging"; expected one of: disableRequestLogging, requestIdLogLabel',
    ],
    [
      'disableRequestLogging of another type',
      () => sextantServerOptions(sextant, { disableRequestLogging: 'yes' } as never),
      'logging.disableRequestLogging must be a boolean or a function (request) => boolean, got string yes',
    ],
    [
      'an empty requestIdLogLabel',
      () => sextantServerOptions(sextant, { requestIdLogLabel: '' }),
      'logging.requestIdLogLabel must be a non-empty string, got an empty string',
    ],
  ])('sextantServerOptions refuses %s with a coded, prefixed message', (_case, call, message) => {
    let error: unknown;
    try {
      call();
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(SextantConfigError);
    expect((error as SextantConfigError).code).toBe('SEXTANT_INVALID_OPTION');
    expect((error as Error).message).toBe(`@sextant/fastify: ${message}`);
  });

  it('types the per-route opt-out', () => {
    const app = fastify();
    app.get('/typed', { config: { sextant: false } }, async () => 'ok');
    // @ts-expect-error: the opt-out is a boolean
    app.get('/mistyped', { config: { sextant: 'off' } }, async () => 'ok');
    expect(app.hasRoute({ method: 'GET', url: '/typed' })).toBe(true);
  });
});

describe('disableRequestLogging, with the access log off', () => {
  const logs = collectLogs();
  let sextant: Sextant;

  beforeAll(() => {
    // Off, Fastify's lines are written unless disableRequestLogging says otherwise.
    sextant = createTestSextant(logs, { logs: { destination: logs, accessLog: false } });
  });
  afterAll(async () => {
    await sextant?.shutdown();
  });

  it("is passed on to Fastify's LogController: it silences Fastify's lines, not the request's own", async () => {
    const app = fastify({ ...sextantServerOptions(sextant, { disableRequestLogging: true }) });
    await app.register(sextantFastify, { sextant, endpoints: false });
    app.get('/quiet', async (request) => {
      request.log.info('handled');
      return 'ok';
    });
    const url = await listen(app);
    let traceId: string;
    try {
      const response = await fetch(`${url}/quiet`, { headers: { 'x-request-id': 'quiet-1' } });
      expect(response.status).toBe(200);
      traceId = traceIdOf(response);
      await waitForSpan(sextant, (s) => s.spanContext().traceId === traceId);
    } finally {
      // Closed, the server has written every line of its requests.
      await app.close();
    }
    const records = logs.records().filter((r) => r.reqId === 'quiet-1');
    expect(records.map((r) => r.msg)).toEqual(['handled']);
    expect(records[0]).toMatchObject({ request_id: 'quiet-1', trace_id: traceId });
  });
});

describe('endpoints under a prefix, with Sextant access log off', () => {
  const logs = collectLogs();
  let sextant: Sextant;
  let app: FastifyInstance;
  let url: string;

  beforeAll(async () => {
    sextant = createTestSextant(logs, {
      endpoints: { prefix: '/internal' },
      logs: { destination: logs, accessLog: false },
      http: { ignorePaths: ['/ignored'] },
    });
    app = fastify({ ...sextantServerOptions(sextant) });
    await app.register(sextantFastify, { sextant });
    app.get('/ignored', async () => 'not recorded');
    app.get('/orders/:id', async (request) => {
      request.log.info('order read');
      return { id: (request.params as { id: string }).id };
    });
    url = await listen(app);
  });
  afterAll(async () => {
    await app?.close();
    await sextant?.shutdown();
  });

  it('serves the endpoints under the prefix only', async () => {
    expect((await fetch(`${url}/internal/metrics`)).status).toBe(200);
    expect((await fetch(`${url}/internal/health/ready`)).status).toBe(200);
    expect((await fetch(`${url}/internal/health/detailed`, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${url}/metrics`)).status).toBe(404);
    const exposition = await (await fetch(`${url}/internal/metrics`)).text();
    expect(exposition).not.toMatch(/http_route="\/internal/);
  });

  it('writes Fastify own "request completed" instead, inside the request context', async () => {
    const response = await fetch(`${url}/orders/12`, { headers: { 'x-request-id': 'own-log-1' } });
    expect(response.status).toBe(200);
    const span = await waitForSpan(sextant, (s) => s.spanContext().traceId === traceIdOf(response));
    const completed = await waitFor(() =>
      logs.records().find((r) => r.reqId === 'own-log-1' && r.msg === 'request completed'),
    );
    expect(completed).toMatchObject({
      request_id: 'own-log-1',
      trace_id: span.spanContext().traceId,
      span_id: span.spanContext().spanId,
    });
    const records = logs.records().filter((r) => r.request_id === 'own-log-1');
    expect(records.map((r) => r.msg)).toEqual(['incoming request', 'order read', 'request completed']);
  });

  it("gives the endpoints and ignored paths neither of Fastify's lines", async () => {
    for (const path of ['/internal/metrics', '/internal/health', '/internal/health/ready', '/ignored']) {
      const response = await fetch(`${url}${path}`, { headers: { 'x-request-id': `left-out${path}` } });
      expect(response.status, path).toBe(200);
      await response.arrayBuffer();
    }
    // A recorded request after them: once its lines are out, theirs would be too.
    await fetch(`${url}/orders/1`, { headers: { 'x-request-id': 'after-left-out' } });
    await waitFor(() =>
      logs.records().find((r) => r.reqId === 'after-left-out' && r.msg === 'request completed'),
    );
    expect(logs.records().filter((r) => String(r.reqId).startsWith('left-out'))).toEqual([]);
  });

  it('writes "incoming request" of a request the router rejected inside its context, once', async () => {
    const response = await fetch(`${url}/orders/%E0%A4%A`, { headers: { 'x-request-id': 'bad-url-1' } });
    expect(response.status).toBe(400);
    const span = await waitForSpan(sextant, (s) => s.spanContext().traceId === traceIdOf(response));
    const records = await waitFor(() => {
      const found = logs.records().filter((r) => r.reqId === 'bad-url-1');
      return found.length > 0 ? found : undefined;
    });
    expect(records.map((r) => r.msg)).toEqual(['incoming request']);
    expect(records[0]).toMatchObject({
      request_id: 'bad-url-1',
      trace_id: span.spanContext().traceId,
      span_id: span.spanContext().spanId,
    });
  });
});

describe('endpoints behind a bearer token', () => {
  const TOKEN = 'endpoint-token-123';
  const logs = collectLogs();
  let sextant: Sextant;
  let app: FastifyInstance;
  let url: string;

  beforeAll(async () => {
    sextant = createTestSextant(logs, { endpoints: { token: TOKEN } });
    app = fastify({ ...sextantServerOptions(sextant) });
    await app.register(sextantFastify, { sextant });
    app.get('/orders/:id', async (request) => ({ id: (request.params as { id: string }).id }));
    url = await listen(app);
  });
  afterAll(async () => {
    await app?.close();
    await sextant?.shutdown();
  });

  it('answers 401 without the right token and 200 with it, and leaves these requests out of telemetry', async () => {
    await sextant.tracing.forceFlush();
    sextant.tracing.resetFinishedSpans();
    const auth = { authorization: `Bearer ${TOKEN}` };
    // Probes send no header: liveness and readiness stay open.
    for (const path of ['/health', '/health/ready']) {
      const probe = await fetch(`${url}${path}`, { headers: { 'x-request-id': 'probe-open' } });
      expect(probe.status, path).toBe(200);
      await probe.arrayBuffer();
    }
    for (const path of ['/metrics', '/health/detailed']) {
      const missing = await fetch(`${url}${path}`, { headers: { 'x-request-id': 'probe-missing' } });
      expect(missing.status, path).toBe(401);
      expect(missing.headers.get('www-authenticate'), path).toBe('Bearer');
      await missing.arrayBuffer();
      const wrong = await fetch(`${url}${path}`, {
        headers: { authorization: `Bearer ${TOKEN}-wrong`, 'x-request-id': 'probe-wrong' },
      });
      expect(wrong.status, path).toBe(401);
      expect(wrong.headers.get('www-authenticate'), path).toBe('Bearer');
      await wrong.arrayBuffer();
      const right = await fetch(`${url}${path}`, { headers: { ...auth, 'x-request-id': 'probe-right' } });
      expect(right.status, path).toBe(200);
      expect(right.headers.get('traceresponse'), path).toBeNull();
      await right.arrayBuffer();
    }
    const head = await fetch(`${url}/health/ready`, { method: 'HEAD', headers: auth });
    expect(head.status).toBe(200);

    // One recorded request after the probes: once its span is out, theirs would be too.
    const marker = await fetch(`${url}/orders/1`, { headers: { 'x-request-id': 'after-probes' } });
    expect(marker.status).toBe(200);
    await waitForSpan(sextant, (s) => s.spanContext().traceId === traceIdOf(marker));
    expect(sextant.tracing.finishedSpans().map((s) => s.name)).toEqual(['GET /orders/:id']);

    const exposition = await (await fetch(`${url}/metrics`, { headers: auth })).text();
    const count = 'http_server_request_duration_seconds_count';
    expect(sampleSum(exposition, count, {})).toBe(1);
    expect(sampleSum(exposition, count, { http_route: '/orders/:id' })).toBe(1);
    expect(sampleSum(exposition, count, { http_response_status_code: '401' })).toBe(0);
    expect(exposition).not.toMatch(/http_route="[^"]*(health|metrics)/);
    await waitFor(() =>
      logs.records().find((r) => r.request_id === 'after-probes' && r.msg === 'request completed'),
    );
    expect(logs.records().filter((r) => String(r.request_id ?? r.reqId).startsWith('probe-'))).toEqual([]);
  });
});

describe('endpoints off, on a Fastify built without sextantServerOptions', () => {
  const logs = collectLogs();
  let sextant: Sextant;
  let app: FastifyInstance;
  let url: string;

  beforeAll(async () => {
    sextant = createTestSextant(logs);
    app = fastify();
    await app.register(sextantFastify, { sextant, endpoints: false });
    app.get('/ping', async () => {
      const spanContext = trace.getActiveSpan()?.spanContext();
      return { request_id: getRequestId(), trace_id: spanContext?.traceId };
    });
    url = await listen(app);
  });
  afterAll(async () => {
    await app?.close();
    await sextant?.shutdown();
  });

  it('registers no endpoint routes', async () => {
    for (const path of ['/metrics', '/health', '/health/ready', '/health/detailed']) {
      expect((await fetch(`${url}${path}`)).status, path).toBe(404);
    }
  });

  it('still instruments every request', async () => {
    const response = await fetch(`${url}/ping`, { headers: { 'x-request-id': 'plain-1' } });
    expect(response.headers.get('x-request-id')).toBe('plain-1');
    expect(await response.json()).toEqual({ request_id: 'plain-1', trace_id: traceIdOf(response) });
    const span = await waitForSpan(sextant, (s) => s.spanContext().traceId === traceIdOf(response));
    expect(span.name).toBe('GET /ping');
  });
});

describe('request.log', () => {
  const logs = collectLogs();
  let sextant: Sextant;
  let app: FastifyInstance;
  let url: string;
  let childrenMade = 0;
  const seen: Record<string, unknown> = {};

  beforeAll(async () => {
    sextant = createTestSextant(logs);
    const options = sextantServerOptions(sextant);
    const factory = options.childLoggerFactory;
    app = fastify({
      ...options,
      childLoggerFactory(logger, bindings, childOptions) {
        const parentChild = logger.child.bind(logger);
        // Counts the real children the stand-in makes.
        const counted = Object.create(logger, {
          child: {
            value: (...args: Parameters<typeof logger.child>) => {
              childrenMade++;
              return parentChild(...args);
            },
          },
        });
        return factory(counted, bindings, childOptions);
      },
    });
    await app.register(sextantFastify, { sextant });
    app.get('/quiet', async () => ({ ok: true }));
    app.get('/chatty', async (request) => {
      request.log.info('first');
      request.log.warn({ item: 3 }, 'second');
      seen.level = request.log.level;
      seen.enabled = (request.log as unknown as { isLevelEnabled(level: string): boolean }).isLevelEnabled(
        'info',
      );
      seen.bindings = (request.log as unknown as { bindings(): Record<string, unknown> }).bindings();
      request.log.child({ step: 'nested' }).info('third');
      return { ok: true };
    });
    url = await listen(app);
  });
  afterAll(async () => {
    await app?.close();
    await sextant?.shutdown();
  });

  it('is made only when the request logs through it, and then works as Sextant’s logger does', async () => {
    for (let i = 0; i < 5; i++) expect((await fetch(`${url}/quiet`)).status).toBe(200);
    expect(childrenMade).toBe(0);

    const response = await fetch(`${url}/chatty`, { headers: { 'x-request-id': 'chatty-1' } });
    expect(response.status).toBe(200);
    expect(childrenMade).toBe(1);
    const traceId = traceIdOf(response);
    const records = await waitFor(() => {
      const found = logs.records().filter((r) => r.reqId === 'chatty-1' && r.msg !== 'request completed');
      return found.length === 3 ? found : undefined;
    });
    expect(records.map((r) => r.msg)).toEqual(['first', 'second', 'third']);
    for (const record of records) {
      expect(record.trace_id).toBe(traceId);
      expect(record.request_id).toBe('chatty-1');
    }
    expect(records[1]!.item).toBe(3);
    expect(records[2]!.step).toBe('nested');
    expect(seen).toMatchObject({ level: 'info', enabled: true, bindings: { reqId: 'chatty-1' } });
  });
});

describe("Fastify's request lines where the plugin's hooks do not run", () => {
  const logs = collectLogs();
  let sextant: Sextant;

  beforeAll(() => {
    sextant = createTestSextant(logs);
  });
  afterAll(async () => {
    await sextant?.shutdown();
  });

  async function linesOf(app: FastifyInstance, path: string, requestId: string): Promise<string[]> {
    const url = await listen(app);
    try {
      const response = await fetch(`${url}${path}`, { headers: { 'x-request-id': requestId } });
      expect(response.status).toBe(200);
      await response.text();
    } finally {
      // Closed, the server has written every line of its requests.
      await app.close();
    }
    return logs
      .records()
      .filter((r) => r.reqId === requestId)
      .map((r) => r.msg);
  }

  it('writes each line once with sextantServerOptions and no plugin', async () => {
    const app = fastify({ ...sextantServerOptions(sextant) });
    app.get('/plain', async () => 'ok');
    expect(await linesOf(app, '/plain', 'no-plugin-1')).toEqual(['incoming request', 'request completed']);
  });

  it('writes each line once for a route outside the context the plugin is registered in', async () => {
    const app = fastify({ ...sextantServerOptions(sextant) });
    app.get('/outside', async () => 'ok');
    await app.register(async (child) => {
      await child.register(sextantFastify, { sextant, endpoints: false });
      child.get('/inside', async () => 'ok');
    });
    expect(await linesOf(app, '/outside', 'outside-1')).toEqual(['incoming request', 'request completed']);
  });
});
