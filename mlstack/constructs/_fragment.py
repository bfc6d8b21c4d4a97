"""A sub-flow of a state machine: one start state, its open ends, and the tasks whose failures
the state machine's failure path catches.

Not aws-cdk-lib's ``StateMachineFragment``: that is a construct, so every resource a fragment
builds (the input validator's function, the deploy stage's alarms) would move one level down the
construct tree and get a new logical ID, replacing deployed resources. This fragment is a plain
value: its states live in the scope its builder is given (the workflow's, or the release's), so
construct paths, logical IDs and state names stay what they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_stepfunctions as sfn


@dataclass(frozen=True)
class Fragment:
    """``start``: the state a predecessor goes to; ``ends``: the states that go on to whatever
    follows (:meth:`next`); ``tasks``: the Task states a failure path catches; ``failures``: the
    states that go to the failure path (a refused input). A fragment built with the failure
    path in hand (the deploy fragment) wires both itself and lists neither."""

    start: sfn.State
    ends: tuple[sfn.INextable, ...]
    tasks: tuple[sfn.CustomState, ...] = ()
    failures: tuple[sfn.INextable, ...] = ()

    def next(self, then: sfn.IChainable) -> None:
        """Every end goes on to ``then``."""
        for end in self.ends:
            end.next(then)


def catch_failure(task: sfn.CustomState, handler: sfn.IChainable) -> None:
    """``task``'s failure goes to ``handler``, the error at ``$.error``."""
    task.add_catch(handler, errors=["States.ALL"], result_path="$.error")
