"""The environment generator: FTRL's five stages, done by a seeded program instead of an LLM.

1. scenario decomposition → domains, sub-scenarios and the values users mention (`scenarios.POOLS`)
2. tool document generation → `tool_table.TOOLS`, each rendered as an OpenAI-style JSON schema
   (`tools.tool_document`)
3. function integration → `CHAINS`, where one tool's output is another's argument
4. complexity scaling → one builder per query kind (`_QueryBuilder`)
5. local deployment → each tool's implementation is the source of its function in `implementations`
   (`tools.tool_spec`), and every output the records mention comes from running it (`tools.run_call`)

Pure Python (no Django); `generate_environment(EnvironmentConfig(seed=...))` is deterministic.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field

from rewards.parsing import render_call_list

from ..records import KINDS, QuerySpec, ToolSpec
from .scenarios import DATE_STYLES, POOLS, say
from .tool_table import TOOLS, TOOLS_BY_NAME
from .tools import Tool, run_call, template_slots, tool_spec


@dataclass(frozen=True)
class EnvironmentConfig:
    """What to generate. Same config → the same tools and queries, byte for byte."""

    seed: int = 0  # the only source of randomness (random.Random(seed))
    queries: int = 200  # how many queries; 200 gives every kind and difficulty bucket
    eval_fraction: float = 0.2  # share of queries held out (split "eval"); the usual 80/20 split
    # Relative weights of the query kinds. Single calls lead and multiple / parallel / parallel-multiple
    # follow in equal parts, after BFCL's AST categories; multi-hop is weighted up because FTRL's
    # environments are built around chained calls; irrelevance and missing-info teach when not to call.
    weight_single: float = 0.20
    weight_multiple: float = 0.15
    weight_parallel: float = 0.15
    weight_parallel_multiple: float = 0.10
    weight_multi_hop: float = 0.20
    weight_irrelevance: float = 0.10
    weight_missing_info: float = 0.10

    def __post_init__(self):
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.queries, int) or isinstance(self.queries, bool) or self.queries < 1:
            raise ValueError(f"queries must be a whole number of at least 1, got {self.queries!r}")
        if not 0 <= self.eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in [0, 1), got {self.eval_fraction!r}")
        for kind, weight in self.kind_weights.items():
            if weight < 0:
                raise ValueError(f"weight_{kind} must not be negative, got {weight!r}")
        if sum(self.kind_weights.values()) <= 0:
            raise ValueError("at least one kind weight must be positive")

    @property
    def kind_weights(self) -> dict[str, float]:
        return {kind: getattr(self, f"weight_{kind}") for kind in KINDS}


@dataclass
class Environment:
    """The generated tools (with implementations) and the queries over them."""

    tools: list[ToolSpec]
    queries: list[QuerySpec]

    def counts(self) -> dict[str, dict[str, int]]:
        """Queries by kind, split and difficulty bucket."""
        return {
            "kind": dict(Counter(q.kind for q in self.queries)),
            "split": dict(Counter(q.split for q in self.queries)),
            "difficulty": dict(Counter(q.difficulty_bucket for q in self.queries)),
        }


# --- Stage 3: function integration ----------------------------------------------------------------
@dataclass(frozen=True)
class Chain:
    """A request answered by feeder calls (one turn) whose outputs give arguments of a final call."""

    slots: dict[str, str]  # request slot → pool
    feeders: tuple[tuple[str, dict[str, str]], ...]  # (tool, {param: slot}), called first
    consumer: str  # the tool called with their outputs
    consumer_slots: dict[str, str]  # consumer param → request slot
    links: dict[str, tuple[int, str]]  # consumer param → (feeder index, output key)
    requests: tuple[str, ...]


CHAINS: tuple[Chain, ...] = (
    Chain(
        {"company": "company", "date": "date"},
        (("lookup_ticker", {"company": "company"}),),
        "get_stock_price",
        {"date": "date"},
        {"ticker": (0, "ticker")},
        (
            "What did {company} stock close at on {date}?",
            "How much was one {company} share worth at the close on {date}?",
            "Get me the closing share price of {company} for {date}.",
        ),
    ),
    Chain(
        {"email": "email", "order_id": "order_id"},
        (("get_user_id", {"email": "email"}),),
        "get_order_status",
        {"order_id": "order_id"},
        {"user_id": (0, "user_id")},
        (
            "I'm {email}. Where is my order {order_id}?",
            "My account email is {email}; what's the status of order {order_id}?",
            "Can you track order {order_id}? The account is {email}.",
        ),
    ),
    Chain(
        {"from_city": "city", "to_city": "city", "date": "date"},
        (("get_airport_code", {"city": "from_city"}), ("get_airport_code", {"city": "to_city"})),
        "search_flights",
        {"date": "date"},
        {"origin": (0, "airport_code"), "destination": (1, "airport_code")},
        (
            "Find me flights from {from_city} to {to_city} on {date}.",
            "I want to fly from {from_city} to {to_city} on {date}. What's available?",
            "Search flights between {from_city} and {to_city} for {date}.",
        ),
    ),
    Chain(
        {"country": "country"},
        (("get_country_capital", {"country": "country"}),),
        "get_current_weather",
        {},
        {"city": (0, "capital")},
        (
            "What's the weather like right now in the capital of {country}?",
            "How warm is it in the capital of {country} at the moment?",
            "Check the current weather in the capital city of {country}.",
        ),
    ),
    Chain(
        {"city": "city", "cuisine": "cuisine", "date": "date", "time": "time", "party_size": "party_size"},
        (("find_restaurant", {"city": "city", "cuisine": "cuisine"}),),
        "book_table",
        {"date": "date", "time": "time", "party_size": "party_size"},
        {"restaurant_id": (0, "restaurant_id")},
        (
            "Book a table for {party_size} at the best {cuisine} restaurant in {city} on {date} at {time}.",
            "Find the top {cuisine} place in {city} and reserve it for {party_size} people on {date} at {time}.",
            "We're {party_size} people and want {cuisine} food in {city} on {date}, {time}. Can you book it?",
        ),
    ),
)


# --- Stage 4: complexity scaling -------------------------------------------------------------------
REFUSALS = ("Sorry, none of the available tools can help with that.", "I can't do that with the tools I have, sorry.")
QUESTIONS = ("Could you tell me the {label}?", "Sure, which {label} should I use?")
OUT_OF_SCOPE = (
    "Write a short poem about the sea.",
    "Tell me a joke about penguins.",
    "Translate 'good morning' into Spanish.",
    "Who wrote Pride and Prejudice?",
    "Summarise the plot of Hamlet in two sentences.",
    "Recommend a good science fiction novel.",
    "What's a good name for a golden retriever puppy?",
    "Explain how photosynthesis works.",
)
Call = tuple[str, dict]  # (tool name, arguments)


@dataclass
class _Draft:
    """A query before it is checked and stored: what a kind's builder decides."""

    messages: list[dict]
    offered: list[str]  # tool names
    calls: list[Call]  # the ground truth; [] = no call is right
    metadata: dict = field(default_factory=dict)
    answer: str = ""  # final answer when not the calls' own summary (multi-hop), or the no-call reply


class _QueryBuilder:
    """Builds one query of each kind; all randomness comes from the shared rng, in a fixed order."""

    def __init__(self, rng: random.Random, specs: dict[str, ToolSpec]):
        self.rng, self.specs = rng, specs
        self.date_style = "iso"

    # --- helpers
    def sample(self, slots: dict[str, str]) -> dict:
        """Values for slots (slot → pool); slots sharing a pool get different values."""
        by_pool: dict[str, list[str]] = {}
        for slot, pool in slots.items():
            by_pool.setdefault(pool, []).append(slot)
        values = {}
        for pool, names in by_pool.items():
            picked = self.rng.sample(POOLS[pool], len(names))
            if pool == "date":
                picked.sort()  # "from A to B" reads in calendar order
            values.update(zip(names, picked))
        return values

    def request(self, tool: Tool, missing: bool = False) -> tuple[str, dict, str | None]:
        """(user text, call arguments in schema order, missing parameter) from one of the tool's requests."""
        template, implied, absent = self.rng.choice(tool.request_templates(missing))
        named = template_slots(template)
        slots = {name: tool.params[name].pool for name in tool.params if name in named}  # schema order
        values = self.sample(slots)
        text = template.format(**{k: say(slots[k], v, self.date_style) for k, v in values.items()})
        values.update(implied)
        return text, {p: values[p] for p in tool.params if p in values}, absent

    def join(self, texts: list[str]) -> str:
        """Several requests in one message, in one of a few layouts."""
        style = self.rng.randrange(4)
        if style == 0:
            return " ".join(texts)
        if style == 1:
            return "\n".join(texts)
        if style == 2:
            return f"{('Two', 'Three')[len(texts) - 2]} things. " + " ".join(texts)
        return " ".join(f"{i}. {t}" for i, t in enumerate(texts, 1))

    def extras(self, count: int, exclude: list[str], other_domains: bool = False) -> list[str]:
        """`count` tools not in `exclude` (and, if asked, from none of their domains)."""
        domains = {TOOLS_BY_NAME[n].domain for n in exclude}
        pool = [t.name for t in TOOLS if t.name not in exclude and not (other_domains and t.domain in domains)]
        return self.rng.sample(pool, count)

    def with_maybe_extra(self, names: list[str]) -> list[str]:
        return names + self.extras(self.rng.randrange(2), names)

    # --- one builder per kind
    def single(self) -> _Draft:
        tool = self.rng.choice(TOOLS)
        text, args, _ = self.request(tool)
        return _Draft([_user(text)], self.with_maybe_extra([tool.name]), [(tool.name, args)])

    def multiple(self) -> _Draft:
        tool = self.rng.choice(TOOLS)
        text, args, _ = self.request(tool)
        distractors = self.extras(self.rng.randint(2, 4), [tool.name])
        return _Draft([_user(text)], [tool.name] + distractors, [(tool.name, args)])

    def parallel(self) -> _Draft:
        tool, wanted = self.rng.choice(TOOLS), self.rng.choice((2, 3))
        texts, calls = [], []
        for _ in range(20):  # redraw until the calls differ
            text, args, _ = self.request(tool)
            if all(args != other for _, other in calls):
                texts.append(text)
                calls.append((tool.name, args))
            if len(calls) == wanted:
                break
        assert len(calls) >= 2, f"{tool.name}: could not draw two different calls"
        return _Draft([_user(self.join(texts))], self.with_maybe_extra([tool.name]), calls)

    def parallel_multiple(self) -> _Draft:
        first, second = self.rng.sample(TOOLS, 2)
        (text_a, args_a, _), (text_b, args_b, _) = self.request(first), self.request(second)
        calls = [(first.name, args_a), (second.name, args_b)]
        return _Draft([_user(self.join([text_a, text_b]))], self.with_maybe_extra([first.name, second.name]), calls)

    def multi_hop(self) -> _Draft:
        """Hop 1: the feeder calls are due. Hop 2: they ran (assistant + tool messages); the final call is due."""
        chain = self.rng.choice(CHAINS)
        values = self.sample(chain.slots)
        text = self.rng.choice(chain.requests).format(
            **{k: say(chain.slots[k], v, self.date_style) for k, v in values.items()}
        )
        feeders = [(name, {p: values[s] for p, s in params.items()}) for name, params in chain.feeders]
        outputs = [run_call(name, args) for name, args in feeders]
        given = {p: values[s] for p, s in chain.consumer_slots.items()}
        given.update({p: outputs[i][key] for p, (i, key) in chain.links.items()})
        consumer = TOOLS_BY_NAME[chain.consumer]
        final_call = (consumer.name, {p: given[p] for p in consumer.params if p in given})
        final_output = run_call(*final_call)
        trajectory = [{"name": n, "arguments": a, "output": o} for (n, a), o in zip(feeders, outputs)]
        trajectory.append({"name": final_call[0], "arguments": final_call[1], "output": final_output})
        hop = self.rng.choice((1, 2))
        messages = [_user(text)]
        if hop == 2:
            ids = [f"call_{i}" for i in range(len(feeders))]
            tool_calls = [
                {"id": id_, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                for id_, (name, args) in zip(ids, feeders)
            ]
            messages.append({"role": "assistant", "content": None, "tool_calls": tool_calls})
            messages += [
                {"role": "tool", "tool_call_id": id_, "name": name, "content": json.dumps(output)}
                for id_, (name, _), output in zip(ids, feeders, outputs)
            ]
        links = [{"param": p, "call": i, "key": key} for p, (i, key) in chain.links.items()]
        return _Draft(
            messages,
            self.with_maybe_extra(list(dict.fromkeys([name for name, _ in feeders] + [consumer.name]))),
            feeders if hop == 1 else [final_call],
            {"hop": hop, "trajectory": trajectory, "links": links},
            answer=consumer.summary.format(**final_output),
        )

    def irrelevance(self) -> _Draft:
        count = self.rng.randint(1, 3)
        if self.rng.random() < 0.3:  # a request no tool of the environment serves
            text, asked = self.rng.choice(OUT_OF_SCOPE), None
            offered = self.rng.sample([t.name for t in TOOLS], count)
        else:  # a real tool's request, with only tools from other domains offered
            target = self.rng.choice(TOOLS)
            text, _, _ = self.request(target)
            asked = target.name
            offered = self.extras(count, [target.name], other_domains=True)
        return _Draft([_user(text)], offered, [], {"unoffered_tool": asked}, answer=self.rng.choice(REFUSALS))

    def missing_info(self) -> _Draft:
        tool = self.rng.choice([t for t in TOOLS if t.request_templates(True)])
        text, _, absent = self.request(tool, missing=True)
        label = tool.params[absent].label or absent.replace("_", " ")
        offered = [tool.name] + self.extras(self.rng.randrange(2), [tool.name], other_domains=True)
        question = self.rng.choice(QUESTIONS).format(label=label)
        return _Draft([_user(text)], offered, [], {"tool": tool.name, "missing": absent}, answer=question)

    def build(self, kind: str, external_id: str, split: str) -> QuerySpec:
        self.date_style = self.rng.choice(DATE_STYLES)
        draft: _Draft = getattr(self, kind)()
        self.rng.shuffle(draft.offered)  # the right tool is not always listed first
        outputs = [run_call(name, args) for name, args in draft.calls]
        sub_answers: dict[str, list[str]] = {}
        for (name, _), output in zip(draft.calls, outputs):
            parts = ", ".join(str(output[key]) for key in TOOLS_BY_NAME[name].answer_keys)
            sub_answers.setdefault(name, []).append(parts)
        summaries = "; ".join(TOOLS_BY_NAME[n].summary.format(**o) for (n, _), o in zip(draft.calls, outputs))
        return QuerySpec(
            external_id=external_id,
            messages=draft.messages,
            tools=[self.specs[name] for name in draft.offered],
            ground_truth=[possible_answer(name, args) for name, args in draft.calls],
            kind=kind,
            reference_output=(
                render_call_list([{"name": n, "arguments": a} for n, a in draft.calls]) if draft.calls else draft.answer
            ),
            sub_answers=sub_answers,
            final_answer=draft.answer or summaries,
            metadata={"domains": list(dict.fromkeys(TOOLS_BY_NAME[n].domain for n, _ in draft.calls))} | draft.metadata,
            split=split,
        )


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def possible_answer(name: str, arguments: dict) -> dict:
    """BFCL possible-answer form: [value] per set parameter; ["", default] for an optional one left unset."""
    params = {}
    for param, spec in TOOLS_BY_NAME[name].params.items():
        if param in arguments:
            params[param] = [arguments[param]]
        elif not spec.required:
            params[param] = ["", spec.default]
        else:
            raise ValueError(f"{name}: required parameter {param!r} not set")
    return {name: params}


def kind_counts(queries: int, weights: dict[str, float]) -> dict[str, int]:
    """Queries per kind in proportion to the weights (largest remainder, ties in KINDS order)."""
    total = sum(weights.values())
    exact = {kind: queries * weight / total for kind, weight in weights.items()}
    counts = {kind: int(share) for kind, share in exact.items()}
    by_remainder = sorted(exact, key=lambda kind: counts[kind] - exact[kind])  # stable: ties keep KINDS order
    for kind in by_remainder[: queries - sum(counts.values())]:
        counts[kind] += 1
    return counts


def generate_environment(config: EnvironmentConfig) -> Environment:
    """Tools with implementations, and `config.queries` queries over them, reproducibly from the seed."""
    rng = random.Random(config.seed)
    specs = {tool.name: tool_spec(tool) for tool in TOOLS}
    kinds = [kind for kind, count in kind_counts(config.queries, config.kind_weights).items() for _ in range(count)]
    rng.shuffle(kinds)
    eval_indices = set(rng.sample(range(config.queries), round(config.queries * config.eval_fraction)))
    builder = _QueryBuilder(rng, specs)
    queries = [
        builder.build(kind, f"env-{config.seed}-{index:06d}", "eval" if index in eval_indices else "train")
        for index, kind in enumerate(kinds)
    ]
    return Environment(tools=list(specs.values()), queries=queries)
