"""Byte encodings of arrays in the store: zstd-compressed float32 grids and packed masks."""

from __future__ import annotations

import numpy as np
import zstandard

_LEVEL = 3


def pack_float32(values: np.ndarray) -> bytes:
    """C-order float32 bytes, zstd-compressed (NaN preserved)."""
    raw = np.ascontiguousarray(values, dtype=np.float32).tobytes()
    return zstandard.ZstdCompressor(level=_LEVEL).compress(raw)


def unpack_float32(blob: bytes, shape: tuple[int, ...]) -> np.ndarray:
    raw = zstandard.ZstdDecompressor().decompress(blob)
    return np.frombuffer(raw, dtype=np.float32).reshape(shape).copy()


def pack_mask(mask: np.ndarray) -> bytes:
    return zstandard.ZstdCompressor(level=_LEVEL).compress(np.packbits(np.asarray(mask, dtype=bool)).tobytes())


def unpack_mask(blob: bytes, shape: tuple[int, ...]) -> np.ndarray:
    bits = np.frombuffer(zstandard.ZstdDecompressor().decompress(blob), dtype=np.uint8)
    return np.unpackbits(bits, count=int(np.prod(shape))).astype(bool).reshape(shape)


def pack_coords(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype=np.float64).tobytes()


def unpack_coords(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float64).copy()
