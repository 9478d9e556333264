import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import type { INestApplication } from '@nestjs/common';
import { Module, VersioningType } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { DECORATORS } from '@nestjs/swagger';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { createSextant, type Sextant } from '@sextant/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectLines } from '../../../tooling/testing/log-collector.ts';
import { SextantLogger, SextantModule } from '../src/index.ts';
import { ROLES, RolesGuard, UsersController, UsersDbHealth, UsersModule, UsersService } from './fixture.ts';

type FinishedSpan = ReturnType<Sextant['tracing']['finishedSpans']>[number];

async function waitForSpans(sextant: Sextant, traceId: string, count: number): Promise<FinishedSpan[]> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const spans = sextant.tracing.finishedSpans().filter((s) => s.spanContext().traceId === traceId);
    if (spans.length >= count && spans.some((s) => s.kind === SpanKind.SERVER)) return spans;
    await sleep(10);
  }
  throw new Error(`trace ${traceId} did not get ${count} spans`);
}

const traceIdOf = (response: Response) => response.headers.get('traceresponse')!.split('-')[1]!;
const serverSpan = (spans: FinishedSpan[]) => spans.find((s) => s.kind === SpanKind.SERVER)!;

describe.each(['express', 'fastify'] as const)('SextantModule on %s', (platform) => {
  let sextant: Sextant;
  let app: INestApplication;
  let url: string;
  const logs = collectLines();

  beforeAll(async () => {
    sextant = createSextant({
      serviceName: `nestjs-${platform}`,
      tracing: { exporter: 'memory' },
      logs: { destination: logs },
      env: {},
    });
    @Module({ imports: [SextantModule.forRoot({ sextant }), UsersModule] })
    class AppModule {}
    const adapter = platform === 'express' ? new ExpressAdapter() : new FastifyAdapter();
    app = await NestFactory.create(AppModule, adapter, { bufferLogs: true });
    app.useLogger(new SextantLogger(sextant));
    app.setGlobalPrefix('api');
    app.enableVersioning({ type: VersioningType.URI });
    await app.listen(0, '127.0.0.1');
    url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  });

  afterAll(async () => {
    await app?.close();
    await sextant?.shutdown();
  });

  it('names the server span after the full route template, with the global prefix and the version', async () => {
    const response = await fetch(`${url}/api/v1/users/7`, {
      headers: { 'x-role': 'reader', 'x-request-id': `${platform}-tpl` },
    });
    expect(response.status).toBe(200);
    const spans = await waitForSpans(sextant, traceIdOf(response), 3);
    const server = serverSpan(spans);
    expect(server.name).toBe('GET /api/v1/users/:id');
    expect(server.attributes['http.route']).toBe('/api/v1/users/:id');
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(
      /http_server_request_duration_seconds_count\{[^}]*http_route="\/api\/v1\/users\/:id"/,
    );
  });

  it('makes @Traced() provider methods children of the request span, in the request trace', async () => {
    const response = await fetch(`${url}/api/v1/users/8`, { headers: { 'x-role': 'reader' } });
    const body = (await response.json()) as { trace_id: string };
    const traceId = traceIdOf(response);
    expect(body.trace_id).toBe(traceId);
    const spans = await waitForSpans(sextant, traceId, 3);
    const server = serverSpan(spans);
    const controller = spans.find((s) => s.name === 'UsersController.get')!;
    const service = spans.find((s) => s.name === 'UsersService.find')!;
    expect(controller.parentSpanContext?.spanId).toBe(server.spanContext().spanId);
    expect(service.parentSpanContext?.spanId).toBe(controller.spanContext().spanId);
  });

  it('covers the guard: its log record carries the request and trace ids, and its 403 is not a server error', async () => {
    const response = await fetch(`${url}/api/v1/users/9`, {
      headers: { 'x-request-id': `${platform}-guard` },
    });
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual({ statusCode: 403, message: 'role required', error: 'Forbidden' });
    const traceId = traceIdOf(response);
    const server = serverSpan(await waitForSpans(sextant, traceId, 1));
    expect(server.status.code).toBe(SpanStatusCode.UNSET);
    expect(server.attributes['http.response.status_code']).toBe(403);
    const guardRecord = logs
      .records()
      .find((r) => r.msg === 'guard checked' && r.request_id === `${platform}-guard`)!;
    expect(guardRecord).toMatchObject({
      trace_id: traceId,
      guard_request_id: `${platform}-guard`,
      context: 'RolesGuard',
    });
    const rejected = logs
      .records()
      .filter((r) => r.request_id === `${platform}-guard` && r.msg === 'request rejected');
    expect(rejected).toHaveLength(1);
    expect(rejected[0]!.level).toBe('warn');
  });

  it('covers the pipe: a 400 from it keeps Nest’s answer and is not an error of the span', async () => {
    const response = await fetch(`${url}/api/v1/users/abc`, { headers: { 'x-role': 'reader' } });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({
      statusCode: 400,
      message: 'id must be a non-negative integer',
    });
    const server = serverSpan(await waitForSpans(sextant, traceIdOf(response), 1));
    expect(server.name).toBe('GET /api/v1/users/:id');
    expect(server.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('keeps an HttpException thrown by a provider a 4xx, with the exception event', async () => {
    const response = await fetch(`${url}/api/v1/users/404`, { headers: { 'x-role': 'reader' } });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ statusCode: 404, message: 'no user 404', error: 'Not Found' });
    const spans = await waitForSpans(sextant, traceIdOf(response), 3);
    const server = serverSpan(spans);
    expect(server.status.code).toBe(SpanStatusCode.UNSET);
    expect(server.events.some((e) => e.name === 'exception')).toBe(true);
    // The provider's own span did fail.
    expect(spans.find((s) => s.name === 'UsersService.find')!.status.code).toBe(SpanStatusCode.ERROR);
  });

  it('answers an unknown error with Nest’s 500, status ERROR, and logs it once with the ids', async () => {
    const response = await fetch(`${url}/api/v1/users/500`, {
      headers: { 'x-role': 'reader', 'x-request-id': `${platform}-500` },
    });
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ statusCode: 500, message: 'Internal server error' });
    const traceId = traceIdOf(response);
    const server = serverSpan(await waitForSpans(sextant, traceId, 3));
    expect(server.status.code).toBe(SpanStatusCode.ERROR);
    expect(server.events.filter((e) => e.name === 'exception')).toHaveLength(1);
    await sleep(20);
    const errors = logs
      .records()
      .filter(
        (r) => r.request_id === `${platform}-500` && r.level === 'error' && r.msg !== 'request completed',
      );
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({
      msg: 'request failed',
      trace_id: traceId,
      err: { message: 'database on fire' },
    });
  });

  it('traces an Observable-returning method until it completes, and records an Observable error', async () => {
    const response = await fetch(`${url}/api/v1/users/3/stream`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual([0, 1, 2]);
    const spans = await waitForSpans(sextant, traceIdOf(response), 2);
    const stream = spans.find((s) => s.name === 'users.stream')!;
    expect(stream.attributes['app.kind']).toBe('stream');
    expect(stream.parentSpanContext?.spanId).toBe(serverSpan(spans).spanContext().spanId);
    expect(stream.status.code).toBe(SpanStatusCode.UNSET);

    const unlucky = await fetch(`${url}/api/v1/users/13/stream`);
    expect(unlucky.status).toBe(500);
    const failed = (await waitForSpans(sextant, traceIdOf(unlucky), 2)).find(
      (s) => s.name === 'users.stream',
    )!;
    expect(failed.status.code).toBe(SpanStatusCode.ERROR);
    expect(failed.events.some((e) => e.name === 'exception')).toBe(true);

    const failing = await fetch(`${url}/api/v1/users/1/failing-stream`);
    expect(failing.status).toBe(500);
    const failingSpan = (await waitForSpans(sextant, traceIdOf(failing), 2)).find(
      (s) => s.name === 'UsersService.failing',
    )!;
    expect(failingSpan.attributes['error.type']).toBe('Error');
  });

  it('hands back a Subject returned by a @Traced() method as it is, and ends its span at once', () => {
    const service = new UsersService();
    const returned = service.selection();
    expect(returned).toBe(service.selected);
    expect(returned.value).toBe(7);
    const span = sextant.tracing.finishedSpans().findLast((s) => s.name === 'users.selected');
    expect(span?.ended).toBe(true);
  });

  it('keeps every metadata key other decorators put on a @Traced() method', () => {
    const method = UsersController.prototype.get;
    expect(Reflect.getMetadata(DECORATORS.API_OPERATION, method)).toEqual({ summary: 'one user' });
    expect(Reflect.getMetadata(ROLES, method)).toEqual(['reader']);
    expect(Reflect.getMetadata('path', method)).toBe(':id');
    expect(Reflect.getMetadata('__version__', method)).toBe('1');
    expect(Reflect.getMetadata('__guards__', method)).toEqual([RolesGuard]);
    expect(Reflect.getMetadata('__pipes__', method)).toHaveLength(1);
    expect(UsersService.prototype.find.name).toBe('find');
    expect(UsersService.prototype.find.length).toBe(1);
  });

  it('leaves @NoTrace() routes out: no span, no request id, no metrics', async () => {
    const before = sextant.tracing.finishedSpans().length;
    const response = await fetch(`${url}/api/v1/users/internal/ping`, {
      headers: { 'x-request-id': `${platform}-ping` },
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ pong: true, request_id: null });
    expect(response.headers.get('x-request-id')).toBeNull();
    expect(response.headers.get('traceresponse')).toBeNull();
    await sleep(30);
    expect(
      sextant.tracing
        .finishedSpans()
        .slice(before)
        .some((s) => s.name.includes('ping')),
    ).toBe(false);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).not.toContain('internal/ping');
  });

  it('serves the health endpoints with a @HealthIndicator() provider next to the built-in checks', async () => {
    const detailed = (await (await fetch(`${url}/health/detailed`)).json()) as {
      checks: Array<{ name: string; status: string }>;
    };
    const names = detailed.checks.map((c) => c.name);
    expect(names).toContain('users-db');
    expect(names.length).toBeGreaterThan(1);
    expect((await fetch(`${url}/health/ready`)).status).toBe(200);
    app.get(UsersDbHealth).healthy = false;
    const ready = await fetch(`${url}/health/ready`);
    expect(ready.status).toBe(503);
    // Readiness names the failing check; its reason is only in the detailed report.
    const readyBody = JSON.stringify(await ready.json());
    expect(readyBody).toContain('{"name":"users-db","status":"down"}');
    expect(readyBody).not.toContain('pool exhausted');
    expect(JSON.stringify(await (await fetch(`${url}/health/detailed`)).json())).toContain('pool exhausted');
    app.get(UsersDbHealth).healthy = true;
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });
});
