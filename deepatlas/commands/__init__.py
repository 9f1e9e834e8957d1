"""CLI sub-commands, one module each with ``add_parser(subparsers)``; discovered by ``deepatlas.cli``."""
