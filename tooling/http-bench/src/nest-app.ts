/**
 * The Nest (Express platform) server of the race: `GET /users/:id` bare, with SextantModule, or with
 * the peer stack's Nest parts (@willsoto/nestjs-prometheus with a request-duration histogram, and
 * pino-http). Decorators are applied as plain calls because Node's type stripping cannot run
 * decorator syntax, and nothing is injected by constructor type because there is no
 * `emitDecoratorMetadata`: the interceptor takes its histogram through an explicit token.
 *
 * Import this module only after the peer stack's SDK has started: it loads Nest and, through
 * @nestjs/platform-express, Express.
 */
import 'reflect-metadata';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import {
  type CallHandler,
  Controller,
  type DynamicModule,
  type ExecutionContext,
  Get,
  Injectable,
  Module,
  type NestInterceptor,
  Param,
} from '@nestjs/common';
import { APP_INTERCEPTOR, NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import type { Sextant } from '@sextant/core';
import pino from 'pino';
import type { Histogram } from 'prom-client';
import type { Observable } from 'rxjs';
import { logDestination, user } from './app-common.ts';
import type { Stack } from './variants.ts';

const require = createRequire(import.meta.url);
const REQUEST_DURATION = 'http_request_duration_seconds';

class UsersController {
  get(id: string) {
    return user(id);
  }
}
Controller('users')(UsersController);
const usersProto = UsersController.prototype;
Get(':id')(usersProto, 'get', Object.getOwnPropertyDescriptor(usersProto, 'get')!);
Param('id')(usersProto, 'get', 0);

/**
 * The request metric a @willsoto/nestjs-prometheus application adds itself (the module only serves
 * `/metrics` with the default metrics): one histogram observation per response, as
 * express-prom-bundle records on the Express variant.
 */
class RequestDurationInterceptor implements NestInterceptor {
  readonly #duration: Histogram;
  constructor(duration: Histogram) {
    this.#duration = duration;
  }
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const http = context.switchToHttp();
    const request = http.getRequest<IncomingMessage & { route?: { path?: string } }>();
    const response = http.getResponse<ServerResponse>();
    const end = this.#duration.startTimer({ method: request.method, route: request.route?.path });
    response.once('finish', () => end({ status_code: response.statusCode }));
    return next.handle();
  }
}
Injectable()(RequestDurationInterceptor);

/** Loaded only by the peer variant, so the other variants' memory does not include it. */
function peerMetricsModule(): DynamicModule {
  const { PrometheusModule, makeHistogramProvider, InjectMetric } =
    require('@willsoto/nestjs-prometheus') as typeof import('@willsoto/nestjs-prometheus');
  InjectMetric(REQUEST_DURATION)(RequestDurationInterceptor, undefined, 0);
  class PeerMetricsModule {}
  Module({
    imports: [PrometheusModule.register({ defaultMetrics: { enabled: true } })],
    providers: [
      makeHistogramProvider({
        name: REQUEST_DURATION,
        help: 'Duration of HTTP requests in seconds',
        labelNames: ['method', 'route', 'status_code'],
      }),
      { provide: APP_INTERCEPTOR, useClass: RequestDurationInterceptor },
    ],
  })(PeerMetricsModule);
  return { module: PeerMetricsModule };
}

async function appModule(stack: Stack, sextant: Sextant | undefined): Promise<DynamicModule> {
  class AppModule {}
  Module({ controllers: [UsersController] })(AppModule);
  const imports: DynamicModule[] = [];
  if (stack === 'sextant') {
    const { SextantModule } = await import('@sextant/nestjs');
    imports.push(SextantModule.forRoot({ sextant: sextant! }));
  } else if (stack === 'peer') {
    imports.push(peerMetricsModule());
  }
  return { module: AppModule, imports };
}

/** `sextant` is the bench's instance for the Sextant variant, undefined for the others. */
export async function startNest(stack: Stack, sextant: Sextant | undefined): Promise<Server> {
  const app = await NestFactory.create(await appModule(stack, sextant), new ExpressAdapter(), {
    logger: false,
  });
  if (stack === 'peer') {
    const pinoHttp = require('pino-http') as typeof import('pino-http').default;
    app.use(pinoHttp({ logger: pino(logDestination()) }));
  }
  await app.listen(0, '127.0.0.1');
  return app.getHttpServer() as Server;
}
