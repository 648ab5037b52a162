/**
 * Partial refunds of an order event: the items a refund names, checked against the order's own items and what earlier
 * refunds took, and what that leaves: the refunded share of the order's value (for `proportional`) and the order that
 * remains (for `reevaluate`). Pure: the caller reads the event and the refund state, and commits the next state.
 */
import { AppError, type FieldIssue } from "../errors";

/** An item a refund names: its sku and how many of it come back. */
export interface RefundItem {
  sku: string;
  qty: number;
}

/**
 * What the refunds of one event took, kept in the user's account beside its reversals (account-reversals.ts) and
 * changed only by a reversal's commit.
 */
export interface RefundState {
  /** Quantities refunded so far, by sku. */
  refunded: Record<string, number>;
  /** Per reward record (grant id): how much of it refunds took back so far, reclaimed or recorded as a shortfall. */
  taken: Record<string, number>;
  /** Requests whose every reward was taken back (a re-evaluation they no longer pass): later refunds skip them. */
  closed: string[];
  /** Nothing of the order remains: every item was refunded, or the event was cancelled whole. */
  complete: boolean;
  /** One more per commit: a plan made from an older state is refused. */
  version: number;
}

export const NO_REFUNDS: RefundState = { refunded: {}, taken: {}, closed: [], complete: false, version: 0 };

/** An order's items by sku: how many, and their value (minor units by price, or units when the items carry no price). */
export interface OrderItems {
  lines: Map<string, { qty: number; value: number }>;
  /** Whether values are by price (every item has one) or by quantity. */
  byValue: boolean;
  total: number;
}

/** The order's items from its event's payload (`items: [{sku, qty, price?}]`); refused when it has none to refund by. */
export function orderItems(payload: Record<string, unknown> | undefined, ref: string): OrderItems {
  const items = payload?.items;
  const lines = Array.isArray(items)
    ? items.filter(
        (i): i is { sku: string; qty: number; price?: unknown } =>
          typeof i === "object" && i !== null && typeof i.sku === "string" && Number.isInteger(i.qty) && i.qty > 0,
      )
    : [];
  if (!Array.isArray(items) || lines.length === 0 || lines.length !== items.length) {
    throw new AppError("INVALID_REFUND", `event ${ref} has no items [{sku, qty}] to refund by: only a whole cancel takes it back`, {}, [
      { pointer: "/items", message: "the order names no items" },
    ]);
  }
  const byValue = lines.every((l) => typeof l.price === "number" && Number.isFinite(l.price) && l.price >= 0);
  const out = new Map<string, { qty: number; value: number }>();
  for (const l of lines) {
    const line = out.get(l.sku) ?? { qty: 0, value: 0 };
    line.qty += l.qty;
    line.value += byValue ? Math.round((l.price as number) * 100) * l.qty : l.qty;
    out.set(l.sku, line);
  }
  const total = [...out.values()].reduce((n, l) => n + l.value, 0);
  return { lines: out, byValue, total };
}

/**
 * The refund's items summed by sku, checked against what remains of the order: every unknown sku and every quantity
 * beyond what remains is named (`at` is the JSON pointer of the refund's `items`).
 */
export function checkRefund(order: OrderItems, state: RefundState, items: RefundItem[], at: string): Map<string, number> {
  const issues: FieldIssue[] = [];
  const asked = new Map<string, number>();
  if (items.length === 0) issues.push({ pointer: at, message: "names no item" });
  items.forEach((item, i) => {
    const line = order.lines.get(item.sku);
    if (!line) {
      issues.push({ pointer: `${at}/${i}/sku`, message: `not an item of the order (${[...order.lines.keys()].join(", ")})` });
      return;
    }
    if (!Number.isInteger(item.qty) || item.qty < 1) {
      issues.push({ pointer: `${at}/${i}/qty`, message: "an integer ≥ 1" });
      return;
    }
    const total = (asked.get(item.sku) ?? 0) + item.qty;
    const remains = state.complete ? 0 : line.qty - (state.refunded[item.sku] ?? 0);
    if (total > remains) issues.push({ pointer: `${at}/${i}/qty`, message: `${remains} of ${item.sku} remain to refund` });
    asked.set(item.sku, total);
  });
  if (issues.length > 0)
    throw new AppError("INVALID_REFUND", `the refund does not fit the order: ${issues[0]!.pointer} ${issues[0]!.message}`, {}, issues);
  return asked;
}

/** The refunded quantities once `asked` is added (a whole cancel: everything). */
export function refundedAfter(order: OrderItems, state: RefundState, asked: Map<string, number> | "rest"): Record<string, number> {
  if (asked === "rest") return Object.fromEntries([...order.lines].map(([sku, l]) => [sku, l.qty]));
  const out = { ...state.refunded };
  for (const [sku, qty] of asked) out[sku] = (out[sku] ?? 0) + qty;
  return out;
}

/** Whether nothing of the order remains. */
export const isComplete = (order: OrderItems, refunded: Record<string, number>) =>
  [...order.lines].every(([sku, l]) => (refunded[sku] ?? 0) >= l.qty);

/** The refunded share of the order's value, 0 to 1 (a sku's value is spread evenly over its quantity). */
export function refundedShare(order: OrderItems, refunded: Record<string, number>): number {
  if (order.total === 0) return isComplete(order, refunded) ? 1 : 0;
  let value = 0;
  for (const [sku, l] of order.lines) value += (l.value * Math.min(refunded[sku] ?? 0, l.qty)) / l.qty;
  return Math.min(1, value / order.total);
}

/**
 * What of `amount` is due back once `share` of the order is refunded: rounded down (to a millionth first, so 0.3 × 10
 * is 3), so a refund never takes a unit the order still pays for; the refund that completes the order takes the rest.
 * Cumulative: each refund takes the difference from the one before, so the parts never add up to more than `amount`.
 */
export function dueByShare(amount: number, share: number): number {
  if (share >= 1) return amount;
  return Math.min(amount, Math.floor(Math.round(amount * share * 1e6) / 1e6));
}

/**
 * The order as it remains: each item's quantity less what was refunded of its sku (lines of a sku in order, dropped
 * at zero), and a numeric `amount` reduced by the refunded share of the value (to the cent).
 */
export function remainingPayload(payload: Record<string, unknown>, order: OrderItems, refunded: Record<string, number>): Record<string, unknown> {
  const left = new Map([...order.lines.keys()].map((sku) => [sku, refunded[sku] ?? 0]));
  const items = (payload.items as { sku: string; qty: number }[]).flatMap((item) => {
    const off = Math.min(left.get(item.sku) ?? 0, item.qty);
    left.set(item.sku, (left.get(item.sku) ?? 0) - off);
    return item.qty - off > 0 ? [{ ...item, qty: item.qty - off }] : [];
  });
  const out: Record<string, unknown> = { ...payload, items };
  if (typeof payload.amount === "number") out.amount = Math.round(payload.amount * (1 - refundedShare(order, refunded)) * 100) / 100;
  return out;
}
