"""Chunks whose last byte sits right before an unreadable page: a read past the end faults at
once (SIGSEGV), with or without a sanitizer.

The scanner takes only immutable chunks (bytes, or a memoryview of bytes), and Python puts a NUL
and allocator padding after every bytes object, so a read just past a real chunk goes unseen.
Here a bytes object is laid out by hand in an anonymous mapping so that its data ends at a
PROT_NONE page; the chunk is a memoryview of its tail. The object is never freed (its refcount
never reaches zero) and never hashed; its NUL terminator would lie on the guard page and is
never written or read (the scanner reads only the buffer's length).
"""

from __future__ import annotations

import ctypes
import mmap
import sys

PAGE = mmap.PAGESIZE
#: Where a bytes object's data starts (CPython: header, then ob_sval), and its header words.
_DATA = bytes.__basicsize__ - 1
_WORDS = 4  # ob_refcnt, ob_type, ob_size, ob_shash
_PROT_NONE = 0


def supported() -> bool:
    """This CPython lays a bytes object out as assumed (a plain 64-bit build)."""
    return (sys.implementation.name == "cpython" and ctypes.sizeof(ctypes.c_ssize_t) == 8
            and _DATA == _WORDS * 8 and not hasattr(sys, "getobjects")  # no trace-refs build
            and getattr(sys, "_is_gil_enabled", lambda: True)())  # no free-threaded build


class GuardedChunks:
    """One mapping, reused for every chunk up to `capacity` bytes."""

    def __init__(self, capacity: int = 1 << 20) -> None:
        if not supported():
            raise RuntimeError("bytes layout of this Python not known")
        self.capacity = capacity = -(-capacity // 8) * 8  # the header stays 8-byte aligned
        size = -(-(capacity + _DATA) // PAGE) * PAGE
        # libc's mmap, never unmapped: the object must outlive every reference to it, to the
        # interpreter's very end.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        base = libc.mmap(None, size + PAGE, mmap.PROT_READ | mmap.PROT_WRITE,
                         mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
        if base in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap")
        if libc.mprotect(base + size, PAGE, _PROT_NONE) != 0:
            raise OSError(ctypes.get_errno(), "mprotect")
        start = base + size - capacity - _DATA
        header = (ctypes.c_ssize_t * _WORDS).from_address(start)
        header[:] = [1 << 40, id(bytes), capacity, -1]  # refcount, type, size, hash not cached
        self._bytes = ctypes.cast(start, ctypes.py_object).value
        self._data = start + _DATA
        if type(self._bytes) is not bytes or len(self._bytes) != capacity:
            raise RuntimeError("bytes layout of this Python not known")

    def view(self, data: bytes) -> memoryview:
        """`data` as a memoryview of bytes whose next byte is unreadable."""
        n = len(data)
        if n > self.capacity:
            raise ValueError(f"chunk of {n} bytes: the guarded buffer holds {self.capacity}")
        ctypes.memmove(self._data + self.capacity - n, data, n)
        return memoryview(self._bytes)[self.capacity - n:]
