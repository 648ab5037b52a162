/**
 * Redirect tickets: what `GET /v1/benefits/{id}/redirect` hands a partner. A ticket is short-lived and signed by us;
 * it names the partner, the benefit, the user by a pseudonym (a keyed hash: never the user's id or personal data),
 * a nonce and its expiry. It also carries the user's id sealed (AES-GCM under a key only we hold), so a callback finds
 * the user's account, the one writer of the ticket's state, without any shared lookup table.
 *
 * Form: `pt1.<payload, base64url JSON>.<HMAC-SHA256, base64url>`.
 */
import type { Env } from "../env";
import { randomId } from "../random";
import { fromBase64, mac, macMatches, nonce, open, pseudonym, seal, toBase64Url } from "./secrets";

/** What a ticket says (as the partner may read it: no personal data). */
export interface TicketClaims {
  /** The ticket's id: `pt_…`. */
  tid: string;
  /** The partner it was issued to. */
  par: string;
  /** The benefit. */
  ben: string;
  /** The user's pseudonym for this partner. */
  sub: string;
  nonce: string;
  /** Expiry, seconds since the epoch. */
  exp: number;
  /** The user's id, sealed: opaque to the partner. */
  acc: string;
}

const PREFIX = "pt1";

/** Issues a ticket for a user's redirect to a partner. */
export async function issueTicket(env: Env, t: { partnerId: string; benefitId: string; userId: string; expiresAt: number }) {
  const tid = `pt_${randomId(16)}`;
  const claims: TicketClaims = {
    tid,
    par: t.partnerId,
    ben: t.benefitId,
    sub: await pseudonym(env, t.partnerId, t.userId),
    nonce: nonce(),
    exp: Math.floor(t.expiresAt / 1000),
    acc: await seal(env, "ticket-users", t.userId, tid),
  };
  const payload = toBase64Url(new TextEncoder().encode(JSON.stringify(claims)));
  return { claims, ticket: `${PREFIX}.${payload}.${await mac(env, "tickets", `${PREFIX}.${payload}`)}` };
}

/**
 * The claims and user of a ticket we issued to `partnerId`, or undefined for anything else (malformed, forged, issued to
 * another partner). Expiry is the ticket state's to judge, not this: an expired ticket is still ours.
 */
export async function readTicket(env: Env, partnerId: string, ticket: string): Promise<{ claims: TicketClaims; userId: string } | undefined> {
  const [prefix, payload, signature, ...rest] = ticket.split(".");
  if (prefix !== PREFIX || !payload || !signature || rest.length > 0) return undefined;
  if (!(await macMatches(env, "tickets", `${PREFIX}.${payload}`, signature))) return undefined;
  let claims: TicketClaims;
  try {
    claims = JSON.parse(new TextDecoder().decode(fromBase64(payload.replaceAll("-", "+").replaceAll("_", "/")))) as TicketClaims;
  } catch {
    return undefined;
  }
  if (claims.par !== partnerId) return undefined;
  const userId = await open(env, "ticket-users", claims.acc, claims.tid);
  return userId === undefined ? undefined : { claims, userId };
}
