"""Damage a copy of a run the way disks and crashes do (for the damaged-run tests).

- ``truncate_part``: cut a part file in half (a lost tail: the footer is gone).
- ``corrupt_page``: flip bytes inside a zstd frame of a data page and keep the footer intact,
  so that the file lists and its metadata reads, but decoding that page fails. The flip is
  checked: the function raises unless polars really fails to read the damaged file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

ZSTD_MAGIC = bytes([0x28, 0xB5, 0x2F, 0xFD])
SAMPLE_RUN = Path(__file__).resolve().parents[1] / "data" / "sample-run"


def copy_sample_run(dest: Path) -> Path:
    """A private copy of ``data/sample-run`` (the shipped one is never modified)."""
    shutil.copytree(SAMPLE_RUN, dest)
    return dest


def truncate_part(part: Path) -> Path:
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2])
    return part


def _fails(path: Path, column: str) -> bool:
    try:
        pl.read_parquet(path, columns=[column])
    except Exception:  # noqa: BLE001 - any decode failure counts
        return True
    return False


def corrupt_page(part: Path, column: str | None = None) -> str:
    """Flip 8 bytes in the middle of one zstd-compressed page of ``part`` (footer untouched).

    Tries the pages' frames of ``column`` (or of every column, from the largest chunk down),
    mid-frame first, then just after the frame header, and keeps the first flip that polars
    cannot decode. Returns the column name.
    """
    original = part.read_bytes()
    meta = pq.read_metadata(part)
    footer_rows = meta.num_rows
    chunks = [meta.row_group(g).column(i) for g in range(meta.num_row_groups)
              for i in range(meta.num_columns)]
    chunks.sort(key=lambda c: -c.total_compressed_size)
    if column is not None:
        chunks = [c for c in chunks if c.path_in_schema == column]
    for c in chunks:
        start = c.dictionary_page_offset or c.data_page_offset
        end = start + c.total_compressed_size
        frames = [j for j in range(start, end - 4) if original[j:j + 4] == ZSTD_MAGIC]
        bounds = list(zip(frames, frames[1:] + [end]))
        for lo, hi in sorted(bounds, key=lambda b: b[0] - b[1]):
            for at in ((lo + hi) // 2 - 4, lo + 10, lo + 6):
                if at < lo + 4 or at + 8 > hi:
                    continue
                data = bytearray(original)
                for k in range(at, at + 8):
                    data[k] ^= 0x5A
                part.write_bytes(bytes(data))
                if _fails(part, c.path_in_schema) and pq.read_metadata(part).num_rows == footer_rows:
                    return c.path_in_schema
    part.write_bytes(original)
    raise AssertionError(f"could not corrupt a page of {part} so that polars fails on it")
