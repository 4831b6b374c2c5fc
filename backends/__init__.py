"""Device backends: importing this package registers every built-in backend."""

from backends import auto as _auto  # noqa: F401
from backends import cpu as _cpu  # noqa: F401
from backends import gpu as _gpu  # noqa: F401
from backends import npu as _npu  # noqa: F401
from backends.base import Backend

__all__ = ["Backend"]
