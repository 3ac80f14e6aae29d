"""``b2b-train``: the training side, usable without a camera."""

from __future__ import annotations

import click

from .cliutil import LAZY_SUMMARIES, LazyGroup, run_main

COMMANDS = {
    "translator": "b2b_train.commands.translator:translator",
    "evaluate": "b2b_train.commands.evaluate:evaluate",
    "deblurrer": "b2b_train.commands.deblurrer:deblurrer",
    "distill": "b2b_train.commands.distill:distill",
    "prior": "b2b_train.commands.prior:prior",
    "bke": "b2b_train.commands.bke:bke",
    "kernels": "b2b_train.commands.kernels:kernels",
    "weights": "b2b_train.commands.weights:weights",
    "config": "b2b_train.commands.config:config",
    "probe": "b2b_train.commands.probe:probe",
}

LAZY_SUMMARIES["b2b-train"] = {
    "translator": "Train the blur->blur translator from blurry and sharp frames of one camera.",
    "evaluate": "PSNR/SSIM of deblurrer alone and deblurrer∘translator (paper protocol).",
    "deblurrer": "Train a known-blur deblurrer (NAFNet/Restormer) on synthetic pairs.",
    "distill": "Distil deblurrer∘translator into one fast network (the lite student).",
    "prior": "Train the translator prior on sharp clips filmed by simulated cameras.",
    "bke": "Train the blur-kernel extractor or transfer blur with it.",
    "kernels": "Make, preview or export known-blur kernels and blurred images.",
    "weights": "List, inspect, convert or fetch network weights.",
    "config": "Show presets and the resolved config with overrides.",
    "probe": "Can a discriminator tell the camera's blur from the known blur? Chooses K.",
}


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    name="b2b-train",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="b2b", prog_name="b2b-train")
def cli():
    """Learn a camera's blur: translator, known-blur deblurrer, kernel extractor, evaluation.

    \b
    Example:
      b2b-train translator --blurry frames/blurry --sharp frames/sharp --out runs/desk --config cpu-quick
    """


def main(argv=None):
    run_main(cli, argv)


if __name__ == "__main__":
    main()
