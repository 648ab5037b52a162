/** Chance balances: a kind's initial allowance per period plus granted increments, minus what was spent. */
import type { ChanceKind, CompiledActivity } from "../config/compiled";
import { periodKey } from "../config/time";
import type { Env } from "../env";
import { ledgerFor } from "./ledger";

/** The counter that holds a user's balance of `kind` for the period containing `now`. */
export function chanceKey(kind: ChanceKind, now: number, timeZone: string): string {
  return `chance:${kind.id}:${periodKey(kind.per, now, timeZone)}`;
}

/** Every chance kind's current balance for a user (the allowance when nothing was spent or granted yet). */
export async function chanceBalances(env: Env, activity: CompiledActivity, userId: string, now: number) {
  const kinds = Object.values(activity.chances);
  const keys = kinds.map((k) => chanceKey(k, now, activity.timezone));
  const values = await ledgerFor(env, activity.namespace).counters(userId, keys);
  return Object.fromEntries(
    kinds.map((k, i) => [k.id, { name: k.name, balance: values[keys[i]!] ?? k.initial, resets: k.per }]),
  );
}
