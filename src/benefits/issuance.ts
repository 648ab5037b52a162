/**
 * Giving and taking back the entitlements a user's account made or revoked, sent from its notices
 * (src/membership/notices.ts), retried by its alarm until done. An issuance is a run of the benefit's task in the
 * generated benefits-center activity, committed against the entitlement (which must still be `available`), so it gives
 * as a claim gives (a coupon or a partner's benefit from the account's outbox, a code from its pool) and is recorded
 * and reversible like every run. A reclaim is the reversal of that run.
 */
import { userAccount } from "../../durable-objects/support/stubs";
import type { CompiledConfig } from "../config/compiled";
import { runTask } from "../engine/pipeline";
import type { Env } from "../env";
import { AppError } from "../errors";
import type { Notice } from "../membership/segments";
import { log } from "../platform/log";
import { reverseRequest } from "../reversals/reverse";
import { benefitOf } from "./catalog";
import { CLAIMS_ACTIVITY, isIssued, issuanceRequestId } from "./claims";

type Ctx = { waitUntil(p: Promise<unknown>): void };

/** Runs an entitlement's issuance; throws when it is to be tried again (the entitlement then stays `available`). */
export async function issueEntitlement(env: Env, ctx: Ctx, config: CompiledConfig, n: Extract<Notice, { kind: "issue" }>): Promise<void> {
  const account = userAccount(env, n.userId);
  const benefit = benefitOf(config.benefits, n.benefitId);
  if (!benefit || !isIssued(benefit)) {
    log.error("entitlement's benefit is no longer issued; it failed", { entitlementId: n.entitlementId, benefitId: n.benefitId });
    await account.entitlementIssueFailed(n.userId, n.entitlementId);
    return;
  }
  try {
    await runTask({
      // One request id per entitlement: a retry whose first attempt committed is refused by the entitlement, and a
      // code taken again for the same grant is the same code.
      requestId: issuanceRequestId(n.entitlementId),
      now: Date.now(),
      env,
      ctx,
      config,
      method: "POST",
      activityId: CLAIMS_ACTIVITY,
      taskId: benefit.id,
      query: {},
      body: {},
      user: { id: n.userId, groups: [] },
      entitlement: { kind: "issue", id: n.entitlementId, validDays: benefit.validity?.days ?? null },
    });
  } catch (e) {
    if (!(e instanceof AppError) || e.status >= 500) throw e;
    // Issued by an earlier send of this notice, or revoked meanwhile: nothing left to do.
    if (e.code === "ENTITLEMENT_STATE") return;
    // The partner's day is full: tomorrow it has room. Tried again by the account's alarm, backing off (up to ten
    // minutes between tries), the entitlement still available.
    if (e.code === "PARTNER_LIMIT_REACHED")
      throw new AppError("UNAVAILABLE", `entitlement ${n.entitlementId} waits for its partner's next day: ${e.message}`);
    // Refused for good (its code pool empty, its partner not supplying it): said, and the entitlement failed.
    log.error("entitlement issuance refused; it failed", { entitlementId: n.entitlementId, code: e.code, error: e.message });
    await account.entitlementIssueFailed(n.userId, n.entitlementId);
  }
}

/** Reverses the run that gave a revoked entitlement; throws when it is to be tried again. */
export async function reclaimEntitlement(env: Env, config: CompiledConfig, n: Extract<Notice, { kind: "reclaim" }>): Promise<void> {
  try {
    await reverseRequest(env, config, { requestId: n.requestId, reason: n.reason, now: Date.now() });
  } catch (e) {
    if (!(e instanceof AppError)) throw e;
    // The run's records are on their way to D1: sent now, and the reclaim tried again after.
    if (e.code === "NOT_FOUND") {
      await userAccount(env, n.userId).flushRecords([n.requestId]);
      throw new AppError("UNAVAILABLE", `the records of ${n.requestId} are not stored yet`);
    }
    // The run granted nothing (refused), or was reversed on its own before: nothing to take back.
    if (e.code === "NOT_REVERSIBLE") return;
    throw e;
  }
}
