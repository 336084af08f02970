"""Loading a policy's tokenizer from several threads of a fresh process (issue 14, item 8: a trl export and a round
creation at the same moment on a fresh server gave `ImportError: cannot import name 'AutoTokenizer'`)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

# A fresh interpreter (the test process has transformers imported already): three threads load the tokenizer through
# `policy_tokenizer` while four others import transformers names the way other requests do, all released at once.
# Before the fix, 3 of 4 such runs failed with "cannot import name 'AutoTokenizer'".
SCRIPT = textwrap.dedent("""
    import json, sys, threading
    from types import SimpleNamespace

    import django

    django.setup()
    from apps.training.policy import policy_tokenizer

    others = ["from transformers import PreTrainedTokenizerFast", "from transformers import AutoModelForCausalLM",
              "from transformers import Qwen2Config",
              "from transformers.utils.chat_template_utils import render_jinja_template"]
    barrier = threading.Barrier(3 + len(others))
    loaded, errors = [], []

    def load():
        barrier.wait()
        try:
            loaded.append(len(policy_tokenizer(SimpleNamespace(path=sys.argv[1]))))
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    def other(statement):
        barrier.wait()
        try:
            exec(statement, {})
        except Exception:
            pass  # not under test: only the loads must hold

    threads = [threading.Thread(target=load) for _ in range(3)]
    threads += [threading.Thread(target=other, args=(s,)) for s in others]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"loaded": loaded, "errors": errors}))
""")


@pytest.mark.slow
def test_concurrent_first_loads_in_a_fresh_process_all_succeed(tiny_model_dir, tmp_path):
    script = tmp_path / "loads.py"
    script.write_text(SCRIPT)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "itool_web.settings",
        "PYTHONPATH": str(ROOT),
        "ITOOL_DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, str(script), str(tiny_model_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == []
    assert len(result["loaded"]) == 3 and len(set(result["loaded"])) == 1  # three loads of the same vocabulary


def test_a_load_that_meets_a_half_made_import_is_tried_again(monkeypatch):
    """The retry itself, without threads: an import that fails as a half-made module does succeeds once the other
    thread's import is done; any other failure is raised at once."""
    import transformers

    from apps.training import policy
    from workers.llm import tokens

    calls = []

    def flaky(path):
        calls.append(path)
        if len(calls) < 3:
            raise ImportError("cannot import name 'AutoTokenizer' from 'transformers'")
        return "tokenizer"

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", flaky)
    monkeypatch.setattr(tokens.time, "sleep", lambda seconds: None)
    assert policy.policy_tokenizer(type("C", (), {"path": "/x"})()) == "tokenizer" and len(calls) == 3

    def missing(path):
        raise OSError(f"{path} is not a directory")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", missing)
    with pytest.raises(OSError):
        policy.policy_tokenizer(type("C", (), {"path": "/x"})())
