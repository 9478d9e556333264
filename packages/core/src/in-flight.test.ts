import { createHook } from 'node:async_hooks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createInFlight } from './in-flight.ts';

// Every timer in-flight.ts creates, unref'ed or not, seen through async_hooks: none may outlive a test.
const liveTimers = new Set<number>();
const timerHook = createHook({
  init(asyncId, type) {
    if (type === 'Timeout' && new Error().stack?.includes('/src/in-flight.ts:')) liveTimers.add(asyncId);
  },
  destroy(asyncId) {
    liveTimers.delete(asyncId);
  },
});

function refedTimerCount(): number {
  return process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;
}

beforeEach(() => {
  liveTimers.clear();
  timerHook.enable();
});

afterEach(async () => {
  // Destroy hooks run from the immediate queue.
  await new Promise((resolve) => setImmediate(resolve));
  timerHook.disable();
  expect(liveTimers.size).toBe(0);
});

describe('createInFlight', () => {
  it('counts work in and out, and ending twice counts once', () => {
    const inFlight = createInFlight();
    const endRequest = inFlight.start();
    const endJob = inFlight.start();
    expect(inFlight.count).toBe(2);

    endRequest();
    endRequest();
    expect(inFlight.count).toBe(1);

    endJob();
    expect(inFlight.count).toBe(0);
  });

  it('is idle at once when nothing is in flight, without a timer', async () => {
    const inFlight = createInFlight();
    expect(await inFlight.idle(10_000)).toBe(true);
    expect(liveTimers.size).toBe(0);
  });

  it('resolves every waiter with true when the last work ends', async () => {
    const inFlight = createInFlight();
    const endFirst = inFlight.start();
    const endSecond = inFlight.start();
    const settled: boolean[] = [];
    const waiters = [inFlight.idle(10_000), inFlight.idle(20_000)].map((waiter) =>
      waiter.then((reachedZero) => {
        settled.push(reachedZero);
        return reachedZero;
      }),
    );

    endFirst();
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toEqual([]);

    endSecond();
    expect(await Promise.all(waiters)).toEqual([true, true]);
  });

  it('resolves false on timeout while work remains, and keeps counting afterwards', async () => {
    const inFlight = createInFlight();
    const end = inFlight.start();

    expect(await inFlight.idle(20)).toBe(false);
    expect(inFlight.count).toBe(1);

    end();
    expect(inFlight.count).toBe(0);
    expect(await inFlight.idle(20)).toBe(true);
  });

  it('does not wait on a timeout that is not a positive number', async () => {
    const inFlight = createInFlight();
    const end = inFlight.start();
    expect(await inFlight.idle(Number.NaN)).toBe(false);
    expect(await inFlight.idle(-1)).toBe(false);
    end();
  });

  it('never holds the process open while waiting', async () => {
    const inFlight = createInFlight();
    const end = inFlight.start();
    const before = refedTimerCount();
    const waiting = inFlight.idle(60_000);
    const during = refedTimerCount();
    end();
    expect(await waiting).toBe(true);
    expect(during).toBe(before);
  });
});
