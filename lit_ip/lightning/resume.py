"""What a resumed run may trust: undamaged outputs, and one data item per output name.

* :func:`usable` -- an output counts as done only if it exists and reads back (a 0-byte
  file, invalid JSON or an undecodable PNG -- what a crash can leave -- is removed, named in
  the log, and redone).
* :class:`KeyLedger` -- every output name (the key made file-name safe) belongs to exactly
  one data item ``(key, index)``. Two items with the same key (two shards both holding
  ``im0.png``) or with keys that map to one name are refused, naming both, instead of the
  second silently taking the first one's outputs. The claim is checked against this
  process's earlier items and against ``metrics/NAME.json`` (which stores the key and the
  index), so duplicates across runs and across processes are caught too (two processes
  writing the same name at the same instant are the one case left to the final count).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from .. import io


class DuplicateKeyError(ValueError):
    """Two data items would write to the same output files."""


def usable(path: Path) -> bool:
    """``path`` exists and is readable; a damaged file is removed (and logged) so it is redone."""
    if not path.exists():
        return False
    why = io.damage(path)
    if why is None:
        return True
    print(f"lit-ip: damaged output {path} ({why}): removed, redoing it", file=sys.stderr)
    path.unlink(missing_ok=True)
    return False


class KeyLedger:
    """Output name -> the ``(key, index)`` that owns it (see the module docstring)."""

    def __init__(self) -> None:
        self.owners: dict[str, tuple[str, Optional[int]]] = {}

    @staticmethod
    def _refuse(skey: str, first: tuple, second: tuple) -> None:
        (k1, i1), (k2, i2) = first, second
        what = "the same key" if k1 == k2 else "keys that map to the same file name"
        raise DuplicateKeyError(
            f"two data items have {what} {skey!r}: key {k1!r} (index {i1}) and key {k2!r} "
            f"(index {i2}); every item needs its own key (rename one, or give the data "
            f"source distinct keys)")

    def claim(self, skey: str, key: str, index: Optional[int], record: Optional[dict] = None) -> None:
        """Claim ``skey`` for ``(key, index)``; ``record`` is its ``metrics/*.json``, if any."""
        me = (str(key), None if index is None else int(index))
        if record is not None and "key" in record:
            owner = (str(record["key"]), record.get("index"))
            if owner[0] != me[0] or (me[1] is not None and owner[1] is not None and int(owner[1]) != me[1]):
                self._refuse(skey, owner, me)
        prev = self.owners.setdefault(skey, me)
        if prev != me:
            self._refuse(skey, prev, me)
