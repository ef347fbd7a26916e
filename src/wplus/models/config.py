"""What every architecture's config dataclass shares: a JSON round trip that rejects unknown keys."""

from __future__ import annotations

import dataclasses
from typing import Any, Self

from wplus.errors import ConfigError


class ModelConfig:
    """Mixin for frozen config dataclasses stored next to the weights (our safetensors header holds ``to_dict()``).

    Tuple fields travel as JSON lists and come back as tuples; ``arch`` (a non-init field naming the module) is
    written but not read back.
    """

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
        unknown = set(d) - set(fields) - {"arch"}
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} keys {sorted(unknown)}; expected a subset of {sorted(fields)}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in fields}
        return cls(**kwargs)
