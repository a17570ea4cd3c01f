// This replica's room for Run-like work (AGENTD_MAX_CONCURRENT_RUNS): a unary Run,
// or a streamed start that runs here at once, holds a slot from before its task is
// created until its local attempt ends. Past the limit a Run is refused and a
// streamed start leaves its task QUEUED for any runner.
export class RunSlots {
  private used = 0;

  constructor(readonly max: number) {}

  /** Slots held now. */
  get active(): number {
    return this.used;
  }

  /** A slot, or undefined when all are held. */
  acquire(): RunSlot | undefined {
    if (this.used >= this.max) return undefined;
    this.used++;
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.used--;
      },
    };
  }
}

export interface RunSlot {
  /** Gives the slot back; once, however often it is called. */
  release(): void;
}
