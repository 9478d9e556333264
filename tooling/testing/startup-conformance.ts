import { describe, expect, it } from 'vitest';
import { type AppCommand, runAppToExit, startApp } from './app-process.ts';

/**
 * What every HTTP sample app must do before it serves, checked by running it as its own process:
 * each test starts the app itself (`describeHttpConformance` needs one running).
 *
 * A blank `PORT` counts as unset, as everywhere in Sextant, and means port 3000: that is checked
 * on each app's port parsing directly, since 3000 may be taken on the machine running the tests.
 */
export function describeStartupConformance(name: string, options: AppCommand) {
  describe(`${name}: start-up`, () => {
    // `Number('0x50')` is 80 and `Number('1e3')` 1000: neither may start a server.
    it.each(['abc', '0x50', '1e3', '3000.5', '30 00', '-1', '65536', ' abc '])(
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

    it('ignores spaces around PORT and a blank HOST: PORT=" 0 " listens on a free port and logs it', async () => {
      const app = await startApp({
        ...options,
        env: { ...options.env, OTEL_TRACES_EXPORTER: 'none', PORT: ' 0 ', HOST: ' ' },
      });
      try {
        expect(app.url).toMatch(/:\d+$/);
        expect(app.url).not.toMatch(/:0$/);
        expect((await fetch(`${app.url}/health`)).status).toBe(200);
      } finally {
        await app.stop();
      }
    });
  });
}
