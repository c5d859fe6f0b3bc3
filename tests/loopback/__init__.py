"""A loopback model server and helpers for tests against the real agent CLIs.

- ``script``: what the model says, turn by turn (``Text``, ``ToolCalls``, ``Failure``,
  or ``FromRequest``: a turn made from the request it answers).
- ``server``: ``LoopbackServer``, the Anthropic Messages and OpenAI Responses APIs on
  127.0.0.1 (port 0) answering from a ``Script``, recording every request.
- ``tools``: where .ci/agents installed ``claude`` and ``codex`` (and where ``gemini``
  and ``aider`` are), the environment and arguments that point them at the server,
  and ``run`` (own process group, timeout that kills every descendant).
- ``fixtures``: pytest fixtures (``loopback``; ``claude_bin``, ``codex_bin``,
  ``gemini_bin``, ``aider_bin`` that skip with the reason when the CLI is absent;
  ``agent_home``, ``git_repo``) and ``record_run``.

Typical use::

    loopback.use(Script([write_file(str(repo / "a.py"), "x = 1\\n"), Text("Done.")]))
    run = tools.run(
        [str(claude_bin), "-p", "--output-format", "json", "--permission-mode", "acceptEdits"],
        env=tools.claude_env(agent_home, loopback.url), cwd=repo, stdin="Write a.py",
    )

For codex: ``[codex_bin, "exec", "--json", "--sandbox", "workspace-write",
*tools.codex_provider_args(loopback.url), "-"]`` with ``tools.codex_env(agent_home)``.
"""
