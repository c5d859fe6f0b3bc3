-- Named queries, loaded once by queries.py. Each starts with "-- name: <name>".

-- name: append_event
-- The directive row's lock serialises concurrent appends, so seq is gap-free:
-- a rolled-back transaction gives its number back with its event.
WITH next AS (
    UPDATE directives SET last_event_seq = last_event_seq + 1
    WHERE id = %(directive_id)s
    RETURNING last_event_seq
)
INSERT INTO directive_events
    (id, directive_id, seq, event_type, severity, data, actor_type, actor_id, step_id)
SELECT %(id)s, %(directive_id)s, next.last_event_seq, %(event_type)s, %(severity)s,
       %(data)s, %(actor_type)s, %(actor_id)s, %(step_id)s
FROM next
RETURNING seq;

-- name: add_cost
UPDATE directives SET total_cost_usd = total_cost_usd + %(cost)s, updated_at = now()
WHERE id = %(directive_id)s
RETURNING total_cost_usd;

-- name: add_usage
-- Add what a session that is not a task spent (a judge's, with its evaluation) to the
-- directive's totals: dollars, tokens and turns (NULL: unknown, adds nothing).
UPDATE directives
SET total_cost_usd = total_cost_usd + %(cost)s,
    total_tokens = total_tokens + coalesce(%(tokens)s::bigint, 0),
    total_agent_turns = total_agent_turns + coalesce(%(turns)s::bigint, 0),
    updated_at = now()
WHERE id = %(directive_id)s
RETURNING total_cost_usd, total_tokens, total_agent_turns;

-- name: directive
SELECT * FROM directives WHERE id = %(id)s;

-- name: directives_by_id
SELECT * FROM directives WHERE id = ANY(%(ids)s::uuid[]);

-- name: directives
SELECT * FROM directives ORDER BY created_at DESC LIMIT %(limit)s;

-- name: live_directives
SELECT * FROM directives WHERE status IN ('planning', 'active', 'paused') ORDER BY created_at;

-- name: current_chain
SELECT * FROM directive_chains WHERE directive_id = %(directive_id)s AND status = 'active';

-- name: chains
SELECT * FROM directive_chains WHERE directive_id = %(directive_id)s ORDER BY generation;

-- name: steps
SELECT * FROM chain_steps WHERE chain_id = %(chain_id)s ORDER BY editor_x, editor_y, name;

-- name: step
SELECT * FROM chain_steps WHERE id = %(id)s;

-- name: ready_steps
-- Pending steps of a chain whose every dependency has passed (or was skipped).
SELECT s.* FROM chain_steps s
WHERE s.chain_id = %(chain_id)s AND s.status = 'pending'
  AND NOT EXISTS (
      SELECT 1 FROM chain_steps d
      WHERE d.id = ANY (s.depends_on) AND d.status NOT IN ('passed', 'skipped'))
ORDER BY s.editor_x, s.editor_y, s.name;

-- name: events_after
SELECT * FROM directive_events
WHERE directive_id = %(directive_id)s AND seq > %(after)s
ORDER BY seq LIMIT %(limit)s;

-- name: pending_approvals
SELECT * FROM directive_approvals
WHERE status = 'pending' AND (%(directive_id)s::uuid IS NULL OR directive_id = %(directive_id)s)
ORDER BY created_at;

-- name: approval
SELECT * FROM directive_approvals WHERE id = %(id)s;

-- name: pending_commands
SELECT * FROM directive_commands WHERE status = 'pending' ORDER BY created_at LIMIT %(limit)s;

-- name: command
SELECT * FROM directive_commands WHERE id = %(id)s;

-- name: tasks_of_step
SELECT * FROM tasks WHERE step_id = %(step_id)s ORDER BY attempt, created_at;

-- name: tasks_of_directive
SELECT * FROM tasks WHERE directive_id = %(directive_id)s ORDER BY created_at;

-- name: task
SELECT * FROM tasks WHERE id = %(id)s;

-- name: evaluations_of_step
SELECT * FROM directive_evaluations WHERE step_id = %(step_id)s ORDER BY created_at;

-- name: evaluations_of_directive
SELECT * FROM directive_evaluations WHERE directive_id = %(directive_id)s ORDER BY created_at;

-- name: cancel_pending_approvals
UPDATE directive_approvals SET status = 'cancelled', responded_at = now()
WHERE directive_id = %(directive_id)s AND status = 'pending';

-- name: require_no_pending_approval
-- A guard for opening an approval there must be one of at most: none of its type is
-- pending for the directive (two steps whose agents could not reach their model at
-- once ask once: the writer applies writes in order, so the second sees the first's).
SELECT 1 FROM directives d
WHERE d.id = %(directive_id)s
  AND NOT EXISTS (SELECT 1 FROM directive_approvals a
                  WHERE a.directive_id = d.id AND a.status = 'pending'
                    AND a.approval_type = %(approval_type)s);

-- name: require_live_chain
-- A guard for dispatching a step: its directive is active and its chain current,
-- so a dispatch that raced a pause, a stop or a regeneration changes nothing.
SELECT 1 FROM directives d JOIN directive_chains c ON c.directive_id = d.id
WHERE d.id = %(directive_id)s AND d.status = 'active'
  AND c.id = %(chain_id)s AND c.status = 'active';

-- name: directive_state
-- What the directive actor decides on, in one round trip: the directive, its current
-- chain and that chain's steps, its pending approvals, its latest planning task, and
-- the steps of its latest superseded chain (carry-over, and how that chain failed).
SELECT to_jsonb(d) AS directive,
       (SELECT to_jsonb(c) FROM directive_chains c
        WHERE c.directive_id = d.id AND c.status = 'active') AS chain,
       (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.editor_x, s.editor_y, s.name), '[]')
        FROM chain_steps s JOIN directive_chains c ON c.id = s.chain_id
        WHERE c.directive_id = d.id AND c.status = 'active') AS steps,
       (SELECT coalesce(jsonb_agg(to_jsonb(a) ORDER BY a.created_at), '[]')
        FROM directive_approvals a
        WHERE a.directive_id = d.id AND a.status = 'pending') AS approvals,
       (SELECT to_jsonb(t) - 'instructions' - 'output_tail' FROM tasks t
        WHERE t.directive_id = d.id AND t.kind = 'planning'
        ORDER BY t.created_at DESC LIMIT 1) AS planning,
       (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.name), '[]')
        FROM chain_steps s
        WHERE s.chain_id = (SELECT c.id FROM directive_chains c
                            WHERE c.directive_id = d.id AND c.status = 'superseded'
                            ORDER BY c.generation DESC LIMIT 1)
          AND s.status IN ('passed', 'blocked')) AS superseded_steps
FROM directives d WHERE d.id = %(id)s;

-- name: step_state
-- What a step actor decides on: its step, its directive, whether the step's chain is
-- current, its dependencies' statuses, its last evaluation's rework instructions, its
-- latest task and the few before it (``core.unavailable``: the same failure again?),
-- and whether a human is asked about it, about a circuit breaker or about an agent
-- that could not reach its model. (The directive's explicit steps, which only its
-- start needs, are left out.)
SELECT to_jsonb(s) AS step,
       to_jsonb(d) - 'explicit_steps' AS directive,
       (c.status = 'active') AS chain_current,
       (SELECT coalesce(jsonb_agg(dep.status), '[]') FROM chain_steps dep
        WHERE dep.id = ANY (s.depends_on)) AS dependency_statuses,
       (SELECT e.rework_instructions FROM directive_evaluations e
        WHERE e.id = s.last_evaluation_id) AS rework_instructions,
       (SELECT to_jsonb(t) - 'instructions' FROM tasks t
        WHERE t.step_id = s.id ORDER BY t.attempt DESC, t.created_at DESC LIMIT 1) AS last_task,
       (SELECT coalesce(jsonb_agg(e.task ORDER BY e.attempt DESC, e.created_at DESC), '[]')
        FROM (SELECT to_jsonb(t) - 'instructions' AS task, t.attempt, t.created_at FROM tasks t
              WHERE t.step_id = s.id ORDER BY t.attempt DESC, t.created_at DESC
              OFFSET 1 LIMIT 4) e) AS earlier_tasks,  -- core.unavailable.EARLIER_TASKS
       EXISTS (SELECT 1 FROM directive_approvals a
               WHERE a.step_id = s.id AND a.status = 'pending'
                 AND a.approval_type = 'step_review') AS review_pending,
       EXISTS (SELECT 1 FROM directive_approvals a
               WHERE a.directive_id = d.id AND a.status = 'pending'
                 AND a.approval_type = 'circuit_breaker') AS breaker_open,
       EXISTS (SELECT 1 FROM directive_approvals a
               WHERE a.directive_id = d.id AND a.status = 'pending'
                 AND a.approval_type = 'agent_unavailable') AS unavailable_pending
FROM chain_steps s
JOIN directives d ON d.id = s.directive_id
JOIN directive_chains c ON c.id = s.chain_id
WHERE s.id = %(id)s;

-- name: record_task_result
-- Store a task's outcome once (a later report for the same task changes nothing) and
-- add its cost, tokens and turns to the directive's totals in the same statement (an
-- unknown count, NULL, adds nothing). Returns the cost total, whether this report was
-- the one stored, then the token and turn totals.
WITH done AS (
    UPDATE tasks SET status = %(status)s, exit_code = %(exit_code)s, cost_usd = %(cost)s,
           tokens = %(tokens)s, turns = %(turns)s,
           summary = %(summary)s, output_tail = %(output_tail)s,
           session_id = %(session_id)s, finished_at = now()
    WHERE id = %(id)s AND finished_at IS NULL
    RETURNING cost_usd, tokens, turns
)
UPDATE directives
SET total_cost_usd = total_cost_usd + coalesce((SELECT sum(cost_usd) FROM done), 0),
    total_tokens = total_tokens + coalesce((SELECT sum(tokens) FROM done), 0),
    total_agent_turns = total_agent_turns + coalesce((SELECT sum(turns) FROM done), 0),
    updated_at = now()
WHERE id = %(directive_id)s
RETURNING total_cost_usd, (SELECT count(*) FROM done), total_tokens, total_agent_turns;

-- name: record_task_process
-- Record which processes run a task (its agent, the agent's group, the supervisor,
-- their start times, the host), while the task is unfinished.
UPDATE tasks SET pid = %(pid)s, pgid = %(pgid)s, host = %(host)s,
       process_started_at = %(process_started_at)s, supervisor_pid = %(supervisor_pid)s,
       supervisor_started_at = %(supervisor_started_at)s, engine_id = %(engine_id)s
WHERE id = %(id)s AND finished_at IS NULL;

-- name: request_cancel_tasks
-- Ask for a directive's running tasks to stop. Only a request: each task's own report
-- (its status, its cost) is what finishes it.
UPDATE tasks SET cancel_requested_at = coalesce(cancel_requested_at, now()),
       cancel_reason = coalesce(cancel_reason, %(reason)s)
WHERE directive_id = %(directive_id)s AND finished_at IS NULL;

-- name: abandon_tasks
-- Finish the unfinished tasks of a directive that no agent of this engine runs any
-- more (their engine is gone): cancelled, at no recorded cost.
UPDATE tasks SET status = 'cancelled', finished_at = now(),
       summary = coalesce(summary, %(summary)s)
WHERE directive_id = %(directive_id)s AND finished_at IS NULL
  AND (%(step_id)s::uuid IS NULL OR step_id = %(step_id)s)
  AND id <> ALL (%(live)s::uuid[]);

-- name: due_directives
-- Which of these directives a tick must look at: an approval has expired, or the
-- wall-time limit has passed and no circuit breaker is asking about it yet.
SELECT d.id FROM directives d
WHERE d.id = ANY (%(ids)s::uuid[])
  AND (EXISTS (SELECT 1 FROM directive_approvals a
               WHERE a.directive_id = d.id AND a.status = 'pending' AND a.expires_at <= now())
       OR (d.status IN ('active', 'planning') AND d.max_wall_time_minutes IS NOT NULL
           AND d.started_at IS NOT NULL
           AND d.started_at + d.max_wall_time_minutes * interval '1 minute' <= now()
           AND NOT EXISTS (SELECT 1 FROM directive_approvals a
                           WHERE a.directive_id = d.id AND a.status = 'pending'
                             AND a.approval_type = 'circuit_breaker')));

-- name: steps_in_progress
-- How many steps of a chain are at work (ready, running, evaluating, sent back) or
-- about to be (pending with every dependency passed), seen from inside a write: when
-- none is, the chain is done or blocked, and its directive has to decide what follows.
SELECT count(*) FROM chain_steps s
WHERE s.chain_id = %(chain_id)s
  AND (s.status IN ('ready', 'running', 'evaluating', 'rework')
       OR (s.status = 'pending'
           AND NOT EXISTS (SELECT 1 FROM chain_steps d
                           WHERE d.id = ANY (s.depends_on)
                             AND d.status NOT IN ('passed', 'skipped'))));

-- name: steps_in_progress_after_move
-- steps_in_progress as the RETURNING of one step's move (ops.move_step): the
-- statement's own snapshot still shows the step as it was, so the step counts by its
-- new status (%(status)s), and a dependency on it is judged by that status too.
(SELECT count(*) FROM chain_steps s
 WHERE s.chain_id = chain_steps.chain_id AND s.id <> chain_steps.id
   AND (s.status IN ('ready', 'running', 'evaluating', 'rework')
        OR (s.status = 'pending'
            AND NOT EXISTS (SELECT 1 FROM chain_steps d
                            WHERE d.id = ANY (s.depends_on)
                              AND CASE WHEN d.id = chain_steps.id THEN %(status)s
                                       ELSE d.status END NOT IN ('passed', 'skipped')))))
+ CASE WHEN %(status)s IN ('ready', 'running', 'evaluating', 'rework') THEN 1 ELSE 0 END;

-- name: append_events
-- Append a write's events in one statement: the directive's counter moves by their
-- number under its row lock (gap-free; a rollback gives the numbers back), and each
-- event takes the next number in the order given. Returns each event's id and seq.
-- An engine's write (an owner given) appends only while it holds the directive's
-- lease at that epoch (DESIGN §17): the counter's UPDATE takes the row lock and sees
-- the latest lease, so a takeover committed first makes it insert no row (a guard),
-- and one committed after waits for this write and then sees it.
WITH next AS (
    UPDATE directives SET last_event_seq = last_event_seq + %(n)s
    WHERE id = %(directive_id)s
      AND (%(owner)s::uuid IS NULL
           OR (lease_owner = %(owner)s::uuid AND lease_epoch = %(epoch)s::bigint))
    RETURNING last_event_seq - %(n)s AS base
)
INSERT INTO directive_events
    (id, directive_id, seq, event_type, severity, data, actor_type, actor_id, step_id)
SELECT e.id, %(directive_id)s, next.base + e.ord, e.event_type, e.severity, e.data,
       e.actor_type, e.actor_id, e.step_id
FROM next,
     ROWS FROM (jsonb_to_recordset(%(events)s)
                AS (id uuid, event_type text, severity text, data jsonb, actor_type text,
                    actor_id text, step_id uuid))
         WITH ORDINALITY AS e(id, event_type, severity, data, actor_type, actor_id, step_id, ord)
RETURNING id::text, seq;

-- name: append_events_of_batch
-- The events of a batch's writes, for any number of directives, in one statement
-- (the writer merges the writes' append_events): each directive's counter moves by
-- its events' number, under its row lock, if its fence holds (one per directive in
-- a batch); each event takes the next number in the order given. Returns each
-- appended event's id and seq; a directive whose fence failed appends none.
WITH fences AS (
    SELECT * FROM jsonb_to_recordset(%(directives)s)
        AS (directive_id uuid, n bigint, owner uuid, epoch bigint)
), next AS (
    UPDATE directives d SET last_event_seq = d.last_event_seq + f.n
    FROM fences f
    WHERE d.id = f.directive_id
      AND (f.owner IS NULL OR (d.lease_owner = f.owner AND d.lease_epoch = f.epoch))
    RETURNING d.id, d.last_event_seq - f.n AS base
)
INSERT INTO directive_events
    (id, directive_id, seq, event_type, severity, data, actor_type, actor_id, step_id)
SELECT e.id, e.directive_id,
       next.base + row_number() OVER (PARTITION BY e.directive_id ORDER BY e.ord),
       e.event_type, e.severity, e.data, e.actor_type, e.actor_id, e.step_id
FROM ROWS FROM (jsonb_to_recordset(%(events)s)
                AS (directive_id uuid, id uuid, event_type text, severity text, data jsonb,
                    actor_type text, actor_id text, step_id uuid))
         WITH ORDINALITY AS e(directive_id, id, event_type, severity, data, actor_type,
                              actor_id, step_id, ord)
JOIN next ON next.id = e.directive_id
RETURNING id::text, seq;

-- name: fence
-- The guard of an engine's write that appends no event: it still holds the lease at
-- this epoch. Locks the directive's row, as append_events_fenced does.
SELECT 1 FROM directives
WHERE id = %(directive_id)s AND lease_owner = %(owner)s AND lease_epoch = %(epoch)s
FOR NO KEY UPDATE;

-- name: register_engine
-- An engine process starts. Rows of engines stopped a week ago that own nothing go.
WITH gone AS (
    DELETE FROM engines e
    WHERE e.stopped_at < now() - interval '7 days'
      AND NOT EXISTS (SELECT 1 FROM directives d WHERE d.lease_owner = e.id)
)
INSERT INTO engines (id, host, pid, version, takes_over, expires_at)
VALUES (%(id)s, %(host)s, %(pid)s, %(version)s, %(takes_over)s,
        now() + make_interval(secs => %(ttl)s))
RETURNING expires_at;

-- name: engine_heartbeat
-- Renew every lease of the engine at once: they expire with its row.
UPDATE engines SET heartbeat_at = now(), expires_at = now() + make_interval(secs => %(ttl)s)
WHERE id = %(id)s AND stopped_at IS NULL
RETURNING expires_at;

-- name: leases_of_engine
-- The leases an engine holds now (after its heartbeat: one taken while it was away
-- is missing, or at a newer epoch).
SELECT id, lease_epoch FROM directives WHERE lease_owner = %(id)s;

-- name: lease_sum_of_engine
-- The same leases in three numbers (ownership.LeaseSum): how many, the sum of their
-- epochs, the sum of their ids' first 60 bits (the first 15 hex digits).
SELECT count(*), coalesce(sum(lease_epoch), 0),
       coalesce(sum(('x' || left(replace(id::text, '-', ''), 15))::bit(60)::bigint), 0)
FROM directives WHERE lease_owner = %(id)s;

-- name: stop_engine
UPDATE engines SET stopped_at = now(), expires_at = now() WHERE id = %(id)s;

-- name: claim_directives
-- Take the leases of directives that are free (no owner) or expired (their owner's
-- row has expired or stopped), with the given statuses, all or only %(ids)s, at most
-- %(limit)s. Safe when engines claim at once: a row another claim holds is skipped,
-- and one it took meanwhile is checked again on its new version (its owner, alive,
-- is not among the dead). Returns each directive's new epoch and whom it was from.
WITH dead AS (
    SELECT id FROM engines WHERE expires_at <= now() OR stopped_at IS NOT NULL
), claimable AS (
    SELECT d.id, d.lease_owner AS previous FROM directives d
    WHERE d.status = ANY (%(statuses)s)
      AND d.status NOT IN ('completed', 'failed', 'cancelled')  -- nothing to drive
      AND (d.lease_owner IS NULL OR d.lease_owner IN (SELECT id FROM dead))
      AND d.lease_owner IS DISTINCT FROM %(me)s
      AND (%(ids)s::uuid[] IS NULL OR d.id = ANY (%(ids)s::uuid[]))
    ORDER BY d.created_at
    LIMIT %(limit)s
    FOR NO KEY UPDATE SKIP LOCKED
)
UPDATE directives d
SET lease_owner = %(me)s, lease_epoch = d.lease_epoch + 1, lease_acquired_at = now()
FROM claimable c LEFT JOIN engines e ON e.id = c.previous
WHERE d.id = c.id
RETURNING d.id, d.lease_epoch, c.previous, e.host, e.pid,
          extract(epoch FROM now() - e.heartbeat_at)::float8 AS silent_s,
          extract(epoch FROM now() - e.expires_at)::float8 AS expired_s;

-- name: release_lease
-- Give a lease up (the engine stops, or `run` exits): the next engine takes it at once.
UPDATE directives SET lease_owner = NULL
WHERE id = %(directive_id)s AND lease_owner = %(owner)s AND lease_epoch = %(epoch)s;

-- name: lease_of
SELECT d.lease_owner, d.lease_epoch, e.host, e.pid, e.expires_at > now() AS alive,
       e.stopped_at IS NULL AS running
FROM directives d LEFT JOIN engines e ON e.id = d.lease_owner
WHERE d.id = %(directive_id)s;

-- name: engines
-- Every engine that has not been stopped for a day, with its heartbeat's age and the
-- unfinished directives it holds the leases of.
SELECT e.*, extract(epoch FROM now() - e.heartbeat_at)::float8 AS heartbeat_age_s,
       e.stopped_at IS NULL AND e.expires_at > now() AS alive,
       coalesce(array_agg(d.id ORDER BY d.created_at) FILTER (WHERE d.id IS NOT NULL),
                '{}') AS directives
FROM engines e
LEFT JOIN directives d
       ON d.lease_owner = e.id AND d.status IN ('draft', 'planning', 'active', 'paused')
WHERE e.stopped_at IS NULL OR e.stopped_at > now() - interval '1 day'
   OR d.id IS NOT NULL
GROUP BY e.id
ORDER BY e.started_at;


-- name: record_stale_attempt
-- The report of an agent whose engine lost the lease meanwhile: what it cost is added
-- to the task and the directive once, and what it said is kept where nothing was yet;
-- the task's status is left to the directive's owner. Returns the rows it recorded.
WITH done AS (
    UPDATE tasks SET cost_usd = cost_usd + %(cost)s,
           tokens = CASE WHEN %(tokens)s::bigint IS NULL THEN tokens
                         ELSE coalesce(tokens, 0) + %(tokens)s::bigint END,
           turns = CASE WHEN %(turns)s::bigint IS NULL THEN turns
                        ELSE coalesce(turns, 0) + %(turns)s::bigint END,
           exit_code = coalesce(exit_code, %(exit_code)s),
           summary = coalesce(summary, %(summary)s),
           output_tail = coalesce(output_tail, %(output_tail)s),
           stale_reported_at = now()
    WHERE id = %(id)s AND stale_reported_at IS NULL
    RETURNING id
)
UPDATE directives
SET total_cost_usd = total_cost_usd + %(cost)s,
    total_tokens = total_tokens + coalesce(%(tokens)s::bigint, 0),
    total_agent_turns = total_agent_turns + coalesce(%(turns)s::bigint, 0),
    updated_at = now()
WHERE id = %(directive_id)s AND EXISTS (SELECT 1 FROM done)
RETURNING (SELECT count(*) FROM done);

-- name: finished_directives
-- Those of these directives that are finished with none of their tasks unfinished:
-- nothing of theirs is left to drive or to record, so their leases can go.
SELECT d.id FROM directives d
WHERE d.id = ANY (%(ids)s::uuid[])
  AND d.status IN ('completed', 'failed', 'cancelled')
  AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.directive_id = d.id AND t.finished_at IS NULL);
