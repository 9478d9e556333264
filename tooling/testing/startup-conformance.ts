import { describe, expect, it } from 'vitest';
import { type AppCommand, runAppToExit } from './app-process.ts';

/**
 * What every HTTP sample app must do before it serves, checked by running it as its own process
 * until it exits: each test starts the app itself (`describeHttpConformance` needs one running).
 */
export function describeStartupConformance(name: string, options: AppCommand) {
  describe(`${name}: start-up`, () => {
    // `Number('')` is 0 (a random port) and `Number('0x50')` 80: neither may start a server.
    it.each(['', 'abc', '0x50', '3000.5', ' 3000', '-1', '65536'])(
      'refuses PORT=%j: exits with code 1 after a fatal record naming the variable, the value and what is allowed',
      async (value) => {
        const { code, records } = await runAppToExit({
          ...options,
          env: { ...options.env, OTEL_TRACES_EXPORTER: 'none', PORT: value },
        });
        expect(code).toBe(1);
        expect(records).toContainEqual(
          expect.objectContaining({
            level: 'fatal',
            port: value,
            msg: `PORT must be an integer from 0 to 65535, got ${JSON.stringify(value)}`,
          }),
        );
        expect(records.some((record) => /listening/.test(String(record.msg)))).toBe(false);
      },
    );
  });
}
