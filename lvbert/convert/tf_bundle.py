"""Read a TensorFlow 1 checkpoint (the tensor-bundle format ``tf.train.Saver`` writes) without TensorFlow.

A checkpoint ``PREFIX`` is ``PREFIX.index`` plus ``PREFIX.data-0000k-of-0000n``:

- ``.index`` is an uncompressed LevelDB table. Its last 48 bytes are the footer (the meta-index
  and index block handles, then the magic 0xdb4775248b80fb57); the index block's values are the
  handles of the data blocks; a block holds prefix-compressed entries (shared key length,
  unshared key length, value length as varints, then the key suffix and the value) followed by
  the restart offsets and their count, and a 5-byte trailer (compression type, masked crc32c).
- Key ``""`` holds the ``BundleHeaderProto`` (number of shards, endianness); every other key is a
  tensor name whose value is a ``BundleEntryProto`` (dtype, shape, shard, offset, size, masked
  crc32c of the bytes, slices). Both are decoded here by hand (a few varint fields).
- A tensor's bytes are ``size`` little-endian bytes at ``offset`` of data shard ``shard``.

Every block's and every tensor's crc32c is checked. :func:`read_checkpoint` reads everything
before returning, so a caller that writes only afterwards writes nothing for a broken checkpoint.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lvbert.errors import LvBertError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48

# TensorFlow's DataType enum -> torch dtype (DT_BFLOAT16 has no numpy type: read as int16 and viewed).
DTYPES: dict[int, torch.dtype] = {
    1: torch.float32, 2: torch.float64, 3: torch.int32, 4: torch.uint8, 5: torch.int16, 6: torch.int8,
    9: torch.int64, 10: torch.bool, 14: torch.bfloat16, 17: torch.uint16, 19: torch.float16,
    22: torch.uint32, 23: torch.uint64,
}  # fmt: skip
DTYPE_NAMES = {7: "string", 8: "complex64", 18: "complex128", 20: "resource", 21: "variant", 11: "qint8", 12: "quint8",
               13: "qint32", 15: "qint16", 16: "quint16"}  # fmt: skip


# ============================================================================ crc32c (Castagnoli)


def _crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table[i] = c
    return table


_TABLE = _crc_table()
_TABLE_LIST = [int(x) for x in _TABLE]


def _raw_crc_small(data: bytes, crc: int = 0) -> int:
    for b in data:
        crc = _TABLE_LIST[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def _apply(op: list[int], register: int) -> int:
    """A GF(2) linear map given by its 32 column images, applied to a 32-bit register."""
    out = 0
    while register:
        low = register & -register
        out ^= op[low.bit_length() - 1]
        register ^= low
    return out


def _zeros_operator(nbytes: int) -> list[int]:
    """The linear map "feed ``nbytes`` zero bytes" on a raw crc register (square-and-multiply)."""
    step = [_raw_crc_small(b"\0", 1 << i) for i in range(32)]
    result = [1 << i for i in range(32)]  # identity
    while nbytes:
        if nbytes & 1:
            result = [_apply(step, c) for c in result]
        step = [_apply(step, c) for c in step]
        nbytes >>= 1
    return result


def _byte_tables(op: list[int]) -> list[np.ndarray]:
    """Four 256-entry tables with ``op(r) = t0[r & 255] ^ t1[(r >> 8) & 255] ^ t2[(r >> 16) & 255] ^ t3[r >> 24]``."""
    tables = []
    for byte in range(4):
        t = np.zeros(256, dtype=np.uint32)
        for v in range(1, 256):
            low = v & -v
            t[v] = t[v ^ low] ^ op[8 * byte + low.bit_length() - 1]
        tables.append(t)
    return tables


def _raw_crc(data: np.ndarray) -> int:
    """crc32c register after ``data`` (uint8) from a zero register, no final xor.

    Vectorised: the bytes are cut into M equal chunks (zeros prepended, which leave a zero register
    unchanged), each chunk's crc computed in one numpy pass per byte column, and the chunk crcs
    combined pairwise (the crc of ``a + b`` is ``shift_len(b)(crc(a)) ^ crc(b)``)."""
    n = data.size
    if n < 256:
        return _raw_crc_small(data.tobytes())
    chunk = max(16, int(np.sqrt(n)) // 4)
    m = -(-n // chunk)
    padded = np.zeros(m * chunk, dtype=np.uint8)
    padded[m * chunk - n :] = data
    columns = np.ascontiguousarray(padded.reshape(m, chunk).T)  # [chunk, m]: one row per byte position
    crc = np.zeros(m, dtype=np.uint32)
    for row in columns:
        crc = _TABLE[(crc ^ row) & 0xFF] ^ (crc >> 8)
    op = _zeros_operator(chunk)  # shifts a crc past one chunk; squared as the chunks double
    while crc.size > 1:
        if crc.size % 2:
            crc = np.concatenate([np.zeros(1, dtype=np.uint32), crc])
        t0, t1, t2, t3 = _byte_tables(op)
        a, b = crc[0::2], crc[1::2]
        crc = t0[a & 0xFF] ^ t1[(a >> 8) & 0xFF] ^ t2[(a >> 16) & 0xFF] ^ t3[a >> 24] ^ b
        op = [_apply(op, c) for c in op]
    return int(crc[0])


def crc32c(data: bytes | np.ndarray) -> int:
    """The crc32c (Castagnoli) of ``data``, as ``crc32c(b"123456789") == 0xE3069283``."""
    arr = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if arr.size < 4:
        return _raw_crc_small(arr.tobytes(), 0xFFFFFFFF) ^ 0xFFFFFFFF
    # A start register of all ones is the same as complementing the first four bytes (reflected crc).
    head = arr[:4] ^ np.uint8(0xFF)
    return _raw_crc(np.concatenate([head, arr[4:]])) ^ 0xFFFFFFFF


def masked_crc32c(data: bytes | np.ndarray) -> int:
    """The crc as LevelDB and TensorFlow store it (rotated right by 15 bits, plus a constant)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ============================================================================ varint protobuf


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: ints for varint / fixed fields, bytes for length-delimited."""
    out, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((number, value))
    return out


@dataclass(frozen=True)
class BundleEntry:
    """One tensor's ``BundleEntryProto``."""

    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc: int | None
    sliced: bool


def _entry(buf: bytes) -> BundleEntry:
    dtype, shape, shard, offset, size, crc, sliced = 0, (), 0, 0, 0, None, False
    for number, value in _fields(buf):
        if number == 1:
            dtype = value
        elif number == 2:
            dims = []
            for n, dim in _fields(value):
                if n == 2:  # TensorShapeProto.dim
                    dims.append(next((v for k, v in _fields(dim) if k == 1), 0))
                elif n == 3 and value:  # unknown_rank
                    raise ValueError("tensor of unknown rank")
            shape = tuple(dims)
        elif number == 3:
            shard = value
        elif number == 4:
            offset = value
        elif number == 5:
            size = value
        elif number == 6:
            crc = value
        elif number == 7:
            sliced = True
    return BundleEntry(dtype, shape, shard, offset, size, crc, sliced)


# ============================================================================ LevelDB table


def _block(data: bytes, offset: int, size: int, where: str) -> bytes:
    end = offset + size
    if end + 5 > len(data):
        raise ValueError(f"block at {offset} runs past the end of the file")
    block, kind, crc = data[offset:end], data[end], struct.unpack_from("<I", data, end + 1)[0]
    if kind != 0:
        raise ValueError(f"compressed block (type {kind}) in {where}; TensorFlow writes them uncompressed")
    if masked_crc32c(data[offset : end + 1]) != crc:
        raise ValueError(f"crc32c mismatch in a block of {where}")
    return block


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise ValueError("block too short")
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * restarts
    out, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        size, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        out.append((key, block[pos : pos + size]))
        pos += size
    return out


def _handle(buf: bytes, pos: int = 0) -> tuple[int, int, int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return offset, size, pos


def read_index(index_file: Path) -> tuple[dict, dict[str, BundleEntry]]:
    """``(header, entries)`` of a ``.index`` file: header ``{"num_shards", "big_endian"}``, entries by tensor name."""
    data = index_file.read_bytes()
    what = str(index_file)
    try:
        if len(data) < FOOTER_SIZE or struct.unpack_from("<Q", data, len(data) - 8)[0] != TABLE_MAGIC:
            raise ValueError("no LevelDB table footer (wrong magic number)")
        footer = data[-FOOTER_SIZE:]
        _, _, pos = _handle(footer)  # the meta-index block: unused by tensor bundles
        index_offset, index_size, _ = _handle(footer, pos)
        table: list[tuple[bytes, bytes]] = []
        for _, handle in _block_entries(_block(data, index_offset, index_size, what)):
            offset, size, _ = _handle(handle)
            table.extend(_block_entries(_block(data, offset, size, what)))
        header, entries = None, {}
        for key, value in table:
            if key == b"":
                fields = dict(_fields(value))
                header = {"num_shards": fields.get(1, 1), "big_endian": fields.get(2, 0) == 1}
            else:
                entries[key.decode("utf-8")] = _entry(value)
    except (ValueError, IndexError, struct.error, UnicodeDecodeError) as e:
        raise LvBertError(f"{index_file} is not a readable TensorFlow checkpoint index ({e})") from None
    if header is None:
        raise LvBertError(f"{index_file} has no bundle header; is it a TensorFlow 2 (object-based) or TF1 V1 checkpoint?")
    return header, entries


# ============================================================================ tensors


def data_file(prefix: Path, shard: int, num_shards: int) -> Path:
    return prefix.with_name(f"{prefix.name}.data-{shard:05d}-of-{num_shards:05d}")


def read_checkpoint(prefix: str | Path, skip=lambda name: False) -> dict[str, torch.Tensor]:
    """Every tensor of the TF1 checkpoint ``prefix`` (``prefix.index`` + data shards) by name, crc-checked.

    ``skip(name)`` -> True leaves a tensor unread (optimizer slots, say). Raises ``LvBertError``
    (one line) for a missing or unreadable index, a missing shard, a truncated data file, a crc
    mismatch, a sliced (partitioned) tensor, an unsupported dtype or a big-endian checkpoint."""
    prefix = Path(prefix)
    index_file = prefix.with_name(prefix.name + ".index")
    if not index_file.is_file():
        raise LvBertError(f"{index_file} does not exist; give a checkpoint prefix such as model.ckpt-1000000")
    header, entries = read_index(index_file)
    if header["big_endian"]:
        raise LvBertError(f"{index_file} is a big-endian checkpoint; only little-endian ones are supported")
    shards: dict[int, bytes | np.memmap] = {}
    tensors = {}
    for name, entry in sorted(entries.items()):
        if skip(name):
            continue
        if entry.sliced:
            raise LvBertError(f"tensor {name!r} of {prefix} is sliced (a partitioned variable); it is not supported")
        if entry.dtype not in DTYPES:
            kind = DTYPE_NAMES.get(entry.dtype, f"enum {entry.dtype}")
            raise LvBertError(f"tensor {name!r} of {prefix} has dtype {kind}, which lvbert cannot read; "
                              f"supported: {', '.join(str(d).removeprefix('torch.') for d in DTYPES.values())}")  # fmt: skip
        if not 0 <= entry.shard < header["num_shards"]:
            raise LvBertError(f"tensor {name!r} of {prefix} names shard {entry.shard} of {header['num_shards']}")
        if entry.shard not in shards:
            path = data_file(prefix, entry.shard, header["num_shards"])
            if not path.is_file():
                raise LvBertError(f"{path} is missing; a checkpoint needs all its .data-*-of-* shards beside the .index")
            shards[entry.shard] = np.memmap(path, dtype=np.uint8, mode="r") if path.stat().st_size else np.zeros(0, np.uint8)
        shard = shards[entry.shard]
        if entry.offset + entry.size > shard.size:
            path = data_file(prefix, entry.shard, header["num_shards"])
            raise LvBertError(f"{path} is truncated: tensor {name!r} needs bytes {entry.offset}..{entry.offset + entry.size}"
                              f" of a {shard.size}-byte file; download the checkpoint again")  # fmt: skip
        raw = np.array(shard[entry.offset : entry.offset + entry.size])
        if entry.crc is not None and masked_crc32c(raw) != entry.crc:
            raise LvBertError(f"tensor {name!r} of {prefix} fails its crc32c check (corrupted data file); download it again")
        tensors[name] = _tensor(raw, entry, name, prefix)
    return tensors


def _tensor(raw: np.ndarray, entry: BundleEntry, name: str, prefix: Path) -> torch.Tensor:
    dtype = DTYPES[entry.dtype]
    itemsize = torch.empty(0, dtype=dtype).element_size()
    count = int(np.prod(entry.shape, dtype=np.int64))
    if count * itemsize != raw.size:
        raise LvBertError(f"tensor {name!r} of {prefix} holds {raw.size} bytes for shape {list(entry.shape)}; the checkpoint is corrupt")
    if count == 0:
        return torch.zeros(entry.shape, dtype=dtype)
    if dtype == torch.bfloat16:
        t = torch.from_numpy(raw.view(np.int16).copy()).view(torch.bfloat16)
    elif dtype == torch.bool:
        t = torch.from_numpy(raw.astype(np.bool_))
    else:
        t = torch.from_numpy(raw).view(dtype)
    return t.reshape(entry.shape)
