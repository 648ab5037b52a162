/**
 * Benefit materials: what a benefit gives (a coupon, a redeem code from a code pool, a passive discount, or a
 * partner's benefit), declared under `materials:` beside the membership program. A material is immutable: its
 * version is a hash of its compiled content, so an edit is a new version and whatever keeps a version (an
 * entitlement, an answer) can tell that the material it names changed.
 */
import { z } from "zod";
import { ConfigIdSchema } from "../config/id";
import { canonicalJson, shardOf } from "../sharding";

export const MATERIAL_TYPES = ["coupon", "redeemCode", "discount", "thirdParty"] as const;
export type MaterialType = (typeof MATERIAL_TYPES)[number];

/** When a material's benefit reaches the user: with the identity's grant, when claimed, or once per month held. */
export const ISSUANCES = ["onIdentityGrant", "onClaim", "monthly"] as const;
export type Issuance = (typeof ISSUANCES)[number];

/** A discount applied to order items of the given categories (all items when absent), in the order's minor units. */
const DiscountRuleSchema = z
  .object({
    /** Percent off each matching item's price. */
    percentOff: z.number().gt(0).max(100).optional(),
    /** A fixed amount off each matching item (minor units, e.g. fen), never more than its price. */
    amountOff: z.number().int().min(1).optional(),
    /** The most taken off one item (minor units). */
    maxOffPerItem: z.number().int().min(1).optional(),
    categories: z.array(z.string().min(1).max(64)).min(1).optional(),
  })
  .strict()
  .refine((d) => (d.percentOff === undefined) !== (d.amountOff === undefined), "give exactly one of percentOff and amountOff");

const common = {
  name: z.string().min(1).optional(),
  /** Who supplies it (shown to users; a thirdParty material's partner is named by `partner`). */
  supplier: z.string().min(1).max(100),
  /** What it is worth to the user, in the minor units of the currency (shown, and summed in reports). */
  faceValue: z.number().int().min(0),
  issuance: z.enum(ISSUANCES),
};

export const MaterialSchema = z.discriminatedUnion("type", [
  z
    .object({
      type: z.literal("coupon"),
      ...common,
      coupon: z
        .object({
          couponSn: z.string().min(1),
          channel: z.string().min(1),
          /** An HTTP coupon center for this coupon (absent: COUPON_CENTER_URL, else the built-in wallet). */
          center: z.url({ protocol: /^https?$/ }).optional(),
        })
        .strict(),
    })
    .strict(),
  z.object({ type: z.literal("redeemCode"), ...common, codePool: ConfigIdSchema }).strict(),
  z.object({ type: z.literal("discount"), ...common, discount: DiscountRuleSchema }).strict(),
  z.object({ type: z.literal("thirdParty"), ...common, partner: ConfigIdSchema }).strict(),
]);
export const MaterialsSchema = z.record(ConfigIdSchema, z.unknown());

export type DiscountRule = z.output<typeof DiscountRuleSchema>;
type MaterialFields = z.output<typeof MaterialSchema>;

/** A compiled material: its content and the version that content hashes to. */
export type Material = MaterialFields & { id: string; name: string; version: string };

/** The material `id` declares, with its version: FNV-1a of its canonical JSON (the same content, the same version). */
export function material(id: string, fields: MaterialFields): Material {
  const content = { ...fields, name: fields.name ?? id };
  const version = `m${shardOf(canonicalJson(content), 2 ** 32)
    .toString(16)
    .padStart(8, "0")}`;
  return { ...content, id, version };
}
