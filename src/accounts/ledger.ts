/** The account ledger stub for an activity namespace (see durable-objects/account-ledger.ts). */
export { ledgerFor } from "../../durable-objects/support/stubs";
