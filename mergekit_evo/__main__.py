"""``python -m mergekit_evo``: the ``mergekit-evo`` command (how a run starts its workers)."""

from mergekit_evo.cli import main

if __name__ == "__main__":
    main()
