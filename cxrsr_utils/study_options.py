"""What ``cxrsr study`` and ``cxrsr-study`` share: the study's options and the exit statuses.

One parser for both entry points (``cxrsr_utils.cli`` adds them to its ``study`` subcommand,
``cxrsr_utils.runner`` to its own parser), and the exit statuses every command returns: 0 done,
1 something failed, 2 a usage or parameter error, 130 interrupted. Both import this module;
neither imports the other's constants, so the two stay one layer apart.
"""

from __future__ import annotations

import argparse

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """The ``--set KEY=VALUE`` overrides option (read by
    :func:`cxrsr_utils.core.params.parse_set`)."""
    parser.add_argument(
        "--set",
        nargs="+",
        action="extend",  # --set a=1 --set b=2 gives both, as --set a=1 b=2 does
        default=[],
        metavar="KEY=VALUE",
        help="override parameters, e.g. nih.n_crops=4 (repeat --set or give several)",
    )


def add_study_options(parser: argparse.ArgumentParser) -> None:
    """``--profile``, ``--only``, ``--set`` and ``--publish``: the options of a study run."""
    parser.add_argument(
        "--profile", default="quick", help="quick, mirror, paper, or a YAML path (params/)"
    )
    parser.add_argument(
        "--only", nargs="*", metavar="NN", help="run only these notebooks (e.g. 01 04)"
    )
    add_set_option(parser)
    parser.add_argument(
        "--publish",
        action="store_true",
        help="make the run's tables and figures the committed reference "
        "(reports/<profile>/, figures/<profile>/)",
    )
