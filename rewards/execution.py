"""FTRL's execution reward: run a turn's calls in the sandbox, feed outputs back, score the sub-answers found.

Sub-answers come as FTRL's "unsolved set", `{tool_name: [answer, ...]}`. A call solves the first still-unsolved
answer of its tool that its output verifies (FTRL's utils.answer_verify), so each answer is solved at most once.
Only successful calls count: an error message that happens to contain an answer solves nothing (FTRL checks
every tool message, errors included). FTRL's rewards for turns without calls (a final answer, empty or
malformed output) are not computed here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rewards.sandbox import CallOutcome, SandboxLimits, run_calls


def _normalise(text: str) -> str:
    return text.lower().replace(",", "").strip()


def verify_answer(output, answer: str) -> bool:
    """FTRL's answer_verify: every ", "-separated part of `answer` occurs in `output`, ignoring case and commas.

    `output` may be a tool's raw value: dicts and lists are compared as JSON, anything else as str()."""
    if isinstance(output, (dict, list)):
        output = json.dumps(output, ensure_ascii=False)
    text = _normalise(output if isinstance(output, str) else str(output))
    return all(_normalise(part) in text for part in answer.split(", "))


@dataclass(frozen=True)
class SolveScore:
    """How many sub-answers a turn's calls solved, and FTRL's rewards built on that count."""

    solved: int  # sub-answers found in this turn's outputs
    calls: int  # calls made in this turn
    total: int  # sub-answers still unsolved before this turn
    precision: float  # Solve-P = solved / calls; 1.0 with no calls (no call was wasted)
    recall: float  # Solve-R = solved / total; 1.0 with no sub-answers (nothing was left to find)
    f1: float  # Solve-F1 = 2·solved / (calls + total); 1.0 when both are 0
    step_reward: float  # 2·solved / (calls + 1): FTRL reward_score/tool.py compute_solve_f1, 0.0 with no calls
    unsolved: dict[str, list[str]] = field(default_factory=dict)  # what is left for the next step


def solve_score(outcomes: Sequence[CallOutcome], sub_answers: Mapping[str, Sequence[str]]) -> SolveScore:
    """Scores one turn's outcomes against the unsolved set; `sub_answers` itself is left untouched."""
    unsolved = {name: list(answers) for name, answers in sub_answers.items()}
    total = sum(len(answers) for answers in unsolved.values())
    solved = 0
    for outcome in outcomes:
        answers = unsolved.get(outcome.name, []) if outcome.ok else []
        found = next((answer for answer in answers if verify_answer(outcome.output, answer)), None)
        if found is not None:
            answers.remove(found)
            solved += 1
    calls = len(outcomes)
    return SolveScore(
        solved=solved,
        calls=calls,
        total=total,
        precision=solved / calls if calls else 1.0,
        recall=solved / total if total else 1.0,
        f1=2 * solved / (calls + total) if calls + total else 1.0,
        step_reward=2 * solved / (calls + 1),
        unsolved={name: answers for name, answers in unsolved.items() if answers},
    )


def execute_turn(
    implementations: Mapping[str, str],
    calls: Sequence[dict],
    sub_answers: Mapping[str, Sequence[str]],
    limits: SandboxLimits = SandboxLimits(),
) -> tuple[list[CallOutcome], list[dict], SolveScore]:
    """Runs one assistant turn's calls `{"name", "arguments", "id"?}`; returns the outcomes, the tool messages
    to append to the conversation (OpenAI format) for the next step, and the turn's score."""
    outcomes = run_calls(dict(implementations), list(calls), limits)
    tool_messages = [
        {
            "role": "tool",
            "tool_call_id": call.get("id") or f"call_{index}",
            "name": outcome.name,
            "content": outcome.output,
        }
        for index, (call, outcome) in enumerate(zip(calls, outcomes))
    ]
    return outcomes, tool_messages, solve_score(outcomes, sub_answers)


class Solver:
    """Solve-F1 of a one-turn answer to a query whose tools are executable: parse the answer's calls, run them
    in the sandbox, count the sub-answers their outputs contain (`solve_score`).

    An answer that does not parse made no usable call: its score has calls = 0 and F1 = 0, whatever the
    query asks (a malformed refusal is not a refusal). An answer with no call scores F1 = 1 exactly when
    nothing was to be found (irrelevance, missing information)."""

    def __init__(
        self,
        implementations: Mapping[str, str],
        sub_answers: Mapping[str, Sequence[str]],
        limits: SandboxLimits = SandboxLimits(),
    ):
        self.implementations = dict(implementations)
        self.sub_answers = {name: list(answers) for name, answers in sub_answers.items()}
        self.limits = limits

    def __call__(self, text: str) -> SolveScore:
        from rewards.parsing import parse_output

        parsed = parse_output(text)
        if parsed.status == "malformed":
            total = sum(len(answers) for answers in self.sub_answers.values())
            return SolveScore(
                solved=0,
                calls=0,
                total=total,
                precision=0.0,
                recall=0.0,
                f1=0.0,
                step_reward=0.0,
                unsolved={k: list(v) for k, v in self.sub_answers.items() if v},
            )
        calls = [call.as_json() for call in parsed.calls]
        outcomes = run_calls(self.implementations, calls, self.limits) if calls else []
        return solve_score(outcomes, self.sub_answers)


def solver_for(tools: Sequence, sub_answers: Mapping[str, Sequence[str]] | None) -> Solver | None:
    """A Solver for a query offering `tools` (rows with `name` and `implementation`), or None when a tool has no
    implementation or the query has no sub-answers recorded (Solve-F1 is then undefined)."""
    if sub_answers is None or not isinstance(sub_answers, Mapping) or not tools:
        return None
    if any(not (tool.implementation or "").strip() for tool in tools):
        return None
    return Solver({tool.name: tool.implementation for tool in tools}, sub_answers)
