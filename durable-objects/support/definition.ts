/**
 * A definition stored by the object that uses it and named by its content hash: a call carries `{ id, hash }`, and
 * the whole definition only while the caller's isolate has not seen that object accept the hash. An object that does
 * not know the hash answers "unknown-definition" and the caller sends it again with the definition. Each owner says
 * which definitions may follow its stored one and which replace it (by `revision`, or never, or always); one that
 * does not replace it is served with what the object holds.
 */
import { canonicalJson, sha256Hex } from "../../src/sharding";

/** What a call names: the definition, by its id and content hash. */
export interface DefinitionRef {
  id: string;
  hash: string;
}

/** What a call to one shard of a sharded object names: the definition by hash, and which shard it is meant for. */
export interface ShardRef extends DefinitionRef {
  shard: number;
}

/** A definition that carries its revision: higher replaces lower (see `byRevision`). */
export interface Revised {
  revision: number;
}

/** The usual replacement rule: a higher revision replaces; the same or a lower one is served with what is stored. */
export const byRevision = (stored: Revised, next: Revised): boolean => next.revision > stored.revision;

/** The protocol's answers besides the call's own. */
export type DefinitionRefusal = { outcome: "unknown-definition" } | { outcome: "changed" };

/** Hashes already computed, by canonical text (definitions are rebuilt per request; their texts are few). */
const hashes = new Map<string, string>();
const MAX_HASHES = 1000;

/** A definition's content hash: the SHA-256 of its canonical JSON. */
export async function definitionHash(def: object): Promise<string> {
  const text = canonicalJson(def);
  const known = hashes.get(text);
  if (known) return known;
  const hash = await sha256Hex(text);
  if (hashes.size >= MAX_HASHES) hashes.clear();
  hashes.set(text, hash);
  return hash;
}

/** What the owner decides about a definition it is sent. */
export interface DefinitionRules<D, R extends DefinitionRef> {
  /** Whether `next` may follow `stored` at all (e.g. the same shard count); "changed" otherwise. */
  compatible(stored: D, next: D): boolean;
  /** Whether a compatible `next` the object has not seen replaces `stored` (else its hash is served with `stored`). */
  replaces(stored: D, next: D): boolean;
  /** Applies `next` over `stored` (undefined: the first) to the owner's state, inside the transaction that stores it. */
  apply(stored: D | undefined, next: D, ref: R): void;
}

/** The object's side: its definition, kept in its `meta` rows, and the hashes it has accepted. */
export class StoredDefinition<D extends object, R extends DefinitionRef = DefinitionRef> {
  private stored: { def: D; hash: string } | undefined;
  /** Hashes accepted (read from `meta` once each). */
  private readonly accepted = new Set<string>();

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly rules: DefinitionRules<D, R>,
  ) {}

  /**
   * Restores the stored definition from the object's meta rows (in its constructor, after its migrations). One stored
   * without its hash is named by it here, once, so that calls naming it by hash alone find it.
   */
  async load(meta: Record<string, string>): Promise<void> {
    if (!meta.definition) return;
    const def = JSON.parse(meta.definition) as D;
    let hash = meta.definition_hash;
    if (!hash) {
      const named = await definitionHash(def);
      const sql = this.ctx.storage.sql;
      this.ctx.storage.transactionSync(() => {
        sql.exec("INSERT INTO meta (k, v) VALUES ('definition_hash', ?)", named);
        sql.exec("INSERT OR IGNORE INTO meta (k, v) VALUES (?, '')", `accepted:${named}`);
      });
      hash = named;
    }
    this.stored = { def, hash };
  }

  /** The definition held and its hash (undefined before the first). */
  get current(): { def: D; hash: string } | undefined {
    return this.stored;
  }

  /**
   * The definition a call means: the stored one when the object accepted `ref.hash`, else `sent`, taken when it
   * replaces the stored one; "unknown-definition" when the hash is new and nothing was sent, "changed" when `sent` may
   * not follow.
   */
  async resolve(ref: R, sent: D | undefined): Promise<{ outcome: "defined"; def: D } | DefinitionRefusal> {
    // Before reading any state: nothing may await between that read and what the call then writes.
    const matches = sent !== undefined && (await definitionHash(sent)) === ref.hash;
    if (this.stored && this.knows(ref.hash)) return { outcome: "defined", def: this.stored.def };
    // A definition that is not what the hash names is never taken: the hash stays unknown.
    if (sent === undefined || !matches) return { outcome: "unknown-definition" };
    const before = this.stored?.def;
    if (before && !this.rules.compatible(before, sent)) return { outcome: "changed" };
    const newer = before === undefined || this.rules.replaces(before, sent);
    const sql = this.ctx.storage.sql;
    this.ctx.storage.transactionSync(() => {
      if (newer) {
        this.rules.apply(before, sent, ref);
        const put = "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v";
        sql.exec(put, "definition", JSON.stringify(sent));
        sql.exec(put, "definition_hash", ref.hash);
      }
      sql.exec("INSERT OR IGNORE INTO meta (k, v) VALUES (?, '')", `accepted:${ref.hash}`);
    });
    if (newer) this.stored = { def: sent, hash: ref.hash };
    this.accepted.add(ref.hash);
    return { outcome: "defined", def: this.stored!.def };
  }

  private knows(hash: string): boolean {
    if (this.accepted.has(hash)) return true;
    const stored = this.ctx.storage.sql.exec("SELECT 1 FROM meta WHERE k = ?", `accepted:${hash}`).toArray().length > 0;
    if (stored) this.accepted.add(hash);
    return stored;
  }
}

/** The caller's side: which objects this isolate has seen accept which hash (calls to them carry the hash alone). */
export class DefinitionCache {
  private readonly seen = new Set<string>();

  constructor(private readonly limit = 10_000) {}

  /**
   * Makes `call` to `object` for `def`: with the hash alone when this isolate saw the object accept it, else with the
   * definition; once more with the definition when the object answers that it does not know the hash.
   */
  async call<D extends object, A extends { outcome: string }>(
    object: string,
    def: D,
    call: (hash: string, sent: D | undefined) => Promise<A | DefinitionRefusal>,
  ): Promise<Exclude<A, { outcome: "unknown-definition" }> | { outcome: "changed" }> {
    const hash = await definitionHash(def);
    const key = `${object}\n${hash}`;
    let answer = await call(hash, this.seen.has(key) ? undefined : def);
    if (answer.outcome === "unknown-definition") {
      this.seen.delete(key);
      answer = await call(hash, def);
    }
    if (answer.outcome === "unknown-definition") throw new Error(`${object} did not take definition ${hash}`);
    if (answer.outcome !== "changed") {
      if (this.seen.size >= this.limit) this.seen.clear();
      this.seen.add(key);
    }
    return answer as Exclude<A, { outcome: "unknown-definition" }> | { outcome: "changed" };
  }
}
