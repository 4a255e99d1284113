"""One-line errors for the notebook API's settings objects (pydantic's own are several lines)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError


class APIConfigError(ValueError):
    """A bad argument or setting of the API: names the field, the value and what is valid."""


def shown(value: Any) -> str:
    """A value as an error message quotes it (short)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Settings(BaseModel):
    """A frozen pydantic model whose bad fields raise :class:`APIConfigError` in one line.

    ``NO_MEANING`` maps field names the original write-up had (or a user may guess) to why they
    mean nothing here: such a field is refused with its reason, never ignored.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    NO_MEANING: ClassVar[dict[str, str]] = {}

    def __init__(self, **data: Any) -> None:
        name = type(self).__name__
        fields = type(self).model_fields
        for key, value in data.items():
            if key not in fields:
                reason = self.NO_MEANING.get(key, "no such setting")
                raise APIConfigError(
                    f"{name}.{key} = {shown(value)}: {reason}; valid fields: {', '.join(fields)}"
                )
        try:
            super().__init__(**data)
        except ValidationError as err:
            e = err.errors()[0]
            loc = ".".join(str(p) for p in e["loc"])
            msg = e["msg"].removeprefix("Value error, ")
            if loc:
                raise APIConfigError(f"{name}.{loc}: {msg} (got {shown(e['input'])})") from None
            raise APIConfigError(f"{name}.{msg}") from None  # a cross-field check names its field
