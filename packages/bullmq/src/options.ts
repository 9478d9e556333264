import { ERROR_CODES, SextantConfigError } from '@sextant/core';
import type { ProducerRelation, SextantBullMQOptions } from './types.ts';

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
const KNOWN_OPTIONS = new Set(['relation', 'repeatRelation', 'queues', 'spanOperations']);
const KNOWN_QUEUE_OPTIONS = new Set(['relation', 'repeatRelation']);

function invalid(message: string): never {
  throw new SextantConfigError(ERROR_CODES.INVALID_OPTION, message, '@sextant/bullmq');
}

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
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
    if (typeof options.queues !== 'object' || options.queues === null) {
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
  if (!Array.isArray(operations) || operations.some((operation) => typeof operation !== 'string')) {
    invalid(`spanOperations is ${describe(operations)}: expected an array of BullMQ operation names`);
  }
  return {
    spanOperations: new Set(operations),
    relationOf: (queue) => byQueue.get(queue) ?? defaultRelation,
    repeatRelationOf: (queue) => repeatByQueue.get(queue) ?? repeatRelation,
  };
}
