/** One execution of a task: what the components read (user, params, time) and what they plan to write. */
import type { CompiledActivity, CompiledTask } from "../config/compiled";
import { periodKey, type Period } from "../config/time";
import type { Env } from "../env";
import type { CounterRef, PlannedChange, LockClaim, RecordBatch } from "../accounts/ledger-plan";
import { AppError } from "../errors";
import type { RewardOutcome } from "./define";
import { uniformRandom } from "../random";

export interface User {
  id: string;
  /** User groups from the token's `groups` claim (red packets and other rewards may be restricted to them). */
  groups: string[];
}

/**
 * Everything a run will write, committed by the activity's ledger in one transaction after the last step: either
 * all of it lands or none of it does.
 */
class CommitPlan {
  /** Keys the run takes exclusively (the `lock` validator); refused if another run committed on one first. */
  readonly locks: LockClaim[] = [];
  /** Bounded counter changes, in pipeline order; the first that would cross its bound refuses the run. */
  readonly counters: PlannedChange[] = [];
  /** Records forwarded to D1 once committed. */
  readonly records: RecordBatch = { participations: [], rewards: [], deliveries: [] };
  /** Undo of what was taken from another single writer before the commit (a prize drawn), run if the run fails. */
  readonly compensations: (() => Promise<unknown>)[] = [];
  /** Done once the run has committed (logging its outcome), in plan order. */
  readonly afterCommit: (() => void)[] = [];
}

export interface TaskRunInit {
  requestId: string;
  now: number;
  env: Env;
  activity: CompiledActivity;
  task: CompiledTask;
  user: User | null;
  params: Record<string, unknown>;
  configVersion: string;
}

export class TaskRun {
  readonly plan = new CommitPlan();
  readonly rewards: RewardOutcome[] = [];
  readonly participationId: string;
  /** When the run started on the real clock (locks compare it with other runs' commits). */
  readonly startedAt = Date.now();

  constructor(readonly init: TaskRunInit) {
    this.participationId = `p_${init.requestId}`;
  }

  get activity() {
    return this.init.activity;
  }
  get task() {
    return this.init.task;
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

  userCounter(key: string): CounterRef {
    return { owner: this.requireUser().id, key };
  }

  activityCounter(key: string): CounterRef {
    return { owner: "", key };
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
      detail: JSON.stringify(grant.detail),
      status: grant.status,
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
