import type { AddressInfo } from 'node:net';
import {
  closeRedisClient,
  createBullMQTelemetry,
  observeQueueDepth,
  observeWorker,
  reportConnectionErrors,
} from '@sextant/bullmq';
import { createSextant } from '@sextant/core';
import { Worker, type WorkerOptions } from 'bullmq';
import {
  createJobQueue,
  createJobStore,
  JOB_QUEUE_NAME,
  type JobData,
  jobStoreReachable,
  queueSettings,
} from 'job-store';
import { createMetricsServer } from './metrics-server.ts';
import { createProcessor } from './processor.ts';
import { readWorkerSettings, WorkerConfigError, type WorkerSettings } from './settings.ts';
import { createSolver } from './solver/index.ts';
import { SolverConfigError } from './solver/settings.ts';
import { createStoreOutageGate } from './store-outage.ts';

const sextant = createSextant({ serviceName: 'worker', shutdown: { handleSignals: true } });

function readSettings(): WorkerSettings {
  try {
    return readWorkerSettings();
  } catch (error) {
    if (!(error instanceof WorkerConfigError)) throw error;
    sextant.logger.fatal({ [error.variable]: error.value }, error.message);
    process.exit(1);
  }
}

const { metricsPort, concurrency } = readSettings();

// Read before anything opens: a bad QUANTUM_* value stops start-up with one fatal record.
function startSolver(): ReturnType<typeof createSolver> {
  try {
    return createSolver(sextant);
  } catch (error) {
    if (!(error instanceof SolverConfigError)) throw error;
    sextant.logger.fatal({ [error.variable]: process.env[error.variable] }, error.message);
    process.exit(1);
  }
}
const solver = startSolver();

// The metrics server listens first: while the store migrates or Redis is away, probes still answer.
const server = createMetricsServer(sextant);
server.on('error', (error) => {
  sextant.logger.fatal({ err: error, port: metricsPort }, 'could not listen');
  process.exit(1);
});
server.listen(metricsPort, () => {
  sextant.logger.info({ port: (server.address() as AddressInfo).port }, 'worker metrics listening');
});

const store = await createJobStore(sextant).catch((error: unknown) => {
  sextant.logger.fatal({ err: error }, 'could not open the job store');
  process.exit(1);
});
// The producer's queue object, for the depth gauge and the Redis health check.
const queue = createJobQueue(sextant);
const stopDepth = observeQueueDepth(sextant, queue);

const { connection, prefix } = queueSettings();
const workerOptions: WorkerOptions = { connection, concurrency, telemetry: createBullMQTelemetry(sextant) };
if (prefix !== undefined) workerOptions.prefix = prefix;
// While the database is unreachable, a job that finds it away is deferred (no attempt spent) and
// the worker takes no new job until the database answers again.
const storeOutage = createStoreOutageGate(sextant, { probe: () => jobStoreReachable(store) });
const processor = createProcessor(sextant, store, solver, {
  onStoreUnavailable: (error, jobId) => storeOutage.trip(error, jobId),
});
const worker = new Worker<JobData>(JOB_QUEUE_NAME, processor, workerOptions);
storeOutage.attach(worker);
reportConnectionErrors(sextant, worker, 'worker');
observeWorker(sextant, worker);

// Stop taking jobs as soon as shutdown starts (SIGTERM or a programmatic shutdown()); `close`
// resolves once the jobs in flight have finished.
let closing: Promise<void> | undefined;
const stopTakingJobs = () => {
  closing ??= worker.close();
  return closing;
};
sextant.onShutdownStart(() => {
  storeOutage.close();
  // A failure to close is handled by the shutdown hook below, which awaits the same promise.
  void stopTakingJobs().catch(() => undefined);
});
/** After shutdown, how long BullMQ's connections may still hold the event loop (Redis away: ioredis retrying). */
const EXIT_GRACE_MS = 1000;
const onSignal = () => {
  // The same shutdown that Sextant started on this signal: jobs drained, connections closed, spans flushed.
  void sextant.shutdown().then(() => setTimeout(() => process.exit(0), EXIT_GRACE_MS).unref());
};
process.once('SIGTERM', onSignal);
process.once('SIGINT', onSignal);

sextant.onShutdown(async () => {
  // Sextant runs this hook once the jobs in flight have finished (or its shutdown timeout passed).
  await closeRedisClient(sextant, { close: stopTakingJobs, disconnect: () => worker.disconnect() }, 'worker');
  stopDepth();
  solver.close();
  server.close();
});
sextant.logger.info({ queue: JOB_QUEUE_NAME, concurrency }, 'worker ready');
