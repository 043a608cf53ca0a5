"""The rANS coder (codec/rans.py) and the .aez frame (codec/aez.py) on their own: exact tables, round trips of
every kind of table, the exact refusal of each way a stream or a frame can be damaged. Unit tests: no model."""

import json
import struct
import zlib

import numpy as np
import pytest

from aekit import AekitError, frequencies, progress
from aekit.codec import aez, rans
from aekit.codec.aez import FLOAT32_MAX, HEADER, Header, LearnedHeader
from aekit.codec.rans import RANS_L
from aekit.config import to_dict
from aekit.data.scaling import Scaling
from aekit.frequencies import PROB_SCALE
from conftest import refused

SHA = "ab" * 32


# ---------------------------------------------------------------- frequency tables


@pytest.mark.parametrize(
    "counts, freqs",
    [
        ([1, 1, 2], [8192, 8192, 16384]),  # exact: nothing to round
        ([1, 0, 2], [10922, 0, 21846]),  # one short: given to the most frequent
        ([2, 1], [21846, 10922]),
        ([1, 1, 100000], [1, 1, 32766]),  # the rare ones lifted to 1, paid by the most frequent
        ([5], [PROB_SCALE]),
    ],
)
def test_normalize(counts, freqs):
    result = frequencies.normalize(np.array(counts, np.int64))
    assert result.tolist() == freqs and result.dtype == np.int64


def test_normalize_keeps_every_seen_symbol_codable():
    counts = np.array([1] * 4000 + [10**9, 10**9], np.int64)
    freqs = frequencies.normalize(counts)
    assert freqs.sum() == PROB_SCALE and freqs.min() == 1


def test_normalize_takes_the_excess_from_one_symbol_after_another():
    """4,000 rare symbols lifted to 1 leave 3,968 too many; 96 common ones of 341 each give 340 at most (keeping
    1): eleven drop to 1, a twelfth to 113."""
    freqs = frequencies.normalize(np.array([1] * 4000 + [10**6] * 96, np.int64))
    assert (freqs[:4000] == 1).all() and freqs[4000:4011].tolist() == [1] * 11
    assert freqs[4011] == 113 and (freqs[4012:] == 341).all() and freqs.sum() == PROB_SCALE


def test_frequency_tables_per_column():
    q = np.array([[0, 1], [0, 0], [1, 1]])
    assert frequencies.frequency_tables(q, 3).tolist() == [[21846, 10922, 0], [10922, 21846, 0]]


# ---------------------------------------------------------------- encode / decode


def test_an_empty_stream_is_the_initial_state():
    freqs = np.array([[0, PROB_SCALE]])  # one certain symbol: costs nothing
    data = rans.encode(np.ones((5, 1), np.int64), freqs)
    assert data == RANS_L.to_bytes(4, "big")
    assert rans.decode(data, 5, freqs).tolist() == [[1]] * 5


def test_a_known_stream():
    """Two symbols of probability 1/2 each cost a bit: 40 of them, 1 0 1 0 ..., show as bytes of alternating bits
    (0xaa) inside the stream. The stream is the format: this pins it."""
    freqs = np.array([[PROB_SCALE // 2, PROB_SCALE // 2]])
    q = np.array([[1], [0]] * 20)
    data = rans.encode(q, freqs)
    assert data.hex() == "00806aaaaaaa8a8000"
    assert rans.decode(data, 40, freqs).tolist() == q.tolist()


def test_a_state_exactly_at_its_limit_is_renormalized():
    """A symbol of frequency 128 at the initial state 2**23: x reaches x_max = 2**16 * 128 exactly, and a byte
    goes out (without it the state would reach 2**31, beyond the 31 bits it keeps)."""
    freqs = np.array([[128, PROB_SCALE - 128]])
    data = rans.encode(np.array([[0]]), freqs)
    assert data.hex() == "0080000000"
    assert rans.decode(data, 1, freqs).tolist() == [[0]]


@pytest.mark.parametrize("bits", [1, 4, 12])
def test_round_trip_a_table_per_column(bits):
    rng = np.random.default_rng(bits)
    q = rng.integers(0, 1 << bits, (300, 5)) // rng.integers(1, 4, 5)  # columns of different spreads
    q[:, 2] = 3 % (1 << bits)  # a constant column: one certain symbol
    freqs = frequencies.frequency_tables(q, 1 << bits)
    data = rans.encode(q, freqs)
    out = rans.decode(data, len(q), freqs)
    assert out.dtype == np.int16 and out.shape == q.shape and np.array_equal(out, q)


def test_round_trip_a_table_per_symbol():
    rng = np.random.default_rng(0)
    freqs = np.stack([frequencies.normalize(rng.integers(0, 50, 16)) for _ in range(6)])
    freqs[5] = 0
    freqs[5, 7] = PROB_SCALE  # a certain table, used by some symbols
    tables = rng.integers(0, 6, 2000)
    q = np.array([rng.choice(16, p=freqs[t] / PROB_SCALE) for t in tables])
    data = rans.encode(q, freqs, tables)
    out = rans.decode(data, len(q), freqs, tables)
    assert out.dtype == np.int16 and out.shape == (2000,) and np.array_equal(out, q)
    assert (out[tables == 5] == 7).all()
    assert rans.encode(q.reshape(40, 50), freqs, tables.reshape(40, 50)) == data  # any shape, read in order


def test_long_streams_report_progress(monkeypatch, capsys):
    """Decoding more than one chunk of 2**18 symbols says how far it got (here every chunk: no interval)."""
    monkeypatch.setattr(progress, "INTERVAL", 0)
    freqs = np.array([[PROB_SCALE // 2, PROB_SCALE // 2]])
    q = np.zeros((300_000, 1), np.int64)
    assert rans.decode(rans.encode(q, freqs), len(q), freqs).sum() == 0
    assert capsys.readouterr().err.startswith("decoding latents: 50% done, ")


@pytest.fixture(scope="module")
def stream():
    rng = np.random.default_rng(1)
    q = rng.integers(0, 16, (400, 3))
    freqs = frequencies.frequency_tables(q, 16)
    return q, freqs, rans.encode(q, freqs)


def test_a_stream_too_short_for_its_items_is_refused_before_decoding(stream):
    q, freqs, data = stream
    message = "the coded latents are too short for the 4000 items the file claims: it is corrupt"
    for tables in (None, np.zeros(4000, np.int64)):  # a table per column, a table per symbol
        refused(message, rans.decode, data, 4000, freqs, tables)


def test_the_size_check_is_exact_at_its_limit():
    """Symbols of probability 1/2 cost exactly their bit each: a stream of them is as short as a stream can be for
    its symbols. The check refuses a claim of more symbols than 8 bits a byte + 64 hold at 99%, no fewer."""
    freqs = np.array([[PROB_SCALE // 2, PROB_SCALE // 2]])
    data = rans.encode(np.zeros((10_000, 1), np.int64), freqs)
    assert rans.decode(data, 10_000, freqs).sum() == 0  # at 99.0% of what 8 bits a byte + 64 hold: decoded
    limit = 8 * len(data) + 64
    first = int(limit / 0.99) + 1  # the first count the size check refuses
    assert first * 0.99 > limit >= (first - 1) * 0.99
    refused(
        f"the coded latents are too short for the {first} items the file claims: it is corrupt",
        rans.decode,
        data,
        first,
        freqs,
    )
    refused("the coded latents end early: the file is truncated or corrupt", rans.decode, data, first - 1, freqs)


def test_damaged_streams_are_refused(stream):
    q, freqs, data = stream
    refused("the coded latents end early: the file is truncated or corrupt", rans.decode, data[:-8], 400, freqs)
    refused("the coded latents do not decode cleanly: the file is corrupt", rans.decode, data + b"\0", 400, freqs)
    refused("the coded latents do not decode cleanly: the file is corrupt", rans.decode, data, 399, freqs)
    flipped = bytes([data[0] ^ 1]) + data[1:]  # a larger first state: it runs out of bytes before its symbols
    refused("the coded latents end early: the file is truncated or corrupt", rans.decode, flipped, 400, freqs)


# ---------------------------------------------------------------- the .aez frame


IDENTITY = {"model_sha256": SHA, "run": "r", "items": 2, "scaling": Scaling(0.0, 1.0)}  # both headers hold these


def header(**changes) -> Header:
    fields = {**IDENTITY, "model": "ae", "item_shape": (4,), "latent_dim": 2, "bits": 8, "lo": (0.0, -1.0)}
    return Header(**{**fields, "step": (0.5, 0.25), **changes})


def learned(**changes) -> LearnedHeader:
    fields = {**IDENTITY, "model": "conv", "item_shape": (3, 8, 8), "channels": 4, "sizes": ((8, 8), (16, 24))}
    return LearnedHeader(**{**fields, **changes})


def test_write_and_parse_every_version():
    data = aez.write(1, header(), [b"tables", b"codes"])
    assert data[:5] == b"AEKZ\x01" and struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])
    assert aez.parse(data) == (1, header(), [b"tables", b"codes"])
    for version, n in ((2, 2), (3, 4), (4, 6)):
        sections = [bytes([i]) * i for i in range(n)]  # the first one empty
        assert aez.parse(aez.write(version, learned(), sections)) == (version, learned(), sections)
    assert learned().item_sizes() == [(8, 8), (16, 24)] and learned(sizes=None).item_sizes() is None


def test_the_header_is_compact_json():
    data = aez.write(1, header(), [b"", b""])
    (n,) = struct.unpack_from("<I", data, 5)
    assert data[9 : 9 + n] == json.dumps(to_dict(header()), separators=(",", ":")).encode()


def frame(version: int, parts: list[bytes], tail: bytes = b"") -> bytes:
    body = b"AEKZ" + bytes([version]) + b"".join(struct.pack("<I", len(p)) + p for p in parts) + tail
    return body + struct.pack("<I", zlib.crc32(body))


GOOD = json.dumps(to_dict(header())).encode()


@pytest.mark.parametrize(
    "data, message",
    [
        (b"AEKZ", "not an .aez file (no AEKZ magic)"),
        (b"AEKZ\x01abc", "not an .aez file (no AEKZ magic)"),  # 8 bytes
        (b"AEKY\x01" + bytes(20), "not an .aez file (no AEKZ magic)"),
        (b"AEKZ\x01abcd", "the .aez file is truncated or corrupt (checksum mismatch)"),  # 9 bytes: a frame too short
        (frame(1, [b"", b""]), "the .aez file is truncated or corrupt (checksum mismatch)"),  # 17 bytes, checksum right
        (b"AEKZ\x00" + bytes(30), "an .aez file of format version 0; this aekit reads versions 1 to 4"),
        (b"AEKZ\x05" + bytes(30), "an .aez file of format version 5; this aekit reads versions 1 to 4"),
        (frame(1, [GOOD, b"", b""])[:-1] + b"\0", "the .aez file is truncated or corrupt (checksum mismatch)"),
        (frame(1, [GOOD, b""]), "the .aez file is malformed (sections overrun it)"),  # one section short
        (frame(1, [GOOD, b"ab"], b"\x03\0\0\0ab"), "the .aez file is malformed (sections overrun it)"),
        (frame(1, [GOOD, b"ab"], b"\x02\0\0"), "the .aez file is malformed (sections overrun it)"),
        (frame(1, [GOOD, b"", b""], b"x"), "the .aez file is malformed (bytes after its sections)"),
        (
            frame(2, [GOOD, b"", b""]),  # a version 2 frame holding a version 1 header
            f"{HEADER}: unknown option 'bits', 'coder', 'latent_dim', 'lo', 'step' "
            "(known: model, model_sha256, run, items, item_shape, scaling, channels, sizes)",
        ),
    ],
)
def test_damaged_frames_are_refused(data, message):
    refused(message, aez.parse, data)


def test_a_frame_of_just_enough_bytes_parses():
    """The smallest frame: 21 bytes (magic, version, three empty sections, the checksum) reach the header."""
    data = frame(1, [b"", b"", b""])
    assert len(data) == 21
    with pytest.raises(AekitError, match=f"^{HEADER}: not valid JSON"):
        aez.parse(data)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"model_sha256": "AB" * 32}, "model_sha256 is not a hash"),
        ({"model_sha256": SHA + "0"}, "model_sha256 is not a hash"),
        ({"items": 0}, "items must be at least 1"),
        ({"item_shape": (1, 2)}, "item_shape [1, 2] is not a shape"),
        ({"item_shape": ()}, "item_shape [] is not a shape"),
        ({"item_shape": (0,)}, "item_shape [0] is not a shape"),
        ({"item_shape": (1, 0, 1)}, "item_shape [1, 0, 1] is not a shape"),
        ({"scaling": Scaling([0.0] * 3, [1.0] * 3)}, "a scaling of 3 features does not fit items of shape [4]"),
        (
            {"scaling": Scaling([0.0] * 4, [1.0] * 4), "item_shape": (4, 1, 1)},
            "a scaling of 4 features does not fit items of shape [4, 1, 1]",
        ),
        ({"latent_dim": 0, "lo": (), "step": ()}, "latent_dim must be at least 1"),
        ({"bits": 0}, "bits must be between 1 and 12, got 0"),
        ({"bits": 13}, "bits must be between 1 and 12, got 13"),
        ({"coder": "huffman-coder-of-many-words"}, "unknown coder 'huffman-coder-of-man'"),
        ({"lo": (0.0,)}, "lo and step must hold latent_dim (2) numbers each"),
        ({"step": (0.5, 0.25, 1.0)}, "lo and step must hold latent_dim (2) numbers each"),
        ({"step": (0.5, 0.0)}, "lo and step give code values beyond float32 (or a step <= 0)"),
        ({"step": (0.5, -1.0)}, "lo and step give code values beyond float32 (or a step <= 0)"),
        ({"lo": (0.0, -4e38)}, "lo and step give code values beyond float32 (or a step <= 0)"),
        ({"bits": 3, "step": (FLOAT32_MAX / 6.5, 1.0)}, "lo and step give code values beyond float32 (or a step <= 0)"),
        ({"lo": (3e38, 0.0), "step": (1e36, 1.0)}, "lo and step give code values beyond float32 (or a step <= 0)"),
    ],
)
def test_header_fields_are_checked(changes, message):
    refused(f"{HEADER}: {message}", header, **changes)


def test_header_limits_allowed():
    header(bits=1, latent_dim=1, lo=(0.0,), step=(1.0,), item_shape=(1, 1, 1), items=1)
    header(bits=12, item_shape=(1,), scaling=Scaling([0.0], [1.0]))
    top = float(np.finfo(np.float32).max)
    header(lo=(top, -top), step=(1e-300, 1e-300), bits=1)  # at float32's limit from both sides
    header(lo=(0.0, -top), step=(top / 7, top / 7), bits=3)  # the top code value, 7 steps up, at the limit


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"channels": 0}, "channels must be at least 1"),
        ({"sizes": ((8, 8),)}, "sizes must give each of the 2 images' height and width"),
        ({"sizes": ((8, 8), (0, 8))}, "sizes must give each of the 2 images' height and width"),
        ({"sizes": ((8, 8), (8, 0))}, "sizes must give each of the 2 images' height and width"),
        ({"item_shape": (12,), "sizes": ((1, 1), (1, 1))}, "sizes must give each of the 2 images' height and width"),
        ({"items": 0}, "items must be at least 1"),
    ],
)
def test_learned_header_fields_are_checked(changes, message):
    refused(f"{HEADER}: {message}", learned, **changes)
    learned(channels=1, sizes=((1, 1), (1, 1)))
