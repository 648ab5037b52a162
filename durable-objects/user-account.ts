/**
 * One user's account: the single writer of that user's state in every activity namespace (chance balances,
 * participation counts, locks, Idempotency-Keys, red-packet balances) and of the user's records on their way to D1.
 * A run commits here in one synchronous transaction, so nothing is half-written and no per-user bound is crossed;
 * shared scarce counters (stock, budget, an activity-wide cap) are reserved on their shards first (src/counters) and
 * this transaction decides, once, whether each reservation was used (see resolveReservation). There is one object per
 * user, so an activity's load spreads over as many objects as it has users. Later per-user features (points,
 * memberships, benefits) add their tables here: one user's change across them commits atomically.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../src/env";
import { countServed, migrateStorage, type StorageMigration } from "./support/migrations";
import { Outbox, outboxTable } from "./support/outbox";
import { recordCollector } from "./support/stubs";
import { settleChances, settleRewards } from "../src/accounts/chances";
import type {
  ChanceChange,
  CounterChange,
  IdempotencyAnswer,
  IdempotencyClaim,
  AccountPlan,
  CommitResult,
  RecordBatch,
  RequestRecordRow,
} from "../src/accounts/account-plan";
import { IDEMPOTENCY_TTL_MS } from "../src/accounts/account-plan";
import { log } from "../src/platform/log";
import type { AttributeValue } from "../src/users/profile-definition";

/** A user's stored profile attributes by name, each with when its source last set it (epoch ms). */
export type StoredProfile = Record<string, { value: AttributeValue; updatedAt: number }>;
import { PointLedger, pointLedgerTables } from "../src/points/ledger";
import { applyPointChange, settlePointRewards } from "../src/points/changes";
import { redeemAnswer } from "../src/points/answers";
import type { LedgerResult, PointBalances, PointEntry } from "../src/points/ledger";
import type { PointProgram } from "../src/points/program";
import { refundTables, ReversalBook, reversalTables, type ReversalClaim } from "../src/reversals/account-reversals";
import type { RefundState } from "../src/reversals/order-refund";
import type { ReversalAnswer, ReversalPlan } from "../src/reversals/reversal";
import { countOrderOnce } from "../src/events/order-history";
import { IdentityBook, identityTables, type GrantResult, type IdentityGrant, type RevokeResult } from "../src/membership/segments";
import { sendNotices } from "../src/membership/notices";
import type { MembershipProgram } from "../src/membership/program";
import type { Segment } from "../src/membership/timeline";
import { type CallbackOutcome, partnerTicketTables, type TicketCallback, TicketBook, type TicketState } from "../src/partners/ticket-book";
import type { BenefitCatalog } from "../src/benefits/catalog";
import { EntitlementBook, entitlementTables, type EntitlementView } from "../src/benefits/entitlements";
import { findActiveConfig } from "../src/config/store";

/**
 * The account's storage, one numbered step each (see support/migrations.ts). Every row of a feature carries the
 * activity namespace it belongs to (`ns`), so one user's rows of every activity live side by side.
 */
export const userAccountMigrations: StorageMigration[] = [
  (sql) =>
    sql.exec(`
  CREATE TABLE counters (ns TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (ns, key));
  CREATE TABLE locks (ns TEXT NOT NULL, key TEXT NOT NULL, holder TEXT NOT NULL, committed_at INTEGER NOT NULL, PRIMARY KEY (ns, key));
  CREATE TABLE idempotency_keys (
    ns TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, status INTEGER NOT NULL DEFAULT 0,
    body TEXT, created_at INTEGER NOT NULL, PRIMARY KEY (ns, key));
  CREATE INDEX idempotency_by_age ON idempotency_keys (created_at);
  CREATE TABLE reservations (id TEXT PRIMARY KEY, outcome TEXT NOT NULL CHECK (outcome IN ('committed', 'abandoned')), at INTEGER NOT NULL);
  CREATE INDEX reservations_by_age ON reservations (at);`),
  outboxTable,
  // Profile attributes (src/users): one row per attribute, its value as JSON; a removed one keeps its row with a NULL
  // value, so an older update that arrives later cannot bring it back.
  (sql) => sql.exec("CREATE TABLE profile (name TEXT PRIMARY KEY, value TEXT, updated_at INTEGER NOT NULL)"),
  pointLedgerTables,
  reversalTables,
  refundTables,
  partnerTicketTables,
  identityTables,
  // Activity codes the user used (src/activity-codes), each kept until it has expired (then no use of it can pass).
  (sql) =>
    sql.exec(`
  CREATE TABLE used_activity_codes (id TEXT PRIMARY KEY, forget_at INTEGER NOT NULL);
  CREATE INDEX used_activity_codes_by_age ON used_activity_codes (forget_at);`),
  entitlementTables,
];

/**
 * How long a reservation's outcome is kept: far beyond any reservation's deadline and the counter's retries of its
 * question, so a counter always hears the answer the commit gave.
 */
const RESERVATION_OUTCOME_TTL_MS = 24 * 60 * 60 * 1000;
/** A claim still "in progress" after this long belongs to a run that died; the key is free again. */
const IN_PROGRESS_TTL_MS = 60_000;

class Refusal extends Error {
  constructor(readonly result: CommitResult) {
    super("refused");
  }
}

export class UserAccount extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  /** Committed records on their way to D1. */
  private readonly outbox: Outbox<RecordBatch>;
  /** Long-polls held on pending keys (see readIdempotency), by key: in memory, as the calls they answer are. */
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    // Records go to this account's collector, which packs many users' runs into a queue message; the alarm is only
    // the resend (an account that stopped mid-hand-off) and the expiry of old keys.
    this.outbox = new Outbox<RecordBatch>(ctx, env, { handOff: (batches) => recordCollector(env, ctx.id.toString()).collect(batches) }, () =>
      this.choresDue(),
    );
    ctx.blockConcurrencyWhile(async () => migrateStorage(ctx.storage, userAccountMigrations));
  }

  /**
   * Commits a run's plan, or refuses it with the first failing step's answer and changes nothing. Steps in plan order:
   * activity codes, locks, counters and chances, marker requirements, then the shared reservations the run holds (each recorded as
   * used, unless a counter already answered for it), the Idempotency-Key's answer and the records.
   */
  async commit(plan: AccountPlan): Promise<CommitResult> {
    const now = Date.now();
    const ns = plan.namespace;
    let queued = false;
    /** Chance grants the kind's max cut down: what each really gave. */
    const settled: Record<string, number> = {};
    const caps: Record<string, number | null> = {};
    const unused: string[] = [];
    /** Points grants the program's daily cap cut down: what each really earned. */
    const earned: Record<string, number> = {};
    const ledger = new PointLedger(this.sql, plan.userId);
    const entitlements = new EntitlementBook(this.sql, plan.userId);
    const identities = new IdentityBook(this.sql, { book: entitlements, ledger });
    try {
      this.ctx.storage.transactionSync(() => {
        for (const code of plan.activityCodes ?? []) {
          // The one place a code is used: of concurrent runs with one code, the first to commit here takes it.
          const fresh = this.sql.exec(
            "INSERT INTO used_activity_codes (id, forget_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
            code.id,
            now + Math.max(0, code.keepMs),
          ).rowsWritten;
          if (fresh === 0) throw new Refusal({ ok: false, rejection: code.rejection });
        }
        for (const lock of plan.locks) {
          const held = this.sql.exec<{ committed_at: number }>("SELECT committed_at FROM locks WHERE ns = ? AND key = ?", ns, lock.key).toArray()[0];
          if (held && held.committed_at >= plan.startedAt) throw new Refusal({ ok: false, rejection: lock.rejection });
          this.sql.exec(
            "INSERT INTO locks (ns, key, holder, committed_at) VALUES (?, ?, ?, ?) ON CONFLICT (ns, key) DO UPDATE SET holder = excluded.holder, committed_at = excluded.committed_at",
            ns,
            lock.key,
            plan.requestId,
            // Workers' clocks on both sides of the comparison, not the account's own.
            plan.committedAt,
          );
        }
        for (const change of plan.counters) {
          if (!("type" in change)) {
            this.apply(ns, change, now);
            continue;
          }
          const granted = this.applyChance(ns, change, now);
          if (change.grantId !== undefined && change.delta > 0 && granted < change.delta) {
            settled[change.grantId] = granted;
            caps[change.grantId] = change.max;
          }
        }
        for (const change of plan.points ?? []) {
          const applied = applyPointChange(ledger, change);
          if (!applied.ok) throw new Refusal({ ok: false, rejection: applied.rejection });
          if (change.kind === "earn" && applied.earned! < change.amount) earned[change.grantId] = applied.earned!;
        }
        for (const { program, grant, catalog } of plan.identities ?? []) {
          const granted = identities.grant(program, grant, catalog);
          if (!granted.ok) throw new Refusal({ ok: false, rejection: { code: granted.code, message: granted.message } });
        }
        for (const r of plan.requirements) {
          if ((this.value(ns, r.key) ?? 0) < 1) throw new Refusal({ ok: false, rejection: r.rejection });
        }
        for (const r of plan.reservations) {
          if (r.once !== undefined && (this.value(ns, r.once) ?? 0) > 0) {
            unused.push(r.id);
            this.decide(r.id, "abandoned", now);
            continue;
          }
          if (r.once !== undefined) this.apply(ns, { key: r.once, delta: 1 }, now);
          // A counter that found the reservation overdue asked first and was told it was abandoned: it has gone back.
          if (this.decide(r.id, "committed", now) !== "committed") {
            throw new Refusal({ ok: false, rejection: { code: "UNAVAILABLE", message: "the request took too long; please retry" } });
          }
        }
        if (plan.entitlement) {
          const refused = entitlements.commitRun(plan.entitlement, plan.requestId, plan.records, now);
          if (refused) throw new Refusal({ ok: false, rejection: refused });
        }
        const cut = Object.keys(settled).length > 0 || Object.keys(earned).length > 0;
        if (plan.idempotency) {
          const { namespace, key, status } = plan.idempotency;
          // Only a run whose key is still claimed and unanswered commits: a second delivery of a queued run finds it
          // answered, and a run whose ticket or key is gone (released after a failed send, expired) finds no claim.
          const claim = this.sql
            .exec<{ status: number }>("SELECT status FROM idempotency_keys WHERE ns = ? AND key = ?", namespace, key)
            .toArray()[0];
          if (claim?.status !== 0) {
            const message = claim ? "this Idempotency-Key was already answered" : "this request's Idempotency-Key or ticket is no longer open";
            throw new Refusal({ ok: false, rejection: { code: "LOCKED", message } });
          }
          // The stored answer says what was really granted, as the live answer will.
          const body = cut ? settledAnswer(plan.idempotency.body, settled, caps, earned) : plan.idempotency.body;
          this.sql.exec("UPDATE idempotency_keys SET status = ?, body = ? WHERE ns = ? AND key = ?", status, body, namespace, key);
        }
        const given = { ...settled, ...earned };
        const rewards = cut
          ? plan.records.rewards.flatMap((row) =>
              Object.hasOwn(given, row.id) ? (given[row.id]! > 0 ? [{ ...row, amount: given[row.id]! }] : []) : [row],
            )
          : plan.records.rewards;
        // A notification of the run (the notify command) tells what was really granted too.
        const deliveries = cut
          ? plan.records.deliveries.map((d) => ({ ...d, payload: settledAnswer(d.payload, settled, caps, earned) }))
          : plan.records.deliveries;
        const r: RecordBatch = { ...plan.records, rewards, deliveries, requests: plan.request ? [{ ...plan.request, outcome: "OK" }] : [] };
        if (ledger.written.length > 0) r.points = ledger.written;
        if (identities.written.length > 0) r.identitySegments = identities.written;
        if (entitlements.written.length > 0) r.entitlements = entitlements.written;
        const rows =
          r.requests!.length +
          r.participations.length +
          r.rewards.length +
          r.deliveries.length +
          ledger.written.length +
          identities.written.length +
          entitlements.written.length;
        if (rows + (r.events?.length ?? 0) > 0) {
          this.outbox.add(r);
          queued = true;
        }
        countServed(this.sql);
      });
    } catch (e) {
      if (!(e instanceof Refusal)) throw e;
      // The refused run is recorded too, with the answer it got (its changes rolled back above).
      const rejection = e.result.ok ? undefined : e.result.rejection;
      if (plan.request && rejection) await this.record([{ ...plan.request, outcome: rejection.code }]);
      else countServed(this.sql);
      return e.result;
    }
    if (plan.idempotency) this.answered(plan.idempotency.namespace, plan.idempotency.key);
    // After the answer: the run is committed, and a failed hand-off is the alarm's to retry, not the client's.
    if (queued) this.handOff();
    if (identities.noticed || entitlements.noticed) this.sendNotices();
    const result: CommitResult = { ok: true };
    if (Object.keys(settled).length > 0) result.settled = settled;
    if (unused.length > 0) result.unused = unused;
    if (Object.keys(earned).length > 0) result.earned = earned;
    return result;
  }

  /**
   * Decides a shared-counter reservation once: the first decision stands (a commit that used it, or a counter's
   * question after its deadline, whichever came first) and is the answer to every later one.
   */
  private decide(id: string, outcome: "committed" | "abandoned", now: number): "committed" | "abandoned" {
    this.sql.exec("INSERT INTO reservations (id, outcome, at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING", id, outcome, now);
    return this.sql.exec<{ outcome: "committed" | "abandoned" }>("SELECT outcome FROM reservations WHERE id = ?", id).one().outcome;
  }

  /**
   * A shared counter's question about a reservation past its deadline: did a commit use it? "committed" (the unit
   * stays given) or "abandoned": then no commit can use it any more, so the counter may give the unit back. This is
   * why a late confirmation can never grant a unit twice: the commit and this question meet in this one writer, and
   * whichever comes first decides (a commit that comes second is refused, changing nothing).
   */
  async resolveReservation(reservationId: string): Promise<"committed" | "abandoned"> {
    return this.decide(reservationId, "abandoned", Date.now());
  }

  private value(ns: string, key: string): number | undefined {
    return this.sql.exec<{ value: number }>("SELECT value FROM counters WHERE ns = ? AND key = ?", ns, key).toArray()[0]?.value;
  }

  private write(ns: string, key: string, value: number, now: number) {
    this.sql.exec(
      "INSERT INTO counters (ns, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
      ns,
      key,
      value,
      now,
    );
  }

  private apply(ns: string, c: CounterChange, now: number) {
    const next = (this.value(ns, c.key) ?? c.initial ?? 0) + c.delta;
    if ((c.cap != null && next > c.cap) || (c.floor != null && next < c.floor)) {
      if (c.rejection) throw new Refusal({ ok: false, rejection: c.rejection });
      throw new Error(`counter ${c.key} would cross its bounds without a refusal configured`);
    }
    this.write(ns, c.key, next, now);
  }

  /** Reads every counter a chance change spans, settles it, and writes the result (or refuses the run); returns what a grant gave. */
  private applyChance(ns: string, c: ChanceChange, now: number): number {
    const settled = settleChances(c, this.value(ns, c.allowance.key), this.withPrefix(ns, c.earnedPrefix));
    if (!settled.ok) throw new Refusal({ ok: false, rejection: c.rejection ?? { code: "NO_CHANCES", message: "no chances left" } });
    for (const [key, value] of settled.writes) {
      // The allowance counter stays at 0 (it would come back as the period's initial count); a bucket goes.
      if (value === 0 && key !== c.allowance.key) this.sql.exec("DELETE FROM counters WHERE ns = ? AND key = ?", ns, key);
      else this.write(ns, key, value, now);
    }
    return settled.granted;
  }

  private withPrefix(ns: string, prefix: string): { key: string; value: number }[] {
    return this.sql
      .exec<{ key: string; value: number }>(
        "SELECT key, value FROM counters WHERE ns = ? AND key >= ? AND key < ? ORDER BY key",
        ns,
        prefix,
        prefix + "\uffff",
      )
      .toArray();
  }

  /** The user's counters in a namespace whose key starts with one of `prefixes` (all of them for ""), in one read. */
  async counters(ns: string, prefixes: string[]): Promise<Record<string, number>> {
    return Object.fromEntries(prefixes.flatMap((p) => this.withPrefix(ns, p)).map((r) => [r.key, r.value]));
  }

  /** Whether the user used this activity code already (a read: only a commit uses one). */
  async activityCodeUsed(id: string): Promise<boolean> {
    return this.sql.exec("SELECT 1 FROM used_activity_codes WHERE id = ?", id).toArray().length > 0;
  }

  /** Counts an order event in the user's order history once (src/events/order-history.ts): the orders before it. */
  async countOrder(eventRef: string): Promise<number> {
    return this.ctx.storage.transactionSync(() => countOrderOnce(this.sql, eventRef, Date.now()));
  }

  /** Claims an Idempotency-Key for a request, or says what to answer instead. */
  async claimIdempotency(ns: string, key: string, requestHash: string, now: number): Promise<IdempotencyClaim> {
    const row = this.sql
      .exec<{ request_hash: string; status: number; body: string | null; created_at: number }>(
        "SELECT request_hash, status, body, created_at FROM idempotency_keys WHERE ns = ? AND key = ?",
        ns,
        key,
      )
      .toArray()[0];
    const abandoned = row?.status === 0 && row.created_at < now - IN_PROGRESS_TTL_MS;
    if (row && row.created_at >= now - IDEMPOTENCY_TTL_MS && !abandoned) {
      if (row.request_hash !== requestHash) return { state: "mismatch" };
      if (row.status === 0) return { state: "in-progress" };
      return { state: "replay", status: row.status, body: row.body ?? "" };
    }
    this.sql.exec(
      "INSERT INTO idempotency_keys (ns, key, request_hash, status, body, created_at) VALUES (?, ?, ?, 0, NULL, ?) ON CONFLICT (ns, key) DO UPDATE SET request_hash = excluded.request_hash, status = 0, body = NULL, created_at = excluded.created_at",
      ns,
      key,
      requestHash,
      now,
    );
    return { state: "new" };
  }

  /** Stores a refusal's answer for replays; a key already answered (by a duplicate that got there first) keeps its answer. */
  async completeIdempotency(ns: string, key: string, status: number, body: string): Promise<void> {
    const written = this.sql.exec(
      "UPDATE idempotency_keys SET status = ?, body = ? WHERE ns = ? AND key = ? AND status = 0",
      status,
      body,
      ns,
      key,
    ).rowsWritten;
    if (written > 0) this.answered(ns, key);
  }

  /** Frees a key after an unexpected failure so the client's retry runs again. */
  async releaseIdempotency(ns: string, key: string): Promise<void> {
    const written = this.sql.exec("DELETE FROM idempotency_keys WHERE ns = ? AND key = ? AND status = 0", ns, key).rowsWritten;
    if (written > 0) this.answered(ns, key);
  }

  /**
   * What a key holds: its answer, "pending" while its run has not answered it, or undefined (never claimed, expired
   * or released). With `waitMs`, a pending key is held until it is answered or the time is up (a long-poll). Unlike a
   * claim, a read never takes the key over: a queued run can wait far longer than a claim's in-progress TTL.
   */
  async readIdempotency(ns: string, key: string, waitMs = 0): Promise<IdempotencyAnswer | "pending" | undefined> {
    const stored = this.storedAnswer(ns, key);
    if (stored !== "pending" || waitMs <= 0) return stored;
    await new Promise<void>((resolve) => {
      const id = waiterId(ns, key);
      const waiting = this.waiters.get(id) ?? new Set();
      const done = () => {
        clearTimeout(timer);
        waiting.delete(done);
        if (waiting.size === 0) this.waiters.delete(id);
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      waiting.add(done);
      this.waiters.set(id, waiting);
    });
    return this.storedAnswer(ns, key);
  }

  private storedAnswer(ns: string, key: string): IdempotencyAnswer | "pending" | undefined {
    const row = this.sql
      .exec<{ status: number; body: string | null }>(
        "SELECT status, body FROM idempotency_keys WHERE ns = ? AND key = ? AND created_at >= ?",
        ns,
        key,
        Date.now() - IDEMPOTENCY_TTL_MS,
      )
      .toArray()[0];
    if (!row) return undefined;
    return row.status === 0 ? "pending" : { status: row.status, body: row.body ?? "" };
  }

  /** Wakes the reads waiting on a key that was just answered (or released). */
  private answered(ns: string, key: string) {
    for (const wake of [...(this.waiters.get(waiterId(ns, key)) ?? [])]) wake();
  }

  /** Hands the records just committed to the collector, off the answer's path. */
  private handOff() {
    this.ctx.waitUntil(this.outbox.forwardNow().catch((e) => log.error("records not handed off; the alarm retries", { error: String(e) })));
  }

  /**
   * When the oldest Idempotency-Key, reservation outcome or used activity code expires (the alarm forgets it then), the next point lot
   * becomes spendable or expires (the alarm writes it), a partner ticket expires, an identity runs out or is due for
   * its reminder, or an identity notice is due (the alarm notes and sends them), a new month begins for an identity
   * with monthly benefits (the alarm makes its entitlements), an entitlement expires, or null for none.
   */
  private choresDue(): number | null {
    const { key, reservation, code } = this.sql
      .exec<{ key: number | null; reservation: number | null; code: number | null }>(
        "SELECT (SELECT min(created_at) FROM idempotency_keys) AS key, (SELECT min(at) FROM reservations) AS reservation, (SELECT min(forget_at) FROM used_activity_codes) AS code",
      )
      .one();
    const due = [
      key === null ? null : key + IDEMPOTENCY_TTL_MS,
      reservation === null ? null : reservation + RESERVATION_OUTCOME_TTL_MS,
      code,
      PointLedger.nextEvent(this.sql),
      ReversalBook.nextEffect(this.sql),
      IdentityBook.nextEvent(this.sql),
      EntitlementBook.nextEvent(this.sql),
      EntitlementBook.nextExpiry(this.sql),
      TicketBook.nextChore(this.sql),
    ];
    const times = due.filter((t): t is number => t !== null);
    return times.length === 0 ? null : Math.max(Date.now(), Math.min(...times) + 1);
  }

  /**
   * Hands committed records on (again), forgets expired Idempotency-Keys, reservation outcomes and used activity codes, writes the
   * point lots that became spendable or expired, expires partner tickets whose time is up, notes the identities that
   * ran out (or soon will), expires the entitlements that can no longer be given or used, makes a new month's monthly
   * entitlements, and sends the notices still due (identity
   * events, entitlements to give or reclaim).
   */
  override async alarm(): Promise<void> {
    try {
      this.sql.exec("DELETE FROM idempotency_keys WHERE created_at < ?", Date.now() - IDEMPOTENCY_TTL_MS);
      this.sql.exec("DELETE FROM reservations WHERE at < ?", Date.now() - RESERVATION_OUTCOME_TTL_MS);
      this.sql.exec("DELETE FROM used_activity_codes WHERE forget_at <= ?", Date.now());
      TicketBook.runChores(this.sql, Date.now());
      const ledger = PointLedger.of(this.sql);
      if (ledger) this.ctx.storage.transactionSync(() => this.keepPoints(ledger, () => ledger.settle(Date.now())));
      await this.reversalBook().runEffects(Date.now());
      const identities = new IdentityBook(this.sql);
      this.ctx.storage.transactionSync(() => identities.noteExpiries(Date.now()));
      await this.entitlementChores(identities);
      await sendNotices(this.sql, this.env, this.ctx);
    } finally {
      await this.outbox.forward();
    }
  }

  /**
   * Expires the entitlements whose segment ended or whose validity ran out, and, when a new month has begun for an
   * identity that runs into it, last month's available ones and the new month's `monthly` ones to make.
   */
  private async entitlementChores(identities: IdentityBook) {
    const now = Date.now();
    const month = EntitlementBook.nextEvent(this.sql);
    const expiry = EntitlementBook.nextExpiry(this.sql);
    const monthDue = month !== null && month <= now;
    if (!monthDue && (expiry === null || expiry > now)) return;
    const owner = identities.owner();
    // No user: no entitlements either, and a month left due would wake the alarm again at once.
    if (owner === undefined) return EntitlementBook.forgetNextMonth(this.sql);
    const config = monthDue ? await findActiveConfig(this.env) : undefined;
    const program = config?.membership;
    this.entitlementChange(owner, (book) => {
      // What a segment end or a validity decides needs no config, so the alarm it woke always settles it.
      book.expire(program?.timezone, now);
      if (!monthDue) return;
      // No program (any more): nothing to make.
      if (!config || !program) return EntitlementBook.forgetNextMonth(this.sql);
      book.issueMonthly(config.benefits, program, identities.segments(), now);
    });
  }

  /** The user's stored profile attributes (removed ones left out), by name. */
  async profile(): Promise<StoredProfile> {
    return readProfile(this.sql);
  }

  /**
   * Applies checked attribute changes (null removes one) in one transaction, each only if `updatedAt` is not older
   * than what is stored for it: a source's updates may arrive out of order, and the newest one stands. Answers the
   * profile after the change and the names of changes that were older than what is stored.
   */
  async updateProfile(changes: Record<string, AttributeValue | null>, updatedAt: number): Promise<{ profile: StoredProfile; stale: string[] }> {
    const stale: string[] = [];
    this.ctx.storage.transactionSync(() => {
      for (const [name, value] of Object.entries(changes)) {
        const written = this.sql.exec(
          "INSERT INTO profile (name, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at WHERE excluded.updated_at >= profile.updated_at",
          name,
          value === null ? null : JSON.stringify(value),
          updatedAt,
        ).rowsWritten;
        if (written === 0) stale.push(name);
      }
      countServed(this.sql);
    });
    return { profile: readProfile(this.sql), stale };
  }

  /**
   * Redeems points (POST /v1/points/redeem): refused with nothing written when too few are spendable. With an
   * Idempotency-Key, its answer is stored in the same transaction (the key must still be claimed and unanswered).
   */
  async redeemPoints(
    userId: string,
    program: PointProgram,
    c: { amount: number; sourceRef: string; reason: string; now: number },
    idempotency?: { namespace: string; key: string; requestId: string },
  ): Promise<LedgerResult | { ok: true; answer: string }> {
    const result = this.pointChange(userId, (ledger): LedgerResult | { ok: true; answer: string } => {
      if (
        idempotency &&
        this.sql
          .exec<{ status: number }>("SELECT status FROM idempotency_keys WHERE ns = ? AND key = ?", idempotency.namespace, idempotency.key)
          .toArray()[0]?.status !== 0
      ) {
        throw new Refusal({ ok: false, rejection: { code: "LOCKED", message: "this request's Idempotency-Key is no longer open" } });
      }
      const r = ledger.redeem(program, c);
      if (!r.ok || !idempotency) return r;
      const answer = JSON.stringify(redeemAnswer(idempotency.requestId, r.entry, ledger.balances(program.id, c.now)));
      this.sql.exec("UPDATE idempotency_keys SET status = 200, body = ? WHERE ns = ? AND key = ?", answer, idempotency.namespace, idempotency.key);
      return { ok: true, answer };
    });
    if (idempotency) this.answered(idempotency.namespace, idempotency.key);
    return result;
  }

  /** A correction of a user's points (the service route's adjust): see PointLedger.adjust. */
  async adjustPoints(
    userId: string,
    program: PointProgram,
    c: { delta: number; sourceRef: string; reason: string; now: number; keyId?: string | null },
  ): Promise<LedgerResult> {
    return this.pointChange(userId, (ledger) => ledger.adjust(program, c));
  }

  /** Takes back an earn, or `amount` of it under its own `ref` (a cancelled order, a return): see PointLedger.reverse. */
  async reversePoints(
    userId: string,
    program: PointProgram,
    c: { earnRef: string; reason: string; now: number; amount?: number; ref?: string },
  ): Promise<LedgerResult> {
    return this.pointChange(userId, (ledger) => ledger.reverse(program, c));
  }

  /** A program's balances at `now`, computed from the lots (no write): what a condition on the balance reads. */
  async pointBalances(program: string, now: number): Promise<PointBalances> {
    return new PointLedger(this.sql, "").balances(program, now);
  }

  /** What the program's daily earn cap still lets the user earn today (null: no cap), read only: a preview's peek. */
  async pointEarnRoom(program: PointProgram, now: number): Promise<number | null> {
    return new PointLedger(this.sql, "").earnRoom(program, now);
  }

  /**
   * A program's statement at `now`: balances, what expires until `soonUntil`, and a page of entries newest first
   * (before entry `before`), after writing what time has done.
   */
  async pointStatement(
    userId: string,
    program: string,
    now: number,
    page: { before?: number; limit: number; soonUntil: number },
  ): Promise<PointBalances & { expiringSoon: { amount: number; expiresAt: number }[]; entries: PointEntry[] }> {
    return this.pointChange(userId, (ledger) => {
      ledger.settle(now, program);
      const entries = ledger.entries(program, page.before, page.limit);
      return { ...ledger.balances(program, now), expiringSoon: ledger.expiring(program, now, page.soonUntil), entries };
    });
  }

  /** Runs a ledger change in one transaction with the outbox row of the entries it wrote, then hands them off. */
  private pointChange<T>(userId: string, change: (ledger: PointLedger) => T): T {
    const ledger = new PointLedger(this.sql, userId);
    let result: T;
    try {
      result = this.ctx.storage.transactionSync(() => this.keepPoints(ledger, () => change(ledger)));
    } catch (e) {
      if (e instanceof Refusal && !e.result.ok) return { ok: false, code: e.result.rejection.code, message: e.result.rejection.message } as T;
      throw e;
    }
    if (ledger.written.length > 0) this.handOff();
    return result;
  }

  /** Runs `change`, then adds the entries it wrote to the outbox (inside the caller's transaction). */
  private keepPoints<T>(ledger: PointLedger, change: () => T): T {
    const result = change();
    if (ledger.written.length > 0) this.outbox.add({ participations: [], rewards: [], deliveries: [], points: ledger.written });
    return result;
  }

  private reversalBook() {
    return new ReversalBook(this.sql, this.env);
  }

  /** Claims a reversal by its ref (an event's or a request's), or answers its stored result, or says it is under way. */
  async claimReversal(ref: string, now: number, lane?: string): Promise<ReversalClaim> {
    return this.reversalBook().claim(ref, now, lane);
  }

  /** What the refunds of an event took so far (src/reversals/order-refund.ts). */
  async refundState(eventRef: string): Promise<RefundState> {
    return this.reversalBook().refundState(eventRef);
  }

  /** The answers of an event's reversals (its cancel, its partial refunds), oldest first. */
  async eventReversals(eventRef: string): Promise<ReversalAnswer[]> {
    return this.reversalBook().eventReversals(eventRef);
  }

  /** Frees a claimed reversal that failed before its commit, so a retry plans it again. */
  async releaseReversal(ref: string): Promise<void> {
    this.reversalBook().release(ref);
  }

  /** Whether an event or request was reversed, or tombstoned before it came (a late event then grants nothing). */
  async reversalOf(ref: string): Promise<"pending" | "done" | undefined> {
    return this.reversalBook().state(ref);
  }

  /**
   * Commits a claimed reversal in one transaction: the user-side take-backs (chances, red-packet balance and debt,
   * points, participation counts), its answer (JSON, kept for good: every later cancel gets it), its D1 rows and its
   * shared give-backs, which are then done from here and retried by the alarm until each is done.
   */
  async reverse(plan: ReversalPlan, status: ReversalAnswer["status"]): Promise<{ stale: true } | { stale: false; body: string }> {
    const book = this.reversalBook();
    const ledger = new PointLedger(this.sql, plan.userId);
    const entitlements = new EntitlementBook(this.sql, plan.userId);
    const identities = new IdentityBook(this.sql, { book: entitlements, ledger });
    const answer = this.ctx.storage.transactionSync(() => {
      const result = book.commit(
        plan,
        status,
        ledger,
        {
          value: (ns, key) => this.value(ns, key),
          write: (ns, key, value) => this.write(ns, key, value, Date.now()),
        },
        identities,
      );
      if ("stale" in result) return undefined;
      if (result.records)
        this.outbox.add({
          participations: [],
          rewards: [],
          deliveries: [],
          ...result.records,
          points: ledger.written,
          identitySegments: identities.written,
          entitlements: entitlements.written,
        });
      countServed(this.sql);
      return JSON.stringify(result.answer);
    });
    if (answer === undefined) return { stale: true };
    this.handOff();
    this.ctx.waitUntil(book.runEffects(Date.now()).catch((e) => log.error("give-backs not done; the alarm retries", { error: String(e) })));
    if (identities.noticed || entitlements.noticed) this.sendNotices();
    return { stale: false, body: answer };
  }

  /**
   * Sends the records of these committed runs to D1 now: hands off what is still here, then has the collector write
   * the hand-offs that carry them (RecordCollector.storeNow). A cancel right after its event needs them in D1.
   */
  async flushRecords(requestIds: string[]): Promise<void> {
    await this.outbox.forwardNow();
    await recordCollector(this.env, this.ctx.id.toString()).storeNow(requestIds);
  }

  /** Opens a partner ticket for a redirect (src/partners/ticket-book.ts). */
  async openPartnerTicket(t: { ticketId: string; partnerId: string; benefitId: string; expiresAt: number; now: number }): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      new TicketBook(this.sql, new PointLedger(this.sql, "")).open(t);
      countServed(this.sql);
    });
    // The alarm expires the ticket if no callback comes first (an earlier alarm reschedules itself for it).
    const at = await this.ctx.storage.getAlarm();
    if (at === null || at > t.expiresAt + 1) await this.ctx.storage.setAlarm(Math.max(Date.now(), t.expiresAt + 1));
  }

  /** Applies a partner's callback to one of the user's tickets, once per webhook-id, with its points in the same commit. */
  async partnerCallback(userId: string, c: TicketCallback): Promise<CallbackOutcome> {
    return this.pointChange(userId, (ledger) => new TicketBook(this.sql, ledger).apply(c));
  }

  /** A partner ticket's state, or undefined. */
  async partnerTicket(ticketId: string): Promise<{ state: TicketState; pointsDelta: number | null } | undefined> {
    return new TicketBook(this.sql, new PointLedger(this.sql, "")).state(ticketId);
  }

  /**
   * Grants an identity segment on the user's timeline (POST /v1/membership/grants): decided here, in one
   * transaction with its D1 copy, the notices of the events it causes and the benefit entitlements it brings (the
   * catalog's), so concurrent grants of conflicting SKUs cannot both pass. A repeat of the same grant under its
   * externalRef answers the segment again.
   */
  async grantIdentity(program: MembershipProgram, grant: IdentityGrant, catalog?: BenefitCatalog): Promise<GrantResult> {
    return this.identityChange(grant.userId, (book) => book.grant(program, grant, catalog));
  }

  /** Revokes the segment granted under `externalRef` (a refund) and reclaims its entitlements: see IdentityBook.revoke. */
  async revokeIdentity(program: MembershipProgram, c: { userId: string; externalRef: string; reason: string; now: number }): Promise<RevokeResult> {
    return this.identityChange(c.userId, (book) => book.revoke(program, c));
  }

  /** Runs an identity change in one transaction with the entitlements and points it moves, then sends what it wrote. */
  private identityChange<T>(userId: string, change: (book: IdentityBook) => T): T {
    const ledger = new PointLedger(this.sql, userId);
    const entitlements = new EntitlementBook(this.sql, userId);
    const book = new IdentityBook(this.sql, { book: entitlements, ledger });
    let written = 0;
    const result = this.ctx.storage.transactionSync(() => {
      const r = change(book);
      written = book.written.length + entitlements.written.length + ledger.written.length;
      if (written > 0)
        this.outbox.add({
          participations: [],
          rewards: [],
          deliveries: [],
          identitySegments: book.written,
          entitlements: entitlements.written,
          points: ledger.written,
        });
      countServed(this.sql);
      return r;
    });
    if (written > 0) this.handOff();
    if (book.noticed || entitlements.noticed) this.sendNotices();
    return result;
  }

  /**
   * The user's benefit entitlements, after expiring those that can no longer be given or used at `now` and making this
   * month's `monthly` ones the timeline entitles (each when the alarm has not yet): what the rights center lists.
   */
  async entitlements(userId: string, catalog: BenefitCatalog | undefined, program: MembershipProgram, now: number): Promise<EntitlementView[]> {
    return this.entitlementChange(userId, (book) => {
      book.expire(program.timezone, now);
      book.issueMonthly(catalog, program, new IdentityBook(this.sql).segments(), now);
      return book.list();
    });
  }

  /** A benefits-center delivery's final outcome (src/records/deliver.ts): see EntitlementBook.deliveryOutcome. */
  async entitlementDelivery(userId: string, deliveryId: string, outcome: "delivered" | "failed", partnerRef: string | null): Promise<void> {
    this.entitlementChange(userId, (book, ledger) => book.deliveryOutcome(deliveryId, outcome, partnerRef, ledger, Date.now()));
  }

  /** An issuance refused for good: the entitlement failed (src/benefits/issuance.ts). */
  async entitlementIssueFailed(userId: string, id: string): Promise<boolean> {
    return this.entitlementChange(userId, (book) => book.issueFailed(id, Date.now()));
  }

  /** Marks a delivered entitlement used (POST /v1/benefits/entitlements/{id}/use). */
  async useEntitlement(userId: string, id: string, now: number): Promise<ReturnType<EntitlementBook["use"]>> {
    return this.entitlementChange(userId, (book) => book.use(id, now));
  }

  /** Runs an entitlement change in one transaction with the points it moves, then sends what it wrote. */
  private entitlementChange<T>(userId: string, change: (book: EntitlementBook, ledger: PointLedger) => T): T {
    const ledger = new PointLedger(this.sql, userId);
    const book = new EntitlementBook(this.sql, userId);
    const result = this.ctx.storage.transactionSync(() => {
      const r = change(book, ledger);
      if (book.written.length + ledger.written.length > 0)
        this.outbox.add({ participations: [], rewards: [], deliveries: [], entitlements: book.written, points: ledger.written });
      countServed(this.sql);
      return r;
    });
    if (book.written.length + ledger.written.length > 0) this.handOff();
    if (book.noticed) this.sendNotices();
    return result;
  }

  /** The user's timeline, every segment revoked ones included (no write). */
  async identities(): Promise<Segment[]> {
    return new IdentityBook(this.sql).segments();
  }

  /** Sends the identity notices just committed, off the answer's path; the alarm retries what is left. */
  private sendNotices() {
    this.ctx.waitUntil(
      sendNotices(this.sql, this.env, this.ctx)
        .catch((e) => log.error("identity notices not sent; the alarm retries", { error: String(e) }))
        .finally(() => this.outbox.forward()),
    );
  }

  /** Keeps request records of runs that did not commit here (refused earlier), for D1. */
  async record(requests: RequestRecordRow[]): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      this.outbox.add({ requests, participations: [], rewards: [], deliveries: [] });
      countServed(this.sql);
    });
    this.handOff();
  }
}

function readProfile(sql: SqlStorage): StoredProfile {
  const rows = sql.exec<{ name: string; value: string; updated_at: number }>("SELECT name, value, updated_at FROM profile WHERE value IS NOT NULL");
  return Object.fromEntries([...rows].map((r) => [r.name, { value: JSON.parse(r.value) as AttributeValue, updatedAt: r.updated_at }]));
}

const waiterId = (ns: string, key: string) => `${ns}\n${key}`;

/** A stored task answer or notification payload (JSON) with its capped chance and points grants settled. */
function settledAnswer(body: string, settled: Record<string, number>, caps: Record<string, number | null>, earned: Record<string, number>): string {
  const answer = JSON.parse(body) as { rewards?: { type: string; granted: boolean; grantId?: string }[] };
  if (answer.rewards)
    answer.rewards = settlePointRewards(
      settleRewards(answer.rewards, settled, (id) => caps[id] ?? null),
      earned,
    );
  return JSON.stringify(answer);
}
