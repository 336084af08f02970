"""The tiny model: tokenizer, chat template, save / load through from_pretrained, seeded initialisation."""

import json

import pytest
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from rewards.parsing import render_call_list
from workers.llm.tiny import (
    IM_END,
    TinyModelConfig,
    build_tiny_model,
    render_conversation,
    render_prompt,
    tiny_model_summary,
    train_tokenizer,
)

WEATHER_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city on a date.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name."},
                "date": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "date"],
        },
    },
}
CAPITAL_BFCL = {
    "name": "get_capital",
    "description": "Capital of a country.",
    "parameters": {"type": "dict", "properties": {"country": {"type": "string"}}, "required": ["country"]},
}
NO_ARGS = {"type": "function", "function": {"name": "now", "description": "Current time.", "parameters": {}}}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.mark.parametrize(
    "text",
    [
        "[get_weather(city='Paris', date='2025-01-09')]",
        "What's the weather in São Paulo? 東京 and Zürich…  two  spaces\n\n\ttab",
        "<|im_start|>user\nhi<|im_end|>\n",
        "",
    ],
)
def test_tokenizer_round_trips_text(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=False) == text


def test_special_tokens_are_single_tokens(tokenizer):
    for token in ("<|im_start|>", "<|im_end|>", "<|pad|>", "<|endoftext|>"):
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1
    assert tokenizer.eos_token == IM_END
    assert tokenizer.pad_token == "<|pad|>"
    assert tokenizer.padding_side == "left"


def test_loaded_tokenizer_encodes_as_trained(tokenizer, tiny_corpus):
    # AutoTokenizer rebuilds a qwen2 checkpoint's tokenizer with Qwen2Tokenizer: it must split as training did.
    trained = train_tokenizer(tiny_corpus, 1024, 2)
    for text in tiny_corpus[:20] + ["1234 tables at 12:30, it's   odd!!\n\n x"]:
        assert tokenizer(text)["input_ids"] == trained(text)["input_ids"]
    assert len(tokenizer) == len(trained)


def test_chat_template_renders_tools_one_line_each(tokenizer):
    messages = [{"role": "user", "content": "Weather in Paris tomorrow?"}]
    text = tokenizer.apply_chat_template(
        messages, tools=[WEATHER_OPENAI, CAPITAL_BFCL, NO_ARGS], add_generation_prompt=True, tokenize=False
    )
    assert text == (
        "<|im_start|>system\nTools:\nget_weather(city, date, unit?)\nget_capital(country)\nnow()<|im_end|>\n"
        "<|im_start|>user\nWeather in Paris tomorrow?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chat_template_renders_system_tool_calls_and_tool_messages(tokenizer):
    messages = [
        {"role": "system", "content": "Answer with calls."},
        {"role": "user", "content": "Weather in the capital of Portugal today?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "get_capital", "arguments": '{"country": "Portugal"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "name": "get_capital", "content": '{"capital": "Lisbon"}'},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Lisbon", "date": "today", "days": 2}}}
            ],
        },
        {"role": "tool", "content": "sunny"},
        {"role": "assistant", "content": "Sunny in Lisbon."},
    ]
    text = tokenizer.apply_chat_template(messages, tools=[WEATHER_OPENAI, CAPITAL_BFCL], tokenize=False)
    assert text == (
        "<|im_start|>system\nAnswer with calls.\nTools:\nget_weather(city, date, unit?)\nget_capital(country)"
        "<|im_end|>\n"
        "<|im_start|>user\nWeather in the capital of Portugal today?<|im_end|>\n"
        "<|im_start|>assistant\n[get_capital(country='Portugal')]<|im_end|>\n"
        '<|im_start|>tool\n{"capital": "Lisbon"}<|im_end|>\n'
        "<|im_start|>assistant\nChecking.\n[get_weather(city='Lisbon', date='today', days=2)]<|im_end|>\n"
        "<|im_start|>tool\nsunny<|im_end|>\n"
        "<|im_start|>assistant\nSunny in Lisbon.<|im_end|>\n"
    )


def test_chat_template_without_tools_or_system_has_no_system_block(tokenizer):
    text = render_prompt(tokenizer, [{"role": "user", "content": "hi"}])
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize(
    "arguments",
    [
        {"city": "Paris"},
        {"a": "it's", "b": 'say "hi"', "c": "both ' and \"", "d": "back\\slash\nnewline\ttab"},
        {"n": 3, "x": 2.5, "small": 1e-05, "neg": -7, "big": 12345678901234, "flag": True, "off": False, "none": None},
        {"items": [1, "two", [3.0, None]], "nested": {"k": "v", "list": [True]}, "empty": [], "obj": {}},
        {"text": "true false null, {not: json} = [ ]"},
        {"place": "São Paulo", "word": "Zürich"},
        {},
    ],
)
@pytest.mark.parametrize("as_json_string", [False, True])
def test_tool_call_arguments_render_like_the_python_call_list(tokenizer, arguments, as_json_string):
    payload = json.dumps(arguments, ensure_ascii=False) if as_json_string else arguments
    messages = [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "tool_calls": [
                {"function": {"name": "f", "arguments": payload}},
                {"function": {"name": "g", "arguments": payload}},
            ],
        },
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    expected = render_call_list([{"name": "f", "arguments": arguments}, {"name": "g", "arguments": arguments}])
    assert f"<|im_start|>assistant\n{expected}<|im_end|>\n" in text


def test_render_conversation_is_the_tokenizers_template(tokenizer, tiny_queries):
    for query in tiny_queries[:10]:
        assert render_conversation(query["messages"], query["tools"], True) == render_prompt(
            tokenizer, query["messages"], query["tools"]
        )


def test_corpus_holds_answered_conversations_and_each_tool_description_once(tiny_queries, tiny_corpus):
    query = tiny_queries[0]
    assert (
        tiny_corpus[0]
        == render_conversation(query["messages"], query["tools"], True) + query["reference_output"] + "<|im_end|>\n"
    )
    conversations = tiny_corpus[: len(tiny_queries)]
    descriptions = tiny_corpus[len(tiny_queries) :]
    assert all(c.startswith("<|im_start|>") for c in conversations)
    tool_names = {t["function"]["name"] for q in tiny_queries for t in q["tools"]}
    assert len(descriptions) == len(tool_names)
    assert not any("<|im_start|>" in d for d in descriptions)


def test_model_and_tokenizer_load_back_with_from_pretrained(tiny_model_dir, tokenizer):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.max_position_embeddings == 512
    assert model.config.tie_word_embeddings
    assert tokenizer.convert_tokens_to_ids(IM_END) in model.generation_config.eos_token_id
    summary = tiny_model_summary(tiny_model_dir)
    assert summary["parameters"] == model.num_parameters()
    assert 100_000 <= summary["parameters"] <= 200_000  # "nano": ~150k
    ids = tokenizer("<|im_start|>user\nhi", return_tensors="pt")["input_ids"]
    assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tokenizer))


def test_small_preset_is_the_demos_two_layer_model():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = TinyModelConfig(size="small")
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size, config.vocab_size) == (
        128,
        2,
        512,
        4096,
    )
    assert (config.num_attention_heads, config.num_key_value_heads) == (2, 2)  # heads of 64, which vLLM serves
    d, layers, ffn, kv = 128, 2, 512, 128  # two KV heads of 64: no grouped-query attention at this size
    attention = d * d + d + 2 * (d * kv + kv) + d * d

    def parameters(vocab: int) -> int:
        return vocab * d + layers * (attention + 3 * d * ffn + 2 * d) + d

    # the demo's corpus gives a 1,903-token vocabulary: the 769,280-parameter model `make demo` prints
    assert parameters(1903) == 769_280
    model = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=1903,
            hidden_size=d,
            num_hidden_layers=layers,
            num_attention_heads=2,
            num_key_value_heads=2,
            intermediate_size=ffn,
            tie_word_embeddings=True,
        )
    )
    assert model.num_parameters() == parameters(1903)
    assert parameters(config.vocab_size) <= 1_100_000  # the full 4,096 tokens stay near a million


def test_config_rejects_unknown_size_and_bad_shapes():
    with pytest.raises(ValueError, match="size must be one of"):
        TinyModelConfig(size="huge")
    with pytest.raises(ValueError, match="multiple of num_attention_heads"):
        TinyModelConfig(size="nano", hidden_size=50, num_attention_heads=4)


def test_same_seed_gives_identical_files_and_another_seed_other_weights(tmp_path, tiny_model_dir, tiny_corpus):
    again = build_tiny_model(tiny_corpus, tmp_path / "again", TinyModelConfig(size="nano", seed=0))
    other = build_tiny_model(tiny_corpus, tmp_path / "other", TinyModelConfig(size="nano", seed=1))
    first = load_file(tiny_model_dir / "model.safetensors")
    assert (tmp_path / "again" / "tokenizer.json").read_text() == (tiny_model_dir / "tokenizer.json").read_text()
    same = load_file(again / "model.safetensors")
    different = load_file(other / "model.safetensors")
    assert first.keys() == same.keys() == different.keys()
    assert all((first[k] == same[k]).all() for k in first)
    assert any(not (first[k] == different[k]).all() for k in first if first[k].dim() == 2)
