/** The account ledger stub for an activity namespace (see durable-objects/account-ledger.ts). */
import type { Env } from "../env";

// Ids are derived by hashing the name; derive each namespace's once per isolate.
const ids = new Map<string, DurableObjectId>();

export function ledgerFor(env: Env, namespace: string) {
  let id = ids.get(namespace);
  if (!id) {
    id = env.LEDGER.idFromName(namespace);
    ids.set(namespace, id);
  }
  return env.LEDGER.get(id);
}
