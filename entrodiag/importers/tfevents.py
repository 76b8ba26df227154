"""Scalars from TensorBoard event files, without TensorFlow or the tensorboard package.

An event file (``events.out.tfevents.*``) is a TFRecord stream: each record is a little-endian
``uint64`` length, a ``uint32`` masked CRC-32C of those 8 bytes, the payload, and a ``uint32``
masked CRC-32C of the payload. Each payload is a serialized ``tensorflow.Event`` protocol buffer.
This module decodes the protobuf wire format by hand, keeping only what scalars need:

    Event   { double wall_time = 1; int64 step = 2; Summary summary = 5; ... }
    Summary { repeated Value value = 1; }
    Value   { string tag = 1; float simple_value = 2; SummaryMetadata metadata = 9;
              TensorProto tensor = 8; ... }
    SummaryMetadata { PluginData plugin_data = 1; }   PluginData { string plugin_name = 1; }
    TensorProto { DataType dtype = 1; TensorShapeProto tensor_shape = 2; bytes tensor_content = 4;
                  repeated float float_val = 5; repeated double double_val = 6;
                  repeated int32 int_val = 7; repeated int64 int64_val = 10; ... }

Scalars come either as ``simple_value`` (``torch.utils.tensorboard.SummaryWriter.add_scalar``,
TF1) or as a one-element tensor with the ``scalars`` plugin (TF2 ``tf.summary.scalar``,
``add_scalar(..., new_style=True)``). Histograms, images, text and graphs are skipped.

Integrity: the length CRC of every record is checked (a corrupt file raises); payload CRCs are not
(pure-Python CRC-32C would cost ~1 s per MB), and a record cut short at the end of a file (a
writer still running, or killed) ends that file quietly, as TensorBoard itself does.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# --------------------------------------------------------------------------- CRC-32C


def _crc32c_table() -> list[int]:
    poly = 0x82F63B78  # Castagnoli, reflected
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``; pure Python, meant for short inputs."""
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The CRC that TFRecord stores: rotated right by 15 bits plus a constant."""
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# --------------------------------------------------------------------------- protobuf wire format


class EventFileError(ValueError):
    """The file is not a readable TensorBoard event file."""


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(buf):
            raise EventFileError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise EventFileError("varint longer than 10 bytes")


def fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` of a serialized message: ints for varints, ``bytes``
    for length-delimited and fixed-width fields (8 bytes for type 1, 4 bytes for type 5)."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:  # groups (3, 4) are not used by event files
            raise EventFileError(f"unsupported protobuf wire type {wire}")
        if i > n:
            raise EventFileError("truncated protobuf field")
        yield number, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


# DataType enum values of tensorflow/core/framework/types.proto that a scalar may have
_DT_FLOAT, _DT_DOUBLE, _DT_INT32, _DT_INT64, _DT_BOOL, _DT_HALF = 1, 2, 3, 9, 10, 19
_CONTENT_FORMAT = {_DT_FLOAT: "<f", _DT_DOUBLE: "<d", _DT_INT32: "<i", _DT_INT64: "<q", _DT_HALF: "<e",
                   _DT_BOOL: "<?"}


def _packed(wire: int, value, fmt: str) -> list:
    """Values of a repeated numeric field, packed (wire 2) or not (one value per field)."""
    if wire == 2:
        if fmt in ("i", "q"):  # varints
            out, i = [], 0
            while i < len(value):
                v, i = _varint(value, i)
                out.append(_signed64(v))
            return out
        size = struct.calcsize("<" + fmt)
        return list(struct.unpack(f"<{len(value) // size}{fmt}", value[: len(value) // size * size]))
    if wire == 0:
        return [_signed64(value)]
    return list(struct.unpack("<" + fmt, value))


def _tensor_scalar(buf: bytes) -> float | None:
    """The value of a one-element numeric TensorProto, else ``None``."""
    dtype, content, values = None, None, []
    for number, wire, value in fields(buf):
        if number == 1 and wire == 0:
            dtype = value
        elif number == 4 and wire == 2:
            content = value
        elif number == 5:
            values += _packed(wire, value, "f")
        elif number == 6:
            values += _packed(wire, value, "d")
        elif number in (7, 10, 13):  # int_val, int64_val, half_val (bit patterns, rare)
            ints = _packed(wire, value, "q" if number == 10 else "i")
            if number == 13:
                ints = [struct.unpack("<e", struct.pack("<H", v & 0xFFFF))[0] for v in ints]
            values += ints
        elif number == 11:
            values += [bool(v) for v in _packed(wire, value, "i")]
    if content and dtype in _CONTENT_FORMAT:
        fmt = _CONTENT_FORMAT[dtype]
        size = struct.calcsize(fmt)
        if len(content) == size:
            values = [struct.unpack(fmt, content)[0]]
    if len(values) != 1 or isinstance(values[0], (bytes, str)):
        return None
    return float(values[0])


def _plugin_name(metadata: bytes) -> str | None:
    for number, wire, value in fields(metadata):
        if number == 1 and wire == 2:  # plugin_data
            for n2, w2, v2 in fields(value):
                if n2 == 1 and w2 == 2:
                    return v2.decode("utf-8", "replace")
    return None


def _summary_scalars(buf: bytes) -> Iterator[tuple[str, float]]:
    for number, wire, value in fields(buf):
        if number != 1 or wire != 2:
            continue
        tag, simple, tensor, plugin = None, None, None, None
        for n2, w2, v2 in fields(value):
            if n2 == 1 and w2 == 2:
                tag = v2.decode("utf-8", "replace")
            elif n2 == 7 and w2 == 2 and tag is None:  # node_name, the tag of very old files
                tag = v2.decode("utf-8", "replace")
            elif n2 == 2 and w2 == 5:
                simple = struct.unpack("<f", v2)[0]
            elif n2 == 8 and w2 == 2:
                tensor = v2
            elif n2 == 9 and w2 == 2:
                plugin = _plugin_name(v2)
        if tag is None:
            continue
        if simple is not None:
            yield tag, float(simple)
        elif tensor is not None and plugin in (None, "scalars"):
            v = _tensor_scalar(tensor)
            if v is not None:
                yield tag, v


# --------------------------------------------------------------------------- records and events


def records(path: str | Path) -> Iterator[bytes]:
    """Payloads of the TFRecord file at ``path``; raises ``EventFileError`` on a corrupt header."""
    with open(path, "rb") as f:
        data = f.read()
    i, n = 0, len(data)
    while i < n:
        if n - i < 12:
            return  # cut short while being written
        header = data[i:i + 8]
        (length,) = struct.unpack("<Q", header)
        (crc,) = struct.unpack("<I", data[i + 8:i + 12])
        if crc != masked_crc32c(header):
            raise EventFileError(
                f"{path}: not a TensorBoard event file, or corrupt at byte {i} (bad record length checksum)"
            )
        start = i + 12
        if start + length + 4 > n:
            return  # last record incomplete
        yield data[start:start + length]
        i = start + length + 4


@dataclass
class ScalarEvent:
    step: int
    wall_time: float
    tag: str
    value: float


def read_scalars(path: str | Path) -> list[ScalarEvent]:
    """Every scalar summary of the event file at ``path``, in file order.

    Example:
        >>> for e in read_scalars("runs/x/events.out.tfevents.1700000000.host.1.0"):  # doctest: +SKIP
        ...     print(e.step, e.tag, e.value)
    """
    out: list[ScalarEvent] = []
    for payload in records(path):
        wall, step, summary = 0.0, 0, None
        for number, wire, value in fields(payload):
            if number == 1 and wire == 1:
                wall = struct.unpack("<d", value)[0]
            elif number == 2 and wire == 0:
                step = _signed64(value)
            elif number == 5 and wire == 2:
                summary = value
        if summary is not None:
            out.extend(ScalarEvent(step, wall, tag, v) for tag, v in _summary_scalars(summary))
    return out


def find_event_files(path: str | Path) -> list[Path]:
    """Event files at ``path``: the file itself, or those in the folder (else in one subfolder)."""
    p = Path(path)
    if p.is_file():
        return [p]
    direct = sorted(f for f in p.glob("*tfevents*") if f.is_file())
    if direct:
        return direct
    found = sorted(f for f in p.rglob("*tfevents*") if f.is_file())
    folders = sorted({f.parent for f in found})
    if len(folders) > 1:
        names = ", ".join(str(d.relative_to(p)) for d in folders[:5]) + (" ..." if len(folders) > 5 else "")
        raise EventFileError(
            f"{p} holds event files of {len(folders)} runs ({names}); import one folder at a time"
        )
    return found
