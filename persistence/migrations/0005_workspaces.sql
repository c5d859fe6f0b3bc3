-- Workspaces (issue 10): each directive works on a result branch of its repository,
-- each step in a worktree of its own on a step branch; a passed step is merged into
-- the result branch. The branches and worktrees are named from the ids (see
-- directorate.actors.workspace.names); what is stored here is what cannot be
-- derived: where the repository is, what the work started from, and each step's
-- commits.
ALTER TABLE directives ADD COLUMN workspace jsonb NOT NULL DEFAULT '{}';
ALTER TABLE directives ADD COLUMN repository text;      -- the repository's top level
ALTER TABLE directives ADD COLUMN base_ref text;        -- the base branch, if a branch
ALTER TABLE directives ADD COLUMN base_sha text;        -- the commit the work started from
ALTER TABLE directives ADD COLUMN result_branch text;   -- NULL: no workspace (shared tree)
ALTER TABLE chain_steps ADD COLUMN branch text;
ALTER TABLE chain_steps ADD COLUMN head_sha text;       -- the step's last commit
ALTER TABLE chain_steps ADD COLUMN merge_sha text;      -- its merge into the result branch
-- The agent's own session id (Claude Code's session_id), to resume it on a rework.
ALTER TABLE tasks ADD COLUMN session_id text;
