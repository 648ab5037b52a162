/**
 * The document's RewardOutcome: what each reward's `grant` returns (src/engine/rewards/*.ts), as a union on `type`.
 * The response check in the tests holds it to what the rewards really answer.
 */
import { z } from "@hono/zod-openapi";

const grantId = z.string().openapi({ description: "The grant's id (a lottery prize's id is what its claim takes)" });
const node = z.string().optional().openapi({
  description: "The reward-tree node that gave it (or tried to), e.g. `all/1/oneOf/0`; a flat reward list's i-th is `all/i`",
  example: "all/0",
});
const decision = z
  .object({
    segment: z.string().nullable().openapi({ description: "The user segment that matched (null: the default branch)" }),
    right: z.string().openapi({ description: "The right chosen (its id in the branch)" }),
    by: z
      .enum(["weighted", "sticky", "external", "fallback"])
      .openapi({ description: "How: by weight, sticky per user, ranked by the strategy service, or by weight after it failed" }),
  })
  .optional()
  .openapi({ description: "Given through a `bySegment` node: the segment matched and the right chosen" });
/** Why a reward of a tree was not given although its run committed (a node that skips or falls back). */
const TREE_REASONS = ["SOLD_OUT", "BUDGET"] as const;
const TREE_DESCRIPTION = "; SOLD_OUT: its stock is spent; BUDGET: a reward-tree node's budget is spent";
const notGranted = <T extends string>(type: T, reasons: [string, ...string[]], description: string) =>
  z.object({
    type: z.literal(type),
    granted: z.literal(false),
    reason: z.enum([...reasons, ...TREE_REASONS]).openapi({ description: description + TREE_DESCRIPTION }),
    node,
    decision,
  });

const RedPacketOutcome = z
  .discriminatedUnion("granted", [
    z.object({
      type: z.literal("redPacket"),
      granted: z.literal(true),
      grantId,
      node,
      decision,
      amount: z.number().int().openapi({ description: "Minor units credited to the red-packet balance" }),
      currency: z.string().openapi({ example: "CNY" }),
    }),
    notGranted("redPacket", ["MISSED", "NOT_IN_GROUP"], "MISSED: the probability roll lost; NOT_IN_GROUP: not in the reward's user groups"),
  ])
  .openapi("RedPacketOutcome");

const ChancesOutcome = z
  .discriminatedUnion("granted", [
    z.object({
      type: z.literal("chances"),
      granted: z.literal(true),
      grantId,
      node,
      decision,
      amount: z.number().int().openapi({ description: "Chances added (cut to fit the kind's `max` when it has one)" }),
      chance: z.string().openapi({ description: "The chance kind", example: "draw" }),
      requested: z.number().int().optional().openapi({ description: "With `capped`: what the reward would have given" }),
      capped: z.literal(true).optional().openapi({ description: "The grant was cut to the kind's `max` balance" }),
    }),
    z.object({
      type: z.literal("chances"),
      granted: z.literal(false),
      reason: z.string().openapi({ description: "The balance is already at the kind's `max`" + TREE_DESCRIPTION }),
      node,
      decision,
    }),
  ])
  .openapi("ChancesOutcome");

const CouponOutcome = z
  .discriminatedUnion("granted", [
    z.object({
      type: z.literal("coupon"),
      granted: z.literal(true),
      grantId,
      node,
      decision,
      amount: z.literal(1),
      couponSn: z.string(),
      channel: z.string(),
      status: z.literal("pending").openapi({ description: "Delivered to the coupon center asynchronously" }),
    }),
    notGranted("coupon", ["MISSED"], "MISSED: the probability roll lost"),
  ])
  .openapi("CouponOutcome");

const LotteryOutcome = z
  .discriminatedUnion("granted", [
    z.object({
      type: z.literal("lottery"),
      granted: z.literal(true),
      grantId,
      node,
      decision,
      amount: z.number().int().openapi({ description: "The prize tier's value" }),
      pool: z.string(),
      tier: z.string(),
      tierName: z.string(),
      claimBy: z.iso.datetime().nullable().openapi({ description: "Claim with POST /v1/prizes/{grantId}/claim before this; null: no deadline" }),
    }),
    notGranted(
      "lottery",
      ["MISSED", "EMPTY", "CAPPED", "CLOSED", "NOT-OPEN"],
      "MISSED: the probability roll lost; EMPTY: nothing released now; CAPPED: the per-user cap; CLOSED; NOT-OPEN: outside the pool's window",
    ),
  ])
  .openapi("LotteryOutcome");

const PointsOutcome = z
  .discriminatedUnion("granted", [
    z.object({
      type: z.literal("points"),
      granted: z.literal(true),
      grantId,
      node,
      decision,
      amount: z.number().int().openapi({ description: "Points earned (cut to the program's daily earn cap when it has one)" }),
      program: z.string().openapi({ example: "honey" }),
      requested: z.number().int().optional().openapi({ description: "With `capped`: what the reward would have given" }),
      capped: z.literal(true).optional().openapi({ description: "The earn was cut to the program's daily earn cap" }),
    }),
    notGranted("points", ["DAILY_CAP", "NO_AMOUNT"], "DAILY_CAP: the program's daily earn cap was reached; NO_AMOUNT: the share rounded to 0"),
  ])
  .openapi("PointsOutcome");

const MembershipOutcome = z
  .discriminatedUnion("granted", [
    z.object({
      type: z.literal("membership"),
      granted: z.literal(true),
      grantId: grantId.openapi({ description: "The grant's id: the segment's externalRef on the user's timeline (GET /v1/me/identities)" }),
      node,
      decision,
      amount: z.literal(1),
      sku: z.string().openapi({ example: "gold-week" }),
      identityType: z.string().openapi({ example: "gold" }),
    }),
    z.object({
      type: z.literal("membership"),
      granted: z.literal(false),
      reason: z.enum(TREE_REASONS).openapi({ description: TREE_DESCRIPTION.slice(2) }),
      node,
      decision,
    }),
  ])
  .openapi("MembershipOutcome");

const RedeemCodeOutcome = z
  .discriminatedUnion("granted", [
    z.object({
      type: z.literal("redeemCode"),
      granted: z.literal(true),
      grantId,
      node,
      decision,
      amount: z.literal(1),
      pool: z.string().openapi({ description: "The code pool", example: "double11-codes" }),
      code: z.string().openapi({ description: "The code, issued to this user alone", example: "D11-8F3K-22QX" }),
    }),
    z.object({
      type: z.literal("redeemCode"),
      granted: z.literal(false),
      reason: z.enum(TREE_REASONS).openapi({ description: "SOLD_OUT: the pool has no code left (skipped by a reward tree)" + TREE_DESCRIPTION }),
      node,
      decision,
    }),
  ])
  .openapi("RedeemCodeOutcome");

const PartnerBenefitOutcome = z
  .object({
    type: z.literal("partnerBenefit"),
    granted: z.literal(true),
    grantId,
    node,
    decision,
    amount: z.literal(1),
    partner: z.string(),
    benefit: z.string(),
    pricePoints: z.number().int().optional().openapi({ description: "Points spent for it in the run's commit (refunded if the delivery fails)" }),
    status: z.literal("pending").openapi({ description: "Delivered to the partner asynchronously" }),
  })
  .openapi("PartnerBenefitOutcome");

/** One reward's outcome in a task's answer: granted with its details, or not granted with the reason. */
export const RewardOutcomeSchema = z
  .discriminatedUnion("type", [
    RedPacketOutcome,
    ChancesOutcome,
    CouponOutcome,
    LotteryOutcome,
    PointsOutcome,
    RedeemCodeOutcome,
    PartnerBenefitOutcome,
    MembershipOutcome,
  ])
  .openapi("RewardOutcome");
