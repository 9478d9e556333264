/**
 * Sextant's stdout: JSON lines written in batches, one write per turn of the event loop, so a busy
 * service makes one system call per batch rather than per record.
 *
 * Every write happens on the calling thread, and never blocks it: a pipe or socket on stdout is put
 * in non-blocking mode (as Node does as soon as anything touches `process.stdout`), a full pipe
 * answers EAGAIN, and what it did not take waits for the next try. One writer owns the bytes in
 * flight at all times, so at exit (also after an uncaught exception) the rest goes out in order,
 * synchronously, and no line is cut or interleaved with another; only a SIGKILL loses lines. (A
 * write handed to libuv's thread pool could still be blocked in a full pipe at exit, with no way
 * to know how much of it went out: lines were cut and mixed there.)
 *
 * pino's own destination (sonic-boom) measures the whole pending batch in bytes again for every
 * line it appends, which made a line cost several microseconds under load; this writer counts
 * each line once.
 */
import { fstatSync, writeSync } from 'node:fs';

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

/**
 * Stdout and stderr as a pipe or a socket become non-blocking when Node opens them as streams
 * (libuv sets O_NONBLOCK; this is what `console.log` does), so a full pipe answers EAGAIN instead
 * of stalling the event loop. Files and terminals do not fill up: they are left as they are.
 */
function makeNonBlocking(fd: number): void {
  if (fd !== 1 && fd !== 2) return;
  try {
    const stat = fstatSync(fd);
    if (!stat.isFIFO() && !stat.isSocket()) return;
    // Opening the stream is what switches the descriptor's mode.
    void (fd === 1 ? process.stdout : process.stderr);
  } catch {
    // A closed or unusual descriptor: writes report their own errors.
  }
}

export class LineWriter {
  readonly #fd: number;
  readonly #sync: boolean;
  readonly #onError: LineWriterOptions['onError'];
  readonly #maxPending: number;
  #pending: string[] = [];
  #pendingCharacters = 0;
  /** The part of a batch the operating system did not take yet (a full pipe): written first. */
  #unwritten: Buffer | undefined;
  /** The next write, at the end of this turn of the event loop. */
  #immediate: NodeJS.Immediate | undefined;
  /** The next try after a full pipe refused a write. */
  #retry: NodeJS.Timeout | undefined;
  #flushWaiters: Array<() => void> = [];

  constructor(options: LineWriterOptions) {
    this.#fd = options.fd;
    this.#sync = options.sync;
    this.#onError = options.onError;
    this.#maxPending = options.maxPendingCharacters ?? MAX_PENDING_CHARACTERS;
    if (!this.#sync) {
      makeNonBlocking(this.#fd);
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
    const unwritten = this.#unwritten?.length ?? 0;
    if (this.#pendingCharacters + unwritten + line.length > this.#maxPending) {
      this.#drop();
      return false;
    }
    this.#pending.push(line);
    this.#pendingCharacters += line.length;
    if (this.#immediate === undefined && this.#retry === undefined)
      this.#immediate = setImmediate(this.#writeBatch);
    return true;
  }

  /** Calls back once every line taken so far has been written (or failed). */
  flush(callback?: (error?: Error) => void): void {
    if (this.#immediate === undefined && this.#retry === undefined) {
      callback?.();
      return;
    }
    if (callback) {
      this.#flushWaiters.push(() => callback());
      this.#retry?.ref();
    }
  }

  /** Writes everything pending now, on this thread, waiting for a full pipe: for the moment the process exits. */
  flushSync(): void {
    clearImmediate(this.#immediate);
    clearTimeout(this.#retry);
    this.#immediate = undefined;
    this.#retry = undefined;
    const unwritten = this.#unwritten;
    this.#unwritten = undefined;
    if (unwritten !== undefined) this.#writeNowSync(unwritten);
    const pending = this.#takePending();
    if (pending !== undefined) this.#writeNowSync(pending);
    this.#settleFlushes();
  }

  /** The lines taken since the last batch, as one buffer. */
  #takePending(): Buffer | undefined {
    if (this.#pending.length === 0) return undefined;
    const text = this.#pending.length === 1 ? this.#pending[0]! : this.#pending.join('');
    this.#pending = [];
    this.#pendingCharacters = 0;
    return Buffer.from(text, 'utf8');
  }

  readonly #writeBatch = (): void => {
    this.#immediate = undefined;
    this.#retry = undefined;
    // The rest of a batch a full pipe refused goes first, alone: the lines since wait their turn.
    let batch = this.#unwritten ?? this.#takePending();
    this.#unwritten = undefined;
    while (batch !== undefined) {
      let offset = 0;
      try {
        while (offset < batch.length) offset += writeSync(this.#fd, batch, offset, batch.length - offset);
      } catch (error) {
        if (isRetryable(error)) {
          // A full pipe: the rest waits, in order, and nothing blocks.
          this.#unwritten = batch.subarray(offset);
          this.#retry = setTimeout(this.#writeBatch, RETRY_AFTER_MS);
          // Alone, a full pipe does not keep the process alive (the exit writes the rest); a
          // caller waiting for the flush does.
          if (this.#flushWaiters.length === 0) this.#retry.unref();
          return;
        }
        this.#onError('log_destination', error);
      }
      batch = this.#takePending();
    }
    this.#settleFlushes();
  };

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
