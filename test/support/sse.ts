/**
 * Server-sent events as a client reads them off a fetch answer: each event's name and
 * payload (JSON, or the word `[DONE]`), the comment lines apart, read one at a time so a
 * spec can act mid-stream (cancel, hang up) and go on reading.
 */
import { expectMatches } from './openapi.js';

export interface StreamedEvent {
  event: string;
  /** The payload: parsed JSON, or `[DONE]` as sent. */
  data: any;
}

export class EventReader {
  private readonly reader: ReadableStreamDefaultReader<string>;
  private buffer = '';
  /** Comment lines read so far (`: keep-alive`), without their colon. */
  readonly comments: string[] = [];
  /** Every event read so far, in order. */
  readonly events: StreamedEvent[] = [];

  constructor(response: Response) {
    if (!response.body) throw new Error('an answer without a body');
    this.reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next event, or undefined once the stream has ended. */
  async next(): Promise<StreamedEvent | undefined> {
    for (;;) {
      const end = this.buffer.indexOf('\n\n');
      if (end >= 0) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        const event = this.parse(block);
        if (event) return event;
        continue;
      }
      const { value, done } = await this.reader.read();
      if (done) {
        if (this.buffer.trim()) throw new Error(`the stream ended mid-event: ${JSON.stringify(this.buffer)}`);
        return undefined;
      }
      this.buffer += value;
    }
  }

  /** Reads up to and including the first event `predicate` holds for (failing if the stream ends first). */
  async until(predicate: (e: StreamedEvent) => boolean): Promise<StreamedEvent> {
    for (;;) {
      const event = await this.next();
      if (!event) throw new Error(`the stream ended before the event looked for; read ${this.events.map((e) => e.event).join(', ')}`);
      if (predicate(event)) return event;
    }
  }

  /** Reads to the end; every event read, from the first. */
  async all(): Promise<StreamedEvent[]> {
    while (await this.next());
    return this.events;
  }

  /** Stops reading (the client hangs up). */
  async cancel(): Promise<void> {
    await this.reader.cancel();
  }

  private parse(block: string): StreamedEvent | undefined {
    let event: string | undefined;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
      else if (line.startsWith('event: ')) event = line.slice('event: '.length);
      else if (line.startsWith('data: ')) data.push(line.slice('data: '.length));
      else throw new Error(`not a line of an event stream: ${JSON.stringify(line)}`);
    }
    if (event === undefined && data.length === 0) return undefined; // a comment alone
    if (event === undefined || data.length !== 1) throw new Error(`an event needs one name and one data line: ${JSON.stringify(block)}`);
    const text = data[0]!;
    const parsed: StreamedEvent = { event, data: text === '[DONE]' ? text : JSON.parse(text) };
    this.events.push(parsed);
    return parsed;
  }
}

/** Fails unless the event, name and payload, is one of OpenAI's `AssistantStreamEvent`s. */
export function expectStreamEvent(e: StreamedEvent): void {
  expectMatches('AssistantStreamEvent', { event: e.event, data: e.data });
}

/** The events' names, with a run of deltas of one kind shown once: the order specs read best this way. */
export function namesOf(events: readonly StreamedEvent[]): string[] {
  return events.map((e) => e.event).filter((name, i, all) => !name.endsWith('.delta') || all[i - 1] !== name);
}

/** The text of the message deltas among the events, concatenated. */
export function deltaText(events: readonly StreamedEvent[]): string {
  return events
    .filter((e) => e.event === 'thread.message.delta')
    .map((e) => e.data.delta.content.map((part: any) => part.text.value).join(''))
    .join('');
}
