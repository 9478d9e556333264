import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig, type SextantEndpointsOptions } from './config.ts';
import { createEndpoints, type EndpointRequest, type Endpoints, type MetricsSource } from './endpoints.ts';
import { createHealth, down, type Health, up } from './health.ts';
import { createInternalErrorSink, type InternalErrorSink } from './internal-errors.ts';

const PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8';
const METRICS_BODY = '# TYPE sextant_test_total counter\nsextant_test_total 1\n';
const JSON_TYPE = 'application/json; charset=utf-8';

/** Stands in for the prom-client module (tested on its own): fixed text, and the Accept it was given. */
function fixedMetrics(): MetricsSource & { accepts: (string | undefined)[] } {
  const accepts: (string | undefined)[] = [];
  return {
    accepts,
    async render(accept) {
      accepts.push(accept);
      return { contentType: PROMETHEUS_TEXT, body: METRICS_BODY };
    },
  };
}

const healths: Health[] = [];

afterEach(() => {
  for (const health of healths.splice(0)) health.close();
});

function setup(endpoints: SextantEndpointsOptions = {}, metrics: MetricsSource = fixedMetrics()) {
  const { config } = resolveConfig({ env: {}, endpoints });
  const sink: InternalErrorSink = createInternalErrorSink({ intervalMs: 60_000, writer: () => {} });
  const health = createHealth(config, sink, { name: 'orders-api', version: '2.0.0' });
  healths.push(health);
  return { endpoints: createEndpoints(config, sink, { metrics, health }), health, sink };
}

function get(path: string, headers: EndpointRequest['headers'] = {}, method = 'GET'): EndpointRequest {
  return { method, path, headers };
}

describe('paths and match', () => {
  it('serves the four endpoints at their default paths', () => {
    const { endpoints } = setup();
    expect(endpoints.paths).toEqual({
      metrics: '/metrics',
      liveness: '/health',
      readiness: '/health/ready',
      detailed: '/health/detailed',
    });
    expect(endpoints.match('/metrics')).toBe('metrics');
    expect(endpoints.match('/health')).toBe('liveness');
    expect(endpoints.match('/health/ready')).toBe('readiness');
    expect(endpoints.match('/health/detailed')).toBe('detailed');
  });

  it('puts every path under the prefix', () => {
    const { endpoints } = setup({ prefix: '/internal/ops' });
    expect(Object.values(endpoints.paths)).toEqual([
      '/internal/ops/metrics',
      '/internal/ops/health',
      '/internal/ops/health/ready',
      '/internal/ops/health/detailed',
    ]);
    expect(endpoints.match('/internal/ops/health/ready')).toBe('readiness');
    expect(endpoints.match('/health/ready')).toBeUndefined();
    expect(endpoints.match('/metrics')).toBeUndefined();
  });

  it('ignores the query string and accepts a trailing slash', () => {
    const { endpoints } = setup();
    expect(endpoints.match('/metrics?name[]=http_server_active_requests')).toBe('metrics');
    expect(endpoints.match('/health/ready?probe=kubelet')).toBe('readiness');
    expect(endpoints.match('/health/')).toBe('liveness');
    expect(endpoints.match('/health/ready/?x=1')).toBe('readiness');
  });

  it.each(['/', '/healthz', '/health/ready/now', '/metrics2', '/Metrics', '/health//', ''])(
    'matches nothing at %j',
    (path) => {
      const { endpoints } = setup();
      expect(endpoints.match(path)).toBeUndefined();
      expect(endpoints.isEndpointPath(path)).toBe(false);
    },
  );

  it('names endpoint paths for the request metrics to skip, even detached from the object', () => {
    const { endpoints } = setup();
    const { isEndpointPath } = endpoints;
    expect(isEndpointPath('/health/detailed')).toBe(true);
    expect(isEndpointPath('/metrics?x=1')).toBe(true);
    expect(isEndpointPath('/users/1')).toBe(false);
  });
});

describe('handle', () => {
  it('serves metrics as the source renders them, passing the Accept header on', async () => {
    const metrics = fixedMetrics();
    const { endpoints } = setup({}, metrics);

    const response = await endpoints.handle(
      'metrics',
      get('/metrics', { accept: 'application/openmetrics-text' }),
    );
    await endpoints.handle(
      'metrics',
      get('/metrics', { accept: ['text/plain', 'application/openmetrics-text'] }),
    );
    await endpoints.handle('metrics', get('/metrics'));

    expect(response).toEqual({
      statusCode: 200,
      headers: { 'content-type': PROMETHEUS_TEXT, 'cache-control': 'no-store' },
      body: METRICS_BODY,
    });
    expect(metrics.accepts).toEqual([
      'application/openmetrics-text',
      'text/plain, application/openmetrics-text',
      undefined,
    ]);
  });

  it('serves liveness as JSON', async () => {
    const { endpoints } = setup();
    const response = await endpoints.handle('liveness', get('/health'));
    expect(response).toEqual({
      statusCode: 200,
      headers: { 'content-type': JSON_TYPE, 'cache-control': 'no-store' },
      body: '{"status":"ok"}',
    });
  });

  it('serves readiness: 200, then 503 when a critical check fails, then 503 shutting down', async () => {
    const { endpoints, health } = setup();
    const ok = await endpoints.handle('readiness', get('/health/ready'));
    expect(ok.statusCode).toBe(200);
    expect(ok.headers).toEqual({ 'content-type': JSON_TYPE, 'cache-control': 'no-store' });
    expect(JSON.parse(ok.body)).toEqual({ status: 'ok', checks: [] });

    const unregister = health.register({ name: 'db', check: () => down('connection refused') });
    const failing = await endpoints.handle('readiness', get('/health/ready'));
    expect(failing.statusCode).toBe(503);
    expect(JSON.parse(failing.body)).toEqual({
      status: 'unavailable',
      checks: [{ name: 'db', status: 'down' }],
    });

    unregister();
    health.markShuttingDown();
    const closing = await endpoints.handle('readiness', get('/health/ready'));
    expect(closing.statusCode).toBe(503);
    expect(JSON.parse(closing.body)).toEqual({ status: 'shutting_down' });
  });

  it('serves readiness without reasons or details, which stay in the detailed report', async () => {
    const { endpoints, health } = setup();
    const leak = 'password authentication failed for user "orders_admin" at db-primary.internal.corp:5432';
    health.register({
      name: 'db',
      check: async () => {
        throw new Error(leak);
      },
    });
    health.register({ name: 'cache', check: () => up({ host: 'redis-0.internal.corp' }) });

    const ready = await endpoints.handle('readiness', get('/health/ready'));

    expect(ready.statusCode).toBe(503);
    expect(JSON.parse(ready.body)).toEqual({
      status: 'unavailable',
      checks: [
        { name: 'db', status: 'down' },
        { name: 'cache', status: 'up' },
      ],
    });
    expect(ready.body).not.toContain('orders_admin');
    expect(ready.body).not.toContain('internal.corp');

    const detailed = JSON.parse((await endpoints.handle('detailed', get('/health/detailed'))).body);
    expect(detailed.checks).toContainEqual(expect.objectContaining({ name: 'db', reason: leak }));
    expect(detailed.checks).toContainEqual(
      expect.objectContaining({ name: 'cache', details: { host: 'redis-0.internal.corp' } }),
    );
  });

  it('serves the detailed report as JSON', async () => {
    const { endpoints } = setup();
    const response = await endpoints.handle('detailed', get('/health/detailed'));
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe(JSON_TYPE);
    const body = JSON.parse(response.body);
    expect(body).toMatchObject({ status: 'ok', service: 'orders-api', version: '2.0.0' });
    expect(body.checks.map((check: { name: string }) => check.name)).toEqual(['event_loop', 'memory']);
  });

  it('keeps the detailed report when a check returns details JSON cannot represent', async () => {
    const { endpoints, health, sink } = setup();
    health.register({ name: 'queue', critical: false, check: () => down('stalled', { depth: 10n }) });

    const response = await endpoints.handle('detailed', get('/health/detailed'));

    expect(response.statusCode).toBe(200);
    const queue = JSON.parse(response.body).checks.find((check: { name: string }) => check.name === 'queue');
    expect(queue).toMatchObject({ name: 'queue', status: 'down', reason: 'stalled' });
    expect(queue).not.toHaveProperty('details');
    expect(sink.counts().get('endpoints')).toBe(1);
  });

  it('answers HEAD with the status and headers of GET and no body', async () => {
    const { endpoints, health } = setup();
    health.register({ name: 'db', check: () => down('connection refused') });
    for (const [name, path] of Object.entries(endpoints.paths) as [
      Parameters<Endpoints['handle']>[0],
      string,
    ][]) {
      const viaGet = await endpoints.handle(name, get(path));
      const viaHead = await endpoints.handle(name, get(path, {}, 'HEAD'));
      expect(viaHead).toEqual({ statusCode: viaGet.statusCode, headers: viaGet.headers, body: '' });
      expect(viaGet.body).not.toBe('');
    }
  });

  it.each(['POST', 'PUT', 'DELETE', 'OPTIONS', 'get'])(
    'answers %s with 405 and the allowed methods',
    async (method) => {
      const { endpoints } = setup();
      for (const name of ['metrics', 'liveness', 'readiness', 'detailed'] as const) {
        const response = await endpoints.handle(name, get(endpoints.paths[name], {}, method));
        expect(response.statusCode).toBe(405);
        expect(response.headers).toEqual({
          'content-type': JSON_TYPE,
          'cache-control': 'no-store',
          allow: 'GET, HEAD',
        });
      }
    },
  );

  it('answers 500 with a short body and reports when the metrics source throws or rejects', async () => {
    const throwing: MetricsSource = {
      render() {
        throw new Error('registry exploded');
      },
    };
    const { endpoints, sink } = setup({}, throwing);

    const response = await endpoints.handle('metrics', get('/metrics'));
    const head = await endpoints.handle('metrics', get('/metrics', {}, 'HEAD'));

    expect(response).toEqual({
      statusCode: 500,
      headers: { 'content-type': JSON_TYPE, 'cache-control': 'no-store' },
      body: '{"error":"internal error"}',
    });
    expect(head).toMatchObject({ statusCode: 500, body: '' });
    expect(sink.counts().get('endpoints')).toBe(2);

    const rejecting = setup({}, { render: () => Promise.reject(new Error('collect failed')) });
    expect((await rejecting.endpoints.handle('metrics', get('/metrics'))).statusCode).toBe(500);
    expect(rejecting.sink.counts().get('endpoints')).toBe(1);
  });

  it('answers 500 and reports for a name it does not serve', async () => {
    const { endpoints, sink } = setup();
    const response = await endpoints.handle('dashboard' as 'metrics', get('/dashboard'));
    expect(response.statusCode).toBe(500);
    expect(sink.counts().get('endpoints')).toBe(1);
  });
});

describe('bearer token', () => {
  const token = 's3cr3t-token-value';

  it.each([
    ['missing', {}],
    ['wrong', { authorization: 'Bearer not-the-token' }],
    ['a prefix of the right one', { authorization: 'Bearer s3cr3t' }],
    ['the right one with another scheme', { authorization: `Basic ${token}` }],
    ['the bare token', { authorization: token }],
    ['sent twice', { authorization: [`Bearer ${token}`, `Bearer ${token}`] }],
  ])('refuses a token that is %s with 401 on the metrics and the detailed report', async (_case, headers) => {
    const { endpoints } = setup({ token });
    for (const name of ['metrics', 'detailed'] as const) {
      const response = await endpoints.handle(name, get(endpoints.paths[name], headers));
      expect(response.statusCode).toBe(401);
      expect(response.headers['www-authenticate']).toBe('Bearer');
      expect(response.headers['cache-control']).toBe('no-store');
      expect(response.body).not.toContain('sextant_test_total');
    }
  });

  it('serves a request with the right token, whatever the case of the scheme', async () => {
    const { endpoints } = setup({ token });
    const response = await endpoints.handle('metrics', get('/metrics', { authorization: `Bearer ${token}` }));
    expect(response).toMatchObject({ statusCode: 200, body: METRICS_BODY });
    const lowercase = await endpoints.handle(
      'detailed',
      get('/health/detailed', { authorization: `bearer ${token}` }),
    );
    expect(lowercase.statusCode).toBe(200);
  });

  it.each([
    ['no header', {}],
    ['a wrong token', { authorization: 'Bearer not-the-token' }],
  ])('serves liveness and readiness to a probe with %s', async (_case, headers) => {
    const { endpoints, health } = setup({ token });
    // A Kubernetes probe sends no header, and a liveness 401 would get the pod restarted.
    const live = await endpoints.handle('liveness', get('/health', headers));
    expect(live).toMatchObject({ statusCode: 200, body: '{"status":"ok"}' });
    expect(live.headers).not.toHaveProperty('www-authenticate');
    expect((await endpoints.handle('readiness', get('/health/ready', headers))).statusCode).toBe(200);

    health.register({ name: 'db', check: () => down('connection refused to db-primary.internal.corp') });
    const failing = await endpoints.handle('readiness', get('/health/ready', headers));
    expect(failing.statusCode).toBe(503);
    expect(JSON.parse(failing.body)).toEqual({
      status: 'unavailable',
      checks: [{ name: 'db', status: 'down' }],
    });
  });

  it('checks the token before the method', async () => {
    const { endpoints } = setup({ token });
    expect((await endpoints.handle('metrics', get('/metrics', {}, 'POST'))).statusCode).toBe(401);
  });

  it('asks for no token when none is configured', async () => {
    const { endpoints } = setup();
    expect(
      (await endpoints.handle('metrics', get('/metrics', { authorization: 'Bearer anything' }))).statusCode,
    ).toBe(200);
  });
});

describe('mounted on a real HTTP server', () => {
  it('answers over the wire, with the query string and HEAD', async () => {
    const { endpoints } = setup({ prefix: '/ops', token: 'tkn' });
    const server = createServer((req, res) => {
      const name = endpoints.match(req.url ?? '/');
      if (!name) {
        res.writeHead(404).end();
        return;
      }
      void endpoints
        .handle(name, { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers })
        .then((response) => res.writeHead(response.statusCode, response.headers).end(response.body));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const auth = { authorization: 'Bearer tkn' };
      const ready = await fetch(`${base}/ops/health/ready?probe=1`);
      expect(ready.status).toBe(200);
      expect(ready.headers.get('content-type')).toBe(JSON_TYPE);
      expect(await ready.json()).toEqual({ status: 'ok', checks: [] });

      const head = await fetch(`${base}/ops/metrics`, { method: 'HEAD', headers: auth });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-type')).toBe(PROMETHEUS_TEXT);
      expect(await head.text()).toBe('');

      for (const path of ['/ops/metrics', '/ops/health/detailed']) {
        const refused = await fetch(`${base}${path}`);
        expect(refused.status).toBe(401);
        expect(refused.headers.get('www-authenticate')).toBe('Bearer');
        await refused.arrayBuffer();
      }
      expect((await fetch(`${base}/ops/health/detailed`, { headers: auth })).status).toBe(200);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
