/**
 * Server-sent events on a node:http response (the `text/event-stream` format): an `event:`
 * line and a `data:` line per event, then a blank line. A stream that has sent nothing for
 * a while sends a comment line (`: keep-alive`), so that proxies and clients that time out
 * idle connections keep it open while a run waits (for a worker, or a slow model).
 *
 * The writer waits for the socket to drain (`room()`) before it takes its next event, so
 * a client that reads slowly holds the writer back, never the process's memory: what
 * waits meanwhile is the subscription's bounded queue, which ends the stream when it
 * overflows.
 */
import type { ServerResponse } from 'node:http';

/** How long a stream may stay silent before a keep-alive comment goes out. */
export const KEEP_ALIVE_MS = 15_000;

export class EventStreamResponse {
  private readonly keepAlive: NodeJS.Timeout;
  /** Whether nothing was written since the last keep-alive tick. */
  private idle = true;
  private ended = false;

  constructor(
    private readonly res: ServerResponse,
    keepAliveMs = KEEP_ALIVE_MS,
  ) {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      // nginx and its kin buffer a proxied answer unless told not to: the events would arrive in bursts.
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    this.keepAlive = setInterval(() => {
      if (this.idle) this.write(': keep-alive\n\n');
      this.idle = true;
    }, keepAliveMs).unref();
    res.once('close', () => clearInterval(this.keepAlive));
  }

  /** Whether the client is gone (it hung up, or the stream ended): nothing more can be sent. */
  get closed(): boolean {
    return this.ended || this.res.destroyed || this.res.writableEnded;
  }

  /** Calls `listener` once the client hangs up (or the stream ended). */
  onClose(listener: () => void): void {
    if (this.closed) queueMicrotask(listener);
    else this.res.once('close', listener);
  }

  /** Writes one event; `data` is its payload as sent (JSON, or a word such as `[DONE]`). */
  send(event: string, data: string): void {
    this.write(`event: ${event}\ndata: ${data}\n\n`);
  }

  /**
   * Something to wait on while the socket has more unsent than its buffer holds (until it
   * drains, or the client hangs up); undefined when there is room.
   */
  room(): Promise<void> | undefined {
    if (this.closed || !this.res.writableNeedDrain) return undefined;
    return new Promise((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }

  /** Ends the stream (the response is complete). */
  end(): void {
    if (this.closed) return;
    this.ended = true;
    clearInterval(this.keepAlive);
    this.res.end();
  }

  private write(text: string): void {
    if (this.closed) return;
    this.idle = false;
    this.res.write(text);
  }
}
