"""``wplus style parts`` and ``wplus style transfer``: Editing in Style's parts and part transfer between faces."""

from __future__ import annotations

from wplus.cli.style import style_group  # noqa: F401  (the commands below register on it)
