"""Miners by name: ``create_miner("pml:MultiSimilarityMiner", epsilon=0.1)``. The zoo has no
miner of its own; plugins register them (the PML adapter: every PML miner as ``pml:<name>``)."""

from losszoo.miners.registry import (
    MINERS,
    MinerSpec,
    create_miner,
    get_miner_spec,
    list_miners,
    register_miner,
)

__all__ = ["MINERS", "MinerSpec", "create_miner", "get_miner_spec", "list_miners", "register_miner"]
