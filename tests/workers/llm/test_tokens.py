"""Token ids and text, as every local backend converts them: the direct Rust decode gives transformers' text."""

import random

from workers.llm.tokens import decode_ids, encode_text, load_tokenizer


def _id_lists(tokenizer, count: int):
    rng = random.Random(0)
    specials = tokenizer.all_special_ids
    for _ in range(count):
        ids = [rng.randrange(len(tokenizer)) for _ in range(rng.randint(0, 40))]
        if ids and rng.random() < 0.3:
            ids.insert(rng.randrange(len(ids)), rng.choice(specials))
        yield ids


def test_decode_is_transformers_decode_keeping_special_tokens_and_spaces(tiny_model_dir):
    tokenizer = load_tokenizer(str(tiny_model_dir))
    for ids in _id_lists(tokenizer, 3000):  # partial characters and special tokens included
        expected = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        assert decode_ids(tokenizer, ids) == decode_ids(tokenizer, tuple(ids)) == expected
    text = "[get_weather(city='Zürich', days=3)]  東京\n"
    assert decode_ids(tokenizer, encode_text(tokenizer, text)) == text


def test_a_tokenizer_with_a_decode_of_its_own_is_asked_itself(tiny_model_dir):
    """A class that overrides `_decode` or `decode` decodes its own way: the Rust tokenizer is not asked directly."""
    tokenizer = load_tokenizer(str(tiny_model_dir))

    class Shouting(type(tokenizer)):
        def _decode(self, token_ids, **kwargs):
            return super()._decode(token_ids, **kwargs).upper()

    class Whispering(type(tokenizer)):
        def decode(self, token_ids, **kwargs):
            return super().decode(token_ids, **kwargs).lower()

    ids = encode_text(tokenizer, "get_weather(city='Paris')")
    tokenizer.__class__ = Shouting
    assert decode_ids(tokenizer, ids) == "GET_WEATHER(CITY='PARIS')"
    tokenizer.__class__ = Whispering
    assert decode_ids(tokenizer, ids) == "get_weather(city='paris')"
