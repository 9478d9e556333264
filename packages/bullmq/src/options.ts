import { ERROR_CODES, SextantConfigError } from '@sextant/core';
import type { ProducerRelation, SextantBullMQOptions, SextantQueueDepthOptions } from './types.ts';

export interface ResolvedOptions {
  readonly spanOperations: ReadonlySet<string>;
  relationOf(queue: string): ProducerRelation;
  repeatRelationOf(queue: string): ProducerRelation;
}

const DEFAULT_OPTIONS = Object.freeze({
  relation: 'child' as ProducerRelation,
  repeatRelation: 'link' as ProducerRelation,
  spanOperations: Object.freeze(['add', 'addBulk', 'addFlow', 'addBulkFlows', 'addNode', 'process']),
});
const RELATIONS: readonly ProducerRelation[] = ['child', 'link'];
/** The operations BullMQ 6 traces, by the names it passes to `telemetry` (its `trace` calls). */
const BULLMQ_OPERATIONS: ReadonlySet<string> = new Set([
  'add',
  'addBulk',
  'addFlow',
  'addBulkFlows',
  'addNode',
  'process',
  'complete',
  'clean',
  'close',
  'drain',
  'extendLocks',
  'getNextJob',
  'moveStalledJobsToWait',
  'obliterate',
  'pause',
  'promoteJobs',
  'rateLimit',
  'remove',
  'removeDebounceKey',
  'removeDeduplicationKey',
  'resume',
  'retryJobs',
  'startStalledCheckTimer',
  'trimEvents',
  'updateJobProgress',
]);
/** They only mark the attempt's outcome, never a span of their own. */
const OUTCOME_OPERATIONS: ReadonlySet<string> = new Set(['retry', 'delay', 'fail']);
const KNOWN_OPTIONS = new Set(['relation', 'repeatRelation', 'queues', 'spanOperations']);
const KNOWN_QUEUE_OPTIONS = new Set(['relation', 'repeatRelation']);

function invalid(message: string): never {
  throw new SextantConfigError(ERROR_CODES.INVALID_OPTION, message, '@sextant/bullmq');
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) {
    try {
      return JSON.stringify(value);
    } catch {
      return 'an array';
    }
  }
  return String(value);
}

function relation(name: string, value: unknown, fallback: ProducerRelation): ProducerRelation {
  if (value === undefined) return fallback;
  if (!RELATIONS.includes(value as ProducerRelation)) {
    invalid(`${name} is ${describe(value)}: expected "child" or "link"`);
  }
  return value as ProducerRelation;
}

/** Validates once at construction; the hot path reads a set and a map. */
export function resolveOptions(options: SextantBullMQOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null)
    invalid(`options are ${describe(options)}: expected an object`);
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) invalid(`unknown option "${key}" (known: ${[...KNOWN_OPTIONS].join(', ')})`);
  }
  const defaultRelation = relation('relation', options.relation, DEFAULT_OPTIONS.relation);
  const repeatRelation = relation('repeatRelation', options.repeatRelation, DEFAULT_OPTIONS.repeatRelation);
  const byQueue = new Map<string, ProducerRelation>();
  const repeatByQueue = new Map<string, ProducerRelation>();
  if (options.queues !== undefined) {
    if (typeof options.queues !== 'object' || options.queues === null || Array.isArray(options.queues)) {
      invalid(`queues is ${describe(options.queues)}: expected an object keyed by queue name`);
    }
    for (const [queue, settings] of Object.entries(options.queues)) {
      if (typeof settings !== 'object' || settings === null) {
        invalid(`queues["${queue}"] is ${describe(settings)}: expected { relation?, repeatRelation? }`);
      }
      for (const key of Object.keys(settings)) {
        if (!KNOWN_QUEUE_OPTIONS.has(key)) {
          invalid(
            `unknown option "queues["${queue}"].${key}" (known: ${[...KNOWN_QUEUE_OPTIONS].join(', ')})`,
          );
        }
      }
      byQueue.set(queue, relation(`queues["${queue}"].relation`, settings.relation, defaultRelation));
      // Only a repeat-specific setting reaches scheduled jobs: a queue's `relation: 'child'` would
      // otherwise make every run of a scheduler a child of its first `add`, one endless trace.
      if (settings.repeatRelation !== undefined) {
        repeatByQueue.set(
          queue,
          relation(`queues["${queue}"].repeatRelation`, settings.repeatRelation, repeatRelation),
        );
      }
    }
  }
  const operations = options.spanOperations ?? DEFAULT_OPTIONS.spanOperations;
  if (!Array.isArray(operations)) {
    invalid(`spanOperations is ${describe(operations)}: expected an array of BullMQ operation names`);
  }
  for (const operation of operations) {
    if (OUTCOME_OPERATIONS.has(operation)) {
      invalid(
        `spanOperations names "${operation}", which marks an attempt's outcome and never becomes a span ` +
          "(the attempt's span carries bullmq.job.outcome)",
      );
    }
    if (!BULLMQ_OPERATIONS.has(operation)) {
      invalid(
        `spanOperations names ${describe(operation)}, not an operation BullMQ traces (known: ${[...BULLMQ_OPERATIONS].join(', ')})`,
      );
    }
  }
  return {
    spanOperations: new Set(operations),
    relationOf: (queue) => byQueue.get(queue) ?? defaultRelation,
    repeatRelationOf: (queue) => repeatByQueue.get(queue) ?? repeatRelation,
  };
}

export interface ResolvedDepthOptions {
  readonly cacheTtlMs: number;
  readonly timeoutMs: number;
  readonly states: readonly string[];
}

const DEFAULT_DEPTH_OPTIONS: ResolvedDepthOptions = Object.freeze({
  cacheTtlMs: 5000,
  timeoutMs: 500,
  states: Object.freeze([
    'waiting',
    'active',
    'delayed',
    'prioritized',
    'waiting-children',
    'completed',
    'failed',
    'paused',
  ]),
});
/** The states `Queue.getJobCounts` counts. */
const JOB_STATES: ReadonlySet<string> = new Set([...DEFAULT_DEPTH_OPTIONS.states, 'repeat']);
const KNOWN_DEPTH_OPTIONS = new Set(Object.keys(DEFAULT_DEPTH_OPTIONS));

function integerOption(name: string, value: unknown, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    invalid(`observeQueueDepth(): ${name} is ${describe(value)}: expected an integer from ${min} to ${max}`);
  }
  return value;
}

/** Validates `observeQueueDepth`'s options once, when it starts observing. */
export function resolveDepthOptions(options: SextantQueueDepthOptions | undefined): ResolvedDepthOptions {
  if (options === undefined) return DEFAULT_DEPTH_OPTIONS;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    invalid(`observeQueueDepth(): options are ${describe(options)}: expected an object`);
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN_DEPTH_OPTIONS.has(key)) {
      invalid(`observeQueueDepth(): unknown option "${key}" (known: ${[...KNOWN_DEPTH_OPTIONS].join(', ')})`);
    }
  }
  const states = options.states ?? DEFAULT_DEPTH_OPTIONS.states;
  const expectedStates = `expected a non-empty array of job states (${[...JOB_STATES].join(', ')})`;
  if (!Array.isArray(states) || states.length === 0) {
    invalid(`observeQueueDepth(): states is ${describe(states)}: ${expectedStates}`);
  }
  for (const state of states) {
    if (!JOB_STATES.has(state))
      invalid(`observeQueueDepth(): states names ${describe(state)}: ${expectedStates}`);
  }
  return {
    cacheTtlMs: integerOption(
      'cacheTtlMs',
      options.cacheTtlMs,
      0,
      3_600_000,
      DEFAULT_DEPTH_OPTIONS.cacheTtlMs,
    ),
    timeoutMs: integerOption('timeoutMs', options.timeoutMs, 1, 60_000, DEFAULT_DEPTH_OPTIONS.timeoutMs),
    states: [...new Set(states)],
  };
}
