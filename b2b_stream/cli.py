"""``b2b-stream``: record, calibrate, build and run a camera's real-time deblurring."""

from __future__ import annotations

import click

from b2b_train.cliutil import LAZY_SUMMARIES, LazyGroup, run_main

COMMANDS = {
    "record": "b2b_stream.commands.record:record",
    "calibrate": "b2b_stream.commands.calibrate:calibrate",
    "build": "b2b_stream.commands.build:build",
    "run": "b2b_stream.commands.run:run",
    "bench": "b2b_stream.commands.bench:bench",
    "models": "b2b_stream.commands.models:models",
    "sources": "b2b_stream.commands.sources:sources",
}

LAZY_SUMMARIES["b2b-stream"] = {
    "record": "Record sharp or blurry clips from a camera into its profile.",
    "calibrate": "Learn the camera's blur from its profile clips, evaluate, build the engine.",
    "build": "Compile translator + deblurrer into one fused engine for a backend.",
    "run": "Capture -> translate -> deblur -> track hands, in real time.",
    "bench": "Time each stage and the whole pipeline.",
    "models": "Install or check the hand-tracking model (offline route included).",
    "sources": "List cameras and show what a source delivers.",
}


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    name="b2b-stream",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="b2b", prog_name="b2b-stream")
def cli():
    """Real-time deblurring for one camera, with hand tracking on the result.

    \b
    Workflow:
      b2b-stream record --camera 0 --label sharp   --profile desk
      b2b-stream record --camera 0 --label blurry  --profile desk
      b2b-stream calibrate --camera 0 --profile desk
      b2b-stream run --camera 0 --profile desk --show
    """


def main(argv=None):
    run_main(cli, argv)


if __name__ == "__main__":
    main()
