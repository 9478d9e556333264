import type { AddressInfo } from 'node:net';
import { createSextant } from '@sextant/core';
import { createJobQueue, createJobStore, envSetting, portFromEnv } from 'job-store';
import { createApp } from './app.ts';

const sextant = createSextant({ serviceName: 'fastify-api', shutdown: { handleSignals: true } });

// PORT: digits, 0 to 65535, default 3000; anything else has been logged as a fatal record.
const port = portFromEnv(sextant);
if (port === undefined) {
  process.exitCode = 1;
  await sextant.shutdown();
} else {
  // DATABASE_URL (PostgreSQL, else an embedded SQLite file), REDIS_URL and SEXTANT_QUEUE_PREFIX.
  const store = await createJobStore(sextant).catch((error: unknown) => {
    sextant.logger.fatal({ err: error }, 'could not open the job store');
    process.exit(1);
  });
  const app = await createApp(sextant, { store, queue: createJobQueue(sextant) });
  // On SIGTERM Sextant answers readiness with 503 at once and lets in-flight requests finish
  // while the server still accepts (so probes get their 503); then this hook stops the server,
  // spans are flushed, and with nothing left to wait for the process exits by itself.
  sextant.onShutdown(() => app.close());

  try {
    await app.listen({ port, host: envSetting('HOST') ?? '0.0.0.0' });
    const address = app.server.address() as AddressInfo;
    sextant.logger.info({ port: address.port }, 'fastify-api listening');
  } catch (error) {
    sextant.logger.fatal({ err: error }, 'fastify-api could not start');
    process.exitCode = 1;
    await sextant.shutdown();
  }
}
