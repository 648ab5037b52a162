/** Lottery: draws a prize from one of the activity's prize pools (奖池). */
import { z } from "zod";
import { AppError } from "../../errors";
import { activityPool, cancelPrize, candidateShards, drawPrize, previewDraw, prizeIdPrefix, reclaimPrize } from "../../prizes/pools";
import { openEntry, settledEntry } from "../../reversals/reversal";
import { own } from "../../config/compiled";
import { ArgsError, defineReward } from "../define";

export const lottery = defineReward({
  code: "lottery",
  description:
    "Draws from a prize pool declared under the activity's `pools` (or declared `managed: api` there and created " +
    "through the admin API). The pool rolls its win probability, then takes " +
    "a released, unissued unit (tier by weight among those available), so prizes are spread over the window and a " +
    "spike cannot empty the pool early. A prize is claimed with POST /v1/prizes/{grantId}/claim before the pool's " +
    "claim deadline. Outcomes that give nothing: MISSED, EMPTY (nothing released now), CAPPED (per-user cap), " +
    "CLOSED, NOT-OPEN. If the run is refused after the draw, the prize goes back to the pool.",
  args: z.object({ pool: z.string().min(1) }).strict(),
  example: { pool: "main" },
  prepare(args, { activity }) {
    if (!own(activity.pools, args.pool) && !own(activity.managedPools, args.pool)) {
      const declared = [...Object.keys(activity.pools), ...Object.keys(activity.managedPools)];
      throw new ArgsError(`unknown pool '${args.pool}'; declared: ${declared.join(", ") || "none"}`, ["pool"]);
    }
    return { name: args.pool };
  },
  async grant(run, { name }) {
    const user = run.requireUser();
    const pool = await activityPool(run.init.env, run.activity, name);
    if (!pool)
      throw new AppError("UNAVAILABLE", `pool '${name}' has not been defined yet (PUT /v1/admin/activities/${run.activity.id}/pools/${name})`);
    const prefix = prizeIdPrefix(run.activity.namespace, name, run.slotId());
    // The prize's id is known before the draw: if the run is refused, or the draw's answer is lost, give it back.
    const giveBack = () => Promise.all(candidateShards(user.id, pool.shards).map((s) => cancelPrize(run.init.env, `${prefix}~${s}`)));
    let out;
    try {
      out = await drawPrize(run.init.env, pool, { grantId: prefix, userId: user.id, now: run.now });
    } catch (e) {
      await giveBack().catch(() => undefined);
      throw e;
    }
    if (out.outcome === "changed") {
      throw new AppError(
        "UNAVAILABLE",
        `pool '${name}' was changed in config after first use: its shards and tiers are fixed (change quantities with the admin API)`,
      );
    }
    if (out.outcome !== "won") return { type: "lottery", granted: false, reason: out.outcome.toUpperCase() };
    run.plan.compensations.push(giveBack);
    const claimBy = out.expiresAt === null ? null : new Date(out.expiresAt).toISOString();
    const detail = { pool: name, tier: out.tierId, tierName: out.tierName, claimBy };
    const grantId = run.recordGrant({ id: out.grantId, type: "lottery", amount: out.value, detail, status: "granted" });
    return { type: "lottery", granted: true, grantId, amount: out.value, ...detail };
  },
  async reverse(ctx, record) {
    // An unclaimed prize is cancelled and its unit goes back to the pool; a claimed one stays the winner's.
    const entry = openEntry(record);
    const at = await reclaimPrize(ctx.env, record.id);
    if (at === "cancelled") return { entry: settledEntry(entry, record.amount, ""), giveBacks: [] };
    if (at === "expired") return { entry: { ...settledEntry(entry, record.amount, ""), detail: { prize: "expired unclaimed" } }, giveBacks: [] };
    return { entry: { ...entry, reason: at === "claimed" ? "CLAIMED" : "NOT_FOUND" }, giveBacks: [] };
  },
  async preview(run, { name }) {
    const user = run.requireUser();
    const pool = await activityPool(run.init.env, run.activity, name);
    if (!pool) throw new AppError("UNAVAILABLE", `pool '${name}' has not been defined yet`);
    return previewDraw(run.init.env, pool, user.id, run.now);
  },
});
