"""The forgeai CLI with TUF's clock moved DAYS ahead: the registry's metadata, signed for
"now", looks the way a frozen registry's looks once its expiry has passed.

Usage: ``python -m tests.support.later_clock_cli DAYS forgeai-arguments...``
"""

from __future__ import annotations

import datetime as real
import sys
import types

from tuf.ngclient._internal import trusted_metadata_set

from forgeai_ls.cli.main import entry

DAYS = float(sys.argv.pop(1))


class _Later(real.datetime):
    @classmethod
    def now(cls, tz: real.tzinfo | None = None) -> _Later:  # type: ignore[override]
        moved = real.datetime.now(tz) + real.timedelta(days=DAYS)
        return cls.fromtimestamp(moved.timestamp(), tz)


trusted_metadata_set.datetime = types.SimpleNamespace(  # type: ignore[assignment]
    datetime=_Later, timezone=real.timezone, timedelta=real.timedelta
)
sys.argv[0] = "forgeai"
entry()
