"""medgen: a plugin-based medical-imaging framework on MONAI."""

from medgen.registry import REGISTRY, create_network, register

__version__ = "0.1.0"
__all__ = ["REGISTRY", "__version__", "create_network", "register"]
