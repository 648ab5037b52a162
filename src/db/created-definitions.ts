/**
 * Definitions created through the admin API (flash sales, prize pools), read from their D1 table. A definition is
 * written once and never changes (only the counts in its shards do), so each isolate keeps what it has read; an id
 * found nowhere is not looked up again for a second, so repeats of a made-up id cost one D1 read a second. Ids a task
 * config declares are looked up here first too (src/sales/sales.ts, src/prizes/pools.ts), at that same cost: a created
 * definition outranks a config that declares its id later.
 */
import type { Env } from "../env";
import { AppError } from "../errors";
import { log } from "../platform/log";

const UNKNOWN_FOR_MS = 1000;
/** Beyond this many remembered misses the oldest are forgotten (distinct made-up ids are left to rate limits). */
const MAX_UNKNOWN = 10_000;

export class CreatedDefinitions<T> {
  private readonly known = new Map<string, T>();
  private readonly unknown = new Map<string, number>();

  /** `read` fetches the stored JSON definition of an id, or undefined. */
  constructor(private readonly read: (env: Env, id: string) => Promise<string | undefined>) {}

  /** Called by the admin route that created it, so this isolate needs no read. */
  remember(id: string, def: T) {
    this.known.set(id, def);
    this.unknown.delete(id);
  }

  async find(env: Env, id: string): Promise<T | undefined> {
    const known = this.known.get(id);
    if (known) return known;
    const now = Date.now();
    const missedUntil = this.unknown.get(id);
    if ((missedUntil ?? 0) > now) return undefined;
    let json: string | undefined;
    try {
      json = await this.read(env, id);
    } catch (e) {
      log.error("definition not read", { id, error: String(e) });
      // An id this isolate already found uncreated stays so while D1 is down (a created id is remembered for good,
      // and ids are permanent once used): a config-declared sale keeps selling through a D1 outage.
      if (missedUntil !== undefined) {
        this.unknown.set(id, now + UNKNOWN_FOR_MS);
        return undefined;
      }
      throw new AppError("UNAVAILABLE", "busy: please retry shortly", { "retry-after": "1" });
    }
    if (json !== undefined) {
      const def = JSON.parse(json) as T;
      this.remember(id, def);
      return def;
    }
    if (this.unknown.size >= MAX_UNKNOWN) this.unknown.delete(this.unknown.keys().next().value!);
    this.unknown.set(id, now + UNKNOWN_FOR_MS);
    return undefined;
  }
}
