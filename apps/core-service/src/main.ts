import type { AddressInfo } from 'node:net';
import { createSextant } from '@sextant/core';
import { portFromEnv } from './port.ts';
import { createService } from './service.ts';

const sextant = createSextant({ serviceName: 'core-service', shutdown: { handleSignals: true } });

// Read before anything listens: an invalid PORT has been logged as a fatal record.
const port = portFromEnv(sextant);
if (port === undefined) {
  process.exitCode = 1;
  await sextant.shutdown();
} else {
  const server = createService(sextant);
  // Runs once in-flight requests have finished: stop accepting so the process can exit.
  sextant.onShutdown(() => {
    server.close();
  });
  server.on('error', (error) => {
    sextant.logger.fatal({ err: error, port }, 'could not listen');
    process.exitCode = 1;
    void sextant.shutdown();
  });
  // PORT=0 picks a free port: log the one the server got, not the one asked for.
  server.listen(port, () =>
    sextant.logger.info({ port: (server.address() as AddressInfo).port }, 'core-service listening'),
  );
}
