/** How an activity's shared counters are named and defined, for a run and for an operator's look alike. */
import type { CompiledActivity } from "../config/compiled";
import { periodKey } from "../config/time";
import type { CounterScope } from "../engine/define";
import type { Env } from "../env";
import { vars } from "../platform/vars";
import type { CounterDefinition } from "./counter-definition";

/** A shared counter of the activity's namespace: `key` names it there (tasks that name the same key share it). */
export function sharedCounter(
  env: Env,
  activity: CompiledActivity,
  revision: number,
  key: string,
  capacity: number,
  shards: number,
): CounterDefinition {
  return { id: `${activity.namespace}/${key}`, capacity, shards, holdMs: vars(env).RESERVATION_HOLD_MS, revision };
}

/** The scope a task's components name their counters in at `now` (its periods in the activity's timezone). */
export function counterScope(env: Env, activity: CompiledActivity, revision: number, taskId: string, now: number): CounterScope {
  return {
    taskId,
    period: (p) => periodKey(p, now, activity.timezone),
    sharedCounter: (key, capacity, shards) => sharedCounter(env, activity, revision, key, capacity, shards),
  };
}
