/**
 * A user's reversals, kept in the user's account (durable-objects/user-account.ts): each reversal's claim and answer
 * by its ref, kept for good (a cancel a month later still answers the first result, and a tombstone still stops its
 * late event), and the shared give-backs its commit left to do.
 *
 * Ordering: what another single writer must answer before the entry is known (a prize cancelled or already claimed,
 * a coupon revoked or already delivered) is done by the worker before the commit, each idempotent by grant id, while
 * the reversal is claimed here; a worker that dies then leaves the claim, which a retry takes over and redoes with the
 * same answers. The commit then takes the user's side back in one transaction and records the give-backs of stock and
 * budget with it; those are done after, from here, and the alarm retries them until each shard took its units back
 * (once per grant id), so none is lost and none is given twice.
 */
import { giveBack } from "../counters/counters";
import type { CounterDefinition } from "../counters/counter-definition";
import type { Env } from "../env";
import type { RecordBatch } from "../accounts/account-plan";
import type { PointLedger } from "../points/ledger";
import type { IdentityBook } from "../membership/segments";
import { log } from "../platform/log";
import type { StorageMigration } from "../../durable-objects/support/migrations";
import { type GiveBack, type ReversalAnswer, type ReversalEntry, type ReversalPlan, settledEntry } from "./reversal";
import { NO_REFUNDS, type RefundState } from "./order-refund";

export const reversalTables: StorageMigration = (sql) =>
  sql.exec(`
  CREATE TABLE reversals (ref TEXT PRIMARY KEY, status TEXT NOT NULL CHECK (status IN ('pending', 'done')), body TEXT, claimed_at INTEGER NOT NULL);
  CREATE TABLE reversal_effects (id TEXT PRIMARY KEY, effect TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL);
  CREATE INDEX reversal_effects_due ON reversal_effects (next_at);`);

/**
 * Refunds of an event: its refund state (what its partial refunds took, order-refund.ts), and the lane that lets one
 * reversal of the event be planned at a time, so no refund is planned from a state another is about to change.
 */
export const refundTables: StorageMigration = (sql) =>
  sql.exec(`
  CREATE TABLE reversal_lanes (lane TEXT PRIMARY KEY, ref TEXT NOT NULL, claimed_at INTEGER NOT NULL);
  CREATE TABLE event_refunds (event_ref TEXT PRIMARY KEY, state TEXT NOT NULL);`);

/** A claim's answer; a done reversal's answer as stored (JSON of a ReversalAnswer). */
export type ReversalClaim = { state: "new" } | { state: "done"; body: string } | { state: "in-progress" };

/** A claim older than this belongs to a worker that died before its commit: a retry takes it over. */
const CLAIM_TTL_MS = 60_000;
/** Give-backs tried per pass (the alarm takes the rest). */
const EFFECTS_PER_PASS = 50;

/** The account's counters, as the reversal reads and writes them inside its transaction. */
interface Counters {
  value(ns: string, key: string): number | undefined;
  write(ns: string, key: string, value: number): void;
}

export class ReversalBook {
  constructor(
    private readonly sql: SqlStorage,
    private readonly env: Env,
  ) {}

  /** When the next give-back is due, or null. */
  static nextEffect(sql: SqlStorage): number | null {
    return sql.exec<{ at: number | null }>("SELECT min(next_at) AS at FROM reversal_effects").one().at;
  }

  /** Claims `ref`, and its `lane` when given: another reversal holding the lane makes this one wait its turn. */
  claim(ref: string, now: number, lane?: string): ReversalClaim {
    const row = this.sql
      .exec<{ status: string; body: string | null; claimed_at: number }>("SELECT status, body, claimed_at FROM reversals WHERE ref = ?", ref)
      .toArray()[0];
    if (row?.status === "done") return { state: "done", body: row.body! };
    if (row && row.claimed_at > now - CLAIM_TTL_MS) return { state: "in-progress" };
    if (lane !== undefined) {
      const holder = this.sql
        .exec<{ ref: string; claimed_at: number }>("SELECT ref, claimed_at FROM reversal_lanes WHERE lane = ?", lane)
        .toArray()[0];
      if (holder && holder.ref !== ref && holder.claimed_at > now - CLAIM_TTL_MS) return { state: "in-progress" };
      this.sql.exec(
        "INSERT INTO reversal_lanes (lane, ref, claimed_at) VALUES (?, ?, ?) ON CONFLICT (lane) DO UPDATE SET ref = excluded.ref, claimed_at = excluded.claimed_at",
        lane,
        ref,
        now,
      );
    }
    this.sql.exec(
      "INSERT INTO reversals (ref, status, body, claimed_at) VALUES (?, 'pending', NULL, ?) ON CONFLICT (ref) DO UPDATE SET claimed_at = excluded.claimed_at",
      ref,
      now,
    );
    return { state: "new" };
  }

  release(ref: string) {
    this.sql.exec("DELETE FROM reversals WHERE ref = ? AND status = 'pending'", ref);
    this.sql.exec("DELETE FROM reversal_lanes WHERE ref = ?", ref);
  }

  /** What the refunds of an event took so far. */
  refundState(eventRef: string): RefundState {
    const row = this.sql.exec<{ state: string }>("SELECT state FROM event_refunds WHERE event_ref = ?", eventRef).toArray()[0];
    return row ? (JSON.parse(row.state) as RefundState) : NO_REFUNDS;
  }

  /** The answers of an event's reversals (its whole cancel, its partial refunds), oldest first. */
  eventReversals(eventRef: string): ReversalAnswer[] {
    const refs = [`event:${eventRef}`, `refund:${eventRef}#`];
    return this.sql
      .exec<{ body: string }>(
        "SELECT body FROM reversals WHERE status = 'done' AND (ref = ? OR substr(ref, 1, ?) = ?) ORDER BY claimed_at, ref",
        refs[0],
        refs[1]!.length,
        refs[1],
      )
      .toArray()
      .map((r) => JSON.parse(r.body) as ReversalAnswer);
  }

  state(ref: string): "pending" | "done" | undefined {
    return this.sql.exec<{ status: "pending" | "done" }>("SELECT status FROM reversals WHERE ref = ?", ref).toArray()[0]?.status;
  }

  /** Inside the account's transaction: applies the plan, stores its answer and give-backs; a done one answers as stored. */
  commit(
    plan: ReversalPlan,
    status: ReversalAnswer["status"],
    ledger: PointLedger,
    counters: Counters,
    identities: IdentityBook,
  ): { answer: ReversalAnswer; records?: Pick<RecordBatch, "reversals" | "reversalEntries"> } | { stale: true } {
    const row = this.sql.exec<{ status: string; body: string | null }>("SELECT status, body FROM reversals WHERE ref = ?", plan.ref).toArray()[0];
    if (row?.status === "done") return { answer: JSON.parse(row.body!) as ReversalAnswer };
    // Planned from a refund state another reversal has changed since (its lane claim was taken over): planned again.
    if (plan.refund && this.refundState(plan.refund.eventRef).version !== plan.refund.from) return { stale: true };
    const entries: ReversalEntry[] = [];
    for (const { namespace: ns, step } of plan.steps) {
      const c = step.change;
      let entry = step.entry;
      if (c?.kind === "take") {
        const held = counters.value(ns, c.key) ?? 0;
        const taken = Math.max(0, Math.min(held, c.amount));
        if (taken > 0) counters.write(ns, c.key, held - taken);
        entry = settledEntry(entry, taken, c.spentReason);
        const debt = c.amount - taken;
        if (c.debtKey && debt > 0) {
          counters.write(ns, c.debtKey, (counters.value(ns, c.debtKey) ?? 0) + debt);
          entry = { ...entry, reason: `${c.spentReason}: recorded as debt`, detail: { debt } };
        }
      } else if (c?.kind === "points") {
        const r = ledger.reverse(c.program, {
          earnRef: c.earnRef,
          reason: c.reason,
          now: c.now,
          ...(c.part && { amount: c.part.amount, ref: c.part.ref }),
        });
        if (!r.ok) entry = { ...entry, reason: r.code };
        else {
          const d = r.entry.detail as Record<string, number>;
          // The lot's remainder came back; the rest was spent (taken from other lots, or owed as a negative balance).
          entry = { ...settledEntry(entry, d.reclaimed ?? 0, "SPENT"), detail: { ...d, entryId: r.entry.id } };
        }
      } else if (c?.kind === "identity") {
        const r = identities.revoke(c.program, { userId: plan.userId, externalRef: c.externalRef, reason: c.reason, now: c.now });
        entry = r.ok
          ? { ...settledEntry(entry, 1, ""), detail: { revoked: r.answer.revoked.map((s) => s.id), moved: r.answer.moved.map((s) => s.id) } }
          : { ...entry, reason: r.code };
      } else if (c?.kind === "restore") {
        for (const key of c.keys) {
          const held = counters.value(ns, key) ?? 0;
          if (held > 0) counters.write(ns, key, held - 1);
        }
        const p = c.participant;
        const standing = p && counters.value(ns, p.standing);
        // Here, in the user's one writer, so the unit goes back once: with the user's last standing run, if they hold it.
        if (p && standing !== undefined && standing > 0) {
          counters.write(ns, p.standing, standing - 1);
          if (standing === 1 && (counters.value(ns, p.marker) ?? 0) > 0) {
            counters.write(ns, p.marker, 0);
            this.addEffect(p.giveBack, plan.createdAt);
          }
        }
      }
      for (const g of step.giveBacks) this.addEffect(g, plan.createdAt);
      // A participation count given back is no reward record: it has no entry.
      if (c?.kind !== "restore") entries.push(entry);
    }
    const answer: ReversalAnswer = {
      reversalId: plan.reversalId,
      ref: plan.ref,
      userId: plan.userId,
      status,
      reason: plan.reason,
      eventRef: plan.eventRef,
      requestIds: plan.requestIds,
      entries,
      createdAt: plan.createdAt,
      ...(plan.summary && { refund: plan.summary }),
    };
    if (plan.refund) {
      const next = { ...plan.refund.next, version: plan.refund.from + 1 };
      this.sql.exec(
        "INSERT INTO event_refunds (event_ref, state) VALUES (?, ?) ON CONFLICT (event_ref) DO UPDATE SET state = excluded.state",
        plan.refund.eventRef,
        JSON.stringify(next),
      );
    }
    this.sql.exec("DELETE FROM reversal_lanes WHERE ref = ?", plan.ref);
    this.sql.exec(
      "INSERT INTO reversals (ref, status, body, claimed_at) VALUES (?, 'done', ?, ?) ON CONFLICT (ref) DO UPDATE SET status = 'done', body = excluded.body",
      plan.ref,
      JSON.stringify(answer),
      plan.createdAt,
    );
    return {
      answer,
      records: {
        reversals: [
          {
            id: plan.reversalId,
            ref: plan.ref,
            userId: plan.userId,
            status,
            reason: plan.reason,
            eventRef: plan.eventRef,
            requestIds: JSON.stringify(plan.requestIds),
            createdAt: plan.createdAt,
            keyId: plan.keyId,
          },
        ],
        reversalEntries: entries.map((e) => ({
          reversalId: plan.reversalId,
          grantId: e.grantId,
          requestId: e.requestId,
          type: e.type,
          amount: e.amount,
          status: e.status,
          reclaimed: e.reclaimed,
          shortfall: e.shortfall,
          reason: e.reason ?? null,
          detail: JSON.stringify(e.detail ?? {}),
        })),
      },
    };
  }

  private addEffect(g: GiveBack, now: number) {
    this.sql.exec("INSERT INTO reversal_effects (id, effect, next_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING", g.id, JSON.stringify(g), now);
  }

  /** Gives back what is due; each done one is forgotten, a failed one tried again later (backing off). */
  async runEffects(now: number): Promise<void> {
    const due = this.sql
      .exec<{ id: string; effect: string; attempts: number }>(
        "SELECT id, effect, attempts FROM reversal_effects WHERE next_at <= ? ORDER BY next_at LIMIT ?",
        now,
        EFFECTS_PER_PASS,
      )
      .toArray();
    await Promise.all(
      due.map(async (row) => {
        const g = JSON.parse(row.effect) as GiveBack & { counter: CounterDefinition };
        try {
          const out = await giveBack(this.env, g.counter, { id: g.id, userId: g.userId, units: g.units });
          // A counter re-split since (another shard count) cannot take units by the old split: said, not retried.
          if (out.outcome === "changed") log.error("give-back refused: the counter's shards changed", { id: g.id, counter: g.counter.id });
          this.sql.exec("DELETE FROM reversal_effects WHERE id = ?", row.id);
        } catch (e) {
          const wait = Math.min(600_000, 5_000 * 2 ** row.attempts);
          this.sql.exec("UPDATE reversal_effects SET attempts = attempts + 1, next_at = ? WHERE id = ?", Date.now() + wait, row.id);
          log.warn("give-back failed; retried later", { id: g.id, error: String(e) });
        }
      }),
    );
  }
}
