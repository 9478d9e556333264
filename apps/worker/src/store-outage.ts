import { context, ROOT_CONTEXT } from '@opentelemetry/api';
import type { Sextant } from '@sextant/core';
import { storeErrorReason } from 'job-store';

/** While the database is away, it is probed this often. */
export const STORE_PROBE_INTERVAL_MS = 1000;
/** The outage records (`database unreachable...`, `database still unreachable...`) are written at most this often. */
export const STORE_OUTAGE_LOG_INTERVAL_MS = 30_000;

/** The part of BullMQ's `Worker` the gate drives. */
export interface PausableWorker {
  pause(doNotWaitActive?: boolean): Promise<void>;
  resume(): Promise<void>;
}

/**
 * Stops the worker taking jobs while the database is unreachable, and starts it again once the
 * database answers. The processor defers the job that found the database away (without spending
 * one of its attempts) and calls {@link StoreOutageGate.trip}.
 */
export interface StoreOutageGate {
  /** An attempt of `jobId` could not reach the database: pause the worker (once) and probe until it answers. */
  trip(error: unknown, jobId: string): void;
  /** The worker to pause and resume; set once it exists (the processor is built before it). */
  attach(worker: PausableWorker): void;
  /** Whether the worker is paused for an outage now. */
  readonly down: boolean;
  /** At shutdown: stop probing and never resume the worker. */
  close(): void;
}

export interface StoreOutageGateOptions {
  /** Resolves `true` once the database answers; never rejects. */
  probe: () => Promise<boolean>;
  /** Default {@link STORE_PROBE_INTERVAL_MS}. */
  probeIntervalMs?: number;
  /** Default {@link STORE_OUTAGE_LOG_INTERVAL_MS}. */
  logIntervalMs?: number;
}

export function createStoreOutageGate(sextant: Sextant, options: StoreOutageGateOptions): StoreOutageGate {
  const log = sextant.logger.child({ component: 'store-outage' });
  const probeIntervalMs = options.probeIntervalMs ?? STORE_PROBE_INTERVAL_MS;
  const logIntervalMs = options.logIntervalMs ?? STORE_OUTAGE_LOG_INTERVAL_MS;
  let worker: PausableWorker | undefined;
  let closed = false;
  let downSince: number | undefined;
  let deferred = 0;
  let loggedAt = Number.NEGATIVE_INFINITY;
  // Whether this outage's first record was written: its end is logged only then, so a flapping
  // database writes at most a few records per interval.
  let outageLogged = false;
  let timer: NodeJS.Timeout | undefined;

  const schedule = () => {
    // trip() runs inside the attempt that found the database away: the probe, and the worker's
    // loop that resume() restarts, must not run in that job's trace for the rest of the process.
    timer = context.with(ROOT_CONTEXT, () => setTimeout(() => void tick(), probeIntervalMs));
    // Redis' connections keep the process alive; the probe alone must not.
    timer.unref();
  };

  const tick = async () => {
    timer = undefined;
    if (closed || downSince === undefined) return;
    const reachable = await options.probe().catch(() => false);
    if (closed) return;
    const now = performance.now();
    const downMs = Math.round(now - downSince);
    if (!reachable) {
      if (now - loggedAt >= logIntervalMs) {
        loggedAt = now;
        outageLogged = true;
        log.warn(
          { down_ms: downMs, deferred_jobs: deferred },
          'database still unreachable, jobs stay deferred',
        );
      }
      schedule();
      return;
    }
    if (outageLogged) {
      log.info({ down_ms: downMs, deferred_jobs: deferred }, 'database reachable again, taking jobs');
    }
    downSince = undefined;
    deferred = 0;
    outageLogged = false;
    await worker
      ?.resume()
      .catch((error: unknown) => log.error({ err: error }, 'could not resume the worker'));
  };

  return {
    trip(error, jobId) {
      if (closed) return;
      deferred += 1;
      if (downSince !== undefined) return;
      const now = performance.now();
      downSince = now;
      if (now - loggedAt >= logIntervalMs) {
        loggedAt = now;
        outageLogged = true;
        log.warn(
          { job_id: jobId, reason: storeErrorReason(error), probe_interval_ms: probeIntervalMs },
          'database unreachable: jobs are deferred without spending an attempt, and no new job is taken until it answers',
        );
      }
      // Jobs in flight finish (or are deferred) by themselves: waiting for them here would wait
      // for the attempt that called us.
      void worker
        ?.pause(true)
        .catch((pauseError: unknown) => log.error({ err: pauseError }, 'could not pause the worker'));
      schedule();
    },
    attach(target) {
      worker = target;
    },
    get down() {
      return downSince !== undefined;
    },
    close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}
