import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import type { HealthCheck, HealthCheckResult } from './health.ts';

export const EVENT_LOOP_CHECK_NAME = 'event_loop';
export const MEMORY_CHECK_NAME = 'memory';

/** Sampling interval of the event-loop delay histogram, in milliseconds. */
const EVENT_LOOP_RESOLUTION_MS = 20;
const NS_PER_MS = 1e6;

/** A built-in check that owns a monitor, stopped by `close()`. */
export interface MonitoredHealthCheck extends HealthCheck {
  close(): void;
}

function roundTo3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/**
 * The histogram records the whole time between two runs of its sampling timer, the 20 ms
 * interval included, so an idle loop would read 20 ms of lag and any threshold under that would
 * never pass; only what exceeds the interval is delay.
 */
function lagMs(nanoseconds: number): number {
  return Math.max(0, nanoseconds / NS_PER_MS - EVENT_LOOP_RESOLUTION_MS);
}

/**
 * Fails when the 99th percentile of event-loop delay since the previous run exceeds
 * `thresholdMs`; the delay is how late the sampling timer ran, so an idle loop reads about 0.
 * Not critical: lag is a symptom of load, not of a broken dependency, and taking
 * a lagging instance out of rotation moves its load onto its siblings, which then lag too (a
 * cascading outage). It shows in the detailed report; alerting belongs to the metrics.
 *
 * The histogram samples from a libuv timer that Node unrefs, so it never holds the process open.
 */
export function createEventLoopCheck(thresholdMs: number): MonitoredHealthCheck {
  const histogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  histogram.enable();
  return {
    name: EVENT_LOOP_CHECK_NAME,
    critical: false,
    check(): HealthCheckResult {
      const samples = histogram.count;
      // An empty histogram reports meaningless percentiles (and a NaN mean): no samples, no lag seen.
      if (samples === 0) return { status: 'up', details: { samples: 0, threshold_ms: thresholdMs } };
      const p99Ms = lagMs(histogram.percentile(99));
      const details = {
        samples,
        p99_ms: roundTo3(p99Ms),
        max_ms: roundTo3(lagMs(histogram.max)),
        mean_ms: roundTo3(lagMs(histogram.mean)),
        threshold_ms: thresholdMs,
      };
      histogram.reset();
      return p99Ms > thresholdMs
        ? {
            status: 'down',
            reason: `event loop delay p99 ${details.p99_ms} ms is over ${thresholdMs} ms`,
            details,
          }
        : { status: 'up', details };
    },
    close() {
      histogram.disable();
    },
  };
}

/**
 * Fails when the V8 heap in use exceeds `ratioThreshold` of the heap size limit. Not critical:
 * heap use grows with load on every instance at once, so failing readiness on it can take the
 * whole fleet out of rotation together; a leak is better caught by alerting on the metric and
 * ended by the runtime's memory limit.
 */
export function createMemoryCheck(ratioThreshold: number): HealthCheck {
  return {
    name: MEMORY_CHECK_NAME,
    critical: false,
    check(): HealthCheckResult {
      const { used_heap_size: used, heap_size_limit: limit } = getHeapStatistics();
      const ratio = used / limit;
      const details = {
        heap_used_bytes: used,
        heap_limit_bytes: limit,
        heap_used_ratio: roundTo3(ratio),
        threshold_ratio: ratioThreshold,
      };
      return ratio > ratioThreshold
        ? {
            status: 'down',
            reason: `heap used is ${details.heap_used_ratio} of its limit, over ${ratioThreshold}`,
            details,
          }
        : { status: 'up', details };
    },
  };
}
