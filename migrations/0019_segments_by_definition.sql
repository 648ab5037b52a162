-- The admin API refuses to remove a membership SKU or identity type that was granted: these answer "was it ever
-- granted?" with one index probe instead of a scan of every user's segments.
CREATE INDEX identity_segments_by_sku ON identity_segments (sku);
CREATE INDEX identity_segments_by_type ON identity_segments (identity_type);
