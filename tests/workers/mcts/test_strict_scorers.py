"""The search's leaf scorers use the checker's strict rule: a broken call attempt on a query where no call is
right is a failure with a negative reward (BFCL's lenient rule scored such leaves 1.0 in the demo's trees)."""

import pytest

from workers.mcts import MCTSConfig, leaf_scorer
from workers.mcts.search import CheckerScorer, JudgeScorer

TIP = {
    "type": "function",
    "function": {
        "name": "calculate_tip",
        "parameters": {
            "type": "object",
            "properties": {"bill": {"type": "number"}, "tip_percent": {"type": "number"}},
            "required": ["bill", "tip_percent"],
        },
    },
}
BROKEN = [
    "[get_order_status(user_id=2084061', order_id='ORD-1')]",  # leaves seen under `[get_order_status(user_id=`
    "[get_order_status(user_id=12.0, tip_percent=20.0, people=7), getI can't do that",
    "[calculate_tip(bill=",
]
REFUSAL = "Sorry, none of the available tools can help with that."


@pytest.mark.parametrize("scorer", ["checker", "judge"])
@pytest.mark.parametrize("response", BROKEN)
def test_broken_attempt_on_a_no_call_query_scores_negative(scorer, response):
    score = leaf_scorer(MCTSConfig(scorer=scorer), [], [TIP])(response)
    assert score.reward < 0
    assert score.verdict["valid"] is False and score.verdict["deficiency"] == "malformed"


@pytest.mark.parametrize("make", [CheckerScorer, JudgeScorer])
def test_a_text_refusal_is_still_the_right_answer(make):
    score = make([], [TIP])(REFUSAL)
    assert score.reward == pytest.approx(1.0) and score.verdict["valid"] is True
