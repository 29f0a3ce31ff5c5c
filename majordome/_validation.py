"""A pydantic base whose constructor raises :class:`BadRequestError` instead of pydantic's error,
so that bad input from callers meets majordome's own exception tree."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from majordome._errors import BadRequestError, ConfigurationError

__all__ = ["ValidatedModel", "configuration_error", "describe", "did_you_mean"]


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when an option is close to ``name``, else nothing."""
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def configuration_error(
    exc: ValidationError, fields: Iterable[str], source: str, *, prefix: str = ""
) -> ConfigurationError:
    """One :class:`ConfigurationError` listing every problem of a configuration file or object,
    each located (``prefix`` + field path), unknown keys with a suggestion."""
    known = list(fields)
    problems = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"])
        where = f"{prefix}{loc}" if loc else prefix.rstrip(".")
        if error["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown key{did_you_mean(str(error['loc'][-1]), known)}")
        else:
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
    return ConfigurationError(f"{source}: " + "; ".join(problems))


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
