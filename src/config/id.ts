/** The ids operators choose for activities, tasks, pools, tiers and sales: safe in URLs, keys and Durable Object names. */
import { z } from "zod";

export const ConfigIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, "use letters, digits, '-' and '_' (at most 64)");
