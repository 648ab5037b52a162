/**
 * Drizzle schema of the D1 database. The SQL in `migrations/` is the source of truth; this mirrors it column for column,
 * key for key and index for index, and `npm run db:check` fails when the two disagree.
 */
import { index, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

export const configVersions = sqliteTable("config_versions", {
  hash: text("hash").primaryKey(),
  createdAt: integer("created_at").notNull(),
  fileCount: integer("file_count").notNull(),
  bundle: text("bundle").notNull(),
});

export const configActivations = sqliteTable("config_activations", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  hash: text("hash")
    .notNull()
    .references(() => configVersions.hash),
  activatedAt: integer("activated_at").notNull(),
  note: text("note").notNull().default(""),
});

export const requestRecords = sqliteTable(
  "request_records",
  {
    id: text("id").primaryKey(),
    namespace: text("namespace").notNull(),
    activityId: text("activity_id").notNull(),
    taskId: text("task_id").notNull(),
    userId: text("user_id"),
    configVersion: text("config_version").notNull(),
    outcome: text("outcome").notNull(),
    params: text("params").notNull(),
    createdAt: integer("created_at").notNull(),
    /** `<source>/<eventId>` of the business event a triggered run answered. */
    eventRef: text("event_ref"),
    /** The service key that called (an event's sender), "operator" for the admin API, null for a consumer's own run. */
    keyId: text("key_id"),
    /** The run's risk decision (JSON, src/risk/decision.ts), when its task has a risk scene. */
    risk: text("risk"),
  },
  (t) => [index("request_records_by_user").on(t.namespace, t.userId, t.createdAt), index("request_records_by_event").on(t.eventRef)],
);

/** Business events accepted by POST /v1/events: (source, eventId) is global, and names the account holding the outcome. */
export const events = sqliteTable(
  "events",
  {
    source: text("source").notNull(),
    eventId: text("event_id").notNull(),
    userId: text("user_id").notNull(),
    type: text("type").notNull(),
    fingerprint: text("fingerprint").notNull(),
    occurredAt: integer("occurred_at").notNull(),
    receivedAt: integer("received_at").notNull(),
    /** The service key that sent it (null for events Fanfare emits itself from a consumer's run). */
    keyId: text("key_id"),
    /** The payload as its type's schema read it (JSON), for partial refunds; null for events accepted before it was kept. */
    payload: text("payload"),
  },
  (t) => [primaryKey({ columns: [t.source, t.eventId] })],
);

/** Users' birthdays by "MM-DD", written beside the profile attribute (src/users/birthday-index.ts), read by the birthday cron. */
export const birthdays = sqliteTable(
  "birthdays",
  {
    userId: text("user_id").primaryKey(),
    monthDay: text("month_day").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [index("birthdays_by_day").on(t.monthDay, t.userId)],
);

/** A timezone's finished birthday run of a local day (src/events/birthdays.ts). */
export const birthdayRuns = sqliteTable(
  "birthday_runs",
  {
    timezone: text("timezone").notNull(),
    localDate: text("local_date").notNull(),
    emitted: integer("emitted").notNull(),
    finishedAt: integer("finished_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.timezone, t.localDate] })],
);

export const participations = sqliteTable(
  "participations",
  {
    id: text("id").primaryKey(),
    requestId: text("request_id").notNull().unique(),
    namespace: text("namespace").notNull(),
    activityId: text("activity_id").notNull(),
    taskId: text("task_id").notNull(),
    userId: text("user_id").notNull(),
    period: text("period").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("participations_by_user").on(t.namespace, t.userId, t.createdAt)],
);

export const rewardRecords = sqliteTable(
  "reward_records",
  {
    id: text("id").primaryKey(),
    requestId: text("request_id").notNull(),
    participationId: text("participation_id")
      .notNull()
      .references(() => participations.id),
    namespace: text("namespace").notNull(),
    activityId: text("activity_id").notNull(),
    taskId: text("task_id").notNull(),
    userId: text("user_id").notNull(),
    type: text("type").notNull(),
    amount: integer("amount").notNull(),
    detail: text("detail").notNull(),
    status: text("status").notNull(),
    /** The reward-tree node that gave it (e.g. `all/1/oneOf/0`). */
    nodePath: text("node_path"),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("reward_records_by_user").on(t.namespace, t.userId, t.createdAt), index("reward_records_by_task").on(t.namespace, t.taskId)],
);

export const deliveries = sqliteTable(
  "deliveries",
  {
    id: text("id").primaryKey(),
    kind: text("kind").notNull(),
    grantId: text("grant_id"),
    namespace: text("namespace").notNull(),
    userId: text("user_id").notNull(),
    target: text("target").notNull(),
    payload: text("payload").notNull(),
    status: text("status").notNull(),
    attempts: integer("attempts").notNull().default(0),
    lastError: text("last_error"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    /** A partner delivery's reference, from the partner's 2xx answer. */
    partnerRef: text("partner_ref"),
    /** What to undo when the delivery fails for good (JSON, src/partners/compensations.ts). */
    compensation: text("compensation"),
  },
  (t) => [index("deliveries_pending").on(t.status, t.updatedAt)],
);

export const couponWallet = sqliteTable(
  "coupon_wallet",
  {
    id: text("id").primaryKey(),
    deliveryId: text("delivery_id").notNull().unique(),
    namespace: text("namespace").notNull(),
    userId: text("user_id").notNull(),
    couponSn: text("coupon_sn").notNull(),
    channel: text("channel").notNull(),
    createdAt: integer("created_at").notNull(),
    revokedAt: integer("revoked_at"),
  },
  (t) => [index("coupon_wallet_by_user").on(t.userId, t.createdAt)],
);

/** A prize's later status; triggers (migrations/0006) apply it to its reward record or draw, whichever lands last. */
export const prizeStatuses = sqliteTable("prize_statuses", {
  grantId: text("grant_id").primaryKey(),
  status: text("status").notNull(),
});

export const prizeDraws = sqliteTable(
  "prize_draws",
  {
    id: text("id").primaryKey(),
    poolId: text("pool_id").notNull(),
    shard: integer("shard").notNull(),
    userId: text("user_id").notNull(),
    outcome: text("outcome").notNull(),
    tierId: text("tier_id"),
    value: integer("value").notNull(),
    at: integer("at").notNull(),
  },
  (t) => [index("prize_draws_by_pool").on(t.poolId, t.at)],
);

export const prizePools = sqliteTable("prize_pools", {
  id: text("id").primaryKey(),
  activityId: text("activity_id").notNull(),
  definition: text("definition").notNull(),
  createdAt: integer("created_at").notNull(),
});

export const flashSales = sqliteTable("flash_sales", {
  id: text("id").primaryKey(),
  definition: text("definition").notNull(),
  createdAt: integer("created_at").notNull(),
});

export const flashSaleGrabs = sqliteTable(
  "flash_sale_grabs",
  {
    id: text("id").primaryKey(),
    saleId: text("sale_id").notNull(),
    shard: integer("shard").notNull(),
    userId: text("user_id").notNull(),
    outcome: text("outcome").notNull(),
    token: text("token"),
    at: integer("at").notNull(),
  },
  (t) => [index("flash_sale_grabs_by_sale").on(t.saleId, t.at)],
);

export const flashSaleTokenEvents = sqliteTable(
  "flash_sale_token_events",
  { token: text("token").notNull(), status: text("status").notNull(), at: integer("at").notNull() },
  (t) => [primaryKey({ columns: [t.token, t.status] })],
);

export const flashSaleOrders = sqliteTable(
  "flash_sale_orders",
  {
    id: text("id").primaryKey(),
    token: text("token").notNull().unique(),
    saleId: text("sale_id").notNull(),
    sku: text("sku").notNull(),
    userId: text("user_id").notNull(),
    price: integer("price").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("flash_sale_orders_by_sale").on(t.saleId, t.createdAt)],
);

export const deadLetters = sqliteTable("dead_letters", {
  id: text("id").primaryKey(),
  queue: text("queue").notNull(),
  body: text("body").notNull(),
  attempts: integer("attempts").notNull(),
  receivedAt: integer("received_at").notNull(),
  /** When the body was sent back to its queue (a replay is done once). */
  replayedAt: integer("replayed_at"),
});

/**
 * Requests refused before a task ran (rate limits), counted per isolate and minute and flushed through the queue.
 * One row per flush (its id), summed when read: a redelivered flush is not counted twice.
 */
export const requestCounts = sqliteTable(
  "request_counts",
  {
    id: text("id").primaryKey(),
    scope: text("scope").notNull(),
    outcome: text("outcome").notNull(),
    minute: integer("minute").notNull(),
    count: integer("count").notNull(),
  },
  (t) => [index("request_counts_by_minute").on(t.minute, t.scope)],
);

/** Service credentials (src/service-keys): named keys with scopes, stored as hashes of their secrets. */
export const serviceKeys = sqliteTable("service_keys", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  scopes: text("scopes").notNull(),
  secretHash: text("secret_hash").notNull(),
  previousHash: text("previous_hash"),
  previousExpiresAt: integer("previous_expires_at"),
  createdAt: integer("created_at").notNull(),
  rotatedAt: integer("rotated_at"),
  revokedAt: integer("revoked_at"),
  lastUsedAt: integer("last_used_at"),
});

/** Entries of users' point ledgers, copied from their accounts (migrations/0008); one per source reference. */
export const pointEntries = sqliteTable(
  "point_entries",
  {
    userId: text("user_id").notNull(),
    program: text("program").notNull(),
    sourceRef: text("source_ref").notNull(),
    entryId: integer("entry_id").notNull(),
    type: text("type").notNull(),
    delta: integer("delta").notNull(),
    balanceAfter: integer("balance_after").notNull(),
    reason: text("reason").notNull(),
    detail: text("detail").notNull(),
    at: integer("at").notNull(),
    /** The service key of an adjustment (POST /v1/points/adjust); null for the ledger's own changes. */
    keyId: text("key_id"),
  },
  (t) => [primaryKey({ columns: [t.userId, t.program, t.sourceRef] }), index("point_entries_by_user").on(t.userId, t.program, t.entryId)],
);

/** Reversals of events and requests, copied from users' accounts (migrations/0010). */
export const reversals = sqliteTable(
  "reversals",
  {
    id: text("id").primaryKey(),
    ref: text("ref").notNull().unique(),
    userId: text("user_id").notNull(),
    status: text("status").notNull(),
    reason: text("reason").notNull(),
    eventRef: text("event_ref"),
    requestIds: text("request_ids").notNull(),
    createdAt: integer("created_at").notNull(),
    /** The service key that cancelled, or "operator" for the admin API's reverse. */
    keyId: text("key_id"),
  },
  (t) => [index("reversals_by_event").on(t.eventRef)],
);

/** One per reward record a reversal took back, or could not (migrations/0010). */
export const reversalEntries = sqliteTable(
  "reversal_entries",
  {
    reversalId: text("reversal_id").notNull(),
    grantId: text("grant_id").notNull(),
    requestId: text("request_id").notNull(),
    type: text("type").notNull(),
    amount: integer("amount").notNull(),
    status: text("status").notNull(),
    reclaimed: integer("reclaimed").notNull(),
    shortfall: integer("shortfall").notNull(),
    reason: text("reason"),
    detail: text("detail").notNull(),
  },
  (t) => [primaryKey({ columns: [t.reversalId, t.grantId] }), index("reversal_entries_by_request").on(t.requestId)],
);

/**
 * Users' identity segments (src/membership), copied from their accounts (migrations/0014): one row per revision of a
 * segment (granted, moved, revoked), so the copy is append-only like every record; the highest revision is current.
 */
export const identitySegments = sqliteTable(
  "identity_segments",
  {
    id: text("id").notNull(),
    revision: integer("revision").notNull(),
    userId: text("user_id").notNull(),
    sku: text("sku").notNull(),
    identityType: text("identity_type").notNull(),
    startAt: integer("start_at").notNull(),
    endAt: integer("end_at").notNull(),
    source: text("source").notNull(),
    channel: text("channel"),
    externalRef: text("external_ref").notNull(),
    status: text("status").notNull(),
    changedAt: integer("changed_at").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.id, t.revision] }),
    index("identity_segments_by_user").on(t.userId, t.identityType),
    index("identity_segments_by_ref").on(t.externalRef),
    index("identity_segments_by_sku").on(t.sku),
    index("identity_segments_by_type").on(t.identityType),
  ],
);

/**
 * Users' benefit entitlements (src/benefits/entitlements.ts), copied from their accounts (migrations/0018): one row per
 * revision, append-only like every record; the highest revision is current.
 */
export const entitlements = sqliteTable(
  "entitlements",
  {
    id: text("id").notNull(),
    revision: integer("revision").notNull(),
    userId: text("user_id").notNull(),
    benefitId: text("benefit_id").notNull(),
    materialId: text("material_id").notNull(),
    materialVersion: text("material_version").notNull(),
    segmentId: text("segment_id").notNull(),
    period: text("period").notNull(),
    status: text("status").notNull(),
    requestId: text("request_id"),
    delivered: text("delivered"),
    createdAt: integer("created_at").notNull(),
    changedAt: integer("changed_at").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.id, t.revision] }),
    index("entitlements_by_user").on(t.userId, t.benefitId),
    index("entitlements_by_segment").on(t.segmentId),
  ],
);

/** What code pools did with their codes: issued, consumed, returned (migrations/0015). */
export const codePoolEvents = sqliteTable(
  "code_pool_events",
  {
    id: text("id").primaryKey(),
    poolId: text("pool_id").notNull(),
    shard: integer("shard").notNull(),
    code: text("code").notNull(),
    event: text("event").notNull(),
    ref: text("ref").notNull(),
    at: integer("at").notNull(),
  },
  (t) => [index("code_pool_events_by_code").on(t.poolId, t.code), index("code_pool_events_by_ref").on(t.ref)],
);

export const partners = sqliteTable("partners", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  url: text("url").notNull(),
  redirectUrl: text("redirect_url").notNull(),
  dailyQuota: integer("daily_quota"),
  dailyBudget: integer("daily_budget"),
  pointsDeltaMin: integer("points_delta_min").notNull(),
  pointsDeltaMax: integer("points_delta_max").notNull(),
  program: text("program"),
  ticketTtlSeconds: integer("ticket_ttl_seconds").notNull(),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

export const partnerKeys = sqliteTable(
  "partner_keys",
  {
    partnerId: text("partner_id")
      .notNull()
      .references(() => partners.id),
    keyId: text("key_id").notNull(),
    ciphertext: text("ciphertext").notNull(),
    createdAt: integer("created_at").notNull(),
    retiredAt: integer("retired_at"),
  },
  (t) => [primaryKey({ columns: [t.partnerId, t.keyId] })],
);

export const partnerBenefits = sqliteTable(
  "partner_benefits",
  {
    benefitId: text("benefit_id").primaryKey(),
    partnerId: text("partner_id")
      .notNull()
      .references(() => partners.id),
  },
  (t) => [index("partner_benefits_by_partner").on(t.partnerId)],
);

export const partnerUsage = sqliteTable(
  "partner_usage",
  {
    deliveryId: text("delivery_id").primaryKey(),
    partnerId: text("partner_id").notNull(),
    day: text("day").notNull(),
    cost: integer("cost").notNull(),
    at: integer("at").notNull(),
  },
  (t) => [index("partner_usage_by_day").on(t.partnerId, t.day)],
);

export const partnerCallbacks = sqliteTable(
  "partner_callbacks",
  {
    partnerId: text("partner_id").notNull(),
    webhookId: text("webhook_id").notNull(),
    bodyHash: text("body_hash").notNull(),
    type: text("type"),
    ticketId: text("ticket_id"),
    status: text("status").notNull(),
    httpStatus: integer("http_status"),
    code: text("code"),
    message: text("message"),
    receivedAt: integer("received_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.partnerId, t.webhookId] })],
);

export const partnerAlerts = sqliteTable(
  "partner_alerts",
  {
    id: text("id").primaryKey(),
    partnerId: text("partner_id").notNull(),
    kind: text("kind").notNull(),
    detail: text("detail").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("partner_alerts_by_partner").on(t.partnerId, t.createdAt)],
);

/** The blacklist and the suspected list (src/risk/lists.ts): one row per list and subject, changes versioned. */
export const riskListEntries = sqliteTable(
  "risk_list_entries",
  {
    list: text("list").notNull(),
    subject: text("subject").notNull(),
    reason: text("reason").notNull(),
    actor: text("actor").notNull(),
    scene: text("scene"),
    evidence: text("evidence"),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at"),
    removedAt: integer("removed_at"),
    removedBy: text("removed_by"),
    removalReason: text("removal_reason"),
    version: integer("version").notNull(),
  },
  (t) => [primaryKey({ columns: [t.list, t.subject] }), index("risk_list_entries_by_version").on(t.version)],
);

/** The risk lists' version: each change takes the next one. */
export const riskListVersion = sqliteTable("risk_list_version", {
  id: integer("id").primaryKey(),
  version: integer("version").notNull(),
});

export const userSegmentLists = sqliteTable(
  "user_segment_lists",
  {
    segment: text("segment").notNull(),
    version: text("version").notNull(),
    shard: integer("shard").notNull(),
    ids: text("ids").notNull(),
  },
  (t) => [primaryKey({ columns: [t.segment, t.version, t.shard] })],
);

export const userSegmentUploads = sqliteTable(
  "user_segment_uploads",
  {
    segment: text("segment").notNull(),
    uploadId: text("upload_id").notNull(),
    fingerprint: text("fingerprint").notNull(),
    received: integer("received").notNull(),
    duplicates: integer("duplicates").notNull(),
    size: integer("size").notNull(),
    shards: integer("shards").notNull(),
    bytes: integer("bytes").notNull(),
    createdAt: integer("created_at").notNull(),
    activatedAt: integer("activated_at"),
  },
  (t) => [primaryKey({ columns: [t.segment, t.uploadId] })],
);

export const userSegments = sqliteTable("user_segments", {
  segment: text("segment").primaryKey(),
  version: text("version").notNull(),
  size: integer("size").notNull(),
  shards: integer("shards").notNull(),
  bytes: integer("bytes").notNull(),
  activatedAt: integer("activated_at").notNull(),
});
