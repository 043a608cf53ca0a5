"""The .aez container (docs/formats.md): magic, format version, a JSON header checked field by field, the coded
sections, each after its length, and a CRC-32 of all before it. What the sections hold is codec.fitted's
(version 1) or codec.learned's (2 to 4); this module writes and reads the frame and the header, without the
model."""

from __future__ import annotations

import json
import re
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .. import disk
from ..config import from_dict, to_dict
from ..data.scaling import Scaling
from ..errors import check

MAGIC, FITTED = b"AEKZ", 1  # FITTED: the version with tables fitted to the codes; 2 to 4: the model's tables
SECTIONS = {1: 2, 2: 2, 3: 4, 4: 6}  # coded sections after the header, by format version
U32 = struct.Struct("<I")
MAX_BITS = 12  # a version 1 file's largest quantization: 2**12 levels a code dimension
FLOAT32_MAX = float(np.finfo(np.float32).max)
HEADER = "the .aez file's header"  # how refusals of its fields begin


@dataclass(frozen=True)
class _Identity:
    """The header fields both .aez versions share (docs/formats.md): the model, the items, their scaling."""

    model: str
    model_sha256: str
    run: str
    items: int
    item_shape: tuple[int, ...]
    scaling: Scaling

    def __post_init__(self) -> None:
        where = HEADER
        check(re.fullmatch(r"[0-9a-f]{64}", self.model_sha256) is not None, f"{where}: model_sha256 is not a hash")
        check(self.items >= 1, f"{where}: items must be at least 1")
        shape = self.item_shape
        check(len(shape) in (1, 3) and all(s >= 1 for s in shape), f"{where}: item_shape {list(shape)} is not a shape")
        features = self.scaling.features
        check(
            features is None or (len(shape) == 1 and features == shape[0]),
            f"{where}: a scaling of {features} features does not fit items of shape {list(shape)}",
        )


@dataclass(frozen=True)
class Header(_Identity):
    """The JSON header of a version 1 .aez file, checked field by field when a file is read."""

    latent_dim: int
    bits: int
    lo: tuple[float, ...]
    step: tuple[float, ...]
    coder: str = "rans"

    def __post_init__(self) -> None:
        super().__post_init__()
        where = HEADER
        check(self.latent_dim >= 1, f"{where}: latent_dim must be at least 1")
        check(1 <= self.bits <= MAX_BITS, f"{where}: bits must be between 1 and {MAX_BITS}, got {self.bits}")
        check(self.coder == "rans", f"{where}: unknown coder {self.coder[:20]!r}")
        check(
            len(self.lo) == len(self.step) == self.latent_dim,
            f"{where}: lo and step must hold latent_dim ({self.latent_dim}) numbers each",
        )
        top = np.asarray(self.lo) + np.asarray(self.step) * ((1 << self.bits) - 1)  # float64: the fields are floats
        ok = (
            all(s > 0 for s in self.step)
            and np.all(np.abs(self.lo) <= FLOAT32_MAX)
            and np.all(np.abs(top) <= FLOAT32_MAX)
        )
        check(bool(ok), f"{where}: lo and step give code values beyond float32 (or a step <= 0)")


@dataclass(frozen=True)
class LearnedHeader(_Identity):
    """The JSON header of a version 2, 3 or 4 .aez file, checked field by field when a file is read. sizes: each item's
    (H, W) where the items are whole images (of any size; a fully convolutional model), None where they all
    have item_shape."""

    channels: int
    sizes: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        where = HEADER
        check(self.channels >= 1, f"{where}: channels must be at least 1")
        check(
            self.sizes is None
            or (
                len(self.item_shape) == 3
                and len(self.sizes) == self.items
                and all(h >= 1 and w >= 1 for h, w in self.sizes)
            ),
            f"{where}: sizes must give each of the {self.items} images' height and width",
        )

    def item_sizes(self) -> list[tuple[int, int]] | None:
        return None if self.sizes is None else [tuple(hw) for hw in self.sizes]


def write(version: int, header, sections: list[bytes]) -> bytes:
    """The bytes of an .aez file: magic, version, the header and the sections, each after its length, a CRC."""
    parts = [json.dumps(to_dict(header), separators=(",", ":")).encode(), *sections]
    body = MAGIC + bytes([version]) + b"".join(U32.pack(len(p)) + p for p in parts)
    return body + U32.pack(zlib.crc32(body))


def parse(data: bytes) -> tuple[int, Header | LearnedHeader, list[bytes]]:
    """An .aez file's bytes checked as far as they can be without the model: (version, header, the sections
    after the header)."""
    check(len(data) >= 5 + 4 and data[:4] == MAGIC, "not an .aez file (no AEKZ magic)")
    version = data[4]
    check(
        version in SECTIONS,
        f"an .aez file of format version {version}; this aekit reads versions {min(SECTIONS)} to {max(SECTIONS)}",
    )
    check(
        len(data) >= 5 + 3 * 4 + 4 and U32.unpack(data[-4:])[0] == zlib.crc32(data[:-4]),
        "the .aez file is truncated or corrupt (checksum mismatch)",
    )
    parts, pos = [], 5
    for _ in range(1 + SECTIONS[version]):
        check(pos + 4 <= len(data) - 4, "the .aez file is malformed (sections overrun it)")
        (n,) = U32.unpack_from(data, pos)
        check(pos + 4 + n <= len(data) - 4, "the .aez file is malformed (sections overrun it)")
        parts.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    check(pos == len(data) - 4, "the .aez file is malformed (bytes after its sections)")
    kind = Header if version == FITTED else LearnedHeader
    header = from_dict(kind, disk.parse_json(parts[0], HEADER), HEADER)
    return version, header, parts[1:]
