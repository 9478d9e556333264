import { METRICS, type Sextant, type SextantGauge } from '@sextant/core';
import type { JobType, Queue } from 'bullmq';
import { MESSAGING_SYSTEM } from './attributes.ts';
import { resolveDepthOptions } from './options.ts';
import type { SextantQueueDepthOptions } from './types.ts';

type Counts = Record<string, number>;
type DepthLabels = 'messaging_system' | 'messaging_destination_name' | 'state';

/**
 * Reports `messaging_queue_depth{state}` for `queue`, read at scrape time with one
 * `getJobCounts` call, reused for `cacheTtlMs`. A reading that takes longer than `timeoutMs`
 * (Redis down or slow) leaves the scrape to go on without it; at most one reading is in flight.
 * Returns the function that stops reporting (call it before closing the queue). Throws a
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

  let cached: Counts | undefined;
  const collect = async (gauge: SextantGauge<DepthLabels>): Promise<void> => {
    if (stopped) return;
    if (cached === undefined || performance.now() - readAt > cacheTtlMs) {
      const counts = await withTimeout(read());
      if (counts === undefined || stopped) return;
      cached = counts;
    }
    for (const state of states) {
      gauge.set(
        { messaging_system: MESSAGING_SYSTEM, messaging_destination_name: destination, state },
        cached[state] ?? 0,
      );
    }
  };
  sextant.metrics.gauge({ ...METRICS.messagingQueueDepth, collect });
  return () => {
    stopped = true;
  };
}
