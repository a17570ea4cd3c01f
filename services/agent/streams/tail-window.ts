// The window of one watched task's tail (event-hub.ts): the newest events of its
// log, in order and without gaps, bounded by count, by bytes, and by its share of
// a hub-wide byte budget. Plain data: no I/O and no timers, so it is tested alone.
import type { StoredEvent } from "../model/change.js";
import { eventDataJson, isTerminalEvent } from "../wire/event-forms.js";

export interface WindowLimits {
  /** Most events a window keeps. */
  events: number;
  /** Most bytes (JSON of event data) a window keeps beyond its newest event. */
  bytes: number;
  /** Bytes all windows together should keep: each window gets its share of this. */
  totalBytes: number;
}

export class TailWindow {
  /** Events (lastSeq − events.length, lastSeq], in order, no gaps. */
  private events: StoredEvent[] = [];
  private held = 0;
  /** Sequence of the terminal state_change, once appended. */
  private terminal: number | null = null;

  /** `lastSeq`: the newest sequence known to be committed; events up to it are read from the log. */
  constructor(
    private last: number,
    private readonly limits: WindowLimits,
  ) {}

  /** The newest sequence the window has taken (or, before its first append, was seeded with). */
  get lastSeq(): number {
    return this.last;
  }

  get terminalSeq(): number | null {
    return this.terminal;
  }

  get size(): number {
    return this.events.length;
  }

  /** Bytes (JSON of event data) of the events held. */
  get bytes(): number {
    return this.held;
  }

  /** Takes events read after `lastSeq` (older ones are skipped), then trims the oldest to the
   * limits, sharing the hub-wide budget among `windows` windows. */
  append(events: readonly StoredEvent[], windows: number): void {
    for (const event of events) {
      if (event.sequence <= this.last) continue;
      if (event.sequence !== this.last + 1) {
        // Cannot happen with a gapless log; if it did, start the window afresh so
        // that no watcher takes a gap from it (they read the log instead).
        this.events = [];
        this.held = 0;
      }
      this.events.push(event);
      this.held += eventDataJson(event).length;
      this.last = event.sequence;
      if (isTerminalEvent(event)) this.terminal = event.sequence;
    }
    // Keep the newest event whatever its size, or a task of huge events would send
    // every watcher to the log.
    const maxBytes = Math.min(this.limits.bytes, this.limits.totalBytes / Math.max(1, windows));
    while (this.events.length > 1 && (this.events.length > this.limits.events || this.held > maxBytes)) {
      const dropped = this.events.shift()!;
      this.held -= eventDataJson(dropped).length;
    }
  }

  /**
   * Up to `max` events after `cursor`, in order: `[]` when the window holds nothing newer,
   * `undefined` when the window has moved past `cursor + 1` (the watcher reads the log).
   */
  after(cursor: number, max: number): StoredEvent[] | undefined {
    if (cursor >= this.last) return [];
    const start = this.last - this.events.length;
    if (cursor < start) return undefined;
    return this.events.slice(cursor - start, cursor - start + max);
  }
}
