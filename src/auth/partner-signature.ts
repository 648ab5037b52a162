/**
 * Partners' credentials on their callback route: a Standard Webhooks signature of the raw body with one of the
 * partner's active keys, and a timestamp within 5 minutes of our clock (else 401, before the body is even looked
 * at). Puts the partner, the verified webhook-id and the raw body on the context as `partnerCall`. The raw body is
 * read here first, as sent: the body validator after this parses the same text, and the signature covers its bytes.
 */
import type { MiddlewareHandler } from "hono";
import { Webhook } from "standardwebhooks";
import { AppError } from "../errors";
import { database, type AppEnv } from "../http";
import { findPartner, type Partner } from "../partners/registry";

/** A verified callback: who sent it, its id, and the bytes the signature covers. */
export interface PartnerCall {
  partner: Partner;
  webhookId: string;
  raw: string;
}

/** How far a callback's timestamp may be from our clock (the Standard Webhooks tolerance). */
const TOLERANCE_SECONDS = 5 * 60;

export function requirePartnerSignature(): MiddlewareHandler<AppEnv> {
  return async function requirePartnerSignature(c, next) {
    const raw = await c.req.text();
    const partnerId = c.req.param("partnerId") ?? "";
    const partner = await findPartner(c.env, database(c.env), partnerId);
    if (!partner) throw new AppError("NOT_FOUND", `no partner '${partnerId}'`);
    c.set("partnerCall", { partner, webhookId: verifiedId(partner, c.req.raw.headers, raw), raw });
    await next();
  };
}

/** The webhook-id, once the signature is one of the partner's active keys' and the timestamp is within 5 minutes. */
function verifiedId(partner: Partner, headers: Headers, raw: string): string {
  const id = headers.get("webhook-id");
  const timestamp = headers.get("webhook-timestamp");
  const signature = headers.get("webhook-signature");
  if (!id || !timestamp || !signature)
    throw new AppError("UNAUTHENTICATED", "sign the callback: webhook-id, webhook-timestamp and webhook-signature are required");
  if (id.length > 200) throw new AppError("UNAUTHENTICATED", "webhook-id is longer than 200 characters");
  const ts = Number(timestamp);
  if (!Number.isInteger(ts) || Math.abs(Date.now() / 1000 - ts) > TOLERANCE_SECONDS) {
    throw new AppError("UNAUTHENTICATED", "webhook-timestamp is more than 5 minutes from our clock");
  }
  const signed = { "webhook-id": id, "webhook-timestamp": timestamp, "webhook-signature": signature };
  for (const { secret } of partner.secrets) {
    try {
      new Webhook(secret).verify(raw, signed);
      return id;
    } catch {
      // Another active key (during a rotation) may have signed it.
    }
  }
  throw new AppError("UNAUTHENTICATED", "webhook-signature does not match any of the partner's active keys");
}
