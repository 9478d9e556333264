import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/** The names in the first column of the README's "API and options" table (`name(args)` or `NAME`). */
function documentedExports(): string[] {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## API and options'));
  const table = section.slice(0, section.indexOf('\n\n', section.indexOf('|')));
  const names: string[] = [];
  for (const row of table.split('\n').slice(2)) {
    const cell = row.split('|')[1] ?? '';
    for (const [, code] of cell.matchAll(/`([^`]+)`/g)) {
      const name = /^[A-Za-z_$][\w$]*/.exec(code!)?.[0];
      if (name !== undefined) names.push(name);
    }
  }
  return names;
}

describe('README', () => {
  it('lists exactly the runtime exports in its API table', async () => {
    const documented = documentedExports();
    expect(documented.length).toBeGreaterThan(5);
    const exported = Object.keys(await import('../src/index.ts'));
    expect(documented.filter((name) => !exported.includes(name))).toEqual([]);
    expect(exported.filter((name) => !documented.includes(name))).toEqual([]);
  });
});
