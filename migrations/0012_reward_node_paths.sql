-- Each reward record names the node of the task's reward tree that gave it (e.g. all/1/oneOf/0).
ALTER TABLE reward_records ADD COLUMN node_path TEXT;
