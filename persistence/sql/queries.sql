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

-- name: directive
SELECT * FROM directives WHERE id = %(id)s;

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

-- name: cancel_running_tasks
UPDATE tasks SET status = 'cancelled', finished_at = now(),
       summary = coalesce(summary, 'cancelled: the directive was stopped')
WHERE directive_id = %(directive_id)s AND status IN ('queued', 'running');

-- name: cancel_pending_approvals
UPDATE directive_approvals SET status = 'cancelled', responded_at = now()
WHERE directive_id = %(directive_id)s AND status = 'pending';

-- name: require_live_chain
-- A guard for dispatching a step: its directive is active and its chain current,
-- so a dispatch that raced a pause, a stop or a regeneration changes nothing.
SELECT 1 FROM directives d JOIN directive_chains c ON c.directive_id = d.id
WHERE d.id = %(directive_id)s AND d.status = 'active'
  AND c.id = %(chain_id)s AND c.status = 'active';
