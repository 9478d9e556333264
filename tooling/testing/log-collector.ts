/** A pino destination that keeps every JSON line it is given, and parses them on demand. */
export interface LogCollector {
  write(line: string): void;
  records(): Array<Record<string, any>>;
}

export function collectLines(): LogCollector {
  const lines: string[] = [];
  return {
    write(line: string) {
      lines.push(line);
    },
    records: () =>
      lines
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, any>),
  };
}
