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
 * Fails when the 99th percentile of event-loop delay since the previous run exceeds
 * `thresholdMs`. Not critical: lag is a symptom of load, not of a broken dependency, and taking
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
      const p99Ms = histogram.percentile(99) / NS_PER_MS;
      const details = {
        samples,
        p99_ms: roundTo3(p99Ms),
        max_ms: roundTo3(histogram.max / NS_PER_MS),
        mean_ms: roundTo3(histogram.mean / NS_PER_MS),
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
