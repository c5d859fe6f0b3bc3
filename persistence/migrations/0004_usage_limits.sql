-- Limits beside dollars (issue 11): a token and an agent-turn breaker, fed from each
-- task's report, and the dollars left that a task was given when it was dispatched.
-- bigint throughout: a raised limit doubles, and totals add up over many tasks.
ALTER TABLE directives ADD COLUMN max_total_tokens bigint CHECK (max_total_tokens > 0);
ALTER TABLE directives ADD COLUMN total_tokens bigint NOT NULL DEFAULT 0
    CHECK (total_tokens >= 0);
ALTER TABLE directives ADD COLUMN max_agent_turns bigint CHECK (max_agent_turns > 0);
ALTER TABLE directives ADD COLUMN total_agent_turns bigint NOT NULL DEFAULT 0
    CHECK (total_agent_turns >= 0);
-- NULL: the agent reported no usable figure (unknown, not zero).
ALTER TABLE tasks ADD COLUMN tokens bigint CHECK (tokens >= 0);
ALTER TABLE tasks ADD COLUMN turns bigint CHECK (turns >= 0);
-- What DIRECTORATE_BUDGET_USD said; NULL: the directive has no dollar limit.
ALTER TABLE tasks ADD COLUMN budget_usd double precision CHECK (budget_usd >= 0);
