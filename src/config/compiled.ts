/** The typed, validated form of task configs that requests run against. Built once per pushed version. */
import type { RuleCheck } from "./request-rules";
import type { PoolDefinition } from "../prizes/pool-definition";
import type { RateLimitRule } from "../rate-limit/rule";
import type { SaleDefinition } from "../sales/sale-definition";
import type { Period } from "./time";
import type { ProfileSchema } from "../users/profile-definition";
import type { Intake } from "../intake/intake-mode";
import type { PointProgram } from "../points/program";
import type { BenefitCatalog } from "../benefits/catalog";
import type { MembershipProgram } from "../membership/program";
import type { CodePool } from "../codes/code-pool-definition";
import type { CommandDefinition, Placed, RewardDefinition, ValidatorDefinition } from "../engine/define";
import type { ConditionTree } from "../engine/conditions/tree";
import type { RewardTree } from "../engine/reward-tree/tree";
import type { ParticipationCount } from "../engine/conditions/define";
import type { EventType } from "../events/event-types";
import type { RiskScene } from "../risk/scene-definition";
import type { UserSegment } from "../segments/segment-definition";

export interface CompiledRule {
  field: string;
  /** `get` rules read the query string, `post` rules the JSON body (each rule's `method`). */
  source: "query" | "body";
  checks: RuleCheck[];
  message: string;
}

/**
 * A kind of chance: `initial` per period is the free fixed-frequency allowance, which resets with the period;
 * chances earned through the `chances` reward last as `expires` says.
 */
export interface ChanceKind {
  id: string;
  name: string;
  initial: number;
  per: Period;
  /** How long earned chances last: with the period's allowance, forever, or this many milliseconds. */
  expires: "period" | "never" | number;
  /** The most a user may hold (allowance and earned together); null: unbounded. */
  max: number | null;
}

export interface CompiledTask {
  id: string;
  activityId: string;
  name: string;
  method: "GET" | "POST";
  rules: CompiledRule[];
  params: Record<string, unknown>;
  validators: Placed<ValidatorDefinition>[];
  commands: Placed<CommandDefinition>[];
  /** Every reward component of the task (the leaves of its reward tree), in tree order. */
  rewards: Placed<RewardDefinition>[];
  /** The task's `reward:` as a tree (src/engine/reward-tree): what the run gives, and how it falls back. */
  rewardTree: RewardTree;
  afterCommands: Placed<CommandDefinition>[];
  /** The condition tree a run must pass, after the validators and before the command (`when:`). */
  when?: ConditionTree;
  rateLimit?: RateLimitRule[];
  /** The risk scene its runs are guarded at the edge and judged in (`params.riskScene` or a `risk` validator). */
  riskScene?: string;
  /** Runs answered in the request (`direct`) or queued behind a ticket (`queue`). */
  intake: Intake;
  /** Event types that run this task (src/events); such a task never runs over HTTP. */
  on?: string[];
  /** Of a group's triggers of one event, the highest priority alone runs. */
  exclusiveGroup?: { name: string; priority: number };
  /** The event a committed run emits for its user. */
  emits?: "signIn" | "taskCompleted";
  /** Whether a reversal of a run gives back its participation counts (src/reversals). */
  restoreLimits: boolean;
  /**
   * How a partial refund of its event's order takes back what a run gave: `proportional` (the refunded share of each
   * divisible reward) or `reevaluate` (the conditions and amounts again, on what remains of the order).
   */
  onPartialRefund: "proportional" | "reevaluate";
}

export interface CompiledActivity {
  id: string;
  name: string;
  file: string;
  timezone: string;
  /** The account namespace all of this activity's rows live under. */
  namespace: string;
  begin: number;
  end: number;
  windowMessage: string;
  chances: Record<string, ChanceKind>;
  /** Prize pools by their id in the file; each definition carries its global id `<namespace>:<pool>`. */
  pools: Record<string, PoolDefinition>;
  /** Pools declared `managed: api`: defined through the admin API (stored in D1), by their id in the file → global id. */
  managedPools: Record<string, string>;
  /** Flash sales declared by this activity, by their global id. */
  sales: Record<string, SaleDefinition>;
  tasks: Record<string, CompiledTask>;
  /** The participation counts the activity's conditions read: each run of a task they name is counted. */
  countedParticipations: ParticipationCount[];
  /** Event types declared in this activity's file (global names). */
  eventTypes: Record<string, EventType>;
}

export interface CompiledConfig {
  version: string;
  /**
   * The activation that made this version active (its row id: later activations, rollbacks too, are higher; 0 for a
   * config never activated). Shared counters take a changed capacity only from a higher revision, so an isolate
   * still on an older config cannot undo an operator's change.
   */
  revision: number;
  activities: Map<string, CompiledActivity>;
  /** Every declared flash sale, by its global id. */
  sales: Map<string, SaleDefinition>;
  /** The user profile attributes the bundle declares (files with a top-level `profile:`), by name. */
  profile: ProfileSchema;
  /** The bundle's point programs (`pointPrograms`), by id. */
  pointPrograms: Map<string, PointProgram>;
  /** The bundle's membership program (a file with a top-level `membership:`), if it declares one. */
  membership?: MembershipProgram;
  /** The benefits center's materials and benefits, declared beside the membership program. */
  benefits?: BenefitCatalog;
  /** The bundle's code pools (`codePools`), by id. */
  codePools: Map<string, CodePool>;
  /** The bundle's risk scenes (`riskScenes`), by id. */
  riskScenes: Map<string, RiskScene>;
  /** The bundle's user segments (`segments`), by id: `bySegment` reward nodes name them. */
  segments: Map<string, UserSegment>;
  /** Event types, built in and declared, by name. */
  eventTypes: Map<string, EventType>;
  /** The tasks each event type triggers, by type. */
  triggers: Map<string, CompiledTask[]>;
}

/**
 * The entry of a compiled record named by an id from a URL or a config: own members only, so an id such as
 * `constructor` or `toString` names nothing instead of a member of Object.prototype.
 */
export function own<T>(record: Readonly<Record<string, T>>, id: string): T | undefined {
  return Object.hasOwn(record, id) ? record[id] : undefined;
}
