-- Which processes run a task, written as soon as its agent runs: an engine that
-- takes the task's step up after its own crash or another engine's makes sure,
-- on the same host, that this agent is gone before the next attempt starts
-- (DESIGN §18). A pid names one process only with its start time: a pid whose
-- process started at another time has been reused and is never touched.
ALTER TABLE tasks ADD COLUMN pid integer;
ALTER TABLE tasks ADD COLUMN pgid integer;
ALTER TABLE tasks ADD COLUMN host text;
ALTER TABLE tasks ADD COLUMN process_started_at timestamptz;
ALTER TABLE tasks ADD COLUMN supervisor_pid integer;
ALTER TABLE tasks ADD COLUMN supervisor_started_at timestamptz;
