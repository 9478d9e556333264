import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createSextant } from '@sextant/core';
import { SextantLogger } from '@sextant/nestjs';
import { createJobQueue, createJobStore, envSetting, portFromEnv } from 'job-store';
import { AppModule } from './app.module.ts';
import { configurePlatform, createAdapter, isPlatform } from './platform.ts';

const sextant = createSextant({ serviceName: 'nest-api', shutdown: { handleSignals: true } });

// PORT: digits, 0 to 65535, default 3000; anything else has been logged as a fatal record.
const port = portFromEnv(sextant);
const platform = envSetting('NEST_PLATFORM') ?? 'express';

if (port === undefined) {
  process.exitCode = 1;
  await sextant.shutdown();
} else if (!isPlatform(platform)) {
  const given = process.env.NEST_PLATFORM;
  sextant.logger.fatal(
    { platform: given },
    `NEST_PLATFORM must be "express" or "fastify", got ${JSON.stringify(given)}`,
  );
  process.exitCode = 1;
  await sextant.shutdown();
} else {
  // DATABASE_URL (PostgreSQL, else an embedded SQLite file), REDIS_URL and SEXTANT_QUEUE_PREFIX.
  const store = await createJobStore(sextant).catch((error: unknown) => {
    sextant.logger.fatal({ err: error }, 'could not open the job store');
    process.exit(1);
  });
  const queue = createJobQueue(sextant);
  // Nest's own records (start-up, routes) wait for Sextant's logger instead of going to the console.
  const app: INestApplication = await NestFactory.create(
    AppModule.register(sextant, { store, queue }),
    createAdapter(platform),
    {
      bufferLogs: true,
    },
  );
  configurePlatform(app, platform);
  app.useLogger(new SextantLogger(sextant));
  // On SIGTERM Sextant answers readiness with 503 at once and lets in-flight requests finish;
  // then this hook closes Nest and its server, spans are flushed, and the process exits by itself.
  sextant.onShutdown(() => app.close());
  try {
    await app.listen(port, envSetting('HOST') ?? '0.0.0.0');
    const address = app.getHttpServer().address() as AddressInfo;
    sextant.logger.info({ port: address.port, platform }, 'nest-api listening');
  } catch (error) {
    sextant.logger.fatal({ err: error }, 'nest-api could not start');
    process.exitCode = 1;
    await sextant.shutdown();
  }
}
