"""A pydantic base whose constructor raises :class:`BadRequestError` instead of pydantic's error,
so that bad input from callers meets majordome's own exception tree."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from majordome._errors import BadRequestError

__all__ = ["ValidatedModel", "describe"]


def describe(exc: ValidationError, what: str) -> str:
    """One line listing each problem with its location."""
    problems = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"]) or what
        problems.append(f"{loc}: {error['msg']}")
    return f"invalid {what}: " + "; ".join(problems)


class ValidatedModel(BaseModel):
    """Frozen, no unknown fields; invalid input raises :class:`BadRequestError`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise BadRequestError(describe(exc, type(self).__name__)) from exc
