/**
 * A user's partner tickets, kept in the user's account (durable-objects/user-account.ts), the one writer of the
 * ticket's state, of the callbacks applied to it and of the user's points, so a callback's transition and its points
 * commit together, exactly once:
 *
 *   redirected ──completed──▶ completed ──cancelled──▶ cancelled
 *        └──(past its expiry)──▶ expired
 *
 * Each callback's webhook-id is kept here with its outcome: two deliveries of one id, however concurrent, meet in
 * this one object and the second answers the first's outcome, changing nothing.
 */
import type { StorageMigration } from "../../durable-objects/support/migrations";
import type { ErrorCode } from "../errors";
import type { PointEntry, PointLedger } from "../points/ledger";
import type { PointProgram } from "../points/program";

export const partnerTicketTables: StorageMigration = (sql) =>
  sql.exec(`
  CREATE TABLE partner_tickets (
    id TEXT PRIMARY KEY, partner_id TEXT NOT NULL, benefit_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('redirected', 'completed', 'cancelled', 'expired')),
    expires_at INTEGER NOT NULL, points_delta INTEGER, program TEXT, earn_ref TEXT,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
  CREATE TABLE partner_callback_ids (
    partner_id TEXT NOT NULL, webhook_id TEXT NOT NULL, outcome TEXT NOT NULL, at INTEGER NOT NULL,
    PRIMARY KEY (partner_id, webhook_id));`);

export type TicketState = "redirected" | "completed" | "cancelled" | "expired";

/**
 * How long a callback id is kept here. Past it, a replay is still answered from D1 (`partner_callbacks`), and one that
 * reached this object again could not apply twice: the ticket's state allows each transition once and the ledger
 * takes each earn's reference once.
 */
const CALLBACK_ID_TTL_MS = 30 * 86_400_000;

/** A callback as the worker checked it (signature, range) and hands it to the user's account. */
export interface TicketCallback {
  partnerId: string;
  webhookId: string;
  type: "completed" | "cancelled";
  ticketId: string;
  /** Points to credit on completion (0: none). */
  pointsDelta: number;
  /** The program completions credit (the partner's), and every program by id, for reversing an earlier credit. */
  program: PointProgram | null;
  programs: Record<string, PointProgram>;
  reason: string;
  now: number;
}

/** What a callback did: the ticket's state after it (and the points entry it wrote), or why it was refused. */
export type CallbackOutcome =
  | { ok: true; state: TicketState; entry?: PointEntry; replayed: boolean }
  | { ok: false; code: ErrorCode; message: string; replayed: boolean };

type TicketRow = {
  id: string;
  state: TicketState;
  expires_at: number;
  points_delta: number | null;
  program: string | null;
  earn_ref: string | null;
};

export class TicketBook {
  constructor(
    private readonly sql: SqlStorage,
    private readonly ledger: PointLedger,
  ) {}

  /** A new ticket in state `redirected`. */
  open(t: { ticketId: string; partnerId: string; benefitId: string; expiresAt: number; now: number }) {
    this.sql.exec(
      "INSERT INTO partner_tickets (id, partner_id, benefit_id, state, expires_at, created_at, updated_at) VALUES (?, ?, ?, 'redirected', ?, ?, ?)",
      t.ticketId,
      t.partnerId,
      t.benefitId,
      t.expiresAt,
      t.now,
      t.now,
    );
  }

  /** Applies a callback once (by its webhook-id); the caller runs this inside one transaction with the ledger's outbox. */
  apply(c: TicketCallback): CallbackOutcome {
    const seen = this.sql
      .exec<{ outcome: string }>("SELECT outcome FROM partner_callback_ids WHERE partner_id = ? AND webhook_id = ?", c.partnerId, c.webhookId)
      .toArray()[0];
    if (seen) return { ...(JSON.parse(seen.outcome) as CallbackOutcome), replayed: true };
    const outcome = this.transition(c);
    this.sql.exec(
      "INSERT INTO partner_callback_ids (partner_id, webhook_id, outcome, at) VALUES (?, ?, ?, ?)",
      c.partnerId,
      c.webhookId,
      JSON.stringify(outcome),
      c.now,
    );
    return outcome;
  }

  private transition(c: TicketCallback): CallbackOutcome {
    const refuse = (code: ErrorCode, message: string): CallbackOutcome => ({ ok: false, code, message, replayed: false });
    const t = this.sql
      .exec<TicketRow>(
        "SELECT id, state, expires_at, points_delta, program, earn_ref FROM partner_tickets WHERE id = ? AND partner_id = ?",
        c.ticketId,
        c.partnerId,
      )
      .toArray()[0];
    if (!t) return refuse("UNKNOWN_TICKET", `no ticket '${c.ticketId}' issued to partner '${c.partnerId}'`);
    if (t.state === "redirected" && c.now > t.expires_at) {
      this.setState(t.id, "expired", c.now);
      t.state = "expired";
    }
    if (c.type === "completed") {
      if (t.state === "expired") return refuse("TICKET_EXPIRED", `ticket '${t.id}' expired at ${new Date(t.expires_at).toISOString()}`);
      if (t.state !== "redirected") return refuse("TICKET_STATE", `ticket '${t.id}' is ${t.state}: only a redirected ticket can be completed`);
      let entry: PointEntry | undefined;
      let earnRef: string | null = null;
      if (c.pointsDelta > 0 && c.program) {
        // The ticket is the earn's reference: one credit per ticket, whatever arrives.
        earnRef = `partner:${c.partnerId}:${t.id}`;
        const r = this.ledger.earn(c.program, {
          amount: c.pointsDelta,
          sourceRef: earnRef,
          source: `partner:${c.partnerId}`,
          reason: c.reason,
          now: c.now,
        });
        if (!r.ok) throw new Error(`an earn cannot be refused: ${r.message}`);
        entry = r.entry;
      }
      this.sql.exec(
        "UPDATE partner_tickets SET state = 'completed', points_delta = ?, program = ?, earn_ref = ?, updated_at = ? WHERE id = ?",
        c.pointsDelta,
        earnRef === null ? null : c.program!.id,
        earnRef,
        c.now,
        t.id,
      );
      return { ok: true, state: "completed", ...(entry && { entry }), replayed: false };
    }
    if (t.state !== "completed") return refuse("TICKET_STATE", `ticket '${t.id}' is ${t.state}: only a completed ticket can be cancelled`);
    let entry: PointEntry | undefined;
    if (t.earn_ref !== null) {
      const program = c.programs[t.program!];
      if (!program) throw new Error(`point program '${t.program}' of ticket '${t.id}' is no longer declared`);
      // The completion's credit is taken back as any earn is: from what remains of it, then the user's other points,
      // the rest as a debt (src/points/ledger.ts reverse).
      const r = this.ledger.reverse(program, { earnRef: t.earn_ref, reason: c.reason, now: c.now });
      if (!r.ok) throw new Error(`the completion's credit cannot be reversed: ${r.message}`);
      entry = r.entry;
    }
    this.setState(t.id, "cancelled", c.now);
    return { ok: true, state: "cancelled", ...(entry && { entry }), replayed: false };
  }

  private setState(id: string, state: TicketState, now: number) {
    this.sql.exec("UPDATE partner_tickets SET state = ?, updated_at = ? WHERE id = ?", state, now, id);
  }

  /** When the alarm has work here: a redirected ticket's expiry, or a callback id to forget; null for none. */
  static nextChore(sql: SqlStorage): number | null {
    const r = sql
      .exec<{ expiry: number | null; forget: number | null }>(
        "SELECT (SELECT min(expires_at) FROM partner_tickets WHERE state = 'redirected') AS expiry, (SELECT min(at) FROM partner_callback_ids) AS forget",
      )
      .one();
    const times = [r.expiry === null ? null : r.expiry + 1, r.forget === null ? null : r.forget + CALLBACK_ID_TTL_MS].filter((t) => t !== null);
    return times.length === 0 ? null : Math.min(...times);
  }

  /** Expires the redirected tickets whose time is up, and forgets old callback ids (the alarm's part). */
  static runChores(sql: SqlStorage, now: number) {
    sql.exec("UPDATE partner_tickets SET state = 'expired', updated_at = ? WHERE state = 'redirected' AND expires_at < ?", now, now);
    sql.exec("DELETE FROM partner_callback_ids WHERE at < ?", now - CALLBACK_ID_TTL_MS);
  }

  /** A ticket's state (and the points its completion credited), or undefined. */
  state(ticketId: string): { state: TicketState; pointsDelta: number | null } | undefined {
    const t = this.sql
      .exec<{ state: TicketState; points_delta: number | null }>("SELECT state, points_delta FROM partner_tickets WHERE id = ?", ticketId)
      .toArray()[0];
    return t && { state: t.state, pointsDelta: t.points_delta };
  }
}
