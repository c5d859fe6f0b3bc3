-- Ownership (issue 12, DESIGN §17): many engines on one database. Each engine process
-- has a row, kept alive by its heartbeat; a directive is driven only by the engine
-- named in its lease, and every write for it is fenced by owner and epoch.
--
-- A lease's expiry is its owner's: an engine's heartbeat renews all of its leases in
-- one row, and a directive's lease is free when its owner is NULL, or expired when
-- its owner's row has expired or stopped (all in database time). The epoch grows on
-- every change of owner, so a write from an engine that lost the lease (one whose
-- fence names an older epoch) matches no row and changes nothing.
CREATE TABLE engines (
    id uuid PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    version text NOT NULL,
    takes_over boolean NOT NULL DEFAULT true,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    stopped_at timestamptz
);
ALTER TABLE directives ADD COLUMN lease_owner uuid;
ALTER TABLE directives ADD COLUMN lease_epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE directives ADD COLUMN lease_acquired_at timestamptz;
CREATE INDEX directives_live_lease ON directives (lease_owner)
    WHERE status IN ('planning', 'active', 'paused');
-- Which engine ran each task (a stale attempt is told apart from the owner's).
ALTER TABLE tasks ADD COLUMN engine_id uuid;
-- A report from an agent of an engine that had lost the lease: its cost is counted,
-- its outcome is never the step's (the new owner's recovery decides the task).
ALTER TABLE tasks ADD COLUMN stale_reported_at timestamptz;
