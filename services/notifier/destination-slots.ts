// Fairness bookkeeping: attempts in flight in this process, in total and per
// destination (scheme://host:port). The claim asks for no more than the free
// slots, so one slow receiver holds at most its own share.
export class DestinationSlots {
  private readonly byTarget = new Map<string, number>();
  private used = 0;

  constructor(
    readonly total: number,
    readonly perTarget: number,
  ) {}

  get inFlight(): number {
    return this.used;
  }

  free(): number {
    return Math.max(0, this.total - this.used);
  }

  /** Whether one more may start for this destination. */
  hasRoom(target: string): boolean {
    return this.used < this.total && (this.byTarget.get(target) ?? 0) < this.perTarget;
  }

  /** Destinations with attempts in flight, and how many more each may take. */
  busy(): Map<string, number> {
    const busy = new Map<string, number>();
    for (const [target, n] of this.byTarget) busy.set(target, Math.max(0, this.perTarget - n));
    return busy;
  }

  take(target: string): void {
    this.used++;
    this.byTarget.set(target, (this.byTarget.get(target) ?? 0) + 1);
  }

  release(target: string): void {
    this.used--;
    const n = (this.byTarget.get(target) ?? 1) - 1;
    if (n <= 0) this.byTarget.delete(target);
    else this.byTarget.set(target, n);
  }
}
