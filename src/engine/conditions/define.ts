/**
 * What a condition is: a pure check of prefetched facts (json-rules-engine's leaf), with a code, zod-typed args and
 * the kinds of fact it reads. Each lives in its own file and is listed once in `registry.ts`; trees of them are
 * compiled in `tree.ts`.
 */
import type { z } from "zod";
import type { Period } from "../../config/time";
import type { IdentityType } from "../../membership/program";

/** The kinds of fact a condition may read. The caller fetches each kind a tree needs once, before evaluating it. */
export const FACT_KINDS = ["clock", "event", "attributes", "groups", "participations", "points", "orders", "identities"] as const;
export type FactKind = (typeof FACT_KINDS)[number];

/** A user's participation count in the current period: of one task, or of every task of the activity (`*`). */
export interface ParticipationCount {
  task: string;
  period: Period;
}

/** The name of a participation count in `ConditionFacts.participations`: `<task|*>:<period>`. */
export const participationKey = (c: ParticipationCount) => `${c.task}:${c.period}`;

/** Everything a tree may read, fetched once before it is evaluated (see facts.ts). */
export interface ConditionFacts {
  /** The instant the conditions are judged at (epoch ms). */
  now: number;
  /** The activity's IANA timezone: times of day and weekdays are read in it. */
  timezone: string;
  event?: { type: string; source: string; payload: unknown; occurredAt: number };
  user?: { id: string; groups: string[]; attributes: Record<string, unknown> };
  /** Participations before this one in the current period, by `participationKey` (a missing key: none). */
  participations?: Record<string, number>;
  /** Spendable points by program. */
  points?: Record<string, number>;
  orders?: { completedBefore: number };
  /** The user's identities effective at `now` (src/membership), highest rank first. */
  identities?: { identityType: string; rank: number }[];
}

/** A leaf's verdict: whether it holds, what the facts said, and what it wanted. */
export interface ConditionResult {
  pass: boolean;
  /** The value read (undefined: absent). */
  actual: unknown;
  expected: unknown;
}

/** What a condition knows when its args are compiled (once, at config load). */
export interface ConditionContext {
  timezone: string;
  /** The ids of the activity's tasks (a condition may name one). */
  taskIds: readonly string[];
  /** The bundle's point programs (a condition may name one). */
  pointPrograms: readonly string[];
  /** The membership program's identity types (a condition may name one), by id. */
  identityTypes: Readonly<Record<string, IdentityType>>;
}

export interface ConditionDefinition<Args extends z.ZodType = z.ZodType, Prepared = z.output<Args>> {
  code: string;
  /** One paragraph for the config reference. */
  description: string;
  args: Args;
  /** A YAML-ready example of the args, shown in the reference. */
  example: unknown;
  /** The kinds of fact `evaluate` reads. */
  needs: readonly FactKind[];
  /** Checks what zod cannot and precomputes (a regex, a parsed time); runs once at load; throws ArgsError. */
  prepare?: (args: z.output<Args>, ctx: ConditionContext) => Prepared;
  /** The participation count it reads, so runs of that task are counted (see facts.ts). */
  counts?: (args: Prepared) => ParticipationCount;
  /** Pure: no I/O, no clock but `facts.now`. */
  evaluate(facts: ConditionFacts, args: Prepared): ConditionResult;
}

export function defineCondition<Args extends z.ZodType, Prepared = z.output<Args>>(
  d: ConditionDefinition<Args, Prepared>,
): ConditionDefinition<Args, Prepared> {
  return d;
}
