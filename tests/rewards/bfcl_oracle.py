"""BFCL's own AST checker and decoder from the bfcl-eval package, as a test oracle.

bfcl-eval is installed without its dependencies (see the Makefile); its model registry pulls in every
provider SDK, so a stand-in `model_config` module is registered before the checker is imported.
"""

import os
import sys
import tempfile
import types
from collections import defaultdict

MODEL = "oracle"


def _stub_model_config() -> None:
    os.environ.setdefault("BFCL_PROJECT_ROOT", tempfile.mkdtemp(prefix="bfcl-"))
    module = types.ModuleType("bfcl_eval.constants.model_config")
    module.MODEL_CONFIG_MAPPING = defaultdict(lambda: types.SimpleNamespace(underscore_to_dot=False))
    sys.modules["bfcl_eval.constants.model_config"] = module


_stub_model_config()
from bfcl_eval.constants.enums import Language  # noqa: E402
from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker  # noqa: E402
from bfcl_eval.model_handler.utils import default_decode_ast_prompting  # noqa: E402


def bfcl_valid(output: str, functions: list, possible_answer: list, category: str) -> bool:
    """BFCL's verdict on a prompting-style model output, as its evaluation pipeline reaches it."""
    irrelevance = "irrelevance" in category
    try:
        decoded = default_decode_ast_prompting(output)
        ok_decode = isinstance(decoded, list) and all(isinstance(d, dict) for d in decoded) and decoded != []
    except Exception:  # noqa: BLE001 — a failed decode is BFCL's "no call"
        ok_decode = False
    if irrelevance:
        return not ok_decode
    if not ok_decode:
        return False
    try:
        result = ast_checker(functions, decoded, possible_answer, Language.PYTHON, category, MODEL)
    except Exception:  # noqa: BLE001 — BFCL crashing on an output counts as invalid
        return False
    return bool(result["valid"])
