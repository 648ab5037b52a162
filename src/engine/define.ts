/**
 * What a component is: a validator, command or reward definition with a code, zod-typed args and a function.
 * Each lives in its own file and is listed once in `registry.ts`.
 */
import type { z } from "zod";
import type { ErrorCode } from "../errors";
import type { CompiledActivity } from "../config/compiled";
import type { TaskRun } from "./run";
import type { CounterDefinition } from "../counters/counter-definition";
import type { Period } from "../config/time";
import type { PointProgram } from "../points/program";
import type { MembershipProgram } from "../membership/program";
import type { CodePool } from "../codes/code-pool-definition";
import type { Env } from "../env";
import type { RiskScene } from "../risk/scene-definition";
import type { GrantRecord, ReversalStep } from "../reversals/reversal";
import type { SegmentDecision } from "../segments/decision";

/**
 * Where a component's shared counters are named: in a run (TaskRun), or when an operator looks at an activity's
 * counters (the admin API), for the same instant's periods.
 */
export interface CounterScope {
  taskId: string;
  period(p: Period): string;
  sharedCounter(key: string, capacity: number, shards: number): CounterDefinition;
}

/** A validator's or guard's refusal: answered with this code and message. */
export interface Rejection {
  code: ErrorCode;
  message: string;
}

/** What a definition knows when its args are compiled (once, at config load). */
export interface CompileContext {
  activity: Omit<CompiledActivity, "tasks" | "countedParticipations">;
  taskId: string;
  params: Record<string, unknown>;
  /** The bundle's point programs, by id (the `points` reward and `spendPoints` guard name one). */
  pointPrograms: Readonly<Record<string, PointProgram>>;
  /** The bundle's membership program (the `membership` reward names its SKUs). */
  membership?: MembershipProgram;
  /** The bundle's code pools, by id (the `redeemCode` reward names one). */
  codePools: Readonly<Record<string, CodePool>>;
  /** The bundle's risk scenes, by id (the `risk` validator names one). */
  riskScenes: Readonly<Record<string, RiskScene>>;
}

/** Thrown by `prepare` to reject args with a reason (and optionally the path below the component). */
export class ArgsError extends Error {
  constructor(
    message: string,
    readonly path: (string | number)[] = [],
  ) {
    super(message);
  }
}

interface Definition<Args extends z.ZodType, Prepared> {
  code: string;
  /** One paragraph for the config reference. */
  description: string;
  args: Args;
  /** A YAML-ready example of the args, shown in the reference (undefined: used as a bare code). */
  example?: unknown;
  /** A bare code takes its args from `params[fromParams]` when present (e.g. `params.timeWindow`). */
  fromParams?: string;
  /** Checks what zod cannot (cross-references, times in the activity's timezone); runs once at load. */
  prepare?: (args: z.output<Args>, ctx: CompileContext) => Prepared;
  /** The counters shared by all users that the component takes from (stock, budget, caps), as a run would name them. */
  sharedCounters?: (args: Prepared, scope: CounterScope) => CounterDefinition[];
}

export interface ValidatorDefinition<Args extends z.ZodType = z.ZodType, Prepared = z.output<Args>> extends Definition<Args, Prepared> {
  /** True when the validator works on the signed-in user (so `login` must come before it). */
  needsUser: boolean;
  /** Asks another system with consequences (the risk engine: alerts, blacklisting): a preview does not run it. */
  skippedByPreview?: boolean;
  check(run: TaskRun, args: Prepared): Promise<Rejection | undefined> | Rejection | undefined;
}

export interface CommandDefinition<Args extends z.ZodType = z.ZodType, Prepared = z.output<Args>> extends Definition<Args, Prepared> {
  needsUser: boolean;
  /** Adds writes to the run's commit plan, or does work that must happen before the reward. */
  run(run: TaskRun, args: Prepared): Promise<void> | void;
}

/** What one reward gave (or, with `granted: false`, why not). Shown to the consumer as-is. */
export type RewardOutcome =
  | ({ type: string; granted: true; grantId: string; amount: number } & Record<string, unknown>)
  | { type: string; granted: false; reason: string; node?: string; decision?: SegmentDecision };

/** Why a reward could not be given now, as a preview says it. */
export type Unavailability =
  | "SOLD_OUT"
  | "BUDGET"
  | "LIMIT"
  | "NO_CHANCES"
  | "NOT_RELEASED"
  | "NOT_IN_GROUP"
  | "CAPPED"
  | "CLOSED"
  | "NOT_OPEN"
  | "DAILY_CAP"
  | "NO_AMOUNT"
  | "IDENTITY_CONFLICT"
  | "PRECONDITION_FAILED";

/**
 * What a reward would give, from read-only peeks (a preview never draws, reserves or writes): whether it is available
 * (else why not) and its possible outcomes with their probabilities (they may sum below 1: the rest gives nothing).
 */
export interface RewardPreview {
  type: string;
  available: boolean;
  reason?: Unavailability;
  /** With NOT_RELEASED: when the next unit is released (ISO 8601), if one is still to come. */
  nextReleaseAt?: string | null;
  outcomes: ({ amount: number; probability: number } & Record<string, unknown>)[];
}

/** What a reward's `reverse` knows: the activity, and its counters as the granting run named them (at the record's time). */
export interface ReverseContext {
  env: Env;
  activity: CompiledActivity;
  /** The granting run's scope: its periods are those of the record's `createdAt`. */
  scope: CounterScope;
  now: number;
  reason: string;
  /**
   * A partial refund's part of the record (src/reversals/order-refund.ts): take back `amount` of it, once by `key`;
   * `last` when it is the record's last part. Absent: the whole record. Only a reward with `refund` gets one.
   */
  part?: { amount: number; key: string; last: boolean };
}

/** How a partial refund of an order judges a reward (absent: it stays until the order is refunded whole). */
export interface RefundTerms<Prepared> {
  /** Its amount divides (points, money): `proportional` takes back the refunded share of it. */
  divisible: boolean;
  /** What it would give for these params (`reevaluate` takes back the difference); only where the amount follows the order. */
  amountFor?(params: Record<string, unknown>, args: Prepared): number;
}

export interface RewardDefinition<Args extends z.ZodType = z.ZodType, Prepared = z.output<Args>> extends Definition<Args, Prepared> {
  grant(run: TaskRun, args: Prepared): Promise<RewardOutcome> | RewardOutcome;
  /**
   * Takes back what `record` granted: done here for what another single writer holds (a prize, a coupon), or planned
   * for the user's account's one transaction (`change`); shared counters it used are given back after (`giveBacks`).
   */
  reverse(ctx: ReverseContext, record: GrantRecord, args: Prepared): Promise<ReversalStep> | ReversalStep;
  refund?: RefundTerms<Prepared>;
  /** What `grant` would give this run now, from read-only peeks: never a draw, a reservation or a write. */
  preview(run: TaskRun, args: Prepared): Promise<RewardPreview> | RewardPreview;
}

export function defineValidator<Args extends z.ZodType, Prepared = z.output<Args>>(
  d: ValidatorDefinition<Args, Prepared>,
): ValidatorDefinition<Args, Prepared> {
  return d;
}
export function defineCommand<Args extends z.ZodType, Prepared = z.output<Args>>(
  d: CommandDefinition<Args, Prepared>,
): CommandDefinition<Args, Prepared> {
  return d;
}
export function defineReward<Args extends z.ZodType, Prepared = z.output<Args>>(
  d: RewardDefinition<Args, Prepared>,
): RewardDefinition<Args, Prepared> {
  return d;
}

/** A component placed in a task: its definition and its compiled args. */
export interface Placed<D> {
  def: D;
  args: unknown;
}
