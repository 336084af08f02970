"""Property tests: no text and no JSON value makes the parser or the checker raise."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewards.checker import check
from rewards.parsing import parse_output

TOOLS = [
    {
        "name": "f",
        "parameters": {
            "type": "dict",
            "properties": {"a": {"type": "integer"}, "b": {"type": "array", "items": {"type": "string"}}},
            "required": ["a"],
        },
    }
]
TRUTH = [{"f": {"a": [1], "b": ["", ["x"]]}}]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
call_like = st.builds(
    lambda name, args: f"[{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})]",
    st.sampled_from(["f", "g", "f.h", "1f", ""]),
    st.dictionaries(st.sampled_from(["a", "b", "c", "1"]), json_values, max_size=3),
)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.text(max_size=300))
def test_any_text(text):
    result = parse_output(text)
    assert result.status in ("calls", "no_call", "malformed")
    verdict = check(text, TRUTH, TOOLS)
    assert isinstance(verdict.valid, bool) and -1.0 <= verdict.reward <= 1.0
    json.dumps(verdict.as_dict())


@FAST
@given(
    st.one_of(
        call_like,
        st.builds(lambda v: json.dumps(v), json_values),
        st.builds(lambda v: f"<tool_call>{json.dumps(v)}</tool_call>", json_values),
    )
)
def test_call_shaped_text(text):
    verdict = check(text, TRUTH, TOOLS)
    assert -1.0 <= verdict.reward <= 1.0
    json.dumps(verdict.as_dict())


@FAST
@given(json_values, json_values, json_values)
def test_any_json_as_output_truth_and_tools(output, truth, tools):
    verdict = check(output, truth, tools)
    assert isinstance(verdict.deficiency, str)
    json.dumps(verdict.as_dict())


@FAST
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["f", "g"]),
            st.dictionaries(st.sampled_from(["a", "b"]), st.lists(json_values, max_size=3), max_size=2),
            min_size=1,
            max_size=1,
        ),
        max_size=3,
    ),
    call_like,
)
def test_any_ground_truth_shape(truth, text):
    verdict = check(text, truth, TOOLS)
    json.dumps(verdict.as_dict())
