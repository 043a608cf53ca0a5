"""The .aez codec, below the compress use and above the models: rans (the entropy coder), aez (the file's
frame, headers and format versions), fitted (version 1: quantized codes with tables fitted to them), learned
(versions 2 to 4: a compressor's code maps with its entropy model's tables). docs/formats.md describes the file."""
