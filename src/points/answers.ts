/** What the points routes answer (and the user's account stores as an Idempotency-Key's answer), and their schemas. */
import { z } from "@hono/zod-openapi";
import type { PointBalances, PointEntry } from "./ledger";

export const PointEntrySchema = z
  .object({
    id: z.number().int().openapi({ description: "The entry's number in the user's ledger (its order)" }),
    program: z.string().openapi({ example: "honey" }),
    type: z.enum(["earn", "redeem", "expire", "reverse", "adjust", "activate"]),
    delta: z.number().int().openapi({ description: "Points added (> 0) or taken (< 0); 0 for an activation or an earn the daily cap took whole" }),
    balanceAfter: z.number().int(),
    reason: z.string(),
    sourceRef: z.string().openapi({ description: "Unique per program: the same reference is always the same entry" }),
    at: z.iso.datetime(),
    detail: z.record(z.string(), z.unknown()),
  })
  .openapi("PointEntry");

const Balances = {
  balance: z.number().int().openapi({ description: "Spendable and pending together: the sum of every entry's delta" }),
  active: z.number().int().openapi({ description: "Spendable now" }),
  pending: z.number().int().openapi({ description: "Earned, spendable after the program's pending days" }),
};

export const RedeemAnswerSchema = z
  .object({ ok: z.literal(true), requestId: z.string(), program: z.string(), entry: PointEntrySchema, ...Balances })
  .openapi("PointsRedeemed");

export const StatementSchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    userId: z.string(),
    program: z.object({ id: z.string(), name: z.string() }),
    ...Balances,
    expiringSoon: z
      .array(z.object({ amount: z.number().int(), expiresAt: z.iso.datetime() }))
      .openapi({ description: "Points that expire within 30 days, by expiry instant (the last instant they can be spent)" }),
    entries: z.array(PointEntrySchema).openapi({ description: "History, newest first" }),
    nextCursor: z.string().nullable().openapi({ description: "Pass as `cursor` for the next (older) page; null: no more" }),
  })
  .openapi("PointsStatement");

export const entryAnswer = (e: PointEntry) => ({ ...e, at: new Date(e.at).toISOString() });

export function redeemAnswer(requestId: string, entry: PointEntry, balances: PointBalances): z.output<typeof RedeemAnswerSchema> {
  return { ok: true, requestId, program: entry.program, entry: entryAnswer(entry), ...balances };
}

/** A page's cursor: opaque to clients (the last entry shown, encoded), so its form may change. */
export const cursorAfter = (entryId: number) => btoa(JSON.stringify({ before: entryId })).replaceAll("=", "");

/** The entry a cursor points before, or undefined when it is not one of ours. */
export function readCursor(cursor: string): number | undefined {
  try {
    const { before } = JSON.parse(atob(cursor)) as { before?: unknown };
    return Number.isSafeInteger(before) && (before as number) > 0 ? (before as number) : undefined;
  } catch {
    return undefined;
  }
}
