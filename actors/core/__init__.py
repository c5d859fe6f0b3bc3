"""The engine's decisions, pure: state read from the database in, changes and effects out.

``directive.decide`` and ``step.decide_step`` are the lifecycle of DESIGN §2 and §8;
``escalation`` holds the circuit breakers; ``changes`` the vocabulary of what a
decision commits and then does. Nothing here touches the database or an actor.
"""
