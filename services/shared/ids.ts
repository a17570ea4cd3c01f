import { uuidv7 } from "uuidv7";

/** Time-sortable ids (UUIDv7) for tasks, deliveries, endpoints and keys. */
export function newId(): string {
  return uuidv7();
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether a client-supplied id can name a row; anything else is simply not found. */
export function isId(value: string): boolean {
  return UUID.test(value);
}

/** The one parse of a client-supplied id: its stored (lower-case) form, or null when it cannot name a row. */
export function parseId(value: string): string | null {
  return isId(value) ? value.toLowerCase() : null;
}
