"""Builds the tiny local policy (tests, demo): a BPE tokenizer trained on the project's corpus and a small Qwen2.

No model can be downloaded here or on CI, so the project makes its own and saves it with `save_pretrained`;
everything downstream loads it with `AutoTokenizer` / `AutoModelForCausalLM.from_pretrained`, the path a
real checkpoint takes.

The chat template is ChatML (`<|im_start|>role\\n…<|im_end|>`) with the offered tools rendered compactly, one
line per tool, `get_weather(city, date, unit?)` (`?` = optional): the tiny model's context is 512 positions
and full JSON schemas would make every example several times longer (DESIGN.md, "Measured on a 2-core
CPU"). Assistant tool calls are rendered as the Python call list the model is trained to answer with,
`[get_weather(city='Paris')]`, whether the arguments arrive as an object or as a JSON string.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from workers.config import EngineConfig, Rule

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"  # ends every turn; the tokenizer's EOS token
PAD = "<|pad|>"
END_OF_TEXT = "<|endoftext|>"  # separates documents; also accepted as EOS by the generation config
SPECIAL_TOKENS = (END_OF_TEXT, IM_START, IM_END, PAD)

# Renders Python literals from the JSON text of a call's arguments (an object is first turned into JSON with
# `tojson`): keys at the top level become keyword names, strings get Python's quoting (single quotes unless
# the string holds a single quote and no double quote, as `repr` does), true/false/null become
# True/False/None. Jinja has no JSON parser, hence the small character scanner; it agrees with
# `rewards.parsing.render_call_list` (tested).
_PY_KWARGS_MACRO = r"""
{%- macro py_kwargs(arguments) -%}
{%- set text = arguments if arguments is string else arguments | tojson -%}
{%- set ns = namespace(out='', stack='', in_str=false, esc=false, buf='', single=false, double=false,
                       lit='', key=false) -%}
{%- for c in text -%}
{%- if ns.in_str -%}
{%- if ns.esc -%}
{%- if c == '"' -%}{%- set ns.buf = ns.buf + '"' -%}{%- set ns.double = true -%}
{%- else -%}{%- set ns.buf = ns.buf + '\\' + c -%}{%- endif -%}
{%- set ns.esc = false -%}
{%- elif c == '\\' -%}{%- set ns.esc = true -%}
{%- elif c == '"' -%}
{%- set ns.in_str = false -%}
{%- if ns.key and ns.stack | length == 1 -%}{%- set ns.out = ns.out + ns.buf -%}
{%- elif ns.single and not ns.double -%}{%- set ns.out = ns.out + '"' + ns.buf + '"' -%}
{%- else -%}{%- set ns.out = ns.out + "'" + ns.buf | replace("'", "\\'") + "'" -%}{%- endif -%}
{%- else -%}
{%- if c == "'" -%}{%- set ns.single = true -%}{%- endif -%}
{%- set ns.buf = ns.buf + c -%}
{%- endif -%}
{%- elif c in '"{}[]:,' or c in ' \n\t\r' -%}
{%- set ns.out = ns.out + ns.lit | replace('true', 'True') | replace('false', 'False') | replace('null', 'None') -%}
{%- set ns.lit = '' -%}
{%- if c == '"' -%}
{%- set ns.in_str = true -%}{%- set ns.buf = '' -%}{%- set ns.single = false -%}{%- set ns.double = false -%}
{%- elif c == '{' or c == '[' -%}
{%- if ns.stack | length > 0 -%}{%- set ns.out = ns.out + c -%}{%- endif -%}
{%- set ns.stack = ns.stack + c -%}{%- set ns.key = c == '{' -%}
{%- elif c == '}' or c == ']' -%}
{%- set ns.stack = ns.stack[:-1] -%}
{%- if ns.stack | length > 0 -%}{%- set ns.out = ns.out + c -%}{%- endif -%}
{%- set ns.key = false -%}
{%- elif c == ':' -%}
{%- set ns.out = ns.out + ('=' if ns.stack | length == 1 else ': ') -%}{%- set ns.key = false -%}
{%- elif c == ',' -%}
{%- set ns.out = ns.out + ', ' -%}{%- set ns.key = ns.stack[-1:] == '{' -%}
{%- endif -%}
{%- else -%}
{%- set ns.lit = ns.lit + c -%}
{%- endif -%}
{%- endfor -%}
{{- ns.out -}}
{%- endmacro -%}
"""

CHAT_TEMPLATE = (
    _PY_KWARGS_MACRO
    + r"""
{%- macro call_list(tool_calls) -%}
[{%- for call in tool_calls -%}
{%- set fn = call.function if call.function is defined else call -%}
{{- fn.name }}({{ py_kwargs(fn.arguments if fn.arguments is defined else {}) }})
{%- if not loop.last %}, {% endif -%}
{%- endfor -%}]
{%- endmacro -%}
{%- set has_system = messages and messages[0].role == 'system' -%}
{%- if tools or has_system -%}
{{- '<|im_start|>system\n' -}}
{%- if has_system -%}{{- messages[0].content -}}{%- if tools %}{{ '\n' }}{% endif -%}{%- endif -%}
{%- if tools -%}
{{- 'Tools:' -}}
{%- for tool in tools -%}
{%- set fn = tool.function if tool.function is defined else tool -%}
{%- set params = fn.parameters if fn.parameters is defined and fn.parameters else {} -%}
{%- set properties = params.properties if params.properties is defined and params.properties else {} -%}
{%- set required = params.required if params.required is defined and params.required else [] -%}
{{- '\n' + fn.name + '(' -}}
{%- for name in properties -%}
{{- name -}}{%- if name not in required -%}?{%- endif -%}{%- if not loop.last %}, {% endif -%}
{%- endfor -%}
{{- ')' -}}
{%- endfor -%}
{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- endif -%}
{%- for message in messages -%}
{%- if not (loop.first and has_system) -%}
{{- '<|im_start|>' + message.role + '\n' -}}
{%- if message.role == 'assistant' and message.tool_calls -%}
{%- if message.content -%}{{- message.content + '\n' -}}{%- endif -%}
{{- call_list(message.tool_calls) -}}
{%- elif message.content is string -%}
{{- message.content -}}
{%- elif message.content is not none -%}
{{- message.content | tojson -}}
{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\n' -}}
{%- endif -%}
"""
)

# Architecture presets. "small" is the demo's policy: 2 layers of width 128 and a BPE vocabulary of up to 4,096
# tokens (the demo's corpus runs out of merges seen twice at about 1,900: city names, tickers and most words
# become one token), 0.77M parameters; docs/experiments.md ("The demo policy") has the runs behind it. "nano" is
# the ~150k-parameter model the tests build in a few seconds. Both have heads of 64, a head size every vLLM
# attention backend takes (docs/gpu.md, "Model shapes vLLM serves"); `python -m benchmarks head_shapes` compares
# their CPU speed with the narrower heads of the same width.
SIZE_PRESETS: dict[str, dict[str, int]] = {
    "nano": {
        "vocab_size": 1024,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 1,
        "num_key_value_heads": 1,
        "intermediate_size": 128,
    },
    "small": {
        "vocab_size": 4096,
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        # No grouped-query attention at this size: expanding KV heads copies the whole cache on every decode step,
        # which cost more than the attention itself in the batched search.
        "num_key_value_heads": 2,
        "intermediate_size": 512,
    },
}


@dataclass
class TinyModelConfig(EngineConfig):
    """How to build the tiny model. Architecture fields left as None come from the `size` preset."""

    label: ClassVar[str] = "tiny model"

    size: str = "small"  # "nano" (~150k parameters, tests) or "small" (~0.9M, demo); see SIZE_PRESETS
    seed: int = 0  # weight initialisation (torch.manual_seed); same seed and corpus → identical files
    vocab_size: int | None = None  # BPE target; 1,024 in DESIGN.md's probe. Fewer if the corpus runs out of merges
    min_frequency: int = 2  # a pair must occur this often to be merged (tokenizers' usual setting)
    hidden_size: int | None = None
    num_hidden_layers: int | None = None
    num_attention_heads: int | None = None
    num_key_value_heads: int | None = None  # grouped-query attention, as Qwen2 uses
    intermediate_size: int | None = None
    max_position_embeddings: int = 512  # DESIGN.md: prompts with compact tools are ~70-200 tokens
    tie_word_embeddings: bool = True  # the embedding matrix is most of a tiny model; share it with the head

    def __post_init__(self):
        for field_name, value in SIZE_PRESETS.get(self.size, {}).items():
            if getattr(self, field_name) is None:
                setattr(self, field_name, value)
        super().__post_init__()

    def rules(self) -> list[Rule]:
        if self.size not in SIZE_PRESETS:  # the architecture is left unset: nothing more to check
            return [("size", False, f"must be one of {', '.join(SIZE_PRESETS)}")]
        return [
            ("vocab_size", self.vocab_size >= 256 + len(SPECIAL_TOKENS), "must hold the 256 bytes and special tokens"),
            (
                "hidden_size",
                self.hidden_size % self.num_attention_heads == 0,
                f"must be a multiple of num_attention_heads ({self.num_attention_heads})",
            ),
            (
                "num_attention_heads",
                self.num_attention_heads % self.num_key_value_heads == 0,
                f"must be a multiple of num_key_value_heads ({self.num_key_value_heads})",
            ),
        ]


def render_conversation(messages: list[dict], tools: list[dict] | None, add_generation_prompt: bool) -> str:
    """The chat template applied without a tokenizer (used to build the tokenizer's own training text)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(
        conversations=[messages],
        tools=tools or None,
        chat_template=CHAT_TEMPLATE,
        add_generation_prompt=add_generation_prompt,
    )
    return rendered[0]


def render_prompt(tokenizer, messages: list[dict], tools: list[dict] | None = None) -> str:
    """The prompt text a policy continues: its chat template with the generation prompt."""
    return tokenizer.apply_chat_template(messages, tools=tools or None, add_generation_prompt=True, tokenize=False)


def corpus_from_records(queries: Iterable[dict]) -> Iterator[str]:
    """Training text for the tokenizer: each query rendered with its answer, then each tool's description once.

    A query is a dict with `messages`, `tools` (OpenAI form) and `reference_output` (the answer as text).
    """
    descriptions: dict[str, str] = {}
    for query in queries:
        tools = query.get("tools") or []
        prompt = render_conversation(query["messages"], tools, add_generation_prompt=True)
        yield prompt + (query.get("reference_output") or "") + IM_END + "\n"
        for tool in tools:
            fn = tool.get("function", tool)
            properties = (fn.get("parameters") or {}).get("properties") or {}
            lines = [fn.get("description") or ""] + [
                f"{name}: {(schema or {}).get('description', '')}" for name, schema in properties.items()
            ]
            descriptions.setdefault(fn["name"], "\n".join(line for line in lines if line))
    yield from descriptions.values()


def train_tokenizer(corpus: Iterable[str], vocab_size: int, min_frequency: int):
    """A byte-level BPE `PreTrainedTokenizerFast` with the chat template, trained on `corpus`.

    Decoding gives back the encoded text for any NFC text (NFC normalisation is Qwen2's, see below).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    # Qwen2's pipeline exactly (NFC, its split regex, byte-level): `AutoTokenizer` loads a qwen2 checkpoint
    # with `Qwen2Tokenizer`, which rebuilds this pipeline around the saved vocabulary and merges.
    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no unknown tokens
        show_progress=False,
    )

    def without_special_tokens(texts: Iterable[str]) -> Iterator[str]:
        # Special tokens are whole tokens already; keep their pieces out of the merges.
        for text in texts:
            for token in SPECIAL_TOKENS:
                text = text.replace(token, "\n")
            yield text

    backend.train_from_iterator(without_special_tokens(corpus), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=IM_END,
        pad_token=PAD,
        padding_side="left",  # batched generation continues every row from its last real token
        clean_up_tokenization_spaces=False,  # decode(encode(text)) == text
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [END_OF_TEXT, IM_START]})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_model(corpus: Iterable[str], output_dir: str | Path, config: TinyModelConfig | None = None) -> Path:
    """Train the tokenizer on `corpus`, initialise a small Qwen2 from `config.seed`, save both to `output_dir`."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = config or TinyModelConfig()
    output_dir = Path(output_dir)
    tokenizer = train_tokenizer(corpus, config.vocab_size, config.min_frequency)
    tokenizer.model_max_length = config.max_position_embeddings
    eos_ids = [tokenizer.convert_tokens_to_ids(IM_END), tokenizer.convert_tokens_to_ids(END_OF_TEXT)]
    model_config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=config.tie_word_embeddings,
        bos_token_id=None,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # seed the initialisation without touching the caller's RNG
        torch.manual_seed(config.seed)
        model = Qwen2ForCausalLM(model_config)
    model.generation_config.eos_token_id = eos_ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    (output_dir / "tiny_model.json").write_text(
        json.dumps(
            {
                "size": config.size,
                "seed": config.seed,
                "parameters": model.num_parameters(),
                "vocab_size": len(tokenizer),
            },
            indent=2,
        )
        + "\n"
    )
    return output_dir


def tiny_model_summary(path: str | Path) -> dict:
    """What `build_tiny_model` wrote into `tiny_model.json`: size, seed, parameter count, vocabulary size."""
    return json.loads((Path(path) / "tiny_model.json").read_text())
