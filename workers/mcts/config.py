"""Settings of the fragment-level tree search and of the pair filter, with iTool's values as defaults.

iTool references are to github.com/zeng-yirong/iTool: `mcts/utils.py` (argparse defaults),
`mcts/run_mcts_dpo.sh` (the settings of the paper's runs) and `mcts/mcts_vllm.py` (the search).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

SCORERS = ("checker", "judge")


@dataclass(frozen=True)
class MCTSConfig:
    """How one tree is searched: sampling, fragmenting, selection and leaf scoring."""

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
        _positive_int(self, "simulations", "width", "step_limit", "max_depth", "max_tokens")
        if isinstance(self.delimiters, (list, str)):
            object.__setattr__(
                self, "delimiters", (self.delimiters,) if isinstance(self.delimiters, str) else tuple(self.delimiters)
            )
        if not self.delimiters or not all(isinstance(d, str) and d for d in self.delimiters):
            raise ValueError(f"delimiters must be non-empty strings, got {self.delimiters!r}")
        if not _is_number(self.c_puct) or self.c_puct < 0:
            raise ValueError(f"c_puct must be a number >= 0, got {self.c_puct!r}")
        if not _is_number(self.temperature) or not 0 <= self.temperature <= 10:
            raise ValueError(f"temperature must be in [0, 10], got {self.temperature!r}")
        if not _is_number(self.top_p) or not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {', '.join(SCORERS)}, got {self.scorer!r}")
        if not _is_number(self.judge_scale) or self.judge_scale <= 0:
            raise ValueError(f"judge_scale must be a number > 0, got {self.judge_scale!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")

    def as_dict(self) -> dict:
        """JSON-ready (stored on SearchTree.config)."""
        data = asdict(self)
        data["delimiters"] = list(self.delimiters)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> MCTSConfig:
        """Rebuild from `as_dict()`; unknown keys are refused so that a typo is not silently ignored."""
        return _from_dict(cls, data)


@dataclass(frozen=True)
class PairConfig:
    """Which sibling fragments make a chosen/rejected pair."""

    gap_min: float = 0.1  # chosen value - rejected value; iTool utils.py --value_threshold 0.1
    overlap_max: float = 0.95  # word overlap of the two fragments; iTool utils.py --overlap_limit 0.95
    chosen_value_min: float = -0.3  # the chosen fragment's value; iTool utils.py --accept_value -0.3

    def __post_init__(self):
        if not _is_number(self.gap_min) or self.gap_min < 0:
            raise ValueError(f"gap_min must be a number >= 0, got {self.gap_min!r}")
        if not _is_number(self.overlap_max) or not 0 <= self.overlap_max <= 1:
            raise ValueError(f"overlap_max must be in [0, 1], got {self.overlap_max!r}")
        if not _is_number(self.chosen_value_min):
            raise ValueError(f"chosen_value_min must be a number, got {self.chosen_value_min!r}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PairConfig:
        return _from_dict(cls, data)


def _from_dict(cls, data: dict):
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return cls(**data)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_int(config, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
