/**
 * A partner's callback (`POST /v1/partners/{partnerId}/callbacks`), checked in this order:
 * 1. the Standard Webhooks signature with one of the partner's active keys, and a timestamp within 5 minutes: else
 *    401 (src/auth/partner-signature.ts, before the body is looked at);
 * 2. the body's shape (the route's validator): else 400;
 * 3. its webhook-id, by one conditional INSERT in D1 keyed by partner and id with the body's hash: the same id with
 *    another body is a conflict (409 and an operator alert); with the same body, a replay, answered as the first was;
 * 4. the pointsDelta against the partner's range, then the ticket's signature: else 422, recorded;
 * 5. a completion that credits points counts against the partner's day (one use of its daily quota, pointsDelta of its
 *    daily budget, beside its deliveries; once per webhook-id): past either, 422 PARTNER_LIMIT_REACHED, recorded;
 * 6. the ticket's transition and its points, in the user's account, once per webhook-id (src/partners/ticket-book.ts);
 *    a transition the account refuses gives the day's use back.
 * Step 3's row is the record of every callback (applied or refused) and the answer to its replays; the account's own
 * note of the id is what makes two concurrent deliveries of one id apply once.
 */
import { and, eq } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import { z } from "@hono/zod-openapi";
import { userAccount } from "../../durable-objects/support/stubs";
import type { CompiledConfig } from "../config/compiled";
import { partnerAlerts, partnerCallbacks } from "../db/schema";
import type { Env } from "../env";
import { AppError, ERROR_STATUS, type ErrorCode } from "../errors";
import { log } from "../platform/log";
import { vars } from "../platform/vars";
import { sendOperatorAlert } from "../alerts/operator-alert";
import { randomId } from "../random";
import { sha256Hex } from "../sharding";
import type { PartnerCall } from "../auth/partner-signature";
import { callbackUsageId, countAgainstDay, releaseUsage } from "./outbound";
import type { TicketState } from "./ticket-book";
import { readTicket } from "./tickets";

export const CallbackBodySchema = z
  .object({
    type: z.enum(["completed", "cancelled"]),
    ticket: z.string().min(1).max(2000),
    pointsDelta: z.number().int().min(0).max(1_000_000_000).optional(),
    occurredAt: z.iso.datetime({ offset: true }),
  })
  .strict();

/** What a callback's answer says. */
export interface CallbackAnswer {
  webhookId: string;
  replayed: boolean;
  ticket: { id: string; status: TicketState };
}

export async function handleCallback(
  env: Env,
  db: DrizzleD1Database,
  config: CompiledConfig,
  call: PartnerCall,
  body: z.output<typeof CallbackBodySchema>,
  now: number,
): Promise<CallbackAnswer> {
  const { partner, webhookId, raw } = call;
  const bodyHash = await sha256Hex(raw);

  const first = await claimWebhookId(db, partner.row.id, webhookId, bodyHash, now);
  if (first) {
    if (first.bodyHash !== bodyHash) {
      await raiseAlert(env, db, partner.row.id, "webhook-id-reused", { webhookId, firstBodyHash: first.bodyHash, bodyHash }, now);
      throw new AppError("WEBHOOK_ID_REUSED", `webhook-id '${webhookId}' was used before with another body`);
    }
    if (first.status === "applied")
      return { webhookId, replayed: true, ticket: { id: first.ticketId!, status: first.type === "completed" ? "completed" : "cancelled" } };
    if (first.status === "refused") throw new AppError(first.code as ErrorCode, first.message ?? "refused");
    // "received": the first delivery of this id is being applied, or died midway; the account applies it once.
  }

  const refuse = async (code: ErrorCode, message: string, ticketId: string | null): Promise<never> => {
    await settle(db, partner.row.id, webhookId, { status: "refused", httpStatus: ERROR_STATUS[code], code, message, ticketId, type: body.type });
    throw new AppError(code, message);
  };
  const delta = body.pointsDelta ?? 0;
  const { pointsDeltaMin: min, pointsDeltaMax: max } = partner.row;
  if (body.type === "completed" && (delta < min || delta > max))
    await refuse("DELTA_OUT_OF_RANGE", `pointsDelta ${delta} is outside [${min}, ${max}]`, null);
  const ticket = await readTicket(env, partner.row.id, body.ticket);
  if (!ticket) return refuse("UNKNOWN_TICKET", "the ticket is not one we issued to this partner", null);

  const program = partner.row.program === null ? null : (config.pointPrograms.get(partner.row.program) ?? null);
  if (partner.row.program !== null && !program && delta > 0) {
    // Our configuration's fault, not the partner's: unsettled, so the partner's retry applies once it is fixed.
    log.error("partner callback: point program not declared", { partnerId: partner.row.id, program: partner.row.program, webhookId });
    throw new AppError(
      "UNAVAILABLE",
      `partner '${partner.row.id}' credits point program '${partner.row.program}', which the active config does not declare`,
      {
        "retry-after": "60",
      },
    );
  }
  const credits = body.type === "completed" && delta > 0 && program !== null;
  const usage = callbackUsageId(partner.row.id, webhookId);
  // The wall clock's day, the one the partner's deliveries count on, whatever time the request replays.
  if (credits && !(await countAgainstDay(env, partner.row, usage, delta, Date.now())))
    return refuse(
      "PARTNER_LIMIT_REACHED",
      `partner '${partner.row.id}' has used up its day: its daily quota or budget has no room for ${delta} points`,
      ticket.claims.tid,
    );
  const outcome = await userAccount(env, ticket.userId).partnerCallback(ticket.userId, {
    partnerId: partner.row.id,
    webhookId,
    type: body.type,
    ticketId: ticket.claims.tid,
    pointsDelta: body.type === "completed" ? delta : 0,
    program,
    programs: Object.fromEntries(config.pointPrograms),
    reason: `${partner.row.name}: ${ticket.claims.ben} ${body.type}`,
    now,
  });
  if (!outcome.ok) {
    if (credits) await releaseUsage(db, usage);
    return refuse(outcome.code, outcome.message, ticket.claims.tid);
  }
  await settle(db, partner.row.id, webhookId, {
    status: "applied",
    httpStatus: 200,
    code: null,
    message: null,
    ticketId: ticket.claims.tid,
    type: body.type,
  });
  return { webhookId, replayed: outcome.replayed, ticket: { id: ticket.claims.tid, status: outcome.state } };
}

type CallbackRow = typeof partnerCallbacks.$inferSelect;

/** Notes a webhook-id's first delivery; answers the first delivery's row when the id was seen before. */
async function claimWebhookId(
  db: DrizzleD1Database,
  partnerId: string,
  webhookId: string,
  bodyHash: string,
  now: number,
): Promise<CallbackRow | undefined> {
  const inserted = await db
    .insert(partnerCallbacks)
    .values({ partnerId, webhookId, bodyHash, status: "received", receivedAt: now })
    .onConflictDoNothing()
    .returning({ webhookId: partnerCallbacks.webhookId });
  if (inserted.length > 0) return undefined;
  const [row] = await db
    .select()
    .from(partnerCallbacks)
    .where(and(eq(partnerCallbacks.partnerId, partnerId), eq(partnerCallbacks.webhookId, webhookId)));
  return row;
}

function settle(
  db: DrizzleD1Database,
  partnerId: string,
  webhookId: string,
  s: Pick<CallbackRow, "status" | "httpStatus" | "code" | "message" | "ticketId" | "type">,
) {
  return db
    .update(partnerCallbacks)
    .set(s)
    .where(and(eq(partnerCallbacks.partnerId, partnerId), eq(partnerCallbacks.webhookId, webhookId)));
}

/**
 * An operator alert: a row an operator lists (GET /v1/admin/partners/{id}/alerts), an error log line, and, when
 * OPERATOR_ALERT_URL is set, a signed webhook to it (src/alerts/operator-alert.ts) under the row's id.
 */
async function raiseAlert(env: Env, db: DrizzleD1Database, partnerId: string, kind: string, detail: Record<string, unknown>, now: number) {
  const id = `al_${randomId(12)}`;
  await db.insert(partnerAlerts).values({ id, partnerId, kind, detail: JSON.stringify(detail), createdAt: now });
  log.error("partner alert", { partnerId, kind, ...detail });
  const url = vars(env).OPERATOR_ALERT_URL;
  if (url)
    await sendOperatorAlert(env, {
      id,
      kind: "partnerAlert",
      url,
      namespace: `partner:${partnerId}`,
      payload: { partnerId, alert: kind, ...detail, at: now },
    });
}
