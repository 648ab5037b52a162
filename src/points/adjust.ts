/**
 * Adjusting a user's points by a business system (service route `POST /v1/points/adjust`): its body and the
 * operation. A credit is spendable at once; a debit never takes the balance below zero; the same `sourceRef` is the
 * same adjustment, answered again without a second change.
 */
import { z } from "@hono/zod-openapi";
import { userAccount } from "../../durable-objects/support/stubs";
import type { CompiledConfig } from "../config/compiled";
import { ConfigIdSchema } from "../config/id";
import type { Env } from "../env";
import { AppError } from "../errors";
import { entryAnswer, PointEntrySchema } from "./answers";
import { programOf } from "./program";

export const AdjustBodySchema = z
  .object({
    userId: z.string().min(1).max(200),
    program: ConfigIdSchema,
    delta: z
      .number()
      .int()
      .refine((d) => d !== 0, "delta must not be 0")
      .refine((d) => Math.abs(d) <= 1_000_000_000, "delta is at most 1,000,000,000 either way"),
    reason: z.string().min(1).max(200),
    sourceRef: z.string().min(1).max(200).openapi({ description: "The caller's reference: the same one is the same adjustment" }),
  })
  .strict()
  .openapi("PointsAdjustment");

export const AdjustAnswerSchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    userId: z.string(),
    entry: PointEntrySchema,
    replayed: z.boolean().openapi({ description: "The sourceRef was adjusted before: its first entry, nothing changed" }),
  })
  .openapi("PointsAdjusted");

/** Adjusts a user's points; throws NOT_FOUND (unknown program) or INSUFFICIENT_POINTS (a debit beyond the balance). */
export async function adjustPoints(
  env: Env,
  config: CompiledConfig,
  body: z.output<typeof AdjustBodySchema>,
  ctx: { requestId: string; now: number; keyId: string },
): Promise<z.output<typeof AdjustAnswerSchema>> {
  const program = programOf(config, body.program);
  // An adjustment's reference lives beside the ledger's own (`spend:…`, `redeem:…`, grant ids): prefixed, so a
  // business system's reference can never name one of those.
  const r = await userAccount(env, body.userId).adjustPoints(body.userId, program, {
    delta: body.delta,
    sourceRef: `adjust:${body.sourceRef}`,
    reason: body.reason,
    now: ctx.now,
    keyId: ctx.keyId,
  });
  if (!r.ok) throw new AppError(r.code, r.message);
  return { ok: true, requestId: ctx.requestId, userId: body.userId, entry: entryAnswer(r.entry), replayed: r.replayed };
}
