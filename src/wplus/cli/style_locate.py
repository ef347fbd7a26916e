"""``wplus style locate`` and ``wplus style find``: the channels behind an image region or an attribute."""

from __future__ import annotations

from wplus.cli.style import style_group  # noqa: F401  (the commands below register on it)
