import { EventEmitter } from 'node:events';
import { createSextant, type Sextant } from '@sextant/core';
import { Queue, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRedisClient, reportConnectionErrors } from '../src/index.ts';
import { collectLines, freePort, startRedis, uniquePrefix, waitFor } from './helpers.ts';

let sextant: Sextant;
const logs = collectLines();

beforeAll(() => {
  sextant = createSextant({ serviceName: 'bullmq-connection-test', logs: { destination: logs }, env: {} });
});
afterAll(async () => {
  await sextant.shutdown();
});

const warnings = (text: string) =>
  logs.records().filter((record) => record.level === 'warn' && record.msg.includes(text));

describe('Redis outages around a queue', () => {
  it('logs a repeated connection error once instead of crashing on it, and still closes promptly', async () => {
    const port = await freePort();
    const redis = await startRedis(port);
    const queue = new Queue(`${uniquePrefix()}-queue`, {
      connection: { host: '127.0.0.1', port, maxRetriesPerRequest: null, retryStrategy: () => 50 },
    });
    reportConnectionErrors(sextant, queue, 'orders queue');
    await queue.waitUntilReady();
    redis.stop();
    // ioredis retries every 50 ms here: many identical errors, one record.
    await waitFor(
      () => warnings('orders queue: Redis connection error').length > 0,
      'the connection error record',
    );
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(warnings('orders queue: Redis connection error')).toHaveLength(1);
    expect(warnings('orders queue: Redis connection error')[0]!).toMatchObject({
      connection: true,
      err: { type: 'Error' },
    });

    const started = performance.now();
    await closeRedisClient(sextant, queue, 'orders queue', 300);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('logs each of two errors that take turns once, not at every turn', () => {
    const emitter = new EventEmitter();
    reportConnectionErrors(sextant, emitter, 'alternating queue');
    for (let turn = 0; turn < 10; turn++) {
      emitter.emit(
        'error',
        Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6390'), { code: 'ECONNREFUSED' }),
      );
      emitter.emit('error', new Error('Connection is closed.'));
    }
    expect(warnings('alternating queue: Redis connection error').map((record) => record.err)).toEqual([
      expect.objectContaining({ message: 'connect ECONNREFUSED 127.0.0.1:6390' }),
      expect.objectContaining({ message: 'Connection is closed.' }),
    ]);
  });

  it('disconnects, with one warn record, a client whose close does not end in time', async () => {
    let disconnected = false;
    const hung = {
      close: () => new Promise<void>(() => undefined),
      disconnect: async () => {
        disconnected = true;
      },
    };
    await closeRedisClient(sextant, hung, 'stuck worker', 100);
    expect(disconnected).toBe(true);
    expect(warnings('stuck worker: Redis connection did not close cleanly, disconnecting')).toEqual([
      expect.objectContaining({ timeout_ms: 100 }),
    ]);
  });

  it("words BullMQ's own errors as BullMQ's, not Redis's: a return value it cannot store", async () => {
    const prefix = uniquePrefix();
    const connection = { host: '127.0.0.1', port: 6379 };
    const queue = new Queue(`${prefix}-queue`, { connection, prefix });
    const worker = new Worker(`${prefix}-queue`, async () => ({ total: 1n }), { connection, prefix });
    reportConnectionErrors(sextant, worker, 'orders worker');
    try {
      await queue.add('charge', {});
      await waitFor(
        () => warnings('orders worker: error reported by BullMQ').length > 0,
        "BullMQ's error record",
      );
      expect(warnings('orders worker: error reported by BullMQ')[0]).toMatchObject({
        connection: false,
        err: { type: 'TypeError', message: expect.stringMatching(/BigInt/) },
      });
      expect(warnings('orders worker: Redis connection error')).toHaveLength(0);
    } finally {
      await worker.close();
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });

  it('closes quietly when Redis is there', async () => {
    const queue = new Queue(`${uniquePrefix()}-queue`, { connection: { host: '127.0.0.1', port: 6379 } });
    await queue.waitUntilReady();
    const before = warnings('did not close cleanly').length;
    await closeRedisClient(sextant, queue, 'healthy queue');
    expect(warnings('did not close cleanly')).toHaveLength(before);
  });
});
