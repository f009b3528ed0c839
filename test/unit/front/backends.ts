/**
 * Real TCP backends on loopback for the front's tests: each answers with its own tag, so a
 * client can tell which backend it reached.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface TestBackend {
  tag: string;
  address: string;
  server: Server;
  /** Sockets the backend accepted, live or not. */
  accepted: Socket[];
  close(): Promise<void>;
}

async function serve(server: Server, tag: string, accepted: Socket[]): Promise<TestBackend> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    tag,
    server,
    accepted,
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of accepted) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Echoes every line back as `<tag>:<line>`. */
export function echoBackend(tag: string): Promise<TestBackend> {
  const accepted: Socket[] = [];
  const server = createServer((s) => {
    accepted.push(s);
    s.on('error', () => undefined);
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        s.write(`${tag}:${buf.slice(0, i)}\n`);
        buf = buf.slice(i + 1);
      }
    });
  });
  return serve(server, tag, accepted);
}

/**
 * Reads until the client's FIN, then answers `<tag>:<bytes read>` and ends: it only answers if
 * the client's half-close reached it, and the answer only arrives if the way back stayed open.
 */
export function halfCloseBackend(tag: string): Promise<TestBackend> {
  const accepted: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    accepted.push(s);
    s.on('error', () => undefined);
    let n = 0;
    s.on('data', (d: Buffer) => (n += d.length));
    s.on('end', () => s.end(`${tag}:${n}`));
  });
  return serve(server, tag, accepted);
}

/** Sends `bytes` of a fixed pattern as fast as the socket takes them, then ends. */
export function floodBackend(tag: string, bytes: number, block: Buffer): Promise<TestBackend & { written: () => number }> {
  const accepted: Socket[] = [];
  let written = 0;
  const server = createServer((s) => {
    accepted.push(s);
    s.on('error', () => undefined);
    const pump = () => {
      while (written < bytes) {
        const piece = block.subarray(0, Math.min(block.length, bytes - written));
        written += piece.length;
        if (!s.write(piece)) return void s.once('drain', pump);
      }
      s.end();
    };
    pump();
  });
  return serve(server, tag, accepted).then((b) => ({ ...b, written: () => written }));
}

export interface LineClient {
  socket: Socket;
  /** Resolves with the next line the server sent. */
  line(): Promise<string>;
  /** Resolves when the socket closed: `error` is the error code if it closed on one. */
  closed: Promise<{ error?: string }>;
}

export function lineClient(address: string): LineClient {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  const socket = connect({ host, port });
  const lines: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  let buf = '';
  let error: string | undefined;
  socket.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w(l);
      else lines.push(l);
    }
  });
  socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
  const closed = new Promise<{ error?: string }>((resolve) => socket.once('close', () => resolve(error ? { error } : {})));
  return {
    socket,
    line: () => {
      const l = lines.shift();
      if (l !== undefined) return Promise.resolve(l);
      return new Promise<string>((resolve, reject) => {
        waiters.push(resolve);
        void closed.then((c) => reject(new Error(`connection closed before a line came${c.error ? ` (${c.error})` : ''}`)));
      });
    },
    closed,
  };
}

/** Resolves once the client socket is connected (to the front: the front accepted it). */
export function connected(c: LineClient): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!c.socket.connecting) return resolve();
    c.socket.once('connect', () => resolve());
    c.socket.once('error', reject);
  });
}
