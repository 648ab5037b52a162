/**
 * Idempotency-Key: the same user, key and request replays the first response for 24 hours; the same key with a
 * different request is refused (IDEMPOTENCY_MISMATCH); a duplicate while the first still runs is LOCKED.
 * Keys live in the user's account under the activity's namespace, beside the grants they protect.
 */
import { AppError, errorBody } from "../errors";
import { canonicalJson, sha256Hex } from "../sharding";
import type { userAccount } from "../../durable-objects/support/stubs";
import type { IdempotencyClaim } from "./account-plan";
import { ticketPath } from "../intake/tickets";
import type { ticketAccepted } from "../openapi/tickets";

export function checkKey(key: string): string {
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new AppError("INVALID_PARAMS", "Idempotency-Key must be 1-255 printable ASCII characters without spaces");
  }
  return key;
}

/**
 * What makes two requests "the same" for a key: method, path, query and the parsed body as canonical JSON, so
 * a retry that re-serialised its body (other whitespace, other key order) still replays.
 */
export function requestFingerprint(method: string, url: string, body: unknown): Promise<string> {
  const u = new URL(url);
  return sha256Hex(`${method} ${u.pathname}?${u.searchParams.toString()}\n${canonicalJson(body)}`);
}

/** Turns an account's claim into what the route does: run (new), replay, or refuse. */
function settleClaim(claim: IdempotencyClaim): { status: number; body: string } | undefined {
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

/**
 * Refusals that are the request's answer, replayed like successes. LOCKED (a concurrent duplicate), RATE_LIMITED
 * (nothing ran) and failures of ours (5xx) free the key, so a retry runs again.
 */
const replaysRefusal = (e: unknown): e is AppError => e instanceof AppError && e.status < 500 && e.code !== "LOCKED" && e.code !== "RATE_LIMITED";

export interface IdempotentRequest {
  account: ReturnType<typeof userAccount>;
  namespace: string;
  key: string;
  fingerprint: string;
}

/**
 * Runs `run` under an Idempotency-Key: a replay answers the stored response (with `Idempotent-Replayed: true`);
 * a refusal is stored as the key's answer or frees the key. `run` stores its success itself, in the same commit
 * as its grants; a queued run's 202 is stored here (its ticket is the answer: a repeat gets the same ticket).
 */
export async function withIdempotency(idem: IdempotentRequest | undefined, requestId: string, run: () => Promise<Response>): Promise<Response> {
  if (!idem) return run();
  const replay = settleClaim(await idem.account.claimIdempotency(idem.namespace, idem.key, idem.fingerprint, Date.now()));
  if (replay) {
    const headers: Record<string, string> = { "content-type": "application/json", "idempotent-replayed": "true" };
    // A stored 202 is a queued run's ticket (the only 202 stored): the replay points at it as the first answer did.
    if (replay.status === 202) headers.location = ticketPath((JSON.parse(replay.body) as ReturnType<typeof ticketAccepted>).ticket.id);
    return new Response(replay.body, { status: replay.status, headers });
  }
  try {
    const res = await run();
    if (res.status === 202) await idem.account.completeIdempotency(idem.namespace, idem.key, 202, await res.clone().text());
    return res;
  } catch (e) {
    if (replaysRefusal(e)) {
      await idem.account.completeIdempotency(idem.namespace, idem.key, e.status, JSON.stringify(errorBody(requestId, e.code, e.message, e.details)));
    } else {
      await idem.account.releaseIdempotency(idem.namespace, idem.key);
    }
    throw e;
  }
}
