import 'reflect-metadata';
import { Controller, Get, Inject, Injectable, Module, Scope } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { createSextant, type Metrics, type Sextant, SextantConfigError, up } from '@sextant/core';
import { describe, expect, expectTypeOf, it, vi } from 'vitest';
import {
  HealthIndicator,
  InjectLogger,
  InjectMetrics,
  InjectSextant,
  NoTrace,
  SEXTANT,
  SextantModule,
  Traced,
  type TracedOptions,
} from '../src/index.ts';

const silent = () =>
  createSextant({
    serviceName: 'module-test',
    tracing: { exporter: 'memory' },
    logs: { level: 'silent' },
    env: {},
  });

@Injectable()
class Consumer {
  readonly sextant: Sextant;
  readonly logger: Sextant['logger'];
  readonly metrics: Metrics;
  constructor(
    @InjectSextant() sextant: Sextant,
    @InjectLogger() logger: Sextant['logger'],
    @InjectMetrics() metrics: Metrics,
  ) {
    this.sextant = sextant;
    this.logger = logger;
    this.metrics = metrics;
  }
}

@Module({ providers: [Consumer] })
class FeatureModule {}

@Injectable()
class SettingsService {
  readonly serviceName = 'from-async-factory';
}
@Module({ providers: [SettingsService], exports: [SettingsService] })
class SettingsModule {}

@Injectable({ scope: Scope.REQUEST })
class RequestScopedRepository {
  ping(): boolean {
    return true;
  }
}

@HealthIndicator({ name: 'repository' })
@Injectable()
class RepositoryHealth {
  readonly #repository: RequestScopedRepository;
  constructor(@Inject(RequestScopedRepository) repository: RequestScopedRepository) {
    this.#repository = repository;
  }
  check() {
    this.#repository.ping();
    return up();
  }
}

@HealthIndicator({ name: 'per-request' })
@Injectable({ scope: Scope.REQUEST })
class RequestScopedHealth {
  check() {
    return up();
  }
}

@HealthIndicator({ name: 'transient' })
@Injectable({ scope: Scope.TRANSIENT })
class TransientHealth {
  check() {
    return up();
  }
}

describe('SextantModule', () => {
  it('forRoot: is global, and injects the instance, its logger and its metrics anywhere', async () => {
    const sextant = silent();
    const healthChecks = [{ name: 'from-options', critical: false, check: () => up({ source: 'options' }) }];
    @Module({ imports: [SextantModule.forRoot({ sextant, healthChecks }), FeatureModule] })
    class AppModule {}
    const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
    const checkNames = async () => ((await sextant.health.detailed()).body.checks ?? []).map((c) => c.name);
    expect(await checkNames()).toContain('from-options');
    const consumer = app.get(Consumer);
    expect(consumer.sextant).toBe(sextant);
    expect(consumer.logger).toBe(sextant.logger);
    expect(consumer.metrics).toBe(sextant.metrics);
    await app.close();
    // The application owned nothing: the instance it was given is still up, without the module's checks.
    expect(sextant.health.shuttingDown).toBe(false);
    expect(await checkNames()).not.toContain('from-options');
    await sextant.shutdown();
  });

  it('forRootAsync: builds the options from injected providers, creates the instance and shuts it down with the app', async () => {
    @Module({
      imports: [
        SextantModule.forRootAsync({
          imports: [SettingsModule],
          inject: [SettingsService],
          useFactory: (settings: SettingsService) => ({
            config: {
              serviceName: settings.serviceName,
              tracing: { exporter: 'memory' },
              logs: { level: 'silent' },
              env: {},
            },
          }),
        }),
        FeatureModule,
      ],
    })
    class AppModule {}
    const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
    const sextant = app.get<Sextant>(SEXTANT);
    expect(sextant.config.serviceName).toBe('from-async-factory');
    expect(app.get(Consumer).sextant).toBe(sextant);
    await app.close();
    expect(sextant.health.shuttingDown).toBe(true);
  });

  it('owning the instance, answers readiness 503 while app.close() drains an in-flight request', async () => {
    let finishRequest: () => void = () => undefined;
    @Controller('slow')
    class SlowController {
      @Get()
      async slow(): Promise<string> {
        await new Promise<void>((resolve) => {
          finishRequest = resolve;
        });
        return 'done';
      }
    }
    @Module({
      imports: [
        SextantModule.forRootAsync({
          useFactory: () => ({
            config: {
              serviceName: 'owned',
              tracing: { exporter: 'memory' },
              logs: { level: 'silent' },
              shutdown: { timeoutMs: 5000 },
              env: {},
            },
          }),
        }),
      ],
      controllers: [SlowController],
    })
    class AppModule {}
    const app = await NestFactory.create(AppModule, new ExpressAdapter(), { logger: false });
    await app.listen(0, '127.0.0.1');
    const url = await app.getUrl();
    const inFlight = fetch(`${url}/slow`);
    await vi.waitFor(() => expect(app.get<Sextant>(SEXTANT).inFlight.count).toBe(1));
    const closing = app.close();
    await vi.waitFor(() => expect(app.get<Sextant>(SEXTANT).health.shuttingDown).toBe(true));
    // The server still answers: the probe sees 503, not a refused connection.
    expect((await fetch(`${url}/health/ready`)).status).toBe(503);
    finishRequest();
    expect((await inFlight).status).toBe(200);
    await closing;
  });

  it('isGlobal: false keeps the providers to the modules that import it', async () => {
    const sextant = silent();
    @Module({ imports: [SextantModule.forRoot({ sextant, isGlobal: false }), FeatureModule] })
    class AppModule {}
    await expect(
      NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false }),
    ).rejects.toThrow(/Consumer/);
    await sextant.shutdown();
  });

  it.each([
    [{ sextant: {} }, /sextant must be the instance returned by createSextant/],
    [{ endpoints: 'yes' }, /endpoints must be a boolean/],
    [{ tracing: {} }, /unknown option "tracing"/],
  ])('refuses invalid options at start-up: %j', async (options, message) => {
    @Module({ imports: [SextantModule.forRoot(options as never)] })
    class AppModule {}
    const failure = await NestFactory.createApplicationContext(AppModule, {
      logger: false,
      abortOnError: false,
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(SextantConfigError);
    expect((failure as Error).message).toMatch(message);
    expect((failure as Error).message).toMatch(/@sextant\/nestjs/);
  });

  it.each([
    ['depends on a request-scoped provider', [RequestScopedRepository, RepositoryHealth], 'RepositoryHealth'],
    ['is request-scoped', [RequestScopedHealth], 'RequestScopedHealth'],
    ['is transient', [TransientHealth], 'TransientHealth'],
  ])('refuses a @HealthIndicator() provider that %s at start-up', async (_case, providers, name) => {
    const sextant = silent();
    @Module({ imports: [SextantModule.forRoot({ sextant })], providers })
    class AppModule {}
    const failure = await NestFactory.createApplicationContext(AppModule, {
      logger: false,
      abortOnError: false,
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(SextantConfigError);
    expect((failure as SextantConfigError).code).toBe('SEXTANT_INVALID_HEALTH_CHECK');
    expect((failure as Error).message).toContain(`@HealthIndicator() provider ${name} `);
    expect((failure as Error).message).toMatch(/health indicators must be singletons/);
    // Nothing was registered: the built-in checks only.
    expect(((await sextant.health.detailed()).body.checks ?? []).map((c) => c.name)).toEqual([
      'event_loop',
      'memory',
    ]);
    await sextant.shutdown();
  });

  it('rejects both an instance and options to create one', async () => {
    const sextant = silent();
    @Module({ imports: [SextantModule.forRoot({ sextant, config: {} })] })
    class AppModule {}
    await expect(
      NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false }),
    ).rejects.toThrow(/either sextant .* or config/);
    await sextant.shutdown();
  });

  it('types its options and decorators', () => {
    expectTypeOf(SextantModule.forRoot).parameter(0).toHaveProperty('isGlobal');
    // @ts-expect-error endpoints is a boolean
    SextantModule.forRoot({ endpoints: 'yes' });
    // @ts-expect-error health checks are core HealthCheck objects
    SextantModule.forRoot({ healthChecks: [{ check: () => up() }] });
    expectTypeOf(Traced).parameter(1).toEqualTypeOf<TracedOptions | undefined>();
    expectTypeOf(NoTrace()).toEqualTypeOf<MethodDecorator>();
  });
});
