/**
 * Idempotency-Key: the same user, key and request replays the first response for 24 hours; the same key with a
 * different request is refused (IDEMPOTENCY_MISMATCH); a duplicate while the first still runs is LOCKED.
 * Keys live in the activity's ledger, beside the grants they protect.
 */
import { AppError } from "../errors";
import type { IdempotencyClaim } from "./ledger-plan";

export function checkKey(key: string): string {
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new AppError("INVALID_PARAMS", "Idempotency-Key must be 1-255 printable ASCII characters without spaces");
  }
  return key;
}

/** Turns a ledger claim into what the route does: run (new), replay, or refuse. */
export function settleClaim(claim: IdempotencyClaim): { status: number; body: string } | undefined {
  switch (claim.state) {
    case "new":
      return undefined;
    case "replay":
      return { status: claim.status, body: claim.body };
    case "mismatch":
      throw new AppError("IDEMPOTENCY_MISMATCH", "this Idempotency-Key was already used with a different request");
    case "in-progress":
      throw new AppError("LOCKED", "a request with this Idempotency-Key is still in progress");
  }
}
