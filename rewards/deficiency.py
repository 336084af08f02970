"""What can be wrong with a tool-calling response: one name per kind of mistake."""

from enum import StrEnum


class Deficiency(StrEnum):
    """The checker's verdict labels; pairs store the one found on their rejected branch."""

    NONE = ""  # the response is right
    NO_CALL = "no_call"  # text where a call was expected
    MALFORMED = "malformed"  # looks like a call but does not parse
    WRONG_FUNCTION = "wrong_function"
    MISSING_CALL = "missing_call"  # fewer calls than the ground truth
    EXTRA_CALL = "extra_call"  # more calls than the ground truth
    MISSING_PARAM = "missing_param"
    UNEXPECTED_PARAM = "unexpected_param"
    WRONG_TYPE = "wrong_type"
    WRONG_VALUE = "wrong_value"
    CALL_ON_IRRELEVANT = "call_on_irrelevant"  # a call where no call is right
    BAD_INPUT = "bad_input"  # the scoring request itself was unusable

    @property
    def label(self) -> str:
        return "none" if self is Deficiency.NONE else self.value.replace("_", " ")


DEFICIENCY_CHOICES = [(d.value, d.label) for d in Deficiency]
