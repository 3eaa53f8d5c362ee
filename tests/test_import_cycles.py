"""The package imports one way: no module imports, however indirectly, one that imports it.

The layering contract (pyproject's importlinter section) orders the packages; this
catches what it cannot see, a cycle inside one package (``daemon.run`` and
``daemon.workers`` once reached each other through function-level imports). Imports
under ``TYPE_CHECKING`` never run, so they are left out.
"""

from __future__ import annotations

import grimp


def test_no_module_imports_itself_back() -> None:
    """Every runtime import chain in src/ is acyclic."""
    graph = grimp.build_graph("fkllmproxy", cache_dir=None, exclude_type_checking_imports=True)
    cycles = sorted(
        {
            tuple(sorted((module, imported)))
            for module in graph.modules
            for imported in graph.find_modules_directly_imported_by(module)
            if graph.chain_exists(importer=imported, imported=module)
        }
    )
    assert cycles == []
