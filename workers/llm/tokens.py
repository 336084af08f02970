"""Text and token ids as the local backends convert them, and a tokenizer load that is safe from several threads.

The transformers and vLLM backends, and `IsolatedBackend` in the search's own process, all encode and decode
through these two functions, so a fragment's ids mean the same text whichever of them produced or reads them."""

from __future__ import annotations

import functools
import threading
import time

# transformers imports its names lazily, and those first imports are not thread-safe: two threads resolving names at
# once (a trl export's tokenizer while another request imports a model class) can each hold one half of an import
# cycle between its modules, and Python then hands one of them a half-made module ("cannot import name
# 'AutoTokenizer'"). Tokenizer loads take one lock (they also import the tokenizer's own class on first use), and a
# load that meets a half-made module imported by a thread outside this lock is tried again once that import had
# time to finish (waits of 0.05, 0.1, ... 1.6 s).
_TOKENIZER_LOAD = threading.Lock()
_LOAD_ATTEMPTS = 6


def encode_text(tokenizer, text: str) -> list[int]:
    """The ids of `text` alone (no special tokens added): a prompt's, or a continuation's."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def decode_ids(tokenizer, token_ids: list[int]) -> str:
    """The text of `token_ids`. Special tokens stay in the text and spaces are left as they are, so that the text
    re-encodes to the same tokens.

    The search decodes every sample's ids several times: for a tokenizer whose `decode` is, with these options,
    exactly its Rust tokenizer's (`TokenizersBackend`'s own), a list of ids goes straight to the Rust one, which
    saves transformers' checks of every id (half the time of a decode)."""
    if type(token_ids) is list and _decodes_in_rust(type(tokenizer)):
        return tokenizer._tokenizer.decode(token_ids, skip_special_tokens=False)
    return tokenizer.decode(token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


@functools.cache
def _decodes_in_rust(tokenizer_class: type) -> bool:
    """Whether the class decodes with transformers' own `decode` and TokenizersBackend's `_decode`, neither
    overridden: for a list of ids that is the Rust tokenizer's decode, followed by a clean-up of spaces that
    `decode_ids` turns off."""
    try:
        from transformers.tokenization_utils_base import PreTrainedTokenizerBase
        from transformers.tokenization_utils_tokenizers import TokenizersBackend
    except ImportError:
        return False
    return (
        issubclass(tokenizer_class, TokenizersBackend)
        and tokenizer_class._decode is TokenizersBackend._decode
        and tokenizer_class.decode is PreTrainedTokenizerBase.decode
    )


def _half_imported(exc: Exception) -> bool:
    """An import that met another thread's unfinished one (transformers wraps it as "Failed to import ...")."""
    return isinstance(exc, ImportError) or (isinstance(exc, RuntimeError) and "Failed to import" in str(exc))


def load_tokenizer(path: str):
    """The tokenizer (and chat template) saved at `path`; safe to call from several threads of a fresh process."""
    with _TOKENIZER_LOAD:
        for attempt in range(_LOAD_ATTEMPTS):
            try:
                from transformers import AutoTokenizer

                return AutoTokenizer.from_pretrained(path)
            except (ImportError, RuntimeError) as exc:
                if not _half_imported(exc) or attempt == _LOAD_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover
