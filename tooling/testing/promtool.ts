import { execFileSync } from 'node:child_process';

/** Runs Prometheus' own linter on an exposition; `problems` is whatever it printed. */
export function promtoolCheck(exposition: string): { status: number; problems: string } {
  try {
    const output = execFileSync('promtool', ['check', 'metrics'], {
      input: exposition,
      encoding: 'utf8',
      stdio: 'pipe',
    });
    return { status: 0, problems: output.trim() };
  } catch (error) {
    const failed = error as { status: number | null; stdout?: string; stderr?: string; message: string };
    return {
      status: failed.status ?? -1,
      problems: `${failed.stdout ?? ''}${failed.stderr ?? failed.message}`.trim(),
    };
  }
}

/**
 * promtool 2.x reads stdin as the Prometheus text format only. OpenMetrics names a counter family
 * without `_total` and its samples with it, so promtool sees an untyped `<family>_total` without
 * HELP and reports "no help text". Exactly those lines, for counter families with samples, are
 * accepted; any other problem is returned.
 */
export function promtoolCheckOpenMetrics(exposition: string): { eof: boolean; problems: string[] } {
  const counterFamilies = [...exposition.matchAll(/^# TYPE (\S+) counter$/gm)].map((match) => match[1]!);
  const expected = new Set(
    counterFamilies
      .filter((family) => exposition.includes(`\n${family}_total`))
      .map((family) => `${family}_total no help text`),
  );
  const { problems } = promtoolCheck(exposition);
  return {
    eof: exposition.endsWith('\n# EOF\n'),
    problems: problems.split('\n').filter((line) => line !== '' && !expected.has(line)),
  };
}
