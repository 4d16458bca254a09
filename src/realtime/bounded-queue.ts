/**
 * A push-to-pull queue with a hard bound: the producer never waits, and a consumer that
 * falls `capacity` items behind is cut off with `onOverflow()`'s error instead of letting
 * memory grow. Iterating it is how a subscription reads its events.
 */
export class BoundedQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private waiting: ((r: IteratorResult<T>) => void) | undefined;
  private failWaiting: ((e: unknown) => void) | undefined;
  private ended = false;
  private closed = false;
  private failure: unknown;

  /**
   * Handles an item on the spot when nothing is buffered and the reader is waiting for
   * the next one; true if it did (the reader keeps waiting). A stream that can deliver
   * an in-order event synchronously sets it, and saves the reader's wake-up.
   */
  interceptor: { intercept(item: T): boolean } | undefined;

  constructor(
    private readonly capacity: number,
    private readonly onOverflow: () => Error,
  ) {}

  /** Items pushed and not yet read. */
  get buffered(): number {
    return this.items.length;
  }

  /** Called once when the queue closes (or fails): a subclass unregisters it there. */
  protected onClose(): void {}

  push(item: T): void {
    if (this.ended || this.failure) return;
    if (this.waiting) {
      if (this.interceptor?.intercept(item)) return;
      const resolve = this.waiting;
      this.waiting = this.failWaiting = undefined;
      resolve({ value: item, done: false });
      return;
    }
    if (this.items.length >= this.capacity) {
      this.fail(this.onOverflow());
      return;
    }
    this.items.push(item);
  }

  /** Ends the stream with an error once the buffered items are read. */
  fail(error: unknown): void {
    if (this.ended || this.failure) return;
    this.failure = error;
    this.items.length = 0; // a lagging reader must resume from the store, not from here
    this.closed = true;
    this.onClose();
    if (this.failWaiting) {
      const reject = this.failWaiting;
      this.waiting = this.failWaiting = undefined;
      reject(error);
    }
  }

  next(): Promise<IteratorResult<T>> {
    const item = this.items.shift();
    if (item !== undefined) return Promise.resolve({ value: item, done: false });
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failWaiting = reject;
    });
  }

  /** Ends the stream once the buffered items are read (a graceful close). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.waiting && this.items.length === 0) {
      const resolve = this.waiting;
      this.waiting = this.failWaiting = undefined;
      resolve({ value: undefined, done: true });
    }
  }

  return(): Promise<IteratorResult<T>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Ends the stream now, dropping what is buffered, and unregisters it. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ended = true;
    this.items.length = 0;
    this.onClose();
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = this.failWaiting = undefined;
      resolve({ value: undefined, done: true });
    }
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
