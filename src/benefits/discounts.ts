/**
 * Passive benefits at checkout: for each order item, the discounts the user's identities entitle now. Of several
 * discounts on one item the largest applies (they do not stack), so the order system can show what was taken off
 * and why. Pure: the caller reads the timeline.
 */
import type { MembershipProgram } from "../membership/program";
import type { Segment } from "../membership/timeline";
import type { BenefitCatalog } from "./catalog";
import type { DiscountRule } from "./material";
import { judge } from "./rights";

/** An order line as the order system sends it; prices in the currency's minor units. */
export interface OrderItem {
  itemId: string;
  category?: string;
  unitPrice: number;
  quantity: number;
}

export interface ItemDiscount {
  itemId: string;
  /** Taken off the line (all its units), in minor units; 0 when no discount applies. */
  off: number;
  applied: { benefitId: string; material: string; version: string; segmentId: string } | null;
}

/** What one unit of an item is discounted by a rule (never more than its price). */
function unitOff(rule: DiscountRule, item: OrderItem): number {
  if (rule.categories && (item.category === undefined || !rule.categories.includes(item.category))) return 0;
  const raw = rule.percentOff !== undefined ? Math.floor((item.unitPrice * rule.percentOff) / 100) : rule.amountOff!;
  return Math.min(raw, rule.maxOffPerItem ?? raw, item.unitPrice);
}

/** Each item's best discount among the catalog's discount benefits the user is entitled to at `now`. */
export function evaluateDiscounts(
  catalog: BenefitCatalog | undefined,
  program: MembershipProgram,
  segments: readonly Segment[],
  items: OrderItem[],
  now: number,
): ItemDiscount[] {
  const entitled = (catalog?.benefits ?? []).flatMap((b) => {
    if (b.material.type !== "discount") return [];
    const right = judge(b, { program, segments, now });
    return right.available ? [{ benefit: b, rule: b.material.discount, segment: right.segment }] : [];
  });
  return items.map((item) => {
    let best: ItemDiscount = { itemId: item.itemId, off: 0, applied: null };
    for (const d of entitled) {
      const off = unitOff(d.rule, item) * item.quantity;
      if (off > best.off) {
        const applied = { benefitId: d.benefit.id, material: d.benefit.material.id, version: d.benefit.material.version, segmentId: d.segment.id };
        best = { itemId: item.itemId, off, applied };
      }
    }
    return best;
  });
}
