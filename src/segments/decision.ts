/**
 * A `bySegment` node's decision in a run: which of its segments the user is in (tried by priority, highest first,
 * stopping at the first match, so a crowd service is asked only when no segment above it matched), and how the
 * right is chosen among those still available.
 */
import type { CompiledConfig } from "../config/compiled";
import type { User } from "../engine/run";
import type { TaskRun } from "../engine/run";
import type { Env } from "../env";
import { evaluate } from "../engine/conditions/tree";
import type { RewardNode, SegmentBranch, SegmentRight } from "../engine/reward-tree/tree";
import { pickWeighted } from "../random";
import { sha256Hex } from "../sharding";
import { profileAttributes } from "../users/profile";
import type { AttributeValue } from "../users/profile-definition";
import { crowdMember, rankedRights } from "./crowd-service";
import type { UserSegment } from "./segment-definition";
import { staticMember } from "./static-lists";

/** What a reward given through a `bySegment` node carries in its outcome and record. */
export interface SegmentDecision {
  /** The segment that matched (null: the default branch). */
  segment: string | null;
  /** The right given (or tried). */
  right: string;
  /** How it was chosen; `fallback`: by weight because the ranking service failed. */
  by: "weighted" | "sticky" | "external" | "fallback";
}

/** One segment checked for the user, as an explanation shows it. */
export interface SegmentCheck {
  segment: string;
  kind: UserSegment["kind"];
  priority: number;
  member: boolean;
  /** rule: the tree; list: the static list (`version`); service / cache / fallback: the crowd service. */
  source: "rule" | "list" | "service" | "cache" | "fallback";
  version?: string | null;
}

/** Whether the user is in `segment`; `attributes` reads the user's profile (once, however many rule segments ask). */
export async function segmentMember(
  env: Env,
  segment: UserSegment,
  user: User,
  attributes: () => Promise<Record<string, AttributeValue>>,
  now: number,
): Promise<SegmentCheck> {
  const base = { segment: segment.id, kind: segment.kind, priority: segment.priority };
  if (segment.kind === "rule") {
    const facts = { now, timezone: "UTC", user: { id: user.id, groups: user.groups, attributes: await attributes() } };
    return { ...base, member: evaluate(segment.rule, facts).pass, source: "rule" };
  }
  if (segment.kind === "static") {
    const { member, version } = await staticMember(env, segment.id, user.id);
    return { ...base, member, source: "list", version };
  }
  const { member, source } = await crowdMember(env, segment, user.id);
  return { ...base, member, source };
}

/** A profile read shared by every rule segment a request checks. */
export function attributeReader(env: Env, config: CompiledConfig, user: User) {
  let read: Promise<Record<string, AttributeValue>> | undefined;
  return () => (read ??= profileAttributes(env, config, user));
}

const readers = new WeakMap<TaskRun, () => Promise<Record<string, AttributeValue>>>();

/** The node's branch for the run's user (undefined: no segment matched and there is no default), and every check made. */
export async function matchBranch(run: TaskRun, node: Extract<RewardNode, { kind: "bySegment" }>) {
  const user = run.requireUser();
  let attributes = readers.get(run);
  if (!attributes) readers.set(run, (attributes = attributeReader(run.init.env, run.init.config, user)));
  const checks: SegmentCheck[] = [];
  for (const branch of node.branches) {
    if (!branch.segment) return { branch, checks };
    const check = await segmentMember(run.init.env, branch.segment, user, attributes, run.now);
    checks.push(check);
    if (check.member) return { branch, checks };
  }
  return { branch: undefined, checks };
}

/** The user's fixed point in [0, 1) for an activity: a stable hash, so `sticky` gives the same right on every run. */
export async function stickyPoint(userId: string, activityId: string): Promise<number> {
  const hex = await sha256Hex(`${activityId}\n${userId}`);
  return Number.parseInt(hex.slice(0, 12), 16) / 2 ** 48;
}

/** How a branch's rights are chosen in a run: `next` picks one of those still in play (a right that was unavailable is left out by the caller). */
export interface RightPicker {
  by: SegmentDecision["by"];
  next(left: SegmentRight[]): SegmentRight;
}

const weightOf = (r: SegmentRight) => r.node.weight;

/** The branch's picker: by weight renormalised over what is left, by the user's sticky point, or in the ranking service's order. */
export async function rightPicker(run: TaskRun, branch: SegmentBranch, rank = true): Promise<RightPicker> {
  const user = run.requireUser();
  const weighted: RightPicker = { by: "weighted", next: (left) => pickWeighted(left, weightOf, () => run.random()) };
  if (branch.choose.by === "weighted") return weighted;
  if (branch.choose.by === "sticky") {
    const point = await stickyPoint(user.id, run.activity.id);
    return { by: "sticky", next: (left) => pickWeighted(left, weightOf, () => point) };
  }
  if (!rank) return { ...weighted, by: "external" };
  const ranking = await rankedRights(run.init.env, branch.choose, {
    activityId: run.activity.id,
    taskId: run.task.id,
    userId: user.id,
    segment: branch.segment?.id ?? null,
    rights: branch.rights.map((r) => ({ id: r.id, weight: r.node.weight })),
  });
  if (!ranking) return { ...weighted, by: "fallback" };
  return {
    by: "external",
    // Ranked rights first, in order; one the service left out only after them, by weight.
    next: (left) => ranking.map((id) => left.find((r) => r.id === id)).find((r) => r !== undefined) ?? weighted.next(left),
  };
}

/**
 * Each available right's probability of being chosen now: its weight over the available rights' (renormalised), or 1
 * for the one the user's sticky point picks. An external strategy is shown by weight, the order it falls back to.
 */
export async function rightShares(run: TaskRun, branch: SegmentBranch, available: SegmentRight[]): Promise<Map<SegmentRight, number>> {
  const shares = new Map<SegmentRight, number>();
  if (available.length === 0) return shares;
  if (branch.choose.by === "sticky") {
    const point = await stickyPoint(run.requireUser().id, run.activity.id);
    shares.set(
      pickWeighted(available, weightOf, () => point),
      1,
    );
    return shares;
  }
  const total = available.reduce((n, r) => n + r.node.weight, 0);
  for (const r of available) shares.set(r, r.node.weight / total);
  return shares;
}
