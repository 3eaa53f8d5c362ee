"""``python -m fkllmproxy`` is the ``fkllm`` command."""

from fkllmproxy.cli import main

main()
