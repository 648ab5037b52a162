/** The routes that can carry a rate limit of their own (ROUTE_RATE_LIMITS), beside tasks' and sales' limits in config. */
export const RATE_LIMITED_ROUTES = [
  "tasks",
  "flash-sale.grab",
  "flash-sale.checkout",
  "flash-sale.cancel",
  "flash-sale.status",
  "prize.claim",
  "ticket",
  "preview",
  "membership.activate",
  "activity-code",
  "benefit.redirect",
] as const;
