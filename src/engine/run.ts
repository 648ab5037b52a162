/** One execution of a task: what the components read (user, params, time) and what they plan to write. */
import type { CompiledActivity, CompiledConfig, CompiledTask } from "../config/compiled";
import type { RunEvent } from "./pipeline";
import { periodKey, type Period } from "../config/time";
import type { Env } from "../env";
import type { AccountPlan, MarkerRequirement, PlannedChange, LockClaim, RecordBatch, UsedActivityCode } from "../accounts/account-plan";
import type { CounterDefinition } from "../counters/counter-definition";
import { sharedCounter } from "../counters/scope";
import type { Rejection } from "./define";
import { AppError } from "../errors";
import type { RewardOutcome } from "./define";
import { uniformRandom } from "../random";
import type { PointChange } from "../points/changes";
import type { RiskDecision } from "../risk/engine";
import type { SegmentDecision } from "../segments/decision";

export interface User {
  id: string;
  /** User groups from the token's `groups` claim (red packets and other rewards may be restricted to them). */
  groups: string[];
  /** The token's other claims (registered JWT claims aside): declared profile attributes are read from them. */
  claims?: Record<string, unknown>;
}

/**
 * A unit (or amount) of a shared counter the run needs: reserved on the counter's shard before the user's commit,
 * used by that commit, then confirmed (src/engine/pipeline.ts).
 */
export interface SharedReservation {
  counter: CounterDefinition;
  units: number;
  /** The answer when the counter has too few units left. */
  rejection: Rejection;
  /** Used only if this marker of the user is still 0 (a participants cap counts each user once); see ReservationUse. */
  once?: string;
  /** Already reserved while the reward tree was given (src/engine/reward-tree/grant.ts): the commit only uses it. */
  held?: { id: string; shard: number };
}

/**
 * Everything a run will write, committed by the user's account in one transaction after the last step (after the
 * shared units it needs were reserved): either all of it lands or none of it does.
 */
class CommitPlan {
  /** Keys the run takes exclusively (the `lock` validator); refused if another run committed on one first. */
  readonly locks: LockClaim[] = [];
  /** Bounded changes to the user's counters, in pipeline order; the first that would cross its bound refuses the run. */
  readonly counters: PlannedChange[] = [];
  /** Units of shared counters the run takes, in pipeline order: the first that cannot be reserved refuses the run. */
  readonly shared: SharedReservation[] = [];
  /** Markers the user must hold (checked in the commit). */
  readonly requirements: MarkerRequirement[] = [];
  /** Point earns and redeems, applied in the commit in this order (src/points/changes.ts). */
  readonly points: PointChange[] = [];
  /** Identity segments granted (the `membership` reward), decided on the user's timeline in the commit. */
  readonly identities: NonNullable<AccountPlan["identities"]> = [];
  /** Activity codes the run uses up (src/activity-codes): refused with CODE_USED if the user's account saw one before. */
  readonly activityCodes: UsedActivityCode[] = [];
  /** Records forwarded to D1 once committed. */
  readonly records: RecordBatch = { participations: [], rewards: [], deliveries: [] };
  /**
   * Reservations of units another single writer holds for this run (a code taken from a code pool), by id: the
   * commit records them as used, and that writer asks the user's account about any it was not told of.
   */
  readonly heldElsewhere: string[] = [];
  /** Undo of what was taken from another single writer before the commit (a prize drawn), run if the run fails. */
  readonly compensations: (() => Promise<unknown>)[] = [];
  /** Done once the run has committed (logging its outcome), in plan order. */
  readonly afterCommit: (() => void)[] = [];
}

export interface TaskRunInit {
  requestId: string;
  now: number;
  env: Env;
  ctx: { waitUntil(promise: Promise<unknown>): void };
  activity: CompiledActivity;
  task: CompiledTask;
  user: User | null;
  params: Record<string, unknown>;
  configVersion: string;
  configRevision: number;
  /** The compiled config the run was made with (profile declarations, event types). */
  config: CompiledConfig;
  /** The business event a triggered run answers (src/events). */
  event?: RunEvent;
  /** What the client's request carried besides its params (a triggered run has none). */
  client?: RunClient;
}

/** What a client's request says about the client: its activity code (`X-Activity-Code`) and device (`X-Device-Id`). */
export interface RunClient {
  activityCode?: string;
  deviceId?: string;
  /** The client's address (CF-Connecting-IP), for risk control. */
  ip?: string;
}

export class TaskRun {
  readonly plan = new CommitPlan();
  readonly rewards: RewardOutcome[] = [];
  readonly participationId: string;
  /** When the run started on the real clock (locks compare it with other runs' commits). */
  readonly startedAt = Date.now();
  /** The reward-tree node being given now (e.g. `all/1/oneOf/0`): each reward record carries its node's path. */
  node: string | null = null;
  /** The risk engine's decision on this run (the `risk` validator), kept in its request record. */
  riskDecision?: RiskDecision;
  /** The segment decision the reward being given now comes from (a `bySegment` node): its outcome and record carry it. */
  decision: SegmentDecision | null = null;

  constructor(readonly init: TaskRunInit) {
    this.participationId = `p_${init.requestId}`;
  }

  get activity() {
    return this.init.activity;
  }
  get task() {
    return this.init.task;
  }
  get taskId() {
    return this.init.task.id;
  }
  get now() {
    return this.init.now;
  }
  get user() {
    return this.init.user;
  }

  /** The signed-in user; compile-time checks put `login` before any component that calls this. */
  requireUser(): User {
    if (!this.init.user) throw new AppError("UNAUTHENTICATED", "sign in to take part");
    return this.init.user;
  }

  /** The period containing now, in the activity's timezone. */
  period(p: Period): string {
    return periodKey(p, this.now, this.activity.timezone);
  }

  /** A counter shared by every user of the activity's namespace (see src/counters/scope.ts). */
  sharedCounter(key: string, capacity: number, shards: number): CounterDefinition {
    return sharedCounter(this.init.env, this.activity, this.init.configRevision, key, capacity, shards);
  }

  /** Plans the reward record of a grant and returns its id (derived from the request id: one grant per slot). */
  recordGrant(grant: { id?: string; type: string; amount: number; detail: Record<string, unknown>; status: "granted" | "pending" }) {
    const id = grant.id ?? this.grantId();
    this.plan.records.rewards.push({
      id,
      requestId: this.init.requestId,
      participationId: this.participationId,
      namespace: this.activity.namespace,
      activityId: this.activity.id,
      taskId: this.task.id,
      userId: this.requireUser().id,
      type: grant.type,
      amount: grant.amount,
      detail: JSON.stringify(this.decision ? { ...grant.detail, decision: this.decision } : grant.detail),
      status: grant.status,
      nodePath: this.node,
      createdAt: this.now,
    });
    return id;
  }

  /** The reward slot being granted now: `<request id>_<index>`, one per reward of the request. */
  slotId(): string {
    return `${this.init.requestId}_${this.rewards.length}`;
  }

  /** The id of the reward being granted now. */
  grantId(): string {
    return `g_${this.slotId()}`;
  }

  /** A uniform random number in [0, 1) (see src/random.ts). */
  random(): number {
    return uniformRandom();
  }
}
