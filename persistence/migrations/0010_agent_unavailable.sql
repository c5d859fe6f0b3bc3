-- An agent that could not reach its model (not logged in, key refused, network
-- down) pauses its directive and asks a human to retry (issue 15 point 4): a fifth
-- approval type. The inline CHECK of 0001 has PostgreSQL's default name.
ALTER TABLE directive_approvals DROP CONSTRAINT directive_approvals_approval_type_check;
ALTER TABLE directive_approvals ADD CONSTRAINT directive_approvals_approval_type_check
    CHECK (approval_type IN ('step_review', 'chain_blocked', 'circuit_breaker',
                             'directive_review', 'agent_unavailable'));
