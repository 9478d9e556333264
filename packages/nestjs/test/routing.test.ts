import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import { Controller, Get, type INestApplication, Module, Post, RequestMethod } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { SpanKind } from '@opentelemetry/api';
import { createSextant, type Sextant } from '@sextant/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NoTrace, SextantModule } from '../src/index.ts';

type FinishedSpan = ReturnType<Sextant['tracing']['finishedSpans']>[number];

@Controller('accounts')
class AccountsController {
  @Get('me')
  me() {
    return { handler: 'accounts.me' };
  }

  @NoTrace()
  @Get(':id')
  one() {
    return { handler: 'accounts.one' };
  }

  @Post('import')
  import() {
    return { handler: 'accounts.import' };
  }
}

@Controller('orders')
class OrdersController {
  @Get(':id')
  one() {
    return { handler: 'orders.one' };
  }

  // Declared after `:id`: Express hands GET /orders/latest to `:id`, Fastify (static before
  // parametric) to this one.
  @NoTrace()
  @Get('latest')
  latest() {
    return { handler: 'orders.latest' };
  }
}

/** Excluded from the global prefix. */
@Controller('status')
class StatusController {
  @Get()
  status() {
    return { handler: 'status' };
  }
}

const NO_TRACE_HANDLERS = new Set(['accounts.one', 'orders.latest']);

describe.each(['express', 'fastify'] as const)('which route a request reaches, on %s', (platform) => {
  let sextant: Sextant;
  let app: INestApplication;
  let url: string;

  beforeAll(async () => {
    sextant = createSextant({
      serviceName: `routing-${platform}`,
      tracing: { exporter: 'memory' },
      logs: { level: 'silent' },
      env: {},
    });
    @Module({
      imports: [SextantModule.forRoot({ sextant })],
      controllers: [AccountsController, OrdersController, StatusController],
    })
    class AppModule {}
    const adapter = platform === 'express' ? new ExpressAdapter() : new FastifyAdapter();
    app = await NestFactory.create(AppModule, adapter, { logger: false });
    app.setGlobalPrefix('api', { exclude: [{ path: 'status', method: RequestMethod.GET }] });
    await app.listen(0, '127.0.0.1');
    url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  });

  afterAll(async () => {
    await app?.close();
    await sextant?.shutdown();
  });

  async function serverSpanOf(response: Response): Promise<FinishedSpan> {
    const traceId = response.headers.get('traceresponse')!.split('-')[1]!;
    for (let attempt = 0; attempt < 200; attempt++) {
      const span = sextant.tracing
        .finishedSpans()
        .find((s) => s.spanContext().traceId === traceId && s.kind === SpanKind.SERVER);
      if (span !== undefined) return span;
      await sleep(10);
    }
    throw new Error(`no server span in trace ${traceId}`);
  }

  it.each([
    ['GET', '/api/accounts/me', 'accounts.me', 'GET /api/accounts/me'],
    ['GET', '/api/accounts/42', 'accounts.one', undefined],
    ['POST', '/api/accounts/import', 'accounts.import', 'POST /api/accounts/import'],
    ['GET', '/api/orders/7', 'orders.one', 'GET /api/orders/:id'],
    [
      'GET',
      '/api/orders/latest',
      platform === 'express' ? 'orders.one' : 'orders.latest',
      platform === 'express' ? 'GET /api/orders/:id' : undefined,
    ],
  ])(
    '@NoTrace() leaves out only the requests its handler answers: %s %s',
    async (method, path, handler, span) => {
      const response = await fetch(`${url}${path}`, { method });
      expect(response.ok).toBe(true);
      expect(await response.json()).toEqual({ handler });
      expect(NO_TRACE_HANDLERS.has(handler)).toBe(span === undefined);
      if (span === undefined) {
        expect(response.headers.get('x-request-id')).toBeNull();
        expect(response.headers.get('traceresponse')).toBeNull();
      } else {
        expect(response.headers.get('x-request-id')).not.toBeNull();
        expect((await serverSpanOf(response)).name).toBe(span);
      }
    },
  );

  it('a HEAD request follows the GET route that answers it', async () => {
    const untraced = await fetch(`${url}/api/accounts/42`, { method: 'HEAD' });
    expect(untraced.status).toBe(200);
    expect(untraced.headers.get('traceresponse')).toBeNull();
    const traced = await fetch(`${url}/api/accounts/me`, { method: 'HEAD' });
    expect(traced.status).toBe(200);
    expect((await serverSpanOf(traced)).attributes['http.route']).toBe('/api/accounts/me');
  });

  it.each([
    ['GET', '/api/nowhere/123'],
    ['GET', '/api'],
    // A method miss on a path outside the prefix (an excluded route) and under it.
    ['POST', '/status'],
    ['DELETE', '/api/accounts/me'],
  ])('records %s %s, which no route answers, as unmatched', async (method, path) => {
    const response = await fetch(`${url}${path}`, { method });
    expect(response.status).toBe(404);
    const span = await serverSpanOf(response);
    expect(span.name).toBe(method);
    expect(span.attributes['http.route']).toBeUndefined();
    const series = (await (await fetch(`${url}/metrics`)).text())
      .split('\n')
      .filter(
        (line) =>
          line.startsWith('http_server_request_duration_seconds_count{') &&
          line.includes(`http_request_method="${method}"`) &&
          line.includes('http_response_status_code="404"'),
      );
    expect(series).toHaveLength(1);
    expect(series[0]).toContain('http_route="_unmatched"');
  });
});
