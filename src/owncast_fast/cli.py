"""`owncast-fast` command line: `owncast-fast serve` (the default) and `--version`.

Every flag comes from `config.options.OPTIONS`, so the flags, the environment variables and
the config-file keys cannot drift apart.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from owncast_fast import OWNCAST_API_VERSION, __version__
from owncast_fast.config.options import OPTIONS, OptionsError, load_options

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="owncast-fast",
        description="Live streaming and chat server speaking Owncast's API.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"owncast-fast {__version__} (Owncast {OWNCAST_API_VERSION} API)",
    )
    parser.add_argument("command", nargs="?", default="serve", choices=["serve"], help="what to do (default: serve)")
    for option in OPTIONS:
        parser.add_argument(
            f"--{option.name}",
            dest=option.attr,
            default=None,
            metavar=option.attr.upper(),
            help=f"{option.help} (default: {option.default!r}; env {option.env})",
        )
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr, force=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    flags: dict[str, Any] = {o.attr: getattr(args, o.attr) for o in OPTIONS if getattr(args, o.attr) is not None}
    try:
        options = load_options(flags)
    except OptionsError as exc:
        print(f"owncast-fast: {exc}", file=sys.stderr)
        return 2
    configure_logging(options.log_level)
    # Robyn parses sys.argv when it is imported; our flags are not its flags.
    sys.argv = sys.argv[:1]
    from owncast_fast.serve import run

    return run(options)


if __name__ == "__main__":
    sys.exit(main())
