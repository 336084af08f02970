"""Input forms of the project pages: the guidelines' text (bounded, and no NUL characters: the database cannot
store them; Django's CharField refuses them, as the REST API's fields do)."""

from __future__ import annotations

from django import forms

MAX_GUIDELINES_CHARS = 100_000


class GuidelinesForm(forms.Form):
    guidelines = forms.CharField(required=False, strip=False, max_length=MAX_GUIDELINES_CHARS)
    read_version = forms.CharField(required=False, max_length=64)

    def error_message(self) -> str:
        return "; ".join(f"{name}: {' '.join(errors)}" for name, errors in self.errors.items())
