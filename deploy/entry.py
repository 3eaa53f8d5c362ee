"""The frozen program's entry point: what the ``fkllmproxy`` console script runs."""

from fkllmproxy.cli import main

main()
