/**
 * The one sink for failures inside Sextant. Observability must never break the app, so every
 * runtime failure ends here: counted by kind, and logged at most once per interval per kind.
 */
export interface InternalErrorSink {
  report(kind: string, error: unknown): void;
  /** Failures reported so far, by kind. */
  counts(): ReadonlyMap<string, number>;
  /** Replaces where the once-per-interval records go (the logger is built after the sink). */
  setWriter(writer: InternalErrorWriter): void;
}

export type InternalErrorWriter = (record: {
  kind: string;
  error: unknown;
  /** Failures of this kind since the previous record, including this one. */
  occurrences: number;
}) => void;

export interface InternalErrorSinkOptions {
  intervalMs: number;
  writer?: InternalErrorWriter;
  now?: () => number;
}

const stderrWriter: InternalErrorWriter = ({ kind, error, occurrences }) => {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(
    `${JSON.stringify({ level: 'warn', msg: 'sextant internal error', kind, occurrences, err: message })}\n`,
  );
};

export function createInternalErrorSink(options: InternalErrorSinkOptions): InternalErrorSink {
  const totals = new Map<string, number>();
  const lastLoggedAt = new Map<string, number>();
  const sinceLastLog = new Map<string, number>();
  const now = options.now ?? Date.now;
  let writer = options.writer ?? stderrWriter;

  return {
    report(kind, error) {
      totals.set(kind, (totals.get(kind) ?? 0) + 1);
      const pending = (sinceLastLog.get(kind) ?? 0) + 1;
      const at = now();
      const last = lastLoggedAt.get(kind);
      if (last !== undefined && at - last < options.intervalMs) {
        sinceLastLog.set(kind, pending);
        return;
      }
      lastLoggedAt.set(kind, at);
      sinceLastLog.set(kind, 0);
      try {
        writer({ kind, error, occurrences: pending });
      } catch {
        // The writer is the last resort; nothing is left to report its failure to.
      }
    },
    counts: () => totals,
    setWriter(next) {
      writer = next;
    },
  };
}

/** Runs `fn`; a throw is reported to the sink and `fallback` is returned instead. */
export function safeCall<T>(sink: InternalErrorSink, kind: string, fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch (error) {
    sink.report(kind, error);
    return fallback;
  }
}
