"""The life cycle shared by the Python wrappers of native files (memory maps)."""

from __future__ import annotations

from typing import Any, Generic, Optional, TypeVar

R = TypeVar("R")
H = TypeVar("H", bound="NativeHandle[Any]")


class NativeHandle(Generic[R]):
    """A native file object ``R`` held until :meth:`close`; usable as a context manager."""

    _path: str
    _raw: Optional[R]

    @property
    def raw(self) -> R:
        """The native file (raises ValueError once closed)."""
        if self._raw is None:
            raise ValueError(f"{self._path}: the file is closed")
        return self._raw

    @property
    def path(self) -> str:
        """The path the file was opened with."""
        return self._path

    def close(self) -> None:
        """Releases the memory map. Arrays already returned stay valid."""
        self._raw = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._raw is None

    def __enter__(self: H) -> H:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
