"""The verbs of the uses of a trained model: compress, decompress, features, denoise, generate, anomaly, latent."""

from __future__ import annotations

from ..flags import csv_list, parse_as
from .table import add_use, source_of, verb


@verb("compress", "items -> an .aez file of entropy-coded latent codes")
def _compress(p):
    from ..apps.compress import compress_file

    add_use(p, ".aez file to write")
    p.add_argument(
        "--bits", type=int, default=8, help="bits per code dimension (1-12, default 8); a compressor (--rate-lambda) "
        "codes its integer codes with its own tables instead"
    )  # fmt: skip
    p.add_argument(
        "--refine",
        type=int,
        default=0,
        metavar="STEPS",
        help="a compressor (--rate-lambda): fit each image's codes to it by STEPS steps first (a closer image in "
        "fewer bytes; slow: each step is a backward pass over the image)",
    )
    p.add_argument(
        "--quality", type=int, metavar="Q", help="the level of a shipped codec (photo-codec: 1 the smallest files to "
        "4 the best photos; 3 when left out)"
    )  # fmt: skip
    return lambda args: compress_file(
        args.run, source_of(args), args.output, bits=args.bits, split=args.split, force=args.force,
        data_dir=args.data_dir, refine=args.refine, quality=args.quality,
    )  # fmt: skip


@verb("decompress", ".aez file -> the decoded items (.npz, .npy, a folder of PNGs, or a PNG for one image)")
def _decompress(p):
    from ..apps.compress import decompress_file

    p.add_argument("file", help=".aez file made by aekit compress")
    p.add_argument("-o", "--output", required=True, help=".npz, .npy, .png (one image), or a folder for PNG images")
    p.add_argument("--run", help="run folder of the model (default: the one named in the file)")
    p.add_argument("--force", action="store_true", help="replace an existing output (only what aekit wrote)")
    return lambda args: decompress_file(args.file, args.output, run=args.run, force=args.force)


@verb("features", "the codes of items as a feature matrix")
def _features(p):
    from ..apps.features import features_file

    add_use(p, ".npy (codes) or .npz (x: codes, y: labels)")
    return lambda args: features_file(
        args.run, source_of(args), args.output, split=args.split, force=args.force, data_dir=args.data_dir
    )


@verb("denoise", "clean items with a trained model (a dae)")
def _denoise(p):
    from ..apps.denoise import denoise_file

    add_use(p, ".npz, .npy, or a folder name for PNG images")
    p.add_argument(
        "--add-noise",
        type=csv_list,
        metavar="KINDS",
        help="corrupt the input first (gaussian, salt_pepper, masking, shift, paste; comma-separated); report PSNR",
    )
    p.add_argument("--noise-sigma", "--sigma", type=float, default=0.5, help="Gaussian noise std (default 0.5)")
    p.add_argument("--noise-p", "--p", type=float, default=0.25, help="share hit by salt_pepper or masking (0.25)")
    p.add_argument("--seed", type=int, default=0, help="seed of the added noise (default 0)")
    p.add_argument("--noisy-out", help="also write the noisy copy here")
    p.add_argument("--figure", help="PNG of noisy over denoised (over clean) items")
    return lambda args: denoise_file(
        args.run,
        source_of(args),
        args.output,
        split=args.split,
        add_noise=args.add_noise,
        sigma=args.noise_sigma,
        p=args.noise_p,
        seed=args.seed,
        noisy_out=args.noisy_out,
        figure=args.figure,
        force=args.force,
        data_dir=args.data_dir,
    )


@verb("generate", "new items, interpolations (of INPUT's items), or the 2-d latent manifold")
def _generate(p):
    from ..apps.generate import generate_file

    add_use(p, ".png grid, or .npz/.npy", data=False)
    p.add_argument("-n", type=int, default=64, help="how many samples (default 64)")
    p.add_argument("--temperature", type=float, default=1.0, help="spread of the codes drawn (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the codes drawn (default 0)")
    p.add_argument("--interpolate", type=int, nargs=2, metavar=("I", "J"), help="decode the line between items I, J")
    p.add_argument("--steps", type=int, default=10, help="images along an interpolation (default 10)")
    p.add_argument("--manifold", action="store_true", help="decode a grid over a 2-d code (latent_dim 2)")
    p.add_argument("--grid", type=int, default=15, help="manifold grid size (default 15)")
    p.add_argument("--size", type=parse_as(tuple[int, ...]), metavar="H,W", help="resnet vae: samples of this size")
    p.add_argument(
        "--sampler",
        choices=("prior", "gaussian", "gmm"),
        help="where the codes come from: the model's prior (a vae's default), a Gaussian fitted to the training "
        "codes (the others' default) or a mixture of Gaussians fitted to them (gmm)",
    )
    p.add_argument("--components", type=int, default=10, help="gmm: Gaussians in the mixture (default 10)")
    p.add_argument("--label", type=int, help="a conditional model's class of every sample (default: each in turn)")
    return lambda args: generate_file(
        args.run,
        args.output,
        n=args.n,
        temperature=args.temperature,
        seed=args.seed,
        between=args.interpolate,
        data=source_of(args),
        split=args.split,
        steps=args.steps,
        grid=args.grid if args.manifold else None,
        force=args.force,
        data_dir=args.data_dir,
        size=args.size,
        sampler=args.sampler,
        components=args.components,
        label=args.label,
    )


@verb("anomaly", "score items by reconstruction error (VAE: negative ELBO) and flag the unusual")
def _anomaly(p):
    from ..apps.anomaly import anomaly_file

    add_use(p, "CSV: index, score, flagged, and where known the file and the label", required=False)
    p.add_argument("--contamination", type=float, help="flag this share of the input (its highest scores)")
    p.add_argument(
        "--percentile",
        type=float,
        default=99.0,
        help="else flag scores above this percentile of the run's training data (default 99)",
    )
    p.add_argument(
        "--normal",
        type=csv_list,
        metavar="LABELS",
        help="labels of normal items (numbers or class names): adds AUROC and AUPRC",
    )
    p.add_argument("--figure", help="PNG: score histogram with the threshold and the most anomalous items")
    p.add_argument("--maps", help="resnet: .npz of the anomaly maps, an array (H, W) per image named by its file")
    p.add_argument(
        "--masks",
        metavar="FOLDER",
        help="resnet: ground-truth masks named as their images (default: INPUT/masks if there): adds pixel AUROC",
    )
    return lambda args: anomaly_file(
        args.run,
        source_of(args),
        split=args.split,
        contamination=args.contamination,
        percentile=args.percentile,
        normal=args.normal,
        out=args.output,
        figure=args.figure,
        force=args.force,
        data_dir=args.data_dir,
        maps_out=args.maps,
        masks=args.masks,
    )


@verb("latent", "a 2-d map of the codes (PCA above 2 dimensions), coloured by label")
def _latent(p):
    from ..apps.features import latent_file

    add_use(p, ".png")
    p.add_argument("--max-items", type=int, default=5000, help="plot at most this many items (default 5000)")
    return lambda args: latent_file(
        args.run, source_of(args), args.output, split=args.split, max_items=args.max_items, force=args.force,
        data_dir=args.data_dir,
    )  # fmt: skip
