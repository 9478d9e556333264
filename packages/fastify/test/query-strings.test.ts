import type { AddressInfo } from 'node:net';
import type { Sextant } from '@sextant/core';
import fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sextantFastify, sextantServerOptions } from '../src/index.ts';
import { collectLogs, createTestSextant, type LogRecord, waitFor } from './helpers.ts';

// Values no redaction pattern recognises: only cutting the query keeps them out.
const SECRETS = ['OAUTH-CODE-789', 'STATE-456', 'SIGNATURE-0123'];
const QUERY = `?code=${SECRETS[0]}&state=${SECRETS[1]}&X-Amz-Signature=${SECRETS[2]}`;

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

function addRoutes(app: FastifyInstance): void {
  app.get('/oauth/callback', async () => {
    throw new Error('token exchange failed');
  });
  app.get('/oauth/refused', async () => {
    throw Object.assign(new Error('grant refused'), { statusCode: 400 });
  });
  app.get('/private', { config: { sextant: false } }, async () => {
    throw new Error('private failure');
  });
}

function expectNoQueryValue(records: LogRecord[]): void {
  for (const record of records) {
    const line = JSON.stringify(record);
    for (const secret of SECRETS) expect(line).not.toContain(secret);
  }
}

describe.each([
  ['on', true],
  ['off', false],
])("query strings in Fastify's lines, the access log %s", (_label, accessLog) => {
  const logs = collectLogs();
  let sextant: Sextant;
  let app: FastifyInstance;
  let url: string;

  beforeAll(async () => {
    sextant = createTestSextant(logs, { logs: { destination: logs, accessLog } });
    app = fastify({ ...sextantServerOptions(sextant) });
    await app.register(sextantFastify, { sextant });
    addRoutes(app);
    url = await listen(app);
  });
  afterAll(async () => {
    await app?.close();
    await sextant?.shutdown();
  });

  /** The lines of one request, once the last of them (Sextant's or Fastify's "request completed") is out. */
  async function linesOf(path: string, requestId: string, status: number): Promise<LogRecord[]> {
    const response = await fetch(`${url}${path}${QUERY}`, { headers: { 'x-request-id': requestId } });
    expect(response.status).toBe(status);
    await response.text();
    const ofRequest = (r: LogRecord) => r.request_id === requestId || r.reqId === requestId;
    await waitFor(() => logs.records().find((r) => ofRequest(r) && r.msg === 'request completed'));
    return logs.records().filter(ofRequest);
  }

  it('names the path only, never the query, for a request that matched no route', async () => {
    const records = await linesOf('/auth/callbak', `not-found-${_label}`, 404);
    expectNoQueryValue(records);
    if (accessLog) {
      // Sextant's access record says what "Route GET:/auth/callbak not found" would.
      expect(records.map((r) => r.msg)).toEqual(['request completed']);
      expect(records[0]).toMatchObject({
        url_path: '/auth/callbak',
        http_route: '_unmatched',
        http_response_status_code: 404,
      });
    } else {
      expect(records.map((r) => r.msg)).toEqual([
        'incoming request',
        'Route GET:/auth/callbak not found',
        'request completed',
      ]);
      expect(records[0]!.req).toMatchObject({ method: 'GET', url: '/auth/callbak' });
    }
  });

  it("keeps Fastify's error record of a 5xx, its req.url the path only", async () => {
    const records = await linesOf('/oauth/callback', `server-error-${_label}`, 500);
    expectNoQueryValue(records);
    const failed = records.find((r) => r.msg === 'token exchange failed');
    expect(failed).toMatchObject({
      level: 'error',
      req: { method: 'GET', url: '/oauth/callback' },
      res: { statusCode: 500 },
      err: { message: 'token exchange failed' },
    });
    expect(records.map((r) => r.msg)).toEqual(
      accessLog
        ? ['token exchange failed', 'request completed']
        : ['incoming request', 'token exchange failed', 'request completed'],
    );
    if (accessLog) expect(records[1]).toMatchObject({ url_path: '/oauth/callback', level: 'error' });
    else expect(records[0]!.req).toMatchObject({ url: '/oauth/callback' });
  });

  it('cuts the query from the lines of a route Sextant leaves out', async () => {
    const records = await linesOf('/private', `private-${_label}`, 500);
    expectNoQueryValue(records);
    expect(records.map((r) => r.msg)).toEqual(['incoming request', 'private failure', 'request completed']);
    expect(records[0]!.req).toMatchObject({ method: 'GET', url: '/private' });
    expect(records[1]!.req).toMatchObject({ method: 'GET', url: '/private' });
  });

  it('writes no query value in any line of the server', () => {
    expect(logs.records().length).toBeGreaterThan(0);
    expectNoQueryValue(logs.records());
  });
});

describe("Fastify's lines where Sextant is not involved", () => {
  const logs = collectLogs();
  let sextant: Sextant;

  beforeAll(() => {
    sextant = createTestSextant(logs);
  });
  afterAll(async () => {
    await sextant?.shutdown();
  });

  /** What is compared: the lines' level, message and the fields Fastify's serializers make. */
  function shape(record: LogRecord) {
    return {
      level: record.level,
      msg: record.msg,
      req: record.req && { method: record.req.method, url: record.req.url },
      res: record.res,
      err: record.err?.message,
    };
  }

  async function linesOf(app: FastifyInstance, name: string): Promise<Array<ReturnType<typeof shape>>> {
    addRoutes(app);
    const url = await listen(app);
    const cases = [
      ['/auth/callbak', 404],
      ['/oauth/callback', 500],
      ['/oauth/refused', 400],
    ] as const;
    try {
      for (const [path, status] of cases) {
        const response = await fetch(`${url}${path}${QUERY}`, {
          headers: { 'x-request-id': `${name}${path}` },
        });
        expect(response.status).toBe(status);
        await response.text();
      }
    } finally {
      // Closed, the server has written every line of its requests.
      await app.close();
    }
    return logs
      .records()
      .filter((r) => String(r.reqId).startsWith(`${name}/`))
      .map(shape);
  }

  it("are the lines of Fastify's own LogController, with the query cut", async () => {
    const options = sextantServerOptions(sextant);
    const own = await linesOf(
      fastify({ loggerInstance: options.loggerInstance, genReqId: options.genReqId }),
      'fastify',
    );
    const ours = await linesOf(fastify({ ...options }), 'sextant');

    // Fastify's own controller writes the query: the comparison below would otherwise prove nothing.
    expect(JSON.stringify(own)).toContain(SECRETS[0]);
    expect(own.map((r) => r.msg)).toEqual([
      'incoming request',
      `Route GET:/auth/callbak${QUERY} not found`,
      'request completed',
      'incoming request',
      'token exchange failed',
      'request completed',
      'incoming request',
      'grant refused',
      'request completed',
    ]);
    const cut = (text: string) => text.replace(/\?\S*/, '');
    expect(ours).toEqual(
      own.map((record) => ({
        ...record,
        msg: cut(record.msg),
        req: record.req && { ...record.req, url: cut(record.req.url) },
      })),
    );
    expectNoQueryValue(logs.records().filter((r) => String(r.reqId).startsWith('sextant/')));
  });

  it('still writes none of them under disableRequestLogging', async () => {
    const quiet = await linesOf(
      fastify({ ...sextantServerOptions(sextant, { disableRequestLogging: true }) }),
      'quiet',
    );
    expect(quiet).toEqual([]);
  });
});
