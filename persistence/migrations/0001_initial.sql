-- directorate schema, generation 1 (DESIGN §4).
-- Every status column has a CHECK with the values of its StrEnum in models.py.

CREATE TABLE directives (
    id                          uuid PRIMARY KEY,
    title                       text NOT NULL,
    goal                        text NOT NULL,
    status                      text NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'planning', 'active', 'paused', 'completed', 'failed', 'cancelled')),
    requirements                jsonb NOT NULL DEFAULT '[]',
    acceptance_criteria         jsonb NOT NULL DEFAULT '[]',
    constraints                 jsonb NOT NULL DEFAULT '[]',
    repository_url              text,
    base_branch                 text,
    local_path                  text,
    autonomy_level              text NOT NULL DEFAULT 'guardrails'
        CHECK (autonomy_level IN ('full_auto', 'guardrails', 'manual')),
    confidence_threshold_green  double precision NOT NULL DEFAULT 0.8,
    confidence_threshold_yellow double precision NOT NULL DEFAULT 0.5,
    max_total_cost_usd          double precision CHECK (max_total_cost_usd > 0),
    total_cost_usd              double precision NOT NULL DEFAULT 0 CHECK (total_cost_usd >= 0),
    max_wall_time_minutes       double precision CHECK (max_wall_time_minutes > 0),
    started_at                  timestamptz,
    max_rework_cycles           integer NOT NULL DEFAULT 3 CHECK (max_rework_cycles >= 0),
    max_chain_regenerations     integer CHECK (max_chain_regenerations >= 0),
    chain_generation_count      integer NOT NULL DEFAULT 0,
    owner_id                    text,
    explicit_steps              jsonb,
    verifier_config             jsonb,
    agent                       jsonb,
    -- The last event sequence number handed out; bumped in the same transaction
    -- as the event insert, so the row lock makes numbers gap-free under concurrency.
    last_event_seq              bigint NOT NULL DEFAULT 0,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    completed_at                timestamptz,
    CHECK (0 <= confidence_threshold_yellow
           AND confidence_threshold_yellow <= confidence_threshold_green
           AND confidence_threshold_green <= 1)
);
CREATE INDEX directives_live ON directives (status)
    WHERE status IN ('planning', 'active', 'paused');

CREATE TABLE directive_chains (
    id            uuid PRIMARY KEY,
    directive_id  uuid NOT NULL REFERENCES directives (id) ON DELETE CASCADE,
    generation    integer NOT NULL CHECK (generation >= 1),
    name          text NOT NULL,
    description   text NOT NULL DEFAULT '',
    rationale     text,
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'superseded')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (directive_id, generation)
);
-- At most one current chain per directive.
CREATE UNIQUE INDEX directive_chains_one_active ON directive_chains (directive_id)
    WHERE status = 'active';

CREATE TABLE chain_steps (
    id                  uuid PRIMARY KEY,
    chain_id            uuid NOT NULL REFERENCES directive_chains (id) ON DELETE CASCADE,
    directive_id        uuid NOT NULL REFERENCES directives (id) ON DELETE CASCADE,
    name                text NOT NULL CHECK (name ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    step_type           text NOT NULL
        CHECK (step_type IN ('research', 'design', 'implement', 'test', 'review', 'document')),
    description         text NOT NULL DEFAULT '',
    task_plan           text,
    depends_on          uuid[] NOT NULL DEFAULT '{}',
    requirement_ids     jsonb NOT NULL DEFAULT '[]',
    verifier_config     jsonb,
    editor_x            double precision NOT NULL DEFAULT 100,
    editor_y            double precision NOT NULL DEFAULT 100,
    status              text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'ready', 'running', 'evaluating', 'passed', 'rework',
                          'blocked', 'failed', 'skipped')),
    rework_count        integer NOT NULL DEFAULT 0 CHECK (rework_count >= 0),
    attempt             integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    confidence_score    double precision CHECK (confidence_score BETWEEN 0 AND 1),
    confidence_level    text CHECK (confidence_level IN ('green', 'yellow', 'red')),
    last_evaluation_id  uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (chain_id, name)
);
CREATE INDEX chain_steps_by_chain_status ON chain_steps (chain_id, status);

CREATE TABLE tasks (
    id            uuid PRIMARY KEY,
    directive_id  uuid NOT NULL REFERENCES directives (id) ON DELETE CASCADE,
    step_id       uuid REFERENCES chain_steps (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('planning', 'step')),
    attempt       integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    status        text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled')),
    instructions  text NOT NULL,
    workdir       text,
    exit_code     integer,
    cost_usd      double precision NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    summary       text,
    output_tail   text,
    log_path      text,
    plan_file     text,
    started_at    timestamptz,
    finished_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'step') = (step_id IS NOT NULL))
);
CREATE INDEX tasks_by_step ON tasks (step_id, attempt);
CREATE INDEX tasks_by_directive ON tasks (directive_id, created_at);

CREATE TABLE directive_evaluations (
    id                    uuid PRIMARY KEY,
    directive_id          uuid NOT NULL REFERENCES directives (id) ON DELETE CASCADE,
    chain_id              uuid REFERENCES directive_chains (id) ON DELETE CASCADE,
    step_id               uuid REFERENCES chain_steps (id) ON DELETE CASCADE,
    task_id               uuid REFERENCES tasks (id) ON DELETE SET NULL,
    passed                boolean NOT NULL,
    composite_score       double precision NOT NULL CHECK (composite_score BETWEEN 0 AND 1),
    confidence_level      text NOT NULL CHECK (confidence_level IN ('green', 'yellow', 'red')),
    programmatic_results  jsonb NOT NULL DEFAULT '[]',
    llm_results           jsonb NOT NULL DEFAULT '[]',
    criteria_results      jsonb NOT NULL DEFAULT '[]',
    summary               text NOT NULL DEFAULT '',
    rework_instructions   text,
    created_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX directive_evaluations_by_step ON directive_evaluations (step_id, created_at);
CREATE INDEX directive_evaluations_by_directive ON directive_evaluations (directive_id);

CREATE TABLE directive_approvals (
    id             uuid PRIMARY KEY,
    directive_id   uuid NOT NULL REFERENCES directives (id) ON DELETE CASCADE,
    step_id        uuid REFERENCES chain_steps (id) ON DELETE CASCADE,
    approval_type  text NOT NULL
        CHECK (approval_type IN ('step_review', 'chain_blocked', 'circuit_breaker',
                                 'directive_review')),
    status         text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'cancelled')),
    description    text NOT NULL,
    context        jsonb NOT NULL DEFAULT '{}',
    responded_by   text,
    response_note  text,
    expires_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    responded_at   timestamptz
);
CREATE INDEX directive_approvals_pending ON directive_approvals (directive_id, created_at)
    WHERE status = 'pending';

CREATE TABLE directive_events (
    id            uuid PRIMARY KEY,
    directive_id  uuid NOT NULL REFERENCES directives (id) ON DELETE CASCADE,
    seq           bigint NOT NULL CHECK (seq >= 1),
    event_type    text NOT NULL,
    severity      text NOT NULL DEFAULT 'info' CHECK (severity IN ('info', 'warning', 'error')),
    data          jsonb NOT NULL DEFAULT '{}',
    actor_type    text NOT NULL DEFAULT 'system' CHECK (actor_type IN ('system', 'user', 'agent')),
    actor_id      text,
    step_id       uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (directive_id, seq)
);

CREATE TABLE directive_commands (
    id            uuid PRIMARY KEY,
    directive_id  uuid REFERENCES directives (id) ON DELETE CASCADE,
    command       text NOT NULL
        CHECK (command IN ('start', 'pause', 'resume', 'stop', 'regenerate', 'approve', 'deny')),
    args          jsonb NOT NULL DEFAULT '{}',
    status        text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'applied', 'rejected')),
    reason        text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    applied_at    timestamptz
);
CREATE INDEX directive_commands_pending ON directive_commands (created_at)
    WHERE status = 'pending';

-- One row per group-commit batch, written in the batch's own transaction. After a
-- connection is lost mid-commit, its presence tells whether the batch committed,
-- and its results answer the senders without applying the batch twice.
CREATE TABLE write_batches (
    id            uuid PRIMARY KEY,
    results       jsonb NOT NULL,
    committed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX write_batches_by_time ON write_batches (committed_at);
