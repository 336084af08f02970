"""The new-round form: algorithm, review gate, policy, and the per-stage settings as JSON objects that are
validated by the same config classes the engines use (a typo is refused here, not hours later)."""

from __future__ import annotations

import json

from django import forms

from .models import Checkpoint, TrainingRound

A = TrainingRound.Algorithm


def validate_train_config(algorithm: str, train: dict) -> None:
    """ValueError (with the engine's message) unless `train` configures `algorithm`'s trainer."""
    if algorithm == A.SFT:
        from workers.train.sft import WarmupConfig

        WarmupConfig.from_dict(train)
    elif algorithm == A.GRPO:
        from workers.train.grpo import GRPOParams

        GRPOParams.from_dict(train)
    else:
        from workers.train.preference import config_for

        config_for(algorithm, train)


def _json_object(value: str, label: str) -> dict:
    value = (value or "").strip()
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        where = f"at line {exc.lineno} column {exc.colno}"
        raise forms.ValidationError(f"{label}: not valid JSON ({exc.msg} {where})") from exc
    if not isinstance(parsed, dict):
        raise forms.ValidationError(f'{label}: a JSON object is expected, e.g. {{"learning_rate": 1e-4}}')
    return parsed


class RoundForm(forms.Form):
    algorithm = forms.ChoiceField(choices=[c for c in A.choices if c[0] != A.SFT], initial=A.SIMPO)
    policy = forms.ModelChoiceField(
        queryset=Checkpoint.objects.none(),
        required=False,
        help_text="Default: the last round's output, else the newest checkpoint.",
    )
    gate = forms.ChoiceField(choices=TrainingRound.Gate.choices, initial=TrainingRound.Gate.ALL_REVIEWED)
    gate_value = forms.FloatField(
        initial=1.0,
        min_value=0,
        help_text="Fraction (0–1) for 'a fraction reviewed'; a count for 'a minimum approved'.",
    )
    train = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "code"}),
        label="Training settings (JSON)",
        help_text='Overrides of the algorithm\'s defaults, e.g. {"beta": 2.5, "gamma": 0.5}.',
    )
    selection = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "class": "code"}),
        label="Selection (JSON)",
        help_text='e.g. {"method": "perplexity", "ratio": 0.3}',
    )
    search = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "class": "code"}),
        label="Search (JSON)",
        help_text='MCTS settings, e.g. {"simulations": 5, "width": 3}',
    )
    pairs = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "class": "code"}),
        label="Pairs (JSON)",
        help_text='Pair filter, e.g. {"chosen_value_min": 0.5, "gap_min": 0.1} (iTool: −0.3, 0.1)',
    )
    eval_limit = forms.IntegerField(required=False, min_value=1, help_text="Evaluate on the first N eval queries.")
    auto_approve = forms.BooleanField(
        required=False, help_text="Approve every pair without review and train at once (no gate)."
    )

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["policy"].queryset = Checkpoint.objects.filter(project=project).order_by("-created_at")

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        algorithm = data["algorithm"]
        train = _json_object(data.get("train"), "training settings")
        selection = _json_object(data.get("selection"), "selection")
        search = _json_object(data.get("search"), "search")
        pairs = _json_object(data.get("pairs"), "pairs")
        try:
            validate_train_config(algorithm, train)
        except (TypeError, ValueError) as exc:
            raise forms.ValidationError(f"training settings for {algorithm}: {exc}") from exc
        try:
            from workers.select import SelectionConfig

            SelectionConfig.from_dict(selection)
        except (TypeError, ValueError) as exc:
            raise forms.ValidationError(f"selection: {exc}") from exc
        try:
            from workers.mcts import MCTSConfig

            MCTSConfig.from_dict(search) if search else None
        except (TypeError, ValueError) as exc:
            raise forms.ValidationError(f"search: {exc}") from exc
        try:
            from workers.mcts import PairConfig

            PairConfig.from_dict(pairs)
        except (TypeError, ValueError) as exc:
            raise forms.ValidationError(f"pairs: {exc}") from exc
        if data["gate"] == TrainingRound.Gate.FRACTION_REVIEWED and not 0 < data["gate_value"] <= 1:
            raise forms.ValidationError("a fraction gate needs a value in (0, 1]")
        hyper = {"train": train, **({"pairs": pairs} if pairs else {})}
        if data.get("eval_limit"):
            hyper["eval_limit"] = data["eval_limit"]
        if data.get("auto_approve"):
            hyper["auto_approve"] = True
        data["parsed"] = {"selection": selection, "search_config": search, "hyperparameters": hyper}
        return data
