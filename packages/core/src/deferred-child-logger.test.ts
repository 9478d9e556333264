import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createDeferredChildLoggerFactory } from './deferred-child-logger.ts';

describe('createDeferredChildLoggerFactory', () => {
  it('makes the real child on first use only, and forwards methods and properties to it', () => {
    const lines: string[] = [];
    const parent = pino({ base: undefined, timestamp: false }, { write: (line: string) => lines.push(line) });
    let made = 0;
    const counting = Object.create(parent, {
      child: {
        value: (...args: Parameters<typeof parent.child>) => {
          made++;
          return parent.child(...args);
        },
      },
    }) as typeof parent;
    const deferred = createDeferredChildLoggerFactory(parent)(counting, { reqId: 'r-1' });
    expect(made).toBe(0);

    deferred.info({ step: 1 }, 'hello');
    expect(made).toBe(1);
    expect(deferred.level).toBe('info');
    deferred.level = 'warn';
    expect(deferred.isLevelEnabled('info')).toBe(false);
    deferred.info('dropped');
    deferred.child({ nested: true }).warn('nested');
    expect(deferred.bindings()).toEqual({ reqId: 'r-1' });
    expect(made).toBe(1);
    expect(lines.map((line) => JSON.parse(line))).toEqual([
      { level: 30, reqId: 'r-1', step: 1, msg: 'hello' },
      { level: 40, reqId: 'r-1', nested: true, msg: 'nested' },
    ]);
  });
});
