import { METRICS, type Sextant, type SextantGauge } from '@sextant/core';
import type { JobType, Queue } from 'bullmq';
import { MESSAGING_SYSTEM } from './attributes.ts';
import { resolveDepthOptions } from './options.ts';
import type { SextantQueueDepthOptions } from './types.ts';

type Counts = Record<string, number>;
type DepthLabels = 'messaging_system' | 'messaging_destination_name' | 'state';

/**
 * Reports `messaging_queue_depth{state}` for `queue`, read at scrape time with one
 * `getJobCounts` call, reused for `cacheTtlMs`. A reading that fails or takes longer than
 * `timeoutMs` (Redis down or slow) leaves the scrape to go on without the queue's series until a
 * reading succeeds; at most one reading is in flight.
 * Returns the function that stops reporting and removes the queue's series (call it before
 * closing the queue). Throws a
 * SextantConfigError for an invalid option.
 */
export function observeQueueDepth(
  sextant: Sextant,
  queue: Queue,
  options?: SextantQueueDepthOptions,
): () => void {
  const resolved = resolveDepthOptions(options);
  const { cacheTtlMs, timeoutMs } = resolved;
  const states = resolved.states as JobType[];
  const destination = queue.name;
  let stopped = false;
  let readAt = Number.NEGATIVE_INFINITY;
  let reading: Promise<Counts | undefined> | undefined;

  const read = (): Promise<Counts | undefined> => {
    reading ??= queue.getJobCounts(...states).then(
      (counts) => {
        readAt = performance.now();
        reading = undefined;
        return counts;
      },
      (error: unknown) => {
        reading = undefined;
        sextant.errors.report('bullmq_queue_depth', error);
        return undefined;
      },
    );
    return reading;
  };

  const withTimeout = (pending: Promise<Counts | undefined>): Promise<Counts | undefined> =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs, undefined);
      timer.unref();
      pending.then((counts) => {
        clearTimeout(timer);
        resolve(counts);
      });
    });

  const labelsOf = (state: string) => ({
    messaging_system: MESSAGING_SYSTEM,
    messaging_destination_name: destination,
    state,
  });
  const removeSeries = (gauge: SextantGauge<DepthLabels>) => {
    for (const state of states) gauge.remove(labelsOf(state));
  };

  let cached: Counts | undefined;
  const collect = async (gauge: SextantGauge<DepthLabels>): Promise<void> => {
    if (stopped) return;
    if (cached === undefined || performance.now() - readAt > cacheTtlMs) {
      // Out until the reading comes: a scrape that stops waiting first (core's
      // `metrics.collectTimeoutMs` can be the shorter) must not show the last depth as current.
      removeSeries(gauge);
      const counts = await withTimeout(read());
      if (stopped) return;
      if (counts === undefined) {
        // No reading (Redis down or slow): no depth, rather than the last one passed off as current.
        cached = undefined;
        return;
      }
      cached = counts;
    }
    for (const state of states) gauge.set(labelsOf(state), cached[state] ?? 0);
  };
  const gauge = sextant.metrics.gauge<DepthLabels>({ ...METRICS.messagingQueueDepth, collect });
  return () => {
    if (stopped) return;
    stopped = true;
    // Neither a stale depth on /metrics nor a callback holding the closed queue.
    gauge.removeCollect(collect);
    removeSeries(gauge);
  };
}
