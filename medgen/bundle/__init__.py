"""Running and verifying MONAI bundles (the top layer, beside the CLI): :mod:`~medgen.bundle.run`,
:mod:`~medgen.bundle.verify`. Finding bundles is :mod:`medgen.registry.bundles`."""
