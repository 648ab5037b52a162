/** A membership identity: a segment of a SKU of the bundle's `membership:` program on the user's timeline. */
import { z } from "zod";
import { didYouMean } from "../../config/suggest";
import { type MembershipProgram, type Sku, skuOf } from "../../membership/program";
import { openEntry } from "../../reversals/reversal";
import { ArgsError, defineReward } from "../define";
import { userAccount } from "../../../durable-objects/support/stubs";
import { place } from "../../membership/timeline";

export const membershipReward = defineReward({
  code: "membership",
  description:
    "Grants a segment of a membership SKU declared under the bundle's `membership:` program, with source `task` " +
    "(the SKU's `sources` must allow it) and the reward's `channel` (required when the SKU names channels). The " +
    "segment is placed on the user's timeline in the run's commit, by the SKU's rules: a renewal stacks after the " +
    "identity's last segment, a missing pre-condition refuses the run with PRECONDITION_FAILED and a conflicting " +
    "identity with IDENTITY_CONFLICT, and nothing of the run is written then. Its events (identity.granted, …) follow " +
    "the commit. A reversal of the run revokes the segment as a refund would. A preview says whether the user's " +
    "timeline would take it now (IDENTITY_CONFLICT, PRECONDITION_FAILED, or CLOSED for a fixed end that has passed).",
  args: z.object({ sku: z.string().min(1), channel: z.string().min(1).max(64).optional() }).strict(),
  example: { sku: "gold-week" },
  prepare(args, { membership }) {
    if (!membership) throw new ArgsError("the bundle declares no membership program (a file with `membership:`)", ["sku"]);
    const sku: Sku | undefined = skuOf(membership, args.sku);
    if (!sku) {
      const known = Object.keys(membership.skus);
      throw new ArgsError(`unknown membership SKU '${args.sku}'${didYouMean(args.sku, known)}; declared: ${known.join(", ")}`, ["sku"]);
    }
    if (!sku.sources.includes("task"))
      throw new ArgsError(`SKU '${sku.id}' is not granted by tasks (its sources: ${sku.sources.join(", ")})`, ["sku"]);
    if (sku.channels && (args.channel === undefined || !sku.channels.includes(args.channel))) {
      throw new ArgsError(`SKU '${sku.id}' is sold on ${sku.channels.join(", ")} only: name one as channel`, ["channel"]);
    }
    const program: MembershipProgram = membership;
    return { program, sku, channel: args.channel ?? null };
  },
  grant(run, args) {
    const user = run.requireUser();
    const detail = { sku: args.sku.id, identityType: args.sku.identityType };
    const grantId = run.recordGrant({ type: "membership", amount: 1, detail, status: "granted" });
    // The grant id is the segment's externalRef: a reversal of the run revokes it by that ref.
    run.plan.identities.push({
      program: args.program,
      // The benefits the segment brings are made in the same commit.
      catalog: run.init.config.benefits,
      grant: {
        userId: user.id,
        sku: args.sku.id,
        source: "task",
        channel: args.channel,
        externalRef: grantId,
        fingerprint: `task:${run.activity.id}/${run.taskId}:${args.sku.id}`,
        now: run.now,
      },
    });
    return { type: "membership", granted: true, grantId, amount: 1, ...detail };
  },
  reverse(ctx, record, args) {
    const change = { kind: "identity" as const, grantId: record.id, program: args.program, externalRef: record.id, reason: ctx.reason, now: ctx.now };
    return { entry: openEntry(record), change, giveBacks: [] };
  },
  async preview(run, args) {
    const outcomes = [{ amount: 1, probability: 1, sku: args.sku.id, identityType: args.sku.identityType }];
    // Where the segment would go on the user's timeline now (the commit decides again).
    const segments = await userAccount(run.init.env, run.requireUser().id).identities();
    const at = place(segments, args.program, args.sku, run.now);
    if (at.ok) return { type: "membership", available: true, outcomes };
    return { type: "membership", available: false, reason: at.code === "NOT_ELIGIBLE" ? "CLOSED" : at.code, outcomes };
  },
});
