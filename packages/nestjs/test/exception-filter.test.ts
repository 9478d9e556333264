import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type ArgumentsHost,
  Catch,
  Controller,
  type ExceptionFilter,
  Get,
  HttpException,
  type INestApplication,
  type INestMicroservice,
  Injectable,
  Logger,
  Module,
  NotFoundException,
  type Provider,
  type RpcExceptionFilter,
} from '@nestjs/common';
import { APP_FILTER, ApplicationConfig, ExternalContextCreator, NestFactory } from '@nestjs/core';
import {
  ClientProxyFactory,
  MessagePattern,
  type MicroserviceOptions,
  RpcException,
  Transport,
} from '@nestjs/microservices';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { createSextant, type Sextant } from '@sextant/core';
import { firstValueFrom, type Observable, throwError, timeout } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { collectLines, type LogCollector } from '../../../tooling/testing/log-collector.ts';
import { SextantExceptionFilter, SextantLogger, SextantModule } from '../src/index.ts';

type FinishedSpan = ReturnType<Sextant['tracing']['finishedSpans']>[number];

/** One error object for the whole process, as a module-level constant or a cached rejected promise is. */
const SHARED_FAILURE = new Error('shared failure');

function statusError(message: string, status: number): Error {
  return Object.assign(new Error(message), { status });
}

@Controller('errors')
class ErrorsController {
  @Get('shared')
  shared(): never {
    throw SHARED_FAILURE;
  }

  @Get('status-404')
  status404(): never {
    // Not an HttpException and not http-errors-shaped: Nest 12 answers it 500.
    throw statusError('looks like a 404', 404);
  }

  @Get('http-errors-410')
  gone(): never {
    // The shape of an `http-errors` error, which Nest answers with its status.
    throw Object.assign(statusError('gone for good', 410), { statusCode: 410, expose: true });
  }
}

@Controller()
class RpcController {
  @MessagePattern('fail')
  fail(): never {
    throw new Error('rpc handler failed');
  }

  @MessagePattern('reject')
  reject(): never {
    throw new RpcException({ status: 'error', message: 'not allowed', code: 'E_RPC' });
  }

  @MessagePattern('ok')
  ok(value: number): number {
    return value * 2;
  }
}

@Controller('filtered')
class FilteredController {
  @Get('missing')
  missing(): never {
    throw new NotFoundException('no such thing');
  }

  @Get('boom')
  boom(): never {
    throw new Error('nobody catches this');
  }
}

/** Answers through the platform's reply: Express's `res` and Fastify's reply both have these. */
function answer(host: ArgumentsHost, status: number, body: object): void {
  host
    .switchToHttp()
    .getResponse<{ status(code: number): { send(body: object): void } }>()
    .status(status)
    .send(body);
}

@Catch(NotFoundException)
class NotFoundFilter implements ExceptionFilter {
  catch(_exception: NotFoundException, host: ArgumentsHost): void {
    answer(host, 404, { from: 'not-found-filter' });
  }
}

@Catch()
class CatchAllFilter implements ExceptionFilter {
  catch(_exception: unknown, host: ArgumentsHost): void {
    answer(host, 418, { from: 'catch-all-filter' });
  }
}

/** The README's advice for a catch-all filter of the application's own. */
@Catch()
class CustomSextantFilter extends SextantExceptionFilter {
  override catch(exception: unknown, host: ArgumentsHost): void {
    if (exception instanceof HttpException) {
      answer(host, exception.getStatus(), { from: 'sextant-subclass' });
      return;
    }
    super.catch(exception, host);
  }
}

@Catch(RpcException)
class AppRpcFilter implements RpcExceptionFilter<RpcException> {
  catch(exception: RpcException): Observable<never> {
    return throwError(() => ({ from: 'app-rpc-filter', error: exception.getError() }));
  }
}

/** What a GraphQL resolver is: a provider method Nest calls through `ExternalContextCreator`. */
@Injectable()
class Resolver {
  field(): never {
    throw new Error('resolver failed');
  }
}

function newSextant(name: string, logs: LogCollector): Sextant {
  return createSextant({
    serviceName: name,
    tracing: { exporter: 'memory' },
    logs: { destination: logs },
    env: {},
  });
}

async function waitForServerSpan(sextant: Sextant, traceId: string): Promise<FinishedSpan> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const span = sextant.tracing
      .finishedSpans()
      .find((s) => s.spanContext().traceId === traceId && s.kind === SpanKind.SERVER);
    if (span !== undefined) return span;
    await sleep(10);
  }
  throw new Error(`no server span in trace ${traceId}`);
}

const traceIdOf = (response: Response) => response.headers.get('traceresponse')!.split('-')[1]!;

/** Records of an exception, besides the access record. */
const exceptionRecords = (logs: LogCollector, requestId: string) =>
  logs.records().filter((r) => r.request_id === requestId && r.msg !== 'request completed');

describe.each(['express', 'fastify'] as const)('SextantExceptionFilter over HTTP on %s', (platform) => {
  let sextant: Sextant;
  let app: INestApplication;
  let url: string;
  const logs = collectLines();

  beforeAll(async () => {
    sextant = newSextant(`filter-${platform}`, logs);
    @Module({ imports: [SextantModule.forRoot({ sextant })], controllers: [ErrorsController] })
    class AppModule {}
    const adapter = platform === 'express' ? new ExpressAdapter() : new FastifyAdapter();
    app = await NestFactory.create(AppModule, adapter, { bufferLogs: true });
    app.useLogger(new SextantLogger(sextant));
    await app.listen(0, '127.0.0.1');
    url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  });

  afterAll(async () => {
    await app?.close();
    await sextant?.shutdown();
  });

  it('records and logs an error object shared by requests once in each of them', async () => {
    const ids = [`${platform}-shared-1`, `${platform}-shared-2`, `${platform}-shared-3`];
    const responses = await Promise.all(
      ids.map((id) => fetch(`${url}/errors/shared`, { headers: { 'x-request-id': id } })),
    );
    // And once more after the others have finished.
    const last = `${platform}-shared-4`;
    responses.push(await fetch(`${url}/errors/shared`, { headers: { 'x-request-id': last } }));
    ids.push(last);
    for (const response of responses) {
      expect(response.status).toBe(500);
      const server = await waitForServerSpan(sextant, traceIdOf(response));
      expect(server.status.code).toBe(SpanStatusCode.ERROR);
      expect(server.events.filter((e) => e.name === 'exception')).toHaveLength(1);
    }
    await sleep(20);
    for (const id of ids) {
      // Ours, and not Nest's `ExceptionsHandler` line as well.
      const records = exceptionRecords(logs, id);
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({
        level: 'error',
        msg: 'request failed',
        status_code: 500,
        err: { message: 'shared failure' },
      });
    }
  });

  it('logs the status Nest answers: an Error with a `status` of 404 is a 500, an error of the span', async () => {
    const id = `${platform}-status-404`;
    const response = await fetch(`${url}/errors/status-404`, { headers: { 'x-request-id': id } });
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ statusCode: 500, message: 'Internal server error' });
    const server = await waitForServerSpan(sextant, traceIdOf(response));
    expect(server.status.code).toBe(SpanStatusCode.ERROR);
    expect(server.events.filter((e) => e.name === 'exception')).toHaveLength(1);
    await sleep(20);
    const records = exceptionRecords(logs, id);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      level: 'error',
      msg: 'request failed',
      status_code: 500,
      err: { message: 'looks like a 404' },
    });
  });

  it('logs an http-errors error with the status Nest answers it with, a 4xx not an error', async () => {
    const id = `${platform}-http-errors-410`;
    const response = await fetch(`${url}/errors/http-errors-410`, { headers: { 'x-request-id': id } });
    expect(response.status).toBe(410);
    const server = await waitForServerSpan(sextant, traceIdOf(response));
    expect(server.status.code).toBe(SpanStatusCode.UNSET);
    await sleep(20);
    const records = exceptionRecords(logs, id);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ level: 'warn', msg: 'request rejected', status_code: 410 });
  });
});

describe.each(['express', 'fastify'] as const)('the application’s own global filters on %s', (platform) => {
  const logs = collectLines();
  let sextant: Sextant;
  const apps: INestApplication[] = [];

  beforeAll(() => {
    sextant = newSextant(`app-filters-${platform}`, logs);
  });
  afterAll(async () => {
    for (const app of apps.splice(0)) await app.close();
    await sextant?.shutdown();
  });

  /** An application whose root module registers `filters` through APP_FILTER, next to Sextant. */
  async function start(filters: Array<new (...args: never[]) => ExceptionFilter>) {
    const providers: Provider[] = filters.map((filter) => ({ provide: APP_FILTER, useClass: filter }));
    @Module({ imports: [SextantModule.forRoot({ sextant })], controllers: [FilteredController], providers })
    class AppModule {}
    const adapter = platform === 'express' ? new ExpressAdapter() : new FastifyAdapter();
    const app = await NestFactory.create(AppModule, adapter, { logger: false });
    apps.push(app);
    await app.listen(0, '127.0.0.1');
    return (await app.getUrl()).replace('[::1]', '127.0.0.1');
  }

  it('a typed APP_FILTER answers what it catches; Sextant still records and answers an unhandled 500', async () => {
    const url = await start([NotFoundFilter]);
    const missing = await fetch(`${url}/filtered/missing`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ from: 'not-found-filter' });

    const id = `${platform}-app-filter-500`;
    const boom = await fetch(`${url}/filtered/boom`, { headers: { 'x-request-id': id } });
    expect(boom.status).toBe(500);
    expect(await boom.json()).toEqual({ statusCode: 500, message: 'Internal server error' });
    const server = await waitForServerSpan(sextant, traceIdOf(boom));
    expect(server.status.code).toBe(SpanStatusCode.ERROR);
    expect(server.events.filter((e) => e.name === 'exception')).toHaveLength(1);
    await sleep(20);
    expect(exceptionRecords(logs, id)).toMatchObject([
      { level: 'error', msg: 'request failed', status_code: 500, err: { message: 'nobody catches this' } },
    ]);
  });

  it('a catch-all APP_FILTER answers every exception', async () => {
    const url = await start([CatchAllFilter]);
    for (const path of ['missing', 'boom']) {
      const response = await fetch(`${url}/filtered/${path}`);
      expect(response.status).toBe(418);
      expect(await response.json()).toEqual({ from: 'catch-all-filter' });
    }
  });

  it('a subclass of SextantExceptionFilter registered as APP_FILTER runs, and records through super.catch()', async () => {
    const url = await start([CustomSextantFilter]);
    const missing = await fetch(`${url}/filtered/missing`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ from: 'sextant-subclass' });
    const id = `${platform}-subclass-500`;
    const boom = await fetch(`${url}/filtered/boom`, { headers: { 'x-request-id': id } });
    expect(boom.status).toBe(500);
    const server = await waitForServerSpan(sextant, traceIdOf(boom));
    expect(server.events.filter((e) => e.name === 'exception')).toHaveLength(1);
    await sleep(20);
    expect(exceptionRecords(logs, id)).toHaveLength(1);
  });
});

describe('SextantModule with recordExceptions: false', () => {
  it('registers no exception filter, and Nest answers as it does without the module', async () => {
    const sextant = newSextant('no-filter', collectLines());
    @Module({
      imports: [SextantModule.forRoot({ sextant, recordExceptions: false })],
      controllers: [FilteredController],
    })
    class AppModule {}
    const app = await NestFactory.create(AppModule, new ExpressAdapter(), { logger: false });
    try {
      expect(app.get(ApplicationConfig).getGlobalFilters()).toEqual([]);
      await app.listen(0, '127.0.0.1');
      const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
      const boom = await fetch(`${url}/filtered/boom`);
      expect(boom.status).toBe(500);
      expect(await boom.json()).toEqual({ statusCode: 500, message: 'Internal server error' });
    } finally {
      await app.close();
      await sextant.shutdown();
    }
  });
});

describe('SextantExceptionFilter outside HTTP: Nest answers as if it were not there', () => {
  const logs = collectLines();
  let sextant: Sextant;
  const closers: Array<() => Promise<unknown>> = [];

  beforeAll(() => {
    sextant = newSextant('filter-rpc', logs);
  });
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    vi.restoreAllMocks();
  });
  afterAll(async () => {
    await sextant?.shutdown();
  });

  async function rpcCall(port: number, pattern: string, data: unknown): Promise<unknown> {
    const client = ClientProxyFactory.create({
      transport: Transport.TCP,
      options: { host: '127.0.0.1', port },
    });
    closers.push(() => client.close());
    await client.connect();
    // Without an answer (the filter throwing inside Nest's RPC handling), fail rather than hang.
    return firstValueFrom(client.send(pattern, data).pipe(timeout(5000))).then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );
  }

  async function startMicroservice(providers: Provider[] = []): Promise<number> {
    @Module({ imports: [SextantModule.forRoot({ sextant })], controllers: [RpcController], providers })
    class RpcModule {}
    const microservice: INestMicroservice = await NestFactory.createMicroservice<MicroserviceOptions>(
      RpcModule,
      { transport: Transport.TCP, options: { host: '127.0.0.1', port: 0 }, logger: false },
    );
    closers.push(() => microservice.close());
    await microservice.listen();
    const server = microservice.unwrap<import('node:net').Server>();
    return (server.address() as import('node:net').AddressInfo).port;
  }

  it('a microservice: an unknown error and an RpcException get Nest’s default RPC answers', async () => {
    const rpcLogged = vi.spyOn(Logger.prototype, 'error');
    const port = await startMicroservice();
    expect(await rpcCall(port, 'ok', 21)).toEqual({ value: 42 });
    expect(await rpcCall(port, 'fail', {})).toEqual({
      error: { status: 'error', message: 'Internal server error' },
    });
    expect(await rpcCall(port, 'reject', {})).toEqual({
      error: { status: 'error', message: 'not allowed', code: 'E_RPC' },
    });
    // Nest's RPC handler logged the unknown error, as it does without the filter.
    expect(rpcLogged.mock.calls.some(([error]) => (error as Error)?.message === 'rpc handler failed')).toBe(
      true,
    );
    expect(logs.records().filter((r) => r.msg === 'request failed' || r.msg === 'request rejected')).toEqual(
      [],
    );
  });

  it('a microservice: an APP_FILTER for RpcException of the application answers it', async () => {
    const port = await startMicroservice([{ provide: APP_FILTER, useClass: AppRpcFilter }]);
    expect(await rpcCall(port, 'reject', {})).toEqual({
      error: { from: 'app-rpc-filter', error: { status: 'error', message: 'not allowed', code: 'E_RPC' } },
    });
  });

  it('a hybrid application: the microservice inherits the global filter and still answers as Nest does', async () => {
    @Module({ imports: [SextantModule.forRoot({ sextant })], controllers: [RpcController] })
    class HybridModule {}
    const app = await NestFactory.create(HybridModule, new ExpressAdapter(), { logger: false });
    closers.push(() => app.close());
    const microservice = app.connectMicroservice<MicroserviceOptions>(
      { transport: Transport.TCP, options: { host: '127.0.0.1', port: 0 } },
      { inheritAppConfig: true },
    );
    await app.startAllMicroservices();
    await app.listen(0, '127.0.0.1');
    const server = microservice.unwrap<import('node:net').Server>();
    const port = (server.address() as import('node:net').AddressInfo).port;
    expect(await rpcCall(port, 'fail', {})).toEqual({
      error: { status: 'error', message: 'Internal server error' },
    });
  });

  it('a call through ExternalContextCreator (GraphQL resolvers): the caller gets the exception itself', async () => {
    @Module({ imports: [SextantModule.forRoot({ sextant })], providers: [Resolver] })
    class GraphModule {}
    const app = await NestFactory.create(GraphModule, new ExpressAdapter(), { logger: false });
    closers.push(() => app.close());
    await app.init();
    const externalLogged = vi.spyOn(Logger.prototype, 'error');
    const resolver = app.get(Resolver);
    const call = app
      .get(ExternalContextCreator)
      .create(
        resolver,
        resolver.field,
        'field',
        undefined,
        undefined,
        undefined,
        undefined,
        undefined,
        'graphql',
      );
    const failure = await call({}, {}, {}, {}).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toBe('resolver failed');
    // Nest's external handler logged it and rethrew it, as it does without the filter.
    expect(externalLogged.mock.calls.some(([error]) => error === failure)).toBe(true);
  });
});
