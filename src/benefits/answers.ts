/** What the benefit routes answer about entitlements: their schema, shared by the user's, the operator's and the service's routes. */
import { z } from "@hono/zod-openapi";
import { ENTITLEMENT_STATUSES } from "./entitlements";
import { MATERIAL_TYPES } from "./material";

export const EntitlementSchema = z
  .object({
    id: z.string(),
    benefitId: z.string(),
    material: z.object({
      id: z.string(),
      version: z.string().openapi({ description: "The material's version when the entitlement was made: a later edit of the material keeps it" }),
      type: z.enum(MATERIAL_TYPES),
    }),
    segmentId: z.string().openapi({ description: "The identity segment that entitles it" }),
    period: z
      .string()
      .openapi({ description: "The month (`2026-11`) of a monthly one or of a claim, or the segment id of one given with the identity" }),
    status: z.enum(ENTITLEMENT_STATUSES).openapi({
      description:
        "available (made, not yet given), claimed (given; its delivery on its way), delivered, failed (the delivery failed for good: " +
        "its price came back), used, revoked (its identity was refunded: its price came back and what was given was reclaimed), expired (an available one whose segment ended or month passed before it " +
        "was given, or a delivered one not used by its `expiresAt`: it keeps its quota unit and its price)",
    }),
    requestId: z.string().nullable().openapi({ description: "The run that gave it (a claim, or its issuance)" }),
    delivered: z
      .object({
        grantId: z.string(),
        couponSn: z.string().optional(),
        channel: z.string().optional(),
        pool: z.string().optional(),
        code: z.string().optional(),
        partner: z.string().optional(),
        deliveryId: z.string().optional(),
        partnerRef: z.string().optional().openapi({ description: "The partner's reference for a delivered third-party benefit" }),
        expiresAt: z.iso
          .datetime()
          .optional()
          .openapi({ description: "When it expires unless used: the benefit's `validity` from the run that gave it (absent: never)" }),
      })
      .nullable()
      .openapi({ description: "What was given: the grant, its coupon, code or partner delivery" }),
    createdAt: z.iso.datetime(),
    changedAt: z.iso.datetime(),
  })
  .openapi("BenefitEntitlement");
