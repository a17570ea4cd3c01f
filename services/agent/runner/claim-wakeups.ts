// When the claim loop claims again. Between claims it waits for the poll interval or a reason
// to claim sooner:
// - new work (a `queue` hint) or the runner stopping: always. One that comes while a claim is in
//   flight is kept for the next wait, because that claim may have read the queue before the
//   work was committed.
// - a freed slot: only while the loop waits for a slot, that is, when it had none free to claim
//   with. Otherwise its last claim found the queue empty (or failed, and the poll retries it),
//   and a freed slot adds no work. Waking it then would only cost a statement (the claim's peek
//   on an empty queue), twice per attempt: an agent's end and its ending's write each free one.

export interface ClaimWakeups {
  /** New work, or the runner stops: ends the current wait, or the next one at once. */
  wake(): void;
  /** A slot was freed: ends the current wait if it waits for a slot. */
  slotFreed(): void;
  /** Waits until `ms` pass or a wake-up that concerns this wait comes. */
  wait(ms: number, opts: { forSlot: boolean }): Promise<void>;
}

export function createClaimWakeups(): ClaimWakeups {
  let waiting: { end: () => void; forSlot: boolean } | undefined;
  let wokenMeanwhile = false;
  return {
    wake() {
      if (waiting) waiting.end();
      else wokenMeanwhile = true;
    },
    slotFreed() {
      if (waiting?.forSlot) waiting.end();
    },
    wait(ms, { forSlot }) {
      if (wokenMeanwhile) {
        wokenMeanwhile = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const end = () => {
          clearTimeout(timer);
          waiting = undefined;
          resolve();
        };
        const timer = setTimeout(end, ms);
        waiting = { end, forSlot };
      });
    },
  };
}
