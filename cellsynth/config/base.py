"""What every config section shares: strict models (unknown keys and true/false-as-numbers refused,
objects frozen) and the physical bounds of their numbers."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from cellsynth.checks import MAX_LENGTH_UM

#: Bounds that no experiment reaches: a length above a metre, a count above a billion, or any
#: number above 10⁹ is a mistake, not a request (and would overflow the arithmetic behind it).
MAX_QUANTITY = 1e9
PositiveUm = Annotated[float, Field(gt=0, le=MAX_LENGTH_UM, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, le=MAX_QUANTITY, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, le=MAX_QUANTITY, allow_inf_nan=False)]
Finite = Annotated[float, Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY, allow_inf_nan=False)]
PositiveInt = Annotated[int, Field(ge=1, le=2**31 - 1)]
NonNegativeInt = Annotated[int, Field(ge=0, le=2**31 - 1)]
Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]
#: One length for all axes, or (z, y, x); always stored as three.
TripleUm = Annotated[
    tuple[PositiveUm, PositiveUm, PositiveUm],
    BeforeValidator(lambda v: (v, v, v) if isinstance(v, int | float) and not isinstance(v, bool) else v),
]


def _holds_bool(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, list | tuple) and any(_holds_bool(v) for v in value))


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, objects are immutable, and true/false is
    never read as the number 1/0 (``shape: [true, 32, 32]`` is a mistake)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, data):
        if isinstance(data, dict):
            for key, value in data.items():
                field = cls.model_fields.get(key) if isinstance(key, str) else None
                if field is not None and field.annotation is not bool and _holds_bool(value):
                    raise ValueError(f"'{key}' takes numbers or text, not true/false (got {_shown(value)})")
        return data


def _shown(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error line echoes input, never pages of it."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
