/**
 * Sextant's stdout: JSON lines written asynchronously, in batches. While one write is with the
 * operating system, the lines logged meanwhile wait in an array and go out together in the next
 * write, so a busy service makes one system call per batch rather than per record.
 *
 * pino's own destination (sonic-boom) does the same but measures the whole pending batch in bytes
 * again for every line it appends, which made a line cost several microseconds under load; this
 * writer counts each line once. Lines still pending when the process exits (also after an uncaught
 * exception) are written synchronously then; only a SIGKILL loses them.
 */
import { write, writeSync } from 'node:fs';

/** Pending lines beyond this many characters are dropped (and reported), so a blocked stdout cannot exhaust memory. */
export const MAX_PENDING_CHARACTERS = 32 * 1024 * 1024;
/** A full non-blocking pipe answers EAGAIN: try again after this pause. */
const RETRY_AFTER_MS = 10;
/** flushSync on a full pipe: how many times to wait for room before giving up. */
const SYNC_RETRIES = 1000;

export interface LineWriterOptions {
  /** The file descriptor to write to (1 for stdout). */
  fd: number;
  /** One write per line, on the calling thread: nothing is ever pending. */
  sync: boolean;
  /** A failed write (the lines in it are lost) or lines dropped for want of room. */
  onError: (kind: 'log_destination' | 'log_dropped', error: unknown) => void;
  maxPendingCharacters?: number;
}

const live = new Set<WeakRef<LineWriter>>();
const forget = new FinalizationRegistry<WeakRef<LineWriter>>((ref) => live.delete(ref));
let exitHookInstalled = false;

function flushAllOnExit(): void {
  for (const ref of live) ref.deref()?.flushSync();
}

function isRetryable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'EAGAIN' || code === 'EBUSY';
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export class LineWriter {
  readonly #fd: number;
  readonly #sync: boolean;
  readonly #onError: LineWriterOptions['onError'];
  readonly #maxPending: number;
  #pending: string[] = [];
  #pendingCharacters = 0;
  /** The bytes of the write in progress (with the operating system, or waiting to be retried). */
  #inFlight: Buffer | undefined;
  /** A write the operating system refused for now (a full pipe), to be retried after a pause. */
  #awaitingRetry: Buffer | undefined;
  #flushWaiters: Array<() => void> = [];

  constructor(options: LineWriterOptions) {
    this.#fd = options.fd;
    this.#sync = options.sync;
    this.#onError = options.onError;
    this.#maxPending = options.maxPendingCharacters ?? MAX_PENDING_CHARACTERS;
    if (!this.#sync) {
      const ref = new WeakRef(this);
      live.add(ref);
      forget.register(this, ref);
      if (!exitHookInstalled) {
        exitHookInstalled = true;
        process.once('exit', flushAllOnExit);
      }
    }
  }

  /** Takes one line (with its newline). Never throws. */
  write(line: string): boolean {
    if (this.#sync) {
      this.#writeNowSync(Buffer.from(line, 'utf8'));
      return true;
    }
    if (this.#pendingCharacters + line.length > this.#maxPending) {
      this.#drop();
      return false;
    }
    this.#pending.push(line);
    this.#pendingCharacters += line.length;
    if (this.#inFlight === undefined) this.#writeNextBatch();
    return true;
  }

  /** Calls back once every line taken so far has been written (or failed). */
  flush(callback?: (error?: Error) => void): void {
    if (this.#inFlight === undefined && this.#pending.length === 0) {
      callback?.();
      return;
    }
    if (callback) this.#flushWaiters.push(() => callback());
  }

  /** Writes everything pending now, on this thread: for the moment the process exits. */
  flushSync(): void {
    // A write the operating system already has is left to finish (writing it again could
    // duplicate lines); one waiting to be retried is written here.
    const chunks: Buffer[] = [];
    if (this.#awaitingRetry !== undefined) chunks.push(this.#awaitingRetry);
    if (this.#pending.length > 0) chunks.push(Buffer.from(this.#pending.join(''), 'utf8'));
    this.#awaitingRetry = undefined;
    this.#pending = [];
    this.#pendingCharacters = 0;
    for (const chunk of chunks) this.#writeNowSync(chunk);
  }

  #writeNextBatch(): void {
    const text = this.#pending.length === 1 ? this.#pending[0]! : this.#pending.join('');
    this.#pending = [];
    this.#pendingCharacters = 0;
    this.#writeAsync(Buffer.from(text, 'utf8'));
  }

  #writeAsync(data: Buffer): void {
    this.#inFlight = data;
    write(this.#fd, data, 0, data.length, null, (error, written) => {
      if (error) {
        if (isRetryable(error)) {
          this.#awaitingRetry = data;
          setTimeout(() => {
            // flushSync (process exit) wrote it meanwhile.
            if (this.#awaitingRetry !== data) return;
            this.#awaitingRetry = undefined;
            this.#writeAsync(data);
          }, RETRY_AFTER_MS).unref();
          return;
        }
        this.#onError('log_destination', error);
      } else if (written < data.length) {
        this.#writeAsync(data.subarray(written));
        return;
      }
      this.#inFlight = undefined;
      if (this.#pending.length > 0) this.#writeNextBatch();
      else this.#settleFlushes();
    });
  }

  #writeNowSync(data: Buffer): void {
    let offset = 0;
    let retries = 0;
    while (offset < data.length) {
      try {
        offset += writeSync(this.#fd, data, offset, data.length - offset);
      } catch (error) {
        if (isRetryable(error) && retries++ < SYNC_RETRIES) {
          sleepSync(RETRY_AFTER_MS);
          continue;
        }
        this.#onError('log_destination', error);
        return;
      }
    }
  }

  #drop(): void {
    // The sink counts occurrences and limits how often this is logged.
    this.#onError(
      'log_dropped',
      new Error(`log line dropped: more than ${this.#maxPending} characters were already waiting for stdout`),
    );
  }

  #settleFlushes(): void {
    const waiters = this.#flushWaiters;
    this.#flushWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
