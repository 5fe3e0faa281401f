"""How images are prepared before sending: the settings a config gives, used as they are at run time."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from visionbench.spec import FrozenModel

MIME_TYPES = {"jpeg": "image/jpeg", "png": "image/png"}


class Preprocessing(FrozenModel):
    """Every field changes the output bytes, so every field is in ``key()``."""

    max_side: int | None = Field(default=1536, gt=0, description="Longest side after downscaling; null keeps it.")
    format: Literal["jpeg", "png"] = "jpeg"
    quality: int = Field(default=85, ge=1, le=100, description="JPEG quality.")

    @property
    def mime_type(self) -> str:
        return MIME_TYPES[self.format]

    def at(self, max_side: int | None) -> Preprocessing:
        """The same settings at another size (validated like the config's)."""
        if max_side == self.max_side:
            return self
        return Preprocessing(max_side=max_side, format=self.format, quality=self.quality)

    def key(self) -> str:
        """A stable string of every parameter, for cache keys."""
        return f"max_side={self.max_side};format={self.format};quality={self.quality}"
