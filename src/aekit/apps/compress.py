"""Compression, the use: items -> an .aez file of their model's entropy-coded codes, and back.

The format follows the model (aekit.codec, docs/formats.md): version 1 for any model whose code alone rebuilds
an item (codes quantized uniformly per dimension, tables fitted to them in the file), versions 2 to 4 for an ae
trained for rate and distortion (rate_lambda: integer codes coded with its entropy model's tables, which the run
holds). A fully convolutional compressor codes photos of any size whole: one code map per photo.
Decoding checks the magic, the version, a CRC-32 of the whole file and the SHA-256 of the model's weights
(tables included) before it trusts anything else. The codec runs on the CPU whatever device a run was opened on
(run.cpu_run): a float network gives other low bits on a GPU, and a photo must give the same file, and a file
the same pixels, on every machine.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import torch

from .. import metrics, pretrained
from ..codec import aez, fitted, learned
from ..codec.aez import FITTED, Header, LearnedHeader
from ..codec.fitted import Quantized
from ..config import to_dict
from ..data.scaling import UINT8, Scaling
from ..errors import AekitError, check
from ..limits import check_load_size
from ..models.base import REFINE_BATCH, check_steps
from ..models.layers import activation_bytes
from ..outputs import OutputPath, png_image, write_images
from ..progress import chunks
from ..run import Run, cpu_run
from . import (
    IMAGE_KINDS,
    check_finite,
    check_images_fit,
    check_items,
    decode_all,
    encode_all,
    model_inputs,
    model_items,
    sizes_of,
    tiles,
    to_raw,
    write_array,
)


def weights_sha256(model: torch.nn.Module) -> str:
    """A hash of a model's weights (names, dtypes, shapes and values), independent of how they were saved."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}:{t.dtype}:{list(t.shape)};".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def at_quality(run: Run | str | os.PathLike, quality: int | None) -> Run | str | os.PathLike:
    """run, or the level quality of the shipped codec it names (pretrained.with_quality)."""
    return run if quality is None else pretrained.with_quality(run.path if isinstance(run, Run) else run, quality)


def run_name(run: Run) -> str:
    """What a file's header names its model by: a shipped model's name (NAME or NAME/Q, wherever the package is
    installed), or the run folder's absolute path."""
    return pretrained.name_of(run.path) or str(run.path.resolve())


def compress(
    run: Run | str | os.PathLike,
    x,
    bits: int = 8,
    scaling: Scaling | None = None,
    refine: int = 0,
    quality: int | None = None,
) -> bytes:
    """Items x -> the bytes of an .aez file. x: a tensor of items in [0, 1], or a numpy array, a dataset name or a
    path (see apps.model_inputs); scaling: how the file's decoded items go back to the data's units (default the run's).
    refine: a compressor (rate_lambda) fits each item's or image's codes to it for that many steps first
    (VanillaAutoencoder.refine_rate: fewer bits and less error, the same decoder; slow, see the README).
    quality: the level of a shipped codec named by run ("photo-codec": 1 the smallest files)."""
    run = cpu_run(at_quality(run, quality))
    model = run.model
    check_refine(model, refine)
    if model.capabilities.compressor:
        return _compress_learned(run, model_inputs(run, x), scaling or run.scaling, refine)[0]
    x = model_items(run, x)  # (N, ...) floats, whatever form the items were given in
    code = fitted.quantize(encode_all(model, x), bits)
    header = Header(
        model=model.name,
        model_sha256=weights_sha256(model),
        run=run_name(run),
        items=len(x),
        item_shape=tuple(model.config.input_shape),
        scaling=scaling or run.scaling,
        latent_dim=code.q.shape[1],
        bits=bits,
        lo=tuple(code.lo.tolist()),
        step=tuple(code.step.tolist()),
    )
    return aez.write(FITTED, header, fitted.encode(code))


@torch.no_grad()
def whole_code(model, image: torch.Tensor, refine: int = 0) -> torch.Tensor:
    """The integer code map (C, h, w) of a whole image (C, H, W) of any size, in one pass (fully convolutional);
    with refine, fitted to the image for that many steps (VanillaAutoencoder.refine_rate)."""
    shape = list(model.config.input_shape)
    check(
        image.dim() == 3 and image.shape[0] == shape[0],
        f"an image {list(image.shape)}: the model takes {shape[0]} channels",
    )
    size = h, w = tuple(image.shape[1:])
    x = tiles.floats(image)[None].to(model.device)
    y = model.encoder(x).reshape(1, model.code_channels, *model.config.code_size(*size))
    if refine:
        y = model.refine_rate(x, y, lambda q: model.decoder(q, size=size), refine, f"fitting a {h}x{w} image's code")
    return torch.round(y)[0].cpu()


def item_codes(model, x: torch.Tensor, refine: int = 0) -> list[torch.Tensor]:
    """The integer code maps of items x (N, ...) of the model's input shape (see code_map); with refine, fitted to
    each item for that many steps (VanillaAutoencoder.refine_rate)."""
    if not refine:
        return list(model.code_map(encode_all(model, x)))
    check_items(model, x)
    maps = []
    for part in chunks(len(x), REFINE_BATCH, "fitting codes"):
        xb = x[part].to(model.device)
        y = model.code_map(model.encoder_output(xb))
        maps.extend(model.refine_rate(xb, y, lambda q: model.decode_logits(q.flatten(1)), refine).cpu())
    return maps


@torch.no_grad()
def whole_image(model, code: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The image (C, H, W) in [0, 1] that a code map (C, h, w) decodes to at size (H, W)."""
    return torch.sigmoid(model.decoder(code[None].float().to(model.device), size=size))[0].cpu()


def check_whole(model, sizes: list[tuple[int, int]], what: str, kept: int, refine: int = 0) -> None:
    """AekitError unless coding (decoding) whole images of sizes (H, W) fits in memory: kept bytes a pixel held for
    every image, and for the image at work the model's activations over it (kept for the backward passes of
    refine steps too), the image as floats, and its error's (float64) for a report."""
    c = model.config.input_shape[0]

    def transient(size: tuple[int, int]) -> int:
        return activation_bytes(model.config, 1, *size, backward=refine > 0) + 28 * c * size[0] * size[1]

    check_images_fit(sizes, what, kept, transient)


def check_refine(model, refine: int) -> None:
    """AekitError unless compress can fit the model's codes for refine steps."""
    check_steps(refine)
    message = "refine: codes are fitted to bits and error by a compressor only (train with --rate-lambda)"
    check(not refine or model.capabilities.compressor, message)


def _check_tables(model) -> None:
    check(model.entropy.has_tables, "this model has no coding tables yet (they are made after each epoch of training)")


def _compress_learned(
    run: Run, x: torch.Tensor | list[torch.Tensor], scaling: Scaling, refine: int = 0
) -> tuple[bytes, float]:
    """Versions 2 to 4: the model's integer code maps (fitted for refine steps) coded by its entropy model with
    its tables; and the bits the entropy model expects them to take."""
    model = run.model
    _check_tables(model)
    if isinstance(x, list):
        check_whole(model, sizes_of(x), "compressing", 0, refine)
        maps, sizes = [whole_code(model, image, refine) for image in x], sizes_of(x)
    else:
        maps, sizes = item_codes(model, x, refine), None
    values = torch.cat([m.flatten() for m in maps])
    check_finite(values, "the model's codes for this input")
    check(bool(values.abs().max() < 2**31), "the model's codes for this input are beyond 32-bit integers")
    header = LearnedHeader(
        model=model.name,
        model_sha256=weights_sha256(model),
        run=run_name(run),
        items=len(x),
        item_shape=tuple(model.config.input_shape),
        scaling=scaling,
        channels=model.code_channels,
        sizes=sizes and tuple(sizes),
    )
    with torch.no_grad():
        expected = sum(float(model.entropy.bits(m[None].float().to(model.device)).sum()) for m in maps)
    return aez.write(learned.version(model), header, learned.encode(model.entropy, maps)), expected


def map_sizes(header: LearnedHeader, model) -> list[tuple[int, ...]]:
    """The size of each item's code map in a version 2, 3 or 4 file."""
    if header.sizes is None:
        return [tuple(model.code_map(torch.zeros(1, model.config.latent_dim)).shape[2:])] * header.items
    return [model.config.code_size(h, w) for h, w in header.item_sizes()]


def read_aez(data: bytes) -> tuple[Header, Quantized]:
    """Parse and check a version 1 .aez file's bytes: (its header, its quantized codes). AekitError if anything
    is off."""
    version, header, sections = aez.parse(data)
    check(version == FITTED, f"this .aez file codes with its model's own tables (version {version}): use decompress")
    return header, fitted.decode(header, *sections)


def _decode_learned(
    model, version: int, header: LearnedHeader, sections: list[bytes]
) -> torch.Tensor | list[torch.Tensor]:
    """The items of a version 2, 3 or 4 file: a tensor (N, ...) of the model's shape, or whole images (C, H, W)."""
    check(model.capabilities.compressor, "the .aez file codes with a learned entropy model; this model has none")
    check(
        version == learned.version(model) and header.channels == model.code_channels,
        "the .aez file does not match this model's entropy model",
    )
    _check_tables(model)
    images, c = header.item_sizes(), header.item_shape[0]
    if images is None:  # counted before any list of items is made: a header may claim any number
        codes = header.items * math.prod(model.code_map(torch.zeros(1, model.config.latent_dim)).shape[1:])
        values = header.items * math.prod(header.item_shape)
    else:
        codes = sum(math.prod(model.config.code_size(h, w)) for h, w in images) * header.channels
        values = c * sum(h * w for h, w in images)
    # the coder's symbols, tables and lists (about 64 bytes a code value), the items, their raw copy (as v1's)
    check_load_size(codes * 64 + 10 * values, "the .aez file", f"decoding {header.items:,} items")
    if images is not None:  # each image decoded whole: the outputs, their raw copies and the model's activations
        check_whole(model, images, "decoding the .aez file", 5 * c)
    maps = learned.decode(model.entropy, sections, map_sizes(header, model))
    if images is None:
        return decode_all(model, torch.stack([m.flatten() for m in maps]))
    out = [whole_image(model, m, hw) for m, hw in zip(maps, images, strict=True)]
    check_finite(torch.cat([o.flatten() for o in out]), "the model's outputs")
    return out


def decompress(data: bytes, run: Run | str | os.PathLike | None = None) -> tuple[torch.Tensor, dict]:
    """The bytes of an .aez file -> (decoded items (N, ...) in [0, 1], or a list of whole images (C, H, W) of any
    size, and the file's header as a dict).

    run: the run whose model made the file (default: the run folder named in the file). A file made with
    other weights is refused.
    """
    version, header, sections = aez.parse(data)
    run = cpu_run(run if run is not None else header.run)
    check(
        weights_sha256(run.model) == header.model_sha256,
        f"the .aez file was made with another model than the one in {run.path} (weights hash differs)",
    )
    check(tuple(run.model.config.input_shape) == header.item_shape, "the .aez file does not match this model's shapes")
    if version != FITTED:
        return _decode_learned(run.model, version, header, sections), to_dict(header)
    check(run.model.config.latent_dim == header.latent_dim, "the .aez file does not match this model's shapes")
    return decode_all(run.model, fitted.dequantize(fitted.decode(header, *sections))), to_dict(header)


def compress_file(
    run: Run | str | os.PathLike,
    source: str | None,
    out: str | os.PathLike,
    *,
    bits: int = 8,
    split: str | None = None,
    force: bool = False,
    data_dir: str | os.PathLike | None = None,
    refine: int = 0,
    quality: int | None = None,
) -> dict:
    """Compress the items of source (any data aekit reads) into the .aez file out; returns a size/quality report,
    measured on what the file decodes to. For a compressor (rate_lambda) also the bits its entropy model
    expected, beside the file's own, and bits per pixel for images. refine, quality: see compress."""
    run = cpu_run(at_quality(run, quality))
    check_refine(run.model, refine)
    output = OutputPath(out, (".aez",), force, run.input_paths(source, data_dir))
    items, _ = run.read(source, split, data_dir)
    x = model_inputs(run, items) if run.model.capabilities.compressor else items.floats()
    if isinstance(x, list):  # the images as floats and as decoded, for the report
        check_whole(run.model, sizes_of(x), "compressing", 8 * x[0].shape[0], refine)
    if run.model.capabilities.compressor:
        blob, expected = _compress_learned(run, x, items.scaling, refine)
    else:
        blob, expected = compress(run, x, bits, items.scaling), None
    x_hat = decompress(blob, run)[0]
    output.write_bytes(blob)
    report = {"output": str(out), "items": len(x), "bytes": len(blob), "bytes_per_item": len(blob) / len(x)}
    if isinstance(x, list):  # whole images of any size
        x = [tiles.floats(image) for image in x]
        report["psnr_db"] = metrics.image_psnr(x, x_hat)
        values = sum(image.numel() for image in x)
    else:
        report["bits"] = bits if expected is None else None
        report.update(metrics.summarize(metrics.squared_errors(x, x_hat), math.prod(items.item_shape)))
        values = x.numel()
    raw = values * (1 if items.scaling == UINT8 else 4)
    report.update(raw_bytes_per_item=raw / len(x), ratio=raw / len(blob))
    if items.is_image:
        report["ssim"] = metrics.mean_ssim(x, x_hat)
        report["bits_per_pixel"] = 8 * len(blob) / (values / items.item_shape[0])
    if expected is not None:
        header = len(blob) - len(_payload(blob))
        report.update(header_bytes=header, expected_bytes=expected / 8, coded_bytes=len(blob) - header)
    return {k: v for k, v in report.items() if v is not None}


def _payload(blob: bytes) -> bytes:
    """The coded sections of a version 2, 3 or 4 file (what the entropy model's estimate is of)."""
    return b"".join(aez.parse(blob)[2])


def decompress_file(
    path: str | os.PathLike, out: str | os.PathLike, *, run: Run | str | os.PathLike | None = None, force: bool = False
) -> dict:
    """Decode the .aez file at path into out (.npz, .npy, a folder of PNGs, or a PNG for one image) in the data's
    own units. Whole images of several sizes are written as PNGs."""
    given = [] if run is None else [run.path if isinstance(run, Run) else Path(run)]
    output = OutputPath(out, IMAGE_KINDS, force, [Path(path), *given])
    try:
        with open(path, "rb") as f:
            check_load_size(os.fstat(f.fileno()).st_size, path, "the .aez file")
            data = f.read()
    except OSError as e:
        raise AekitError(f"{path}: cannot read ({e.strerror or e})") from None
    version, header, _ = aez.parse(data)
    png = output.kind == ".png"
    check(not png or (header.items == 1 and len(header.item_shape) == 3), f"{out}: a PNG file holds one image")
    sizes = header.item_sizes() if version != FITTED else None
    mixed = sizes is not None and len(set(sizes)) > 1 and output.kind in (".npy", ".npz")
    check(not mixed, f"{out}: images of several sizes are written as PNGs; name a folder")
    x_hat, header = decompress(data, run)
    scaling = Scaling.from_dict(header["scaling"])
    if png:
        written = output.write(lambda f: png_image(to_raw(x_hat[0], scaling).transpose(1, 2, 0), f))
    elif isinstance(x_hat, list) and output.kind not in (".npy", ".npz"):
        pixels = [to_raw(image, UINT8).transpose(1, 2, 0) for image in x_hat]
        written = output.write_folder(lambda folder: write_images(folder, pixels))
    else:
        written = write_array(output, to_raw(torch.stack(x_hat) if isinstance(x_hat, list) else x_hat, scaling))
    sizes = {"sizes": header["sizes"]} if header.get("sizes") else {"item_shape": header["item_shape"]}
    return {"output": str(written), "items": header["items"], **sizes}
