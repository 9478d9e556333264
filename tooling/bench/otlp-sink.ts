/**
 * The loopback OTLP sink of the HTTP and Prisma benches, in its own process: it answers 200 to
 * every POST without decoding (so the measured process's core is not taxed by what it exports) and
 * counts requests and bytes per first path segment, which names the variant or candidate.
 * `GET /stats` returns the counts. It sends its port over IPC and exits when the parent
 * disconnects. Decoding, to prove spans arrive, is a separate check of each bench.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const counts: Record<string, { posts: number; bytes: number }> = {};

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(counts));
    return;
  }
  const key = (req.url ?? '/').split('/')[1] ?? '';
  const entry = counts[key] ?? { posts: 0, bytes: 0 };
  counts[key] = entry;
  entry.posts++;
  req.on('data', (chunk: Buffer) => {
    entry.bytes += chunk.length;
  });
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
});
server.listen(0, '127.0.0.1', () => {
  process.send?.({ port: (server.address() as AddressInfo).port });
});
process.on('disconnect', () => process.exit(0));
