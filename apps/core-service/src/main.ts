import { createSextant } from '@sextant/core';
import { createService } from './service.ts';

const sextant = createSextant({ serviceName: 'core-service', shutdown: { handleSignals: true } });
const server = createService(sextant);
// Runs once in-flight requests have finished: stop accepting so the process can exit.
sextant.onShutdown(() => {
  server.close();
});

const port = Number(process.env.PORT ?? 3000);
server.listen(port, () => sextant.logger.info({ port }, 'core-service listening'));
