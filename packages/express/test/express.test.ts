import { setTimeout as sleep } from 'node:timers/promises';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { createSextant, ERROR_CODES, getRequestId, type Sextant, SextantConfigError } from '@sextant/core';
import express5 from 'express';
import express4 from 'express4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEndpointsHandler, createErrorHandler, createSextantMiddleware } from '../src/index.ts';
import { collectLines, listen, type RunningServer, serverSpanOf, waitFor } from './helpers.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const TOKEN = 'endpoint-token-123';

type Express = typeof express5;

/** Path syntax that differs between the majors. */
interface Syntax {
  wildcard: string;
  optionalExtension: string;
  /** A mount path with an optional parameter segment. */
  optionalMount: string;
  /** A mount path with a wildcard followed by a parameter. */
  wildcardMount: string;
}

const SYNTAX: Record<4 | 5, Syntax> = {
  5: {
    wildcard: '/files/*path',
    optionalExtension: '/download/:file{.:ext}',
    optionalMount: '/docs{/:lang}',
    wildcardMount: '/assets/*splat/v/:version',
  },
  4: {
    wildcard: '/files/*',
    optionalExtension: '/download/:file.:ext?',
    optionalMount: '/docs/:lang?',
    wildcardMount: '/assets/*/v/:version',
  },
};

function buildApp(express: Express, major: 4 | 5, sextant: Sextant) {
  const syntax = SYNTAX[major];
  const app = express();
  app.use(createSextantMiddleware(sextant, { ignore: (req) => req.path === '/ignored' }));
  app.use(createEndpointsHandler(sextant));

  app.get('/', (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/ignored', (_req, res) => {
    res.json({ ok: true });
  });

  // Three routers deep, a parameter at each level.
  const tasks = express.Router({ mergeParams: true });
  tasks.get('/tasks/:task', (req, res) => {
    sextant.logger.info({ task: req.params.task }, 'loading task');
    res.json({
      params: req.params,
      request_id: getRequestId(),
      trace_id: trace.getActiveSpan()?.spanContext().traceId,
    });
  });
  const org = express.Router({ mergeParams: true });
  org.get('/', (req, res) => {
    res.json({ org: (req.params as Record<string, string>).org });
  });
  org.use('/projects/:project', tasks);
  const api = express.Router();
  api.use('/orgs/:org', org);
  app.use('/api', api);

  const jobs = express.Router();
  jobs.post('/', (_req, res) => {
    res.status(202).json({ id: '1' });
  });
  jobs.get('/:id', (req, res) => {
    if (req.params.id === 'missing') res.status(404).json({ error: 'not found' });
    else res.json({ id: req.params.id });
  });
  jobs.post('/parsed', express.json(), (req, res) => {
    res.json(req.body);
  });
  app.use('/jobs', jobs);

  app.get(syntax.wildcard, (_req, res) => {
    res.json({ ok: true });
  });
  app.get(syntax.optionalExtension, (req, res) => {
    res.json(req.params);
  });
  app.get(/^\/regex\/(\d+)$/, (_req, res) => {
    res.json({ ok: true });
  });
  app.get(['/alias-a/:id', '/alias-b/:id'], (_req, res) => {
    res.json({ ok: true });
  });

  // Mount paths in each major's own syntax, a router nested inside the optional one.
  const pages = express.Router({ mergeParams: true });
  pages.get('/:page', (req, res) => {
    res.json(req.params);
  });
  const docs = express.Router({ mergeParams: true });
  docs.get('/', (req, res) => {
    res.json(req.params);
  });
  docs.use('/pages', pages);
  app.use(syntax.optionalMount, docs);
  const assets = express.Router({ mergeParams: true });
  assets.get('/:file', (req, res) => {
    res.json(req.params);
  });
  app.use(syntax.wildcardMount, assets);

  const versioned = express.Router();
  versioned.get('/items/:id', (_req, res) => {
    res.json({ ok: true });
  });
  app.use(['/v1', '/v2'], versioned);
  const revisions = express.Router();
  revisions.get('/items/:id', (_req, res) => {
    res.json({ ok: true });
  });
  app.use(/^\/rev\d+/, revisions);
  const shared = express.Router();
  shared.get('/ping/:n', (_req, res) => {
    res.json({ ok: true });
  });
  app.use('/first', shared);
  app.use('/second/:tenant', shared);

  const sub = express();
  sub.get('/status/:code', (_req, res) => {
    res.json({ ok: true });
  });
  app.use('/sub', sub);
  // A sub-application that is also run on its own, so it instruments itself.
  const standalone = express();
  standalone.use(createSextantMiddleware(sextant));
  standalone.get('/users/:id', (_req, res) => {
    res.json({ ok: true });
  });
  app.use('/admin', standalone);
  const failing = express();
  failing.get('/ok', (_req, res) => {
    res.json({ ok: true });
  });
  failing.get('/explode', () => {
    throw new Error('sub-app failure');
  });
  app.use('/failing', failing);

  // Reached through a function of the application's: invisible in the router tree.
  const wrapped = express.Router();
  wrapped.get('/hello/:name', (_req, res) => {
    res.json({ ok: true });
  });
  app.use('/wrapped', (req, res, next) => wrapped(req, res, next));

  app.get('/boom-sync', () => {
    throw new Error('sync kaboom');
  });
  app.get('/boom-async', async (_req, _res, next) => {
    await sleep(1);
    const error = new Error('async kaboom');
    // Express 5 forwards a rejected promise to the error handlers; Express 4 needs next(err).
    if (major === 5) throw error;
    next(error);
  });
  app.get('/boom-json', () => {
    throw new Error('answered by the app');
  });
  app.get('/teapot', (_req, res) => {
    res.status(418).json({ short: 'stout' });
  });
  app.get('/unavailable', (_req, res) => {
    res.status(503).json({ retry: true });
  });

  app.use(createErrorHandler(sextant));
  // The application's own error handler still answers: Sextant's handed the error on.
  app.use((error: Error, req: express5.Request, res: express5.Response, next: express5.NextFunction) => {
    if (req.path === '/boom-json') res.status(500).json({ error: error.message });
    else next(error);
  });
  return app;
}

function counts(exposition: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of exposition.split('\n')) {
    if (!line.startsWith('http_server_request_duration_seconds_count{')) continue;
    const labels = line.slice(line.indexOf('{') + 1, line.lastIndexOf('}'));
    const get = (name: string) => new RegExp(`${name}="([^"]*)"`).exec(labels)?.[1];
    const key = `${get('http_request_method')} ${get('http_route')} ${get('http_response_status_code')}`;
    found.set(key, (found.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return found;
}

describe.each([
  ['express 5', express5, 5 as const],
  ['express 4', express4, 4 as const],
])('%s', (_name, express, major) => {
  const logs = collectLines();
  let sextant: Sextant;
  let server: RunningServer;
  let app: ReturnType<typeof buildApp>;

  beforeAll(async () => {
    sextant = createSextant({
      serviceName: 'express-adapter-test',
      tracing: { exporter: 'memory' },
      logs: { destination: logs },
      endpoints: { prefix: '/internal', token: TOKEN },
      env: {},
    });
    app = buildApp(express, major, sextant);
    server = await listen(app);
  });

  afterAll(async () => {
    await server?.close();
    await sextant?.shutdown();
  });

  const get = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${server.url}${path}`, { headers });

  async function routeOf(path: string, init?: RequestInit) {
    const response = await fetch(`${server.url}${path}`, init);
    await response.arrayBuffer();
    const span = await serverSpanOf(sextant, response);
    return { status: response.status, route: span.attributes['http.route'], name: span.name, span };
  }

  it('names the span after the full template of routers nested three deep, with params at each level', async () => {
    const response = await get('/api/orgs/acme/projects/p-1/tasks/t-9?verbose=1');
    expect(response.status).toBe(200);
    const body = (await response.json()) as { params: Record<string, string> };
    expect(body.params).toEqual({ org: 'acme', project: 'p-1', task: 't-9' });
    const span = await serverSpanOf(sextant, response);
    expect(span.name).toBe('GET /api/orgs/:org/projects/:project/tasks/:task');
    expect(span.attributes['http.route']).toBe('/api/orgs/:org/projects/:project/tasks/:task');
    expect(span.attributes['url.path']).toBe('/api/orgs/acme/projects/p-1/tasks/t-9');
    expect(span.attributes['http.response.status_code']).toBe(200);
    expect(span.kind).toBe(SpanKind.SERVER);
  });

  it.each([
    ['/', '/'],
    ['/api/orgs/acme', '/api/orgs/:org'],
    ['/jobs/42', '/jobs/:id'],
    ['/files/a/b/c.txt', SYNTAX[major].wildcard],
    ['/download/report.pdf', SYNTAX[major].optionalExtension],
    ['/download/report', SYNTAX[major].optionalExtension],
    ['/regex/123', String(/^\/regex\/(\d+)$/)],
    ['/alias-a/1', '/alias-a/:id'],
    ['/alias-b/1', '/alias-b/:id'],
    ['/v1/items/7', '/v1/items/:id'],
    ['/v2/items/7', '/v2/items/:id'],
    ['/first/ping/1', '/first/ping/:n'],
    ['/second/acme/ping/1', '/second/:tenant/ping/:n'],
    ['/sub/status/ok', '/sub/status/:code'],
    // A regexp mount keeps its literal whole, closing slash included, as a regexp route does.
    ['/rev2/items/7', `${String(/^\/rev\d+/)}/items/:id`],
  ])('GET %s is recorded as %s', async (path, template) => {
    const { status, route, name } = await routeOf(path);
    expect(status).toBe(200);
    expect(route).toBe(template);
    expect(name).toBe(`GET ${template}`);
  });

  const mounted: Record<4 | 5, Array<[string, string, Record<string, unknown>]>> = {
    5: [
      ['/docs/en/pages/intro', '/docs{/:lang}/pages/:page', { lang: 'en', page: 'intro' }],
      ['/docs/en', '/docs{/:lang}', { lang: 'en' }],
      ['/docs', '/docs{/:lang}', {}],
      [
        '/assets/img/icons/v/3/logo.png',
        '/assets/*splat/v/:version/:file',
        { splat: ['img', 'icons'], version: '3', file: 'logo.png' },
      ],
    ],
    4: [
      ['/docs/en/pages/intro', '/docs/:lang?/pages/:page', { lang: 'en', page: 'intro' }],
      ['/docs/en', '/docs/:lang?', { lang: 'en' }],
      ['/docs', '/docs/:lang?', {}],
      [
        '/assets/img/icons/v/3/logo.png',
        '/assets/*/v/:version/:file',
        { 0: 'img/icons', version: '3', file: 'logo.png' },
      ],
    ],
  };

  it.each(mounted[major])(
    'joins a mount path in the major syntax with the route below it: GET %s is recorded as %s',
    async (path, template, params) => {
      const response = await get(path);
      expect(response.status).toBe(200);
      // The mount matched as the template says it does.
      expect(await response.json()).toEqual(params);
      const span = await serverSpanOf(sextant, response);
      expect(span.attributes['http.route']).toBe(template);
      expect(span.name).toBe(`GET ${template}`);
    },
  );

  it("takes client address and scheme from the socket, and from X-Forwarded-* only under 'trust proxy'", async () => {
    const forwarded = { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' };
    const direct = await serverSpanOf(sextant, await get('/', forwarded));
    expect(direct.attributes['client.address']).toMatch(/127\.0\.0\.1$/);
    expect(direct.attributes['url.scheme']).toBe('http');
    app.set('trust proxy', true);
    try {
      const proxied = await serverSpanOf(sextant, await get('/', forwarded));
      expect(proxied.attributes['client.address']).toBe('203.0.113.9');
      expect(proxied.attributes['url.scheme']).toBe('https');
    } finally {
      app.set('trust proxy', false);
    }
  });

  it('records the template of the route mounted at / of a router (POST /jobs → /jobs)', async () => {
    const { status, route, name } = await routeOf('/jobs', { method: 'POST' });
    expect(status).toBe(202);
    expect(route).toBe('/jobs');
    expect(name).toBe('POST /jobs');
  });

  it('finds a route registered after the first requests were served', async () => {
    app.get('/late/:id', (_req, res) => {
      res.json({ late: true });
    });
    // Express 4 and 5 answer 404 from their final handler after the stack ran out, so a route
    // added now is still reached (it lands after the error handlers, which only see errors).
    const { status, route } = await routeOf('/late/3');
    expect(status).toBe(200);
    expect(route).toBe('/late/:id');
  });

  it('records a route it cannot place under its mount by its own path, and warns once', async () => {
    for (const name of ['a', 'b']) {
      const { status, route } = await routeOf(`/wrapped/hello/${name}`);
      expect(status).toBe(200);
      expect(route).toBe('/hello/:name');
    }
    const warnings = logs
      .records()
      .filter((r) => r.code === 'SEXTANT_EXPRESS_ROUTE_UNPLACED' && r.http_route === '/hello/:name');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.level).toBe('warn');
  });

  it('learns a sub-application from the first request it answers, even if an earlier one failed in it', async () => {
    // The error left the sub-application before the response: nothing showed where it is mounted.
    const early = await routeOf('/failing/explode');
    expect(early.status).toBe(500);
    expect(early.route).toBe('/explode');
    expect((await routeOf('/failing/ok')).route).toBe('/failing/ok');
    const later = await routeOf('/failing/explode');
    expect(later.status).toBe(500);
    expect(later.route).toBe('/failing/explode');
  });

  it('gives requests that match no route no template: span named by method, one shared metric label', async () => {
    const { status, route, name } = await routeOf('/no/such/path/123');
    expect(status).toBe(404);
    expect(route).toBeUndefined();
    expect(name).toBe('GET');
  });

  it('keeps the route template on a 404 answered by a matched route, and a 4xx is not an error', async () => {
    const missing = await routeOf('/jobs/missing');
    expect(missing.status).toBe(404);
    expect(missing.route).toBe('/jobs/:id');
    expect(missing.span.status.code).toBe(SpanStatusCode.UNSET);
    const teapot = await routeOf('/teapot');
    expect(teapot.status).toBe(418);
    expect(teapot.span.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('marks a 5xx answer as an error of the server span', async () => {
    const { status, span } = await routeOf('/unavailable');
    expect(status).toBe(503);
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.attributes['error.type']).toBe('503');
  });

  it.each([
    ['/boom-sync', 'sync kaboom'],
    ['/boom-async', 'async kaboom'],
  ])(
    'records the error of %s on the span, logs it once with the ids, and lets Express answer 500',
    async (path, message) => {
      const response = await get(path, { 'x-request-id': `err${path}` });
      expect(response.status).toBe(500);
      // Express's default handler answered, as it would without Sextant.
      expect(response.headers.get('content-type')).toContain('text/html');
      await response.arrayBuffer();
      const span = await serverSpanOf(sextant, response);
      expect(span.name).toBe(`GET ${path}`);
      expect(span.status.code).toBe(SpanStatusCode.ERROR);
      const exception = span.events.find((event) => event.name === 'exception');
      expect(exception?.attributes?.['exception.message']).toBe(message);
      expect(exception?.attributes?.['exception.type']).toBe('Error');

      const failures = logs
        .records()
        .filter((r) => r.request_id === `err${path}` && r.msg === 'request failed');
      expect(failures).toHaveLength(1);
      expect(failures[0]!.level).toBe('error');
      expect(failures[0]!.trace_id).toBe(span.spanContext().traceId);
      expect(failures[0]!.span_id).toBe(span.spanContext().spanId);
    },
  );

  it("leaves the answer to the application's own error handler", async () => {
    const response = await get('/boom-json');
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ error: 'answered by the app' });
    const span = await serverSpanOf(sextant, response);
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.events.some((event) => event.name === 'exception')).toBe(true);
  });

  it('records a client error raised by middleware (malformed JSON) without making it a server error', async () => {
    const response = await fetch(`${server.url}/jobs/parsed`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'bad-json' },
      body: '{"type":',
    });
    expect(response.status).toBe(400);
    await response.arrayBuffer();
    const span = await serverSpanOf(sextant, response);
    expect(span.attributes['http.route']).toBe('/jobs/parsed');
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
    expect(span.events.some((event) => event.name === 'exception')).toBe(true);
    const records = logs.records().filter((r) => r.request_id === 'bad-json' && r.msg === 'request rejected');
    expect(records.map((r) => r.level)).toEqual(['warn']);
  });

  it('continues an incoming trace and runs handlers in the request context, echoing the request id', async () => {
    const response = await get('/api/orgs/o/projects/p/tasks/t', {
      traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`,
      'x-request-id': 'req-express-1',
    });
    expect(response.headers.get('x-request-id')).toBe('req-express-1');
    expect(response.headers.get('traceresponse')).toMatch(new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`));
    const body = (await response.json()) as { request_id: string; trace_id: string };
    expect(body.request_id).toBe('req-express-1');
    expect(body.trace_id).toBe(TRACE_ID);
    const span = await serverSpanOf(sextant, response);
    expect(span.spanContext().traceId).toBe(TRACE_ID);
    expect(span.parentSpanContext?.spanId).toBe(PARENT_ID);

    const handlerRecord = await waitFor(
      () => logs.records().find((r) => r.request_id === 'req-express-1' && r.msg === 'loading task'),
      'the handler log record',
    );
    expect(handlerRecord.trace_id).toBe(TRACE_ID);
    expect(handlerRecord.span_id).toBe(span.spanContext().spanId);
  });

  it.each([
    ['no traceparent', undefined],
    ['a malformed traceparent', `00-${TRACE_ID}-not-a-span-id-01`],
    ['a traceparent with an all-zero trace id', `00-${'0'.repeat(32)}-${PARENT_ID}-01`],
  ])('starts a fresh trace, with no parent span, on %s', async (_case, traceparent) => {
    const response = await get('/api/orgs/o/projects/p/tasks/fresh', traceparent ? { traceparent } : {});
    expect(response.status).toBe(200);
    const body = (await response.json()) as { trace_id: string };
    const span = await serverSpanOf(sextant, response);
    const { traceId } = span.spanContext();
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(traceId).not.toBe(TRACE_ID);
    expect(traceId).not.toBe('0'.repeat(32));
    expect(body.trace_id).toBe(traceId);
    expect(span.parentSpanContext).toBeUndefined();
  });

  it('generates a request id when none (or an unsafe one) is sent', async () => {
    const plain = await get('/');
    const unsafe = await get('/', { 'x-request-id': 'evil<script>"id"</script>' });
    const generated = plain.headers.get('x-request-id');
    expect(generated).toMatch(/^[\w-]{8,}$/);
    expect(unsafe.headers.get('x-request-id')).not.toContain('evil');
    expect(unsafe.headers.get('x-request-id')).not.toBe(generated);
  });

  it('records nothing for requests the ignore option names', async () => {
    const before = sextant.tracing.finishedSpans().length;
    const response = await get('/ignored');
    expect(response.status).toBe(200);
    expect(response.headers.get('x-request-id')).toBeNull();
    expect(response.headers.get('traceresponse')).toBeNull();
    await get('/');
    await waitFor(() => (sextant.tracing.finishedSpans().length > before ? true : undefined), 'a span');
    const paths = sextant.tracing
      .finishedSpans()
      .slice(before)
      .map((span) => span.attributes['url.path']);
    expect(paths).not.toContain('/ignored');
  });

  it('serves the endpoints under the configured prefix, behind the token, and leaves them out of telemetry', async () => {
    const unauthorised = await get('/internal/metrics');
    expect(unauthorised.status).toBe(401);
    expect(unauthorised.headers.get('www-authenticate')).toBe('Bearer');
    const auth = { authorization: `Bearer ${TOKEN}` };
    for (const probe of ['/internal/health', '/internal/health/ready', '/internal/health/detailed']) {
      const response = await get(probe, auth);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toContain('application/json');
      expect(response.headers.get('x-request-id')).toBeTruthy();
    }
    const head = await fetch(`${server.url}/internal/health/ready`, { method: 'HEAD', headers: auth });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    // Without the prefix the path is the application's: here it matches nothing.
    expect((await get('/metrics', auth)).status).toBe(404);

    const metrics = await get('/internal/metrics', auth);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    const found = counts(await metrics.text());
    expect(found.get('GET /api/orgs/:org/projects/:project/tasks/:task 200')).toBeGreaterThanOrEqual(2);
    expect(found.get('POST /jobs 202')).toBe(1);
    expect(found.get('GET /jobs/:id 404')).toBe(1);
    expect(found.get('GET _unmatched 404')).toBeGreaterThanOrEqual(2);
    expect(found.get('GET /boom-sync 500')).toBe(1);
    for (const key of found.keys()) expect(key).not.toMatch(/internal|metrics|health|acme|ignored|no\/such/);
    const endpointSpans = sextant.tracing
      .finishedSpans()
      .filter((span) => String(span.attributes['url.path']).startsWith('/internal'));
    expect(endpointSpans).toEqual([]);
  });

  it('records a request once when a mounted sub-application has its own middleware', async () => {
    const response = await get('/admin/users/7', { 'x-request-id': 'nested-1' });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-request-id')).toBe('nested-1');
    await response.arrayBuffer();
    const span = await serverSpanOf(sextant, response);
    expect(span.attributes['http.route']).toBe('/admin/users/:id');
    const metrics = await get('/internal/metrics', { authorization: `Bearer ${TOKEN}` });
    expect(counts(await metrics.text()).get('GET /admin/users/:id 200')).toBe(1);
    const records = logs
      .records()
      .filter((r) => r.request_id === 'nested-1' && r.msg === 'request completed');
    expect(records).toHaveLength(1);
    const spans = sextant.tracing
      .finishedSpans()
      .filter((s) => s.attributes['url.path'] === '/admin/users/7');
    expect(spans).toHaveLength(1);
  });

  it('logs one access record per request with the route template', async () => {
    const response = await get('/jobs/77', { 'x-request-id': 'access-1' });
    await response.arrayBuffer();
    const record = await waitFor(
      () => logs.records().find((r) => r.request_id === 'access-1' && r.msg === 'request completed'),
      'the access record',
    );
    expect(record.http_route).toBe('/jobs/:id');
    expect(record.http_response_status_code).toBe(200);
    expect(
      logs.records().filter((r) => r.request_id === 'access-1' && r.msg === 'request completed'),
    ).toHaveLength(1);
  });
});

describe('options', () => {
  let sextant: Sextant;
  beforeAll(() => {
    sextant = createSextant({ tracing: { enabled: false }, logs: { destination: collectLines() }, env: {} });
  });
  afterAll(async () => {
    await sextant?.shutdown();
  });

  function thrown(fn: () => unknown): SextantConfigError {
    try {
      fn();
    } catch (error) {
      if (error instanceof SextantConfigError) return error;
      throw error;
    }
    throw new Error('expected a SextantConfigError');
  }

  it('rejects anything but a Sextant instance, naming the factory', () => {
    for (const factory of [createSextantMiddleware, createErrorHandler, createEndpointsHandler]) {
      const error = thrown(() => (factory as (value: unknown) => unknown)({ http: {} }));
      expect(error.code).toBe(ERROR_CODES.INVALID_OPTION);
      expect(error.message).toBe(
        `@sextant/express: ${factory.name}() expects the instance returned by createSextant() from @sextant/core, got an object`,
      );
    }
  });

  it('rejects unknown options and an ignore that is not a function, with coded messages', () => {
    const unknown = thrown(() => createSextantMiddleware(sextant, { ignroe: () => true } as never));
    expect(unknown.code).toBe(ERROR_CODES.INVALID_OPTION);
    expect(unknown.message).toBe('@sextant/express: unknown option "ignroe"; known options: ignore');
    const ignore = thrown(() => createSextantMiddleware(sextant, { ignore: '/health' } as never));
    expect(ignore.message).toBe(
      '@sextant/express: ignore must be a function (req) => boolean, got string /health',
    );
    const notObject = thrown(() => createSextantMiddleware(sextant, 'x' as never));
    expect(notObject.message).toBe('@sextant/express: options must be an object, got string x');
  });

  it('reports a throwing ignore hook and records the request as usual', async () => {
    const app = express5();
    app.use(
      createSextantMiddleware(sextant, {
        ignore: () => {
          throw new Error('hook bug');
        },
      }),
    );
    app.get('/', (_req, res) => {
      res.json({ ok: true });
    });
    const server = await listen(app);
    try {
      const response = await fetch(server.url);
      expect(response.status).toBe(200);
      expect(response.headers.get('x-request-id')).toBeTruthy();
      expect(sextant.errors.counts().get('express_ignore')).toBe(1);
    } finally {
      await server.close();
    }
  });
});
