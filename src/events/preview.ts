/**
 * A business event previewed (`POST /v1/events?dry=true`): every task it would trigger, previewed read-only in the
 * order processEvent runs them, exclusive groups included. No event row, no claim, no run: the same event can be sent
 * for real afterwards.
 */
import type { CompiledConfig } from "../config/compiled";
import type { Env } from "../env";
import { previewTask, type TaskPreview } from "../engine/preview";
import { byTurn, NOT_MATCHED, triggeredRequest, type BusinessEvent } from "./process";

/** What one triggered task would do with the event. */
export interface TriggerPreview {
  activityId: string;
  taskId: string;
  status: "would-run" | "would-refuse" | "skipped";
  preview?: TaskPreview;
  message?: string;
}

export async function previewEvent(
  env: Env,
  ctx: { waitUntil(p: Promise<unknown>): void },
  config: CompiledConfig,
  event: BusinessEvent,
  requestId: string,
): Promise<TriggerPreview[]> {
  const triggered = [...(config.triggers.get(event.type) ?? [])].sort(byTurn);
  const runs: TriggerPreview[] = [];
  const groupDone = new Set<string>();
  for (const task of triggered) {
    const base = { activityId: task.activityId, taskId: task.id };
    const group = task.exclusiveGroup?.name;
    if (group !== undefined && groupDone.has(group)) {
      runs.push({ ...base, status: "skipped", message: `a task of exclusive group '${group}' would run first` });
      continue;
    }
    const preview = await previewTask(triggeredRequest(env, ctx, config, task, event, requestId));
    runs.push({ ...base, status: preview.wouldRun ? "would-run" : "would-refuse", preview });
    if (group !== undefined && !(preview.refusal && NOT_MATCHED.has(preview.refusal.code))) groupDone.add(group);
  }
  return runs;
}
