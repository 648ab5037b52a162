/**
 * Risk alerts: each alert rule of a scene (`alerts:`) raises a signed webhook (an operator alert, sent and retried as
 * every delivery) on its event, at most once per subject and rule per window: the alert's id names the rule, the
 * subject and the window, so every isolate raising it in that window makes the same id, which is sent once.
 */
import { sendOperatorAlert } from "../alerts/operator-alert";
import type { Env } from "../env";
import { log } from "../platform/log";
import { vars } from "../platform/vars";
import type { AlertEvent, RiskScene } from "./scene-definition";

/** Alert ids this isolate already raised: a flood of one subject costs one D1 write per window, not one per request. */
const raised = new Set<string>();
const MAX_REMEMBERED = 50_000;

/** What happened, to whom, and what shows it. */
export interface RiskEvent {
  event: AlertEvent;
  subject: string;
  /** What the alert tells beside the event (a detector's evidence, the engine's answer, the activity and task). */
  detail: Record<string, unknown>;
}

/** Raises every rule of the scene that `e` matches (in the background: an alert never delays the answer). */
export function raiseRiskAlerts(env: Env, waitUntil: (p: Promise<unknown>) => void, scene: RiskScene, e: RiskEvent, now: number) {
  for (const rule of scene.alerts) {
    if (rule.on !== e.event) continue;
    const url = rule.url ?? vars(env).OPERATOR_ALERT_URL;
    const window = Math.floor(now / (rule.windowSeconds * 1000));
    const id = `risk.${scene.id}.${rule.id}.${e.subject}.${window}`;
    if (raised.has(id)) continue;
    if (raised.size >= MAX_REMEMBERED) raised.clear();
    raised.add(id);
    if (!url) {
      log.warn("risk alert without a URL (set the rule's url or OPERATOR_ALERT_URL)", { id, event: e.event });
      continue;
    }
    const payload = {
      kind: "risk",
      event: e.event,
      scene: scene.id,
      rule: rule.id,
      subject: e.subject,
      windowStart: new Date(window * rule.windowSeconds * 1000).toISOString(),
      at: new Date(now).toISOString(),
      ...e.detail,
    };
    waitUntil(
      sendOperatorAlert(env, { id, kind: `risk.${e.event}`, url, namespace: `risk-scene:${scene.id}`, payload }).catch((err: unknown) => {
        // Not planned: the next event of the window may raise it again.
        raised.delete(id);
        log.error("risk alert not planned", { id, error: String(err) });
      }),
    );
  }
}
