-- A cancel is a request, not an outcome: the task's real report (and its cost)
-- is what finishes it. And a step says why it is where it is (a block's reason),
-- so no engine has to remember it.
ALTER TABLE tasks ADD COLUMN cancel_requested_at timestamptz;
ALTER TABLE tasks ADD COLUMN cancel_reason text;
ALTER TABLE chain_steps ADD COLUMN status_reason text;
