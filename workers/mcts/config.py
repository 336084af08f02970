"""Settings of the fragment-level tree search and of the pair filter, with iTool's values as defaults.

iTool references are to github.com/zeng-yirong/iTool: `mcts/utils.py` (argparse defaults),
`mcts/run_mcts_dpo.sh` (the settings of the paper's runs) and `mcts/mcts_vllm.py` (the search).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

from workers.config import EngineConfig, Rule

SCORERS = ("checker", "judge")
_POSITIVE_INTS = ("simulations", "width", "step_limit", "max_depth", "max_tokens")


@dataclass(frozen=True)
class MCTSConfig(EngineConfig):
    """How one tree is searched: sampling, fragmenting, selection and leaf scoring."""

    label: ClassVar[str] = "MCTS"

    simulations: int = 5  # expansions per tree; iTool run_mcts_dpo.sh --mcts_iters 5
    width: int = 3  # samples per expansion; iTool run_mcts_dpo.sh --num_actions 3 (n of each vLLM call)
    step_limit: int = 2  # delimiter pieces per node; iTool run_mcts_dpo.sh --step_limit 2
    max_depth: int = 3  # nodes below the root on a path; iTool run_mcts_dpo.sh --depth 3
    c_puct: float = 1.0  # exploration weight of the selection rule; iTool utils.py --exploration_weight 1.0
    delimiters: tuple[str, ...] = (". ", ", ", "=", "(")  # iTool mcts_vllm.py get_actions split_pattern
    # iTool samples 50 tokens per expansion (utils.py --max_tokens); 64 lets the tiny model's byte-level
    # BPE finish a call list such as [get_weather(city='Paris', date='2025-01-02')] in one rollout.
    max_tokens: int = 64
    # iTool's runs use 1.5 (run_mcts_dpo.sh); DESIGN.md found the tiny model's mistakes fragment-level
    # (right function, wrong city) when sampled at 1.0, the regime the search needs.
    temperature: float = 1.0
    top_p: float = 1.0  # iTool sets none, so vLLM's default 1.0 applies
    scorer: str = "checker"  # "checker": the verifiable reward (DESIGN.md default); "judge": iTool's A/B/C/D grades
    # The judge path's reward is GRADE_WEIGHTS (iTool's 1.0/0.1/-1/-2 over 4) times this scale, which
    # puts iTool's levels back at 1.0/0.1/-1/-2 so that a right answer scores 1, as with the checker.
    judge_scale: float = 4.0
    seed: int = 0  # sampling seed of every generate call (determinism: see search.py)

    def __post_init__(self):
        if isinstance(self.delimiters, (list, str)):  # JSON has no tuples; one delimiter may come bare
            object.__setattr__(
                self, "delimiters", (self.delimiters,) if isinstance(self.delimiters, str) else tuple(self.delimiters)
            )
        super().__post_init__()

    def rules(self) -> list[Rule]:
        return [
            *((name, getattr(self, name) >= 1, "must be a positive integer") for name in _POSITIVE_INTS),
            (
                "delimiters",
                bool(self.delimiters) and all(isinstance(d, str) and d for d in self.delimiters),
                "must be non-empty strings",
            ),
            ("c_puct", self.c_puct >= 0, "must be a number >= 0"),
            ("temperature", 0 <= self.temperature <= 10, "must be in [0, 10]"),
            ("top_p", 0 < self.top_p <= 1, "must be in (0, 1]"),
            ("scorer", self.scorer in SCORERS, f"must be one of {', '.join(SCORERS)}"),
            ("judge_scale", self.judge_scale > 0, "must be a number > 0"),
        ]

    def as_dict(self) -> dict:
        """JSON-ready (stored on SearchTree.config)."""
        data = asdict(self)
        data["delimiters"] = list(self.delimiters)
        return data


@dataclass(frozen=True)
class PairConfig(EngineConfig):
    """Which sibling fragments make a chosen/rejected pair."""

    label: ClassVar[str] = "pair filter"

    gap_min: float = 0.1  # chosen value - rejected value; iTool utils.py --value_threshold 0.1
    overlap_max: float = 0.95  # word overlap of the two fragments; iTool utils.py --overlap_limit 0.95
    chosen_value_min: float = -0.3  # the chosen fragment's value; iTool utils.py --accept_value -0.3

    def rules(self) -> list[Rule]:
        return [
            ("gap_min", self.gap_min >= 0, "must be a number >= 0"),
            ("overlap_max", 0 <= self.overlap_max <= 1, "must be in [0, 1]"),
        ]

    def as_dict(self) -> dict:
        return asdict(self)
