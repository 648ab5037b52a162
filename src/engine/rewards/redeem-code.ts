/** Redeem codes: one code of a code pool (kind `issue`) per grant, shown to the user in the outcome. */
import { z } from "zod";
import { codesLeft, giveBackCode, revealCode, takeCode } from "../../codes/code-pools";
import { own } from "../../config/compiled";
import { AppError } from "../../errors";
import { openEntry, settledEntry } from "../../reversals/reversal";
import { ArgsError, defineReward } from "../define";

export const redeemCode = defineReward({
  code: "redeemCode",
  description:
    "Issues one code of a code pool declared under the bundle's `codePools` (kind `issue`; operators import its " +
    "codes with POST /v1/admin/code-pools/{pool}/imports/{importId}) and shows it in the outcome (`code`). Each code " +
    "is issued once. When the pool has no code left the reward is SOLD_OUT: alone in a task it refuses the run, so " +
    "nothing the task spends (chances, limits, points) is spent. A code taken for a run that is then refused goes " +
    "back to the pool (also when its worker died before the commit: the pool asks the user's account after " +
    "RESERVATION_HOLD_MS); once the run committed, the code was shown and stays the user's (a reversal cannot reclaim it).",
  args: z.object({ pool: z.string().min(1) }).strict(),
  example: { pool: "double11-codes" },
  prepare(args, { codePools }) {
    const pool = own(codePools, args.pool);
    if (!pool) throw new ArgsError(`unknown code pool '${args.pool}'; declared: ${Object.keys(codePools).join(", ") || "none"}`, ["pool"]);
    if (pool.kind !== "issue") throw new ArgsError(`code pool '${args.pool}' is of kind '${pool.kind}': a redeemCode needs kind 'issue'`, ["pool"]);
    return { pool };
  },
  async grant(run, { pool }) {
    const user = run.requireUser();
    // The grant id holds the code: a take repeated for it (a lost answer) gets the same code.
    const grantId = run.grantId();
    let taken: Awaited<ReturnType<typeof takeCode>>;
    try {
      taken = await takeCode(run.init.env, pool, grantId, run.now, user.id);
    } catch (e) {
      if (e instanceof AppError && e.code === "SOLD_OUT") return { type: "redeemCode", granted: false, reason: "SOLD_OUT" };
      throw e;
    }
    const { code } = taken;
    // The commit records the code as used; a run that never commits (refused, or its worker died) leaves it to go back.
    run.plan.heldElsewhere.push(grantId);
    // Refused: the user never saw the code, so it goes back now (the pool asks the account first, which settles it).
    run.plan.compensations.push(() => giveBackCode(run.init.env, pool, code, grantId, run.now));
    // Committed: the answer shows the code, so it is the user's for good; told now, the pool need not ask the account.
    run.plan.afterCommit.push(() => run.init.ctx.waitUntil(revealCode(run.init.env, pool, code, grantId)));
    const detail = { pool: pool.id, code };
    run.recordGrant({ id: grantId, type: "redeemCode", amount: 1, detail, status: "granted" });
    return { type: "redeemCode", granted: true, grantId, amount: 1, ...detail };
  },
  async reverse(ctx, record, { pool }) {
    const entry = openEntry(record);
    const code = String(record.detail.code);
    const at = await giveBackCode(ctx.env, pool, code, record.id, ctx.now);
    if (at === "returned") return { entry: settledEntry(entry, 1, ""), giveBacks: [] };
    const reason = { revealed: "REVEALED", consumed: "USED", unknown: "NOT_FOUND" }[at];
    return { entry: { ...entry, reason }, giveBacks: [] };
  },
  async preview(run, { pool }) {
    const outcomes = [{ amount: 1, probability: 1, pool: pool.id }];
    // The take's holder is the grant id, unknown before the run: any holder's walk over the shards finds the same.
    if (!(await codesLeft(run.init.env, pool, run.grantId()))) return { type: "redeemCode", available: false, reason: "SOLD_OUT", outcomes };
    return { type: "redeemCode", available: true, outcomes };
  },
});
