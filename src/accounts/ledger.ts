/** The account ledger stub for an activity namespace (see durable-objects/account-ledger.ts). */
import type { Env } from "../env";

export function ledgerFor(env: Env, namespace: string) {
  return env.LEDGER.get(env.LEDGER.idFromName(namespace));
}
