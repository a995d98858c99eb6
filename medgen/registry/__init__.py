"""The medgen component registry (networks, datasets, transforms, SR backends, ..., bundles) and plugins."""

from medgen.registry.core import KINDS, PLUGIN_API_VERSION, Entry, PluginRecord, Registry, RegistryError

REGISTRY = Registry()


def register(kind: str, name: str | None = None, owner: str | None = None):
    """Decorator registering a component: ``@register("network", "srcnn")``."""
    return REGISTRY.register(kind, name, owner)


def get(kind: str, name: str):
    return REGISTRY.get(kind, name)


def names(kind: str) -> list[str]:
    return REGISTRY.names(kind)


def create_network(name: str, **kwargs):
    """timm-style front door: ``create_network("rdn", scale=4)``."""
    return REGISTRY.create("network", name, **kwargs)


__all__ = [
    "KINDS",
    "PLUGIN_API_VERSION",
    "REGISTRY",
    "Entry",
    "PluginRecord",
    "Registry",
    "RegistryError",
    "create_network",
    "get",
    "names",
    "register",
]
