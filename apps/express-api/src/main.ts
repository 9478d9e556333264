import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSextant } from '@sextant/core';
import { createJobQueue, createJobStore, portFromEnv } from 'job-store';
import { createApp } from './app.ts';

const sextant = createSextant({ serviceName: 'express-api', shutdown: { handleSignals: true } });

// PORT: digits, 0 to 65535, default 3000; anything else has been logged as a fatal record.
const port = portFromEnv(sextant) ?? process.exit(1);

// DATABASE_URL (PostgreSQL, else an embedded SQLite file), REDIS_URL and SEXTANT_QUEUE_PREFIX.
const store = await createJobStore(sextant).catch((error: unknown) => {
  sextant.logger.fatal({ err: error }, 'could not open the job store');
  process.exit(1);
});
const queue = createJobQueue(sextant);

const server = createServer(createApp(sextant, { store, queue }));
// Runs once in-flight requests have finished: stop accepting, so that the process exits by itself.
sextant.onShutdown(() => {
  server.close();
});
server.on('error', (error) => {
  sextant.logger.fatal({ err: error, port }, 'could not listen');
  process.exit(1);
});
server.listen(port, () => {
  sextant.logger.info({ port: (server.address() as AddressInfo).port }, 'express-api listening');
});
