/**
 * Sending the identity notices a user's account committed (segments.ts): each event is accepted by the event intake
 * like a business system's (queued, run once by its id), each cancel goes through the event cancel that takes back
 * what the event's runs granted (src/reversals), each benefit entitlement is issued or reclaimed
 * (src/benefits/issuance.ts). Each is idempotent (by the event's id, the entitlement's status, the run's reversal), so a
 * notice sent twice (after a commit and by the alarm at once) changes nothing more; a notice is forgotten only once its send was answered, and
 * a cancel that comes before its event leaves a tombstone, so the late event grants nothing.
 */
import { findActiveConfig } from "../config/store";
import type { Env } from "../env";
import { AppError } from "../errors";
import { acceptEvents } from "../events/intake";
import { log } from "../platform/log";
import { cancelEvent } from "../reversals/reverse";
import { issueEntitlement, reclaimEntitlement } from "../benefits/issuance";
import type { Notice } from "./segments";

/** Notices tried per pass (the alarm takes the rest). */
const NOTICES_PER_PASS = 50;

/** Sends the notices that are due; a failed one is tried again later, backing off. */
export async function sendNotices(sql: SqlStorage, env: Env, ctx: { waitUntil(p: Promise<unknown>): void }): Promise<void> {
  const now = Date.now();
  const due = sql
    .exec<{ id: string; notice: string; attempts: number }>(
      "SELECT id, notice, attempts FROM identity_notices WHERE next_at <= ? ORDER BY next_at LIMIT ?",
      now,
      NOTICES_PER_PASS,
    )
    .toArray();
  if (due.length === 0) return;
  const config = await findActiveConfig(env);
  await Promise.all(
    due.map(async (row) => {
      const n = JSON.parse(row.notice) as Notice;
      try {
        if (!config) throw new AppError("UNAVAILABLE", "no config is active");
        if (n.kind === "emit") {
          const [r] = await acceptEvents(env, ctx, config, [n.event], {
            mode: "async",
            now: Date.now(),
            requestId: crypto.randomUUID(),
            pointer: () => [],
            // Fanfare's own event: no service key sent it.
            keyId: null,
          });
          if (r?.status === "refused") {
            if (r.httpStatus >= 500) throw new AppError("UNAVAILABLE", r.error.message);
            // Refused for good (too late, a type a later config dropped): said, not retried.
            log.error("identity event refused", { eventId: n.event.eventId, type: n.event.type, error: r.error });
          }
        } else if (n.kind === "issue") {
          await issueEntitlement(env, ctx, config, n);
        } else if (n.kind === "reclaim") {
          await reclaimEntitlement(env, config, n);
        } else {
          await cancelEvent(env, ctx, config, {
            source: n.source,
            eventId: n.eventId,
            reason: n.reason,
            userId: n.userId,
            now: Date.now(),
            keyId: null,
          });
        }
        sql.exec("DELETE FROM identity_notices WHERE id = ?", row.id);
      } catch (e) {
        if (e instanceof AppError && e.status < 500) {
          log.error("identity notice refused; dropped", { id: row.id, code: e.code, error: e.message });
          sql.exec("DELETE FROM identity_notices WHERE id = ?", row.id);
          return;
        }
        const wait = Math.min(600_000, 1_000 * 2 ** row.attempts);
        sql.exec("UPDATE identity_notices SET attempts = attempts + 1, next_at = ? WHERE id = ?", Date.now() + wait, row.id);
        log.warn("identity notice not sent; retried later", { id: row.id, error: String(e) });
      }
    }),
  );
}
