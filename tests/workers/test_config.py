"""Every engine config is validated one way: unknown keys refused naming them and the known ones, types checked
(ints stored as floats where a float is declared), and all failed rules reported in one ConfigError naming the
fields."""

from dataclasses import fields

import pytest

from workers.config import ConfigError
from workers.llm.tiny import TinyModelConfig
from workers.mcts import MCTSConfig, PairConfig
from workers.select import SelectionConfig
from workers.train.grpo import GRPOParams
from workers.train.preference import DPOParams, ORPOParams
from workers.train.sft import WarmupConfig

CONFIGS = [MCTSConfig, PairConfig, SelectionConfig, WarmupConfig, GRPOParams, DPOParams, ORPOParams, TinyModelConfig]


@pytest.mark.parametrize("config_class", CONFIGS, ids=lambda c: c.__name__)
def test_unknown_keys_are_refused_naming_them_and_the_known_ones(config_class):
    with pytest.raises(ConfigError) as error:
        config_class.from_dict({"zz_typo": 1, "aa_typo": 2})
    message = str(error.value)
    known = ", ".join(f.name for f in fields(config_class))
    assert message == f"unknown {config_class.label} setting(s): aa_typo, zz_typo; known: {known}"
    assert error.value.fields == ("aa_typo", "zz_typo")


@pytest.mark.parametrize("config_class", CONFIGS, ids=lambda c: c.__name__)
def test_from_dict_builds_the_config_the_constructor_builds(config_class):
    first = fields(config_class)[0]
    assert config_class.from_dict({first.name: first.default}) == config_class(**{first.name: first.default})
    assert config_class.from_dict(None) == config_class.from_dict({}) == config_class()
    with pytest.raises(ConfigError, match=f"{config_class.label} settings: expected an object, got list"):
        config_class.from_dict(["seed", 3])


def test_every_failed_rule_is_reported_naming_its_field():
    with pytest.raises(ConfigError) as error:
        WarmupConfig(epochs=0, batch_size=0, adam_beta2=1.5)
    assert error.value.fields == ("epochs", "batch_size", "adam_beta2")
    assert str(error.value) == (
        "invalid sft settings: epochs must be > 0 (got 0.0); batch_size must be >= 1 (got 0); "
        "adam_beta2 must be in (0, 1) (got 1.5)"
    )


def test_types_are_checked_before_the_rules_and_ints_become_floats():
    with pytest.raises(ConfigError) as error:
        SelectionConfig(ratio="0.3", k=2.0, max_queries="all")
    assert error.value.fields == ("ratio", "k", "max_queries")
    assert "ratio must be float (got '0.3')" in str(error.value)
    assert "max_queries must be int or None (got 'all')" in str(error.value)
    config = PairConfig(gap_min=1)
    assert config.gap_min == 1.0 and isinstance(config.gap_min, float)
    with pytest.raises(ConfigError, match="lora must be bool"):
        GRPOParams(lora=1)


def test_a_config_error_is_a_value_error():
    with pytest.raises(ValueError, match="scorer must be one of checker, judge"):
        MCTSConfig(scorer="oracle")
