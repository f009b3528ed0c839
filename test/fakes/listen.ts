/** A fake's server listening on a free loopback port: its endpoint, and a close that cuts open connections. */
import type { Server } from 'node:http';

export interface Listening {
  /** http(s)://127.0.0.1:<port> */
  endpoint: string;
  close(): Promise<void>;
}

export function listenOnLoopback(server: Server, scheme: 'http' | 'https' = 'http'): Promise<Listening> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      resolve({
        endpoint: `${scheme}://127.0.0.1:${port}`,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
