import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LineWriter } from './line-writer.ts';

function tempFile(): { path: string; fd: number } {
  const path = join(mkdtempSync(join(tmpdir(), 'sextant-lines-')), 'out.log');
  return { path, fd: openSync(path, 'a') };
}

function flushed(writer: LineWriter): Promise<void> {
  return new Promise((resolve) => writer.flush(() => resolve()));
}

const line = (i: number) => `${JSON.stringify({ i, msg: 'record', text: 'zürich ✓ 東京' })}\n`;

describe('LineWriter', () => {
  it('writes every line, in order, in fewer writes than lines', async () => {
    const { path, fd } = tempFile();
    const errors: unknown[] = [];
    const writer = new LineWriter({ fd, sync: false, onError: (_kind, error) => errors.push(error) });
    for (let i = 0; i < 5000; i++) writer.write(line(i));
    await flushed(writer);
    closeSync(fd);
    const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
    expect(lines).toHaveLength(5000);
    expect(lines.map((text) => JSON.parse(text).i)).toEqual(Array.from({ length: 5000 }, (_, i) => i));
    expect(JSON.parse(lines[4999]!).text).toBe('zürich ✓ 東京');
    expect(errors).toEqual([]);
  });

  it('in sync mode has each line written before write returns', () => {
    const { path, fd } = tempFile();
    const writer = new LineWriter({ fd, sync: true, onError: () => undefined });
    writer.write(line(1));
    expect(readFileSync(path, 'utf8')).toBe(line(1));
    writer.write(line(2));
    expect(readFileSync(path, 'utf8')).toBe(line(1) + line(2));
    closeSync(fd);
  });

  it('drops lines beyond its limit and reports them, instead of growing without bound', async () => {
    const { path, fd } = tempFile();
    const kinds: string[] = [];
    const writer = new LineWriter({
      fd,
      sync: false,
      onError: (kind) => kinds.push(kind),
      maxPendingCharacters: 1000,
    });
    const long = `${'x'.repeat(400)}\n`;
    // The first line goes straight to a write; the next two wait; the fourth finds no room.
    const accepted = [writer.write(long), writer.write(long), writer.write(long), writer.write(long)];
    await flushed(writer);
    closeSync(fd);
    expect(accepted).toEqual([true, true, true, false]);
    expect(kinds).toEqual(['log_dropped']);
    expect(readFileSync(path, 'utf8')).toBe(long.repeat(3));
  });

  it('reports a failed write and goes on with the next lines', async () => {
    const kinds: string[] = [];
    const writer = new LineWriter({ fd: 987_654, sync: false, onError: (kind) => kinds.push(kind) });
    writer.write(line(1));
    await flushed(writer);
    expect(kinds).toEqual(['log_destination']);
    writer.write(line(2));
    await flushed(writer);
    expect(kinds).toEqual(['log_destination', 'log_destination']);
  });

  it('waits for a full non-blocking pipe instead of losing lines, and flushes what is pending at exit', async () => {
    // The parent reads nothing for a while, so the pipe fills and writes answer EAGAIN.
    const run = runWithUnreadStdout(`
      const errors = [];
      const writer = new LineWriter({ fd: 1, sync: false, onError: (kind, error) => errors.push(kind + ' ' + error.code) });
      const filler = 'y'.repeat(1000);
      for (let i = 0; i < 3000; i++) writer.write(JSON.stringify({ i, filler }) + '\\n');
      setTimeout(() => {
        if (errors.length > 0) process.stderr.write(errors.join(',') + '\\n');
        process.exit(0);
      }, 300);
    `);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const lines = await run.readLines();
    expect(new Set(lines.map((text) => JSON.parse(text).i)).size).toBe(3000);
    expect(lines).toHaveLength(3000);
    expect(run.stderr()).toBe('');
  });

  it('on a pipe, writes lines of every size whole and in order, a line over 4 KiB on its own', async () => {
    const run = runWithUnreadStdout(`
      const writer = new LineWriter({ fd: 1, sync: false, onError: (kind, error) => process.stderr.write(kind + '\\n') });
      const sizes = [10, 4000, 3, 10000, 4095, 1, 5000, 200];
      sizes.forEach((size, i) => writer.write(JSON.stringify({ i, text: 'é✓'.repeat(size) }) + '\\n'));
    `);
    const lines = await run.readLines();
    expect(lines.map((text) => JSON.parse(text).text.length / 2)).toEqual([
      10, 4000, 3, 10000, 4095, 1, 5000, 200,
    ]);
    expect(run.stderr()).toBe('');
  });

  it('at exit with a full blocking pipe, writes every line whole, once', async () => {
    // Nothing in the child touches process.stdout: the pipe it inherits is blocking, so a write
    // handed to the thread pool waits in the pipe while the exit flush writes the rest.
    const run = runWithUnreadStdout(`
      const writer = new LineWriter({ fd: 1, sync: false, onError: (kind, error) => process.stderr.write(kind + ' ' + error.code + '\\n') });
      const filler = 'y'.repeat(1000);
      let i = 0;
      const burst = () => { for (let k = 0; k < 500; k++, i++) writer.write(JSON.stringify({ i, filler }) + '\\n'); };
      burst();
      setTimeout(() => {
        burst();
        // The event loop still turns while the pipe is full.
        process.stderr.write('loop turned\\n');
        setTimeout(() => {
          burst();
          process.stderr.write('exiting\\n');
          process.exit(0);
        }, 20);
      }, 20);
    `);
    // The reading starts a moment after the child began to exit, while it writes what it holds.
    await run.stderrIncludes('exiting');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const lines = await run.readLines();
    // Every line parses (none cut or mixed with another), and each record came once.
    const records = lines.map((text) => JSON.parse(text).i as number);
    expect(records.toSorted((a, b) => a - b)).toEqual(Array.from({ length: 1500 }, (_, i) => i));
    expect(run.stderr()).toBe('loop turned\nexiting\n');
  });

  it('never cuts a line when the application writes to the same pipe (console.log)', async () => {
    const run = runWithUnreadStdout(
      `
      const writer = new LineWriter({ fd: 1, sync: false, onError: () => {} });
      const filler = 'y'.repeat(300);
      let n = 0;
      let ticks = 0;
      const tick = setInterval(() => {
        for (let k = 0; k < 100; k++) writer.write(JSON.stringify({ i: n++, filler }) + '\\n');
        console.log('CONSOLE ' + n);
        if (++ticks === 60) {
          clearInterval(tick);
          // Exits once everything is written: this test is about cutting, not about the exit.
          const alive = setInterval(() => {}, 1000);
          writer.flush(() => {
            clearInterval(alive);
            process.exit(0);
          });
        }
      }, 5);
    `,
      // A slow reader, taking 16 KiB every 2 ms after 300 ms: the child's writes often find the
      // pipe nearly full, and a write the pipe takes only in part is where lines were cut.
      { delayMs: 300, bytes: 16384, everyMs: 2 },
    );
    const lines = await run.readLines();
    // Node itself may lose console.log's own last lines at process.exit(); none is cut either.
    const records = lines.filter((text) => !text.startsWith('CONSOLE '));
    expect(
      lines.filter((text) => text.startsWith('CONSOLE ')).every((text) => /^CONSOLE \d+$/.test(text)),
    ).toBe(true);
    expect(records.map((text) => JSON.parse(text).i)).toEqual(Array.from({ length: 6000 }, (_, i) => i));
  });

  it('writes the lines of exit listeners, and gives up on a pipe that stays full without cutting a line', async () => {
    // process.stdout makes the pipe non-blocking: a full pipe answers EAGAIN, and the exit flush
    // waits for it 300 ms in all, then counts what it could not write.
    const run = runWithUnreadStdout(`
      process.stdout;
      const writer = new LineWriter({ fd: 1, sync: false, syncWaitMs: 300, onError: (kind, error) => process.stderr.write(kind + ': ' + error.message + '\\n') });
      const filler = 'y'.repeat(1000);
      for (let i = 0; i < 300; i++) writer.write(JSON.stringify({ i, filler }) + '\\n');
      process.on('exit', () => writer.write(JSON.stringify({ i: 'exit listener' }) + '\\n'));
      setTimeout(() => process.exit(0), 50);
    `);
    await run.exited();
    const lines = await run.readLines();
    // The pipe held what it could (64 KiB); every line in it is whole.
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.map((text) => JSON.parse(text).i)).toEqual(
      Array.from({ length: lines.length }, (_, i) => i),
    );
    expect(run.stderr()).toMatch(
      /^log_dropped: \d+ log lines dropped: stdout was full for 300 ms\nlog_dropped: 1 log lines dropped/,
    );

    // With a reader, the exit listener's line comes last, and a flush it asks for calls back.
    const drained = runWithUnreadStdout(`
      const writer = new LineWriter({ fd: 1, sync: false, onError: () => {} });
      writer.write('{"i":"started"}\\n');
      process.on('exit', () => {
        writer.write('{"i":"exit listener"}\\n');
        writer.flush(() => process.stderr.write('flushed at exit\\n'));
      });
      setTimeout(() => process.exit(3), 10);
    `);
    expect(await drained.readLines()).toEqual(['{"i":"started"}', '{"i":"exit listener"}']);
    expect(drained.stderr()).toBe('flushed at exit\n');
  });
});

/**
 * Runs `body` (an ES module, with `LineWriter` imported) in a child process whose stdout is a pipe
 * that this side leaves unread until `readLines` (or the child's exit).
 */
function runWithUnreadStdout(body: string, slowReader?: { delayMs: number; bytes: number; everyMs: number }) {
  const writerUrl = new URL('./line-writer.ts', import.meta.url).href;
  const script = `const { LineWriter } = await import(${JSON.stringify(writerUrl)});\n${body}`;
  const options = {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'],
  };
  // The slow reader is a process of its own reading the pipe with plain reads (a Node stream here
  // would drain it 64 KiB at a time); its output comes back whole.
  const child =
    slowReader === undefined
      ? spawn(process.execPath, ['--input-type=module', '-e', script], options)
      : spawn('sh', ['-c', '"$NODE" --input-type=module -e "$SCRIPT" | "$NODE" -e "$READER"'], {
          ...options,
          env: {
            ...process.env,
            NODE: process.execPath,
            SCRIPT: script,
            READER: slowReaderScript(slowReader),
          },
        });
  // Collected from the start: at the child's exit, Node resumes a paused stdout that nothing
  // listens to, and what it held would be gone.
  const chunks: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  child.stdout.pause();
  let stderr = '';
  const stderrWaiters: Array<() => void> = [];
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    for (const check of stderrWaiters) check();
  });
  const exit = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    stderr: () => stderr,
    /** The child has exited (its stdout may still hold what the pipe took). */
    exited: () => exit,
    stderrIncludes: (text: string) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (stderr.includes(text)) resolve();
        };
        stderrWaiters.push(check);
        check();
      }),
    /** Starts reading stdout; its lines once the child has exited. */
    async readLines(): Promise<string[]> {
      child.stdout.resume();
      await new Promise((resolve) => child.once('close', resolve));
      return Buffer.concat(chunks).toString('utf8').split('\n').filter(Boolean);
    },
  };
}

function slowReaderScript({ delayMs, bytes, everyMs }: { delayMs: number; bytes: number; everyMs: number }) {
  return `
    const { readSync } = require('node:fs');
    const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    const buffer = Buffer.alloc(${bytes});
    const out = [];
    sleep(${delayMs});
    for (;;) {
      let read;
      try { read = readSync(0, buffer, 0, ${bytes}, null); } catch (error) { if (error.code === 'EAGAIN') { sleep(1); continue; } throw error; }
      if (read === 0) break;
      out.push(Buffer.from(buffer.subarray(0, read)));
      sleep(${everyMs});
    }
    process.stdout.write(Buffer.concat(out));
  `;
}
