/**
 * Storing the rows queue messages carry: one D1 batch per message batch, one statement per table whatever the row
 * count, each row idempotent by its key, so a redelivered message changes nothing. Column lists come from the drizzle
 * schema; the rows' JSON field names are the schema's field keys (checked by the types of `rowsOf`).
 */
import { getTableColumns } from "drizzle-orm";
import type { SQLiteTable } from "drizzle-orm/sqlite-core";
import {
  codePoolEvents,
  deadLetters,
  deliveries,
  entitlements,
  flashSaleGrabs,
  flashSaleOrders,
  flashSaleTokenEvents,
  identitySegments,
  participations,
  pointEntries,
  prizeDraws,
  prizeStatuses,
  requestCounts,
  requestRecords,
  reversalEntries,
  reversals,
  rewardRecords,
} from "../db/schema";
import type { QueueMessage } from "./messages";
import { packByBytes, utf8Bytes } from "./pack";
import { log } from "../platform/log";

/** D1 tables written from queue messages, by SQL name. */
const TABLES = {
  request_records: requestRecords,
  request_counts: requestCounts,
  participations,
  reward_records: rewardRecords,
  deliveries,
  prize_draws: prizeDraws,
  prize_statuses: prizeStatuses,
  flash_sale_grabs: flashSaleGrabs,
  flash_sale_token_events: flashSaleTokenEvents,
  flash_sale_orders: flashSaleOrders,
  dead_letters: deadLetters,
  point_entries: pointEntries,
  reversals,
  reversal_entries: reversalEntries,
  identity_segments: identitySegments,
  entitlements,
  code_pool_events: codePoolEvents,
} satisfies Record<string, SQLiteTable>;

export type Table = keyof typeof TABLES;
/** The rows a message carries, by table, typed as the schema inserts them. */
export type Rows = { [T in Table]?: (typeof TABLES)[T]["$inferInsert"][] };

/** Bytes of rows per JSON parameter: well under D1's 2 MB limit for one bound value. */
const JSON_BYTES_PER_STATEMENT = 1_000_000;

/** SQL for one column's value read from a JSON row; a column with a default takes it when the row leaves it out. */
function columnValue(key: string, fallback: unknown): string {
  const read = `json_extract(value, '$.${key}')`;
  if (typeof fallback === "number") return `coalesce(${read}, ${fallback})`;
  if (typeof fallback === "string") return `coalesce(${read}, '${fallback.replaceAll("'", "''")}')`;
  return read;
}

/** One statement per table: `INSERT … SELECT … FROM json_each(?)`, built once from the schema. */
const INSERT_SQL = Object.fromEntries(
  Object.entries(TABLES).map(([name, table]) => {
    const columns = Object.entries(getTableColumns(table));
    const values = columns.map(([key, column]) => columnValue(key, column.default)).join(", ");
    // `WHERE true` lets SQLite read ON CONFLICT as the upsert clause, not part of the SELECT.
    const sql = `INSERT INTO ${name} (${columns.map(([, c]) => c.name).join(", ")}) SELECT ${values} FROM json_each(?) WHERE true ON CONFLICT DO NOTHING`;
    return [name, sql];
  }),
) as Record<Table, string>;

/**
 * A multi-row insert as one statement per megabyte of rows: the rows travel as one JSON parameter (D1 binds at most
 * 100 parameters, and building a statement per few rows costs more than the insert).
 */
export function insertJsonRows(d1: D1Database, table: Table, rows: unknown[]): D1PreparedStatement[] {
  const json = rows.map((r) => JSON.stringify(r));
  return packByBytes(json, utf8Bytes, JSON_BYTES_PER_STATEMENT).map((group) => d1.prepare(INSERT_SQL[table]).bind(`[${group.join(",")}]`));
}

/** The D1 rows a message carries, by table (none for a delivery attempt); throws for a malformed message. */
export function rowsOf(body: QueueMessage): Rows {
  const rows = rowsByKind(body);
  for (const [table, list] of Object.entries(rows)) if (!Array.isArray(list)) throw new Error(`no rows for ${table}`);
  return rows;
}

function rowsByKind(body: QueueMessage): Rows {
  switch (body.kind) {
    case "requests":
      return { request_records: body.records };
    case "request-counts":
      return { request_counts: body.counts };
    case "records":
      return {
        request_records: body.records.requests ?? [],
        participations: body.records.participations,
        reward_records: body.records.rewards,
        deliveries: body.records.deliveries,
        point_entries: body.records.points ?? [],
        reversals: body.records.reversals ?? [],
        reversal_entries: body.records.reversalEntries ?? [],
        identity_segments: body.records.identitySegments ?? [],
        entitlements: body.records.entitlements ?? [],
      };
    case "pool-events":
      return {
        prize_draws: body.events.flatMap((e) => ("draw" in e ? [e.draw] : [])),
        prize_statuses: body.events.flatMap((e) => ("update" in e ? [e.update] : [])),
      };
    case "sale-events":
      return {
        flash_sale_grabs: body.events.flatMap((e) => ("grab" in e ? [e.grab] : [])),
        flash_sale_token_events: body.events.flatMap((e) => ("token" in e ? [e.token] : [])),
        // An order is answered to buyers with `orderId`; stored under the table's key.
        flash_sale_orders: body.events.flatMap((e) => ("order" in e ? [{ ...e.order, id: e.order.orderId }] : [])),
      };
    case "code-events":
      return { code_pool_events: body.events.flatMap((e) => ("code" in e ? [e.code] : [])) };
    case "delivery":
      return {};
    default:
      throw new Error(`unknown message kind '${(body as { kind?: unknown }).kind}'`);
  }
}

/** What one store did: whether D1 took the rows, and its D1 round trips. */
export interface Stored {
  ok: boolean;
  d1Calls: number;
}

/** Inserts the rows of these messages in one D1 batch (one statement per table and megabyte). */
export async function storeRows(d1: D1Database, messages: { rows: Rows }[]): Promise<Stored> {
  const byTable = new Map<Table, unknown[]>();
  for (const m of messages) {
    for (const [table, rows] of Object.entries(m.rows) as [Table, unknown[]][]) {
      if (rows.length === 0) continue;
      const all = byTable.get(table);
      if (all) all.push(...rows);
      else byTable.set(table, [...rows]);
    }
  }
  const statements = [...byTable].flatMap(([table, rows]) => insertJsonRows(d1, table, rows));
  if (statements.length === 0) return { ok: true, d1Calls: 0 };
  try {
    await d1.batch(statements);
    return { ok: true, d1Calls: 1 };
  } catch (e) {
    log.error("records not stored", { messages: messages.length, error: String(e) });
    return { ok: false, d1Calls: 1 };
  }
}
