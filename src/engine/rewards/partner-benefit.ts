/** A third-party benefit delivered by its partner (src/partners): optionally bought with points, refunded if it fails. */
import { drizzle } from "drizzle-orm/d1";
import { z } from "zod";
import { own } from "../../config/compiled";
import { AppError } from "../../errors";
import { dayHasRoom, deliverToPartner } from "../../partners/outbound";
import { findPartner, suppliesBenefit } from "../../partners/registry";
import { openEntry } from "../../reversals/reversal";
import { ArgsError, defineReward } from "../define";

const PartnerIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, "not a partner id");

export const partnerBenefit = defineReward({
  code: "partnerBenefit",
  description:
    "Delivers a benefit through the partner that supplies it (partners are defined with the admin API, " +
    "`/v1/admin/partners`; the partner must list the benefit, else the run is refused with NOT_FOUND). The grant is " +
    "recorded `pending` and POSTed to the partner asynchronously, signed per Standard Webhooks with the partner's " +
    "newest key, retried on 5xx and timeouts; it ends `delivered` (the partner's reference kept) or `failed` (a 4xx, " +
    "the partner's daily quota or budget reached, or the last retry). A run when the partner's day is used up (its " +
    "`dailyQuota` of deliveries and crediting callbacks, or `dailyBudget`) is refused with PARTNER_LIMIT_REACHED and " +
    "spends nothing; runs at once may all pass that check, and the delivery's own count then fails the extra ones. " +
    "`pricePoints` of `program` are spent in the " +
    "run's commit (INSUFFICIENT_POINTS refuses the run, spending nothing) and refunded when the delivery fails. " +
    "`cost` counts against the partner's daily budget. A reversal cannot take a delivered benefit back from the " +
    "partner: its entry is `unreclaimable`.",
  args: z
    .object({
      partner: PartnerIdSchema,
      benefit: z.string().min(1).max(100),
      pricePoints: z.number().int().min(1).optional(),
      program: z.string().min(1).optional(),
      cost: z.number().int().min(0).default(0),
      message: z.string().min(1).optional(),
    })
    .strict(),
  example: { partner: "videoclub", benefit: "vip-month", pricePoints: 500, program: "honey" },
  prepare(args, { pointPrograms }) {
    if (args.pricePoints === undefined) {
      if (args.program !== undefined) throw new ArgsError("program is only used with pricePoints", ["program"]);
      return { ...args, program: undefined };
    }
    if (args.program === undefined) throw new ArgsError("pricePoints needs the point program they are spent from", ["program"]);
    const program = own(pointPrograms, args.program);
    if (!program) {
      throw new ArgsError(`unknown point program '${args.program}'; declared: ${Object.keys(pointPrograms).join(", ") || "none"}`, ["program"]);
    }
    return { ...args, program };
  },
  async grant(run, args) {
    const user = run.requireUser();
    // Partners are operational data (D1), not config: checked when the run grants, before anything is written.
    const db = drizzle(run.init.env.DB);
    if (!(await suppliesBenefit(db, args.partner, args.benefit))) {
      throw new AppError("NOT_FOUND", `partner '${args.partner}' does not supply benefit '${args.benefit}'`);
    }
    // The partner's day is judged here, before anything is spent; the delivery counts it (the line that holds). Judged
    // on the wall clock's day, the one the delivery counts on, whatever time the request replays.
    const partner = await findPartner(run.init.env, db, args.partner);
    if (partner && !(await dayHasRoom(run.init.env, partner.row, args.cost, Date.now()))) {
      throw new AppError("PARTNER_LIMIT_REACHED", `partner '${args.partner}' has no room left today (its daily quota or budget is used up)`);
    }
    const detail = { partner: args.partner, benefit: args.benefit, ...(args.pricePoints !== undefined && { pricePoints: args.pricePoints }) };
    const grantId = run.recordGrant({ type: "partnerBenefit", amount: 1, detail, status: "pending" });
    const reason = `${run.activity.name}: ${args.benefit}`;
    if (args.pricePoints !== undefined && args.program) {
      run.plan.points.push({
        kind: "redeem",
        program: args.program,
        amount: args.pricePoints,
        sourceRef: `partner-benefit:${grantId}`,
        reason,
        now: run.now,
        rejection: { code: "INSUFFICIENT_POINTS", message: args.message ?? `Not enough ${args.program.name}` },
      });
    }
    deliverToPartner(run, {
      partnerId: args.partner,
      benefitId: args.benefit,
      grantId,
      cost: args.cost,
      compensation:
        args.pricePoints !== undefined && args.program
          ? { type: "refundPoints", userId: user.id, program: args.program, amount: args.pricePoints, reason: `refund: ${reason} was not delivered` }
          : undefined,
    });
    return { type: "partnerBenefit", granted: true, grantId, amount: 1, ...detail, status: "pending" };
  },
  reverse(_ctx, record) {
    return { entry: { ...openEntry(record), reason: "delivered by a partner: it cannot be taken back" }, giveBacks: [] };
  },
  preview(_run, args) {
    const outcomes = [{ amount: 1, probability: 1, partner: args.partner, benefit: args.benefit }];
    return { type: "partnerBenefit", available: true, outcomes };
  },
});
