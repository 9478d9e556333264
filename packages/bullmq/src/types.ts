/** How a job's processing span relates to the span that enqueued it. */
export type ProducerRelation = 'child' | 'link';

export interface SextantBullMQQueueOptions {
  /**
   * Relation of this queue's processing spans to their producer. Default: the top-level
   * `relation`. It does not reach the jobs of a job scheduler: those follow `repeatRelation`.
   */
  relation?: ProducerRelation;
  /**
   * Relation for this queue's jobs created by a job scheduler (repeatable jobs). Default: the
   * top-level `repeatRelation` (`link`), whatever this queue's `relation`.
   */
  repeatRelation?: ProducerRelation;
}

export interface SextantBullMQOptions {
  /**
   * `child` (default): each attempt's span is a child of the producer's span, in its trace (the
   * producer's sampling decision holds). `link`: each attempt starts its own trace with a link to
   * the producer's span (fan-out, long-lived jobs); an attempt whose producer was not sampled is
   * not recorded either, whatever the sampler (a job scheduler's runs are sampled each on its own).
   */
  relation?: ProducerRelation;
  /**
   * Relation for jobs created by a job scheduler (repeatable jobs). Default `link`: every
   * iteration carries the scheduler's original context, so `child` would grow one trace forever.
   * With `link` each run also gets a request id of its own (the same for all its attempts) and
   * none of the creator's baggage; with `child` it keeps both, like its trace.
   */
  repeatRelation?: ProducerRelation;
  /** Per-queue settings, by queue name. */
  queues?: Readonly<Record<string, SextantBullMQQueueOptions>>;
  /**
   * BullMQ operations turned into spans. Default: the producer operations (`add`, `addBulk`,
   * `addFlow`, `addBulkFlows`, `addNode`) and `process`. Housekeeping operations (`getNextJob`,
   * `moveStalledJobsToWait`, `extendLocks`, `complete`, `clean`...) can be added by name; the
   * attempt's own bookkeeping (`retry`, `delay`, `fail`) never becomes a span. Leaving `process`
   * or a producer operation out keeps its metrics and the job's context (the processor then runs
   * in the producer's trace): only the span goes.
   */
  spanOperations?: readonly string[];
}

export interface SextantQueueDepthOptions {
  /** Milliseconds a depth reading is reused across scrapes. Default 5000. */
  cacheTtlMs?: number;
  /** Milliseconds a reading may take before the scrape goes on without it. Default 500. */
  timeoutMs?: number;
  /** Job states reported. Default: waiting, active, delayed, prioritized, waiting-children, completed, failed, paused. */
  states?: readonly string[];
}

export interface SextantRedisHealthCheckOptions {
  /** Check name in the health reports. Default `redis`. */
  name?: string;
  /** Whether a failing check makes readiness answer 503. Default `true`. */
  critical?: boolean;
  /** Milliseconds before the check counts as down. Default: core's `health.checkTimeoutMs` (500). */
  timeoutMs?: number;
}
