"""Our checker against BFCL's own, over every single-turn AST category shipped in bfcl-eval, on right
answers and systematically perturbed ones. Agreement (same valid/invalid) must be at least 99.5%. The checker
runs by BFCL's rule (`rule="bfcl"`: a broken call attempt on an irrelevance query counts as no call)."""

import json
from collections import Counter
from pathlib import Path

import pytest

from rewards.checker import check

from .bfcl_oracle import bfcl_valid

CATEGORIES = [
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "irrelevance",
    "live_irrelevance",
]
REPORT = Path(__file__).resolve().parents[3] / "test-output" / "bfcl_agreement.txt"


def load(data: Path, category: str):
    prompts = [json.loads(line) for line in (data / f"BFCL_v4_{category}.json").open() if line.strip()]
    answer_file = data / "possible_answer" / f"BFCL_v4_{category}.json"
    answers = {}
    if answer_file.exists():
        answers = {(a := json.loads(line))["id"]: a["ground_truth"] for line in answer_file.open() if line.strip()}
    return [(p, answers.get(p["id"], [])) for p in prompts]


def render(calls: list[tuple[str, dict]]) -> str:
    return "[" + ", ".join(f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})" for name, args in calls) + "]"


def first_value(values: list):
    return next((v for v in values if v != ""), None)


def right_calls(answer: list, with_optional: bool = True) -> list[tuple[str, dict]]:
    calls = []
    for entry in answer:
        ((name, params),) = entry.items()
        args = {}
        for param, values in params.items():
            value = first_value(values)
            if value is None or ("" in values and not with_optional):
                continue
            args[param] = value
        calls.append((name, args))
    return calls


def wrong_value(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 7
    if isinstance(value, float):
        return value + 0.5
    if isinstance(value, str):
        return value + " extra"
    if isinstance(value, list):
        return value + ["zz"]
    if isinstance(value, dict):
        return {**value, "zz_key": "zz"}
    return "zz"


def wrong_type(value):
    if isinstance(value, str):
        return 12345
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value) + "x"
    if isinstance(value, bool):
        return "yes"
    return "not a " + type(value).__name__


class Raw(str):
    """Source text rendered as is: a variable name or an expression in the call."""

    def __repr__(self) -> str:
        return str(self)


def more_perturbations(value):
    """Edge cases of BFCL's type and normalisation rules."""
    if isinstance(value, int) and not isinstance(value, bool):
        yield "bool-for-int", True
        yield "float-for-int", float(value)
        yield "arith", Raw(f"{value - 1} + 1")
    if isinstance(value, str):
        yield "punct", value.replace(" ", "-") + "."
        yield "variable", Raw("some_variable")
    if isinstance(value, list):
        yield "tuple", tuple(value)
        yield "elements-as-str", [str(v) for v in value]
        yield "empty-list", []
    if isinstance(value, dict):
        yield "dict-missing-key", dict(list(value.items())[1:])
    yield "none", None


def variants(functions: list, answer: list, category: str):
    """(label, output) pairs: right answers and perturbed ones."""
    if "irrelevance" in category:
        if functions:
            fn = functions[0]
            required = fn.get("parameters", {}).get("required", [])
            yield "irrelevant-call", render([(fn["name"], {p: 1 for p in required})])
            yield "irrelevant-broken-call", render([(fn["name"], {p: 1 for p in required})])[:-2]
        yield "irrelevant-text", "I cannot help with that using the available tools."
        return
    calls = right_calls(answer)
    yield "right", render(calls)
    yield "right-minimal", render(right_calls(answer, with_optional=False))
    yield "no-call", "I am not sure which function to use."
    yield "wrong-function", render([(calls[0][0] + "_v2", calls[0][1])] + calls[1:])
    name, args = calls[0]
    yield "unexpected-param", render([(name, {**args, "zz_unexpected": 1})] + calls[1:])
    for param, value in list(args.items())[:3]:
        rest = {k: v for k, v in args.items() if k != param}
        yield f"drop-{param}", render([(name, rest)] + calls[1:])
        yield f"value-{param}", render([(name, {**args, param: wrong_value(value)})] + calls[1:])
        yield f"type-{param}", render([(name, {**args, param: wrong_type(value)})] + calls[1:])
        if isinstance(value, str) and value:
            yield f"case-{param}", render([(name, {**args, param: value.upper() + " "})] + calls[1:])
        if isinstance(value, float) and value.is_integer():
            yield f"int-for-float-{param}", render([(name, {**args, param: int(value)})] + calls[1:])
        for label, other in more_perturbations(value):
            yield f"{label}-{param}", render([(name, {**args, param: other})] + calls[1:])
    if len(calls) > 1:
        yield "reversed", render(list(reversed(calls)))
        yield "missing-call", render(calls[:-1])
    yield "duplicate-call", render(calls + calls[:1])


@pytest.fixture(scope="module")
def agreement(bfcl_data):
    stats = Counter()
    disagreements = []
    for category in CATEGORIES:
        for prompt, answer in load(bfcl_data, category):
            functions = prompt["function"]
            for label, output in variants(functions, answer, category):
                theirs = bfcl_valid(output, functions, answer, category)
                ours = check(output, answer, functions, rule="bfcl")
                stats["total"] += 1
                stats[f"{category}:total"] += 1
                stats["valid" if theirs else "invalid"] += 1
                if ours.valid == theirs:
                    stats["agree"] += 1
                else:
                    disagreements.append(
                        (
                            category,
                            prompt["id"],
                            label,
                            output[:160],
                            theirs,
                            ours.valid,
                            ours.deficiency,
                            ours.detail[:160],
                        )
                    )
    REPORT.parent.mkdir(exist_ok=True)
    lines = [
        f"agreement {stats['agree']}/{stats['total']} = {stats['agree'] / stats['total']:.4%} "
        f"(BFCL valid {stats['valid']}, invalid {stats['invalid']})"
    ]
    lines += [f"  {c}: {stats[c + ':total']} outputs" for c in CATEGORIES]
    lines += ["disagreements:"] + [json.dumps(d) for d in disagreements]
    REPORT.write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines[: 12 + len(CATEGORIES)]))
    return stats, disagreements


def test_agreement_with_bfcl_checker(agreement):
    stats, disagreements = agreement
    assert stats["total"] > 20_000
    assert stats["valid"] > 5_000 and stats["invalid"] > 10_000  # both verdicts well exercised
    assert stats["agree"] / stats["total"] >= 0.995, disagreements[:20]


def test_broken_calls_on_irrelevance_queries_are_right_by_bfcl_rule_only(bfcl_data):
    """BFCL's lenient rule, kept by rule="bfcl" (the agreement above) and not by the default strict rule."""
    seen = 0
    for prompt, answer in load(bfcl_data, "irrelevance")[:50]:
        for label, output in variants(prompt["function"], answer, "irrelevance"):
            if label == "irrelevant-broken-call":
                seen += 1
                assert bfcl_valid(output, prompt["function"], answer, "irrelevance"), output
                assert check(output, answer, prompt["function"], rule="bfcl").valid
                assert check(output, answer, prompt["function"]).deficiency == "malformed"
    assert seen == 50


def test_right_answers_are_valid_in_both(agreement):
    _, disagreements = agreement
    assert not [d for d in disagreements if d[2] in ("right", "right-minimal", "reversed")], disagreements[:10]
