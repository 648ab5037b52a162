/**
 * Claims run through the engine: each claimable benefit (issuance `onClaim`, of a coupon, a redeem code or a
 * partner's benefit) becomes a task of one generated activity (and so does each benefit the account issues itself,
 * with the identity or monthly: see entitlements.ts), so a claim is a run like any other: its price spent
 * by `spendPoints` in the run's commit, its quota a `limit`, its stock a `stock` over counter shards (SOLD_OUT past it,
 * spending nothing), a redeem code taken before the commit (an empty pool
 * refuses the run, spending nothing), a coupon or partner delivery through the account's outbox, the partner's
 * refunded when it fails for good, and the run's records reaching D1 and reversals as every run's do.
 */
import { AppError } from "../errors";
import { stringify } from "yaml";
import { periodKey } from "../config/time";
import type { MembershipProgram } from "../membership/program";
import type { Benefit } from "./benefit";
import type { BenefitCatalog } from "./catalog";
import type { CompiledConfig } from "../config/compiled";
import type { CounterDefinition } from "../counters/counter-definition";
import { counterScope } from "../counters/scope";
import { stock, stockCounter } from "../engine/validators/stock";
import type { Env } from "../env";

/** The generated activity's id and account namespace. */
export const CLAIMS_ACTIVITY = "benefits-center";

/** The request id of an entitlement's issuance run (src/benefits/issuance.ts): its deliveries' ids begin `d_` + it. */
export const issuanceRequestId = (entitlementId: string) => `iss_${entitlementId}`;

/**
 * The generated activity runs only through POST /v1/benefits/{id}/claim, which judges what its tasks cannot say (the
 * claim window, the entitling segment's source and channel) before the run: the task routes do not know it.
 */
export function refuseClaimsActivity(activityId: string): void {
  if (activityId === CLAIMS_ACTIVITY)
    throw new AppError("NOT_FOUND", `no activity '${activityId}': claim benefits with POST /v1/benefits/{id}/claim`);
}

/** Whether a benefit is claimed by its user (a passive discount, or one given with the identity, is not). */
export function isClaimable(b: Benefit): boolean {
  return b.material.issuance === "onClaim" && b.material.type !== "discount";
}

/**
 * The user's counter (in the account's CLAIMS_ACTIVITY namespace) that the claim task's `limit` counts this month's
 * claims in: the key src/engine/validators/limit.ts gives a task's perUserPerMonth count.
 */
export function monthlyClaimsKey(b: Benefit, now: number, timeZone: string): string {
  return `limit:${b.id}:month:${periodKey("month", now, timeZone)}`;
}

/**
 * Whether a benefit is given by the account without a claim: with the identity's grant or monthly (each an entitlement
 * the account makes and then issues as a run of the benefit's task; see entitlements.ts).
 */
export function isIssued(b: Benefit): boolean {
  return b.material.issuance !== "onClaim" && b.material.type !== "discount";
}

/** An issued benefit's task: the account decided the entitlement (its segment, its month), so the run only gives. */
function issueTask(b: Benefit) {
  return { name: b.title, validator: ["login"], reward: [rewardOf(b)] };
}

function rewardOf(b: Benefit) {
  const m = b.material;
  const price = b.price;
  return m.type === "coupon"
    ? { coupon: { couponSn: m.coupon.couponSn, channel: m.coupon.channel, ...(m.coupon.center && { center: m.coupon.center }) } }
    : m.type === "redeemCode"
      ? { redeemCode: { pool: m.codePool } }
      : m.type === "thirdParty"
        ? // Its face value is what it costs against the partner's daily budget.
          {
            partnerBenefit: {
              partner: m.partner,
              benefit: b.id,
              cost: m.faceValue,
              ...(price && { pricePoints: price.points, program: price.program }),
            },
          }
        : undefined;
}

function claimTask(b: Benefit) {
  const m = b.material;
  const identity = {
    ...(b.entitles.identityTypes && { anyOf: b.entitles.identityTypes }),
    ...(b.entitles.minRank !== null && { minRank: b.entitles.minRank }),
  };
  const price = b.price;
  const validator: unknown[] = ["login", "lock"];
  if (b.quota?.perMonth !== undefined)
    validator.push({ limit: { perUserPerMonth: b.quota.perMonth, message: `'${b.title}' is claimed ${b.quota.perMonth} time(s) a month` } });
  if (b.stock) validator.push({ stock: { total: b.stock.total, shards: b.stock.shards, message: `'${b.title}' has all been given out` } });
  // A partner's benefit spends its price itself, so that a failed delivery refunds it.
  if (price && m.type !== "thirdParty") validator.push({ spendPoints: { program: price.program, amount: price.points, reason: `benefit ${b.id}` } });
  return { name: b.title, validator, when: { identity }, reward: [rewardOf(b)] };
}

/** The generated activity's YAML, compiled with the bundle's files; undefined when nothing is claimed or issued. */
export function claimsActivitySource(catalog: BenefitCatalog, program: MembershipProgram): string | undefined {
  const claimable = catalog.benefits.filter(isClaimable);
  const issued = catalog.benefits.filter(isIssued);
  if (claimable.length === 0 && issued.length === 0) return undefined;
  return stringify({
    id: CLAIMS_ACTIVITY,
    name: "Benefits center",
    timezone: program.timezone,
    timeWindow: { beginTime: "2000-01-01 00:00:00", endTime: "2999-12-31 23:59:59" },
    tasks: Object.fromEntries([...claimable.map((b) => [b.id, claimTask(b)]), ...issued.map((b) => [b.id, issueTask(b)])]),
  });
}

/**
 * The shared counter of a benefit's stock, as its claim task's `stock` names it (undefined: no stock): what the rights
 * center reads, without writing, for SOLD_OUT.
 */
export function benefitStock(env: Env, config: CompiledConfig, b: Benefit, now: number): CounterDefinition | undefined {
  const activity = config.activities.get(CLAIMS_ACTIVITY);
  const v = activity?.tasks[b.id]?.validators.find((p) => p.def === stock);
  return activity && v && stockCounter(v.args as Parameters<typeof stockCounter>[0], counterScope(env, activity, config.revision, b.id, now));
}
