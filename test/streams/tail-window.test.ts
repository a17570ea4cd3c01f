// The event hub's tail window alone: no database, no server.
import { describe, expect, it } from "vitest";
import type { StoredEvent } from "../../services/agent/model/change.js";
import { TailWindow, type WindowLimits } from "../../services/agent/streams/tail-window.js";

const roomy: WindowLimits = { events: 100, bytes: 1 << 20, totalBytes: 1 << 30 };

/** A log event whose data is `{"text":"…"}` with `size` characters of text: 11 + size bytes of JSON. */
function event(sequence: number, size = 1): StoredEvent {
  return { sequence, time: new Date(0), kind: "delta", data: { text: "x".repeat(size) } };
}

function ended(sequence: number): StoredEvent {
  return { sequence, time: new Date(0), kind: "stateChange", data: { state: "TASK_STATE_SUCCEEDED", task: {} } };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => event(from + i));
const sequences = (events: StoredEvent[] | undefined) => events?.map((e) => e.sequence);

describe("tail window", () => {
  it("starts empty at its seed, sending watchers behind it to the log", () => {
    const window = new TailWindow(10, roomy);
    expect(window.lastSeq).toBe(10);
    expect(window.size).toBe(0);
    expect(window.after(10, 64)).toEqual([]);
    expect(window.after(12, 64)).toEqual([]);
    expect(window.after(9, 64)).toBeUndefined();
  });

  it("appends the events after its newest, skipping ones it has", () => {
    const window = new TailWindow(0, roomy);
    window.append(range(1, 3), 1);
    window.append(range(2, 5), 1);
    expect(window.lastSeq).toBe(5);
    expect(sequences(window.after(0, 64))).toEqual([1, 2, 3, 4, 5]);
    expect(window.bytes).toBe(5 * 12);
  });

  it("slices from a cursor, at most a page", () => {
    const window = new TailWindow(0, roomy);
    window.append(range(1, 10), 1);
    expect(sequences(window.after(3, 4))).toEqual([4, 5, 6, 7]);
    expect(sequences(window.after(8, 64))).toEqual([9, 10]);
    expect(window.after(10, 64)).toEqual([]);
  });

  it("starts afresh after a gap, so that no watcher takes the gap from it", () => {
    const window = new TailWindow(0, roomy);
    window.append(range(1, 3), 1);
    window.append([event(6), event(7)], 1);
    expect(window.lastSeq).toBe(7);
    expect(sequences(window.after(5, 64))).toEqual([6, 7]);
    expect(window.after(3, 64)).toBeUndefined();
    expect(window.bytes).toBe(2 * 12);
  });

  it("keeps the newest events within its count", () => {
    const window = new TailWindow(0, { ...roomy, events: 3 });
    window.append(range(1, 10), 1);
    expect(window.size).toBe(3);
    expect(sequences(window.after(7, 64))).toEqual([8, 9, 10]);
    expect(window.after(6, 64)).toBeUndefined();
  });

  it("keeps the newest events within its bytes", () => {
    const window = new TailWindow(0, { ...roomy, bytes: 3 * 12 });
    window.append(range(1, 5), 1);
    expect(sequences(window.after(2, 64))).toEqual([3, 4, 5]);
    expect(window.bytes).toBe(3 * 12);
  });

  it("keeps its newest event whatever its size", () => {
    const window = new TailWindow(0, { ...roomy, bytes: 100 });
    window.append([event(1), event(2, 1000)], 1);
    expect(sequences(window.after(1, 64))).toEqual([2]);
    expect(window.after(0, 64)).toBeUndefined();
  });

  it("keeps only its share of the hub-wide budget when many windows share it", () => {
    const limits = { events: 100, bytes: 10 * 12, totalBytes: 40 * 12 };
    const alone = new TailWindow(0, limits);
    alone.append(range(1, 20), 1);
    expect(alone.size).toBe(10); // its own limit is the smaller
    const shared = new TailWindow(0, limits);
    shared.append(range(1, 20), 8);
    expect(shared.size).toBe(5); // 40 events' bytes over 8 windows
  });

  it("knows the sequence of the terminal state_change", () => {
    const window = new TailWindow(0, { ...roomy, events: 1 });
    window.append([event(1), ended(2)], 1);
    expect(window.terminalSeq).toBe(2);
    expect(sequences(window.after(1, 64))).toEqual([2]);
    const open = new TailWindow(0, roomy);
    open.append(range(1, 3), 1);
    expect(open.terminalSeq).toBeNull();
  });
});
