"""Verify a registered bundle: metadata schema, network in/out shapes, TorchScript export and reload."""

from __future__ import annotations

from pathlib import Path

from medgen.networks.utils import load_checkpoint
from medgen.registry.bundles import METADATA_SCHEMA, BundleError, get_bundle


def verify_bundle(
    bundle_name: str, out_dir: str | Path | None = None, bundle_root: str | Path | None = None
) -> dict:
    """Check metadata against the shipped schema, run ``verify_net_in_out``, export TorchScript and reload it.

    Network weights come from ``models/model.pt`` when present; otherwise the freshly initialised network is
    exported (the check is about the graph and the metadata, not the weights).
    """
    import tempfile

    import torch
    from monai.bundle import ConfigParser, verify_metadata, verify_net_in_out
    from monai.data import load_net_with_metadata, save_net_with_metadata

    bundle = get_bundle(bundle_name)
    root = Path(bundle_root or bundle.path).resolve()
    meta = bundle.configs / "metadata.json"
    verify_metadata(meta_file=str(meta), filepath=str(METADATA_SCHEMA))
    inference = bundle.config_path("inference")
    if bundle.metadata.get("medgen_verify_networks"):
        return _verify_networks(bundle, root, meta, inference, out_dir)
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(meta),
        config_file=str(inference),
        device="cpu",
        bundle_root=str(root),
    )
    parser = ConfigParser()
    parser.read_meta(str(meta))
    parser.read_config(str(inference))
    parser["bundle_root"] = str(root)
    net = parser.get_parsed_content("network_def")
    model_pt = root / "models" / "model.pt"
    if model_pt.is_file():
        load_checkpoint(model_pt, net)  # CheckpointSaver's bare state dict, or a medgen checkpoint
    net.eval()
    fmt = bundle.metadata["network_data_format"]["inputs"]["image"]
    shape = [
        1,
        int(fmt.get("num_channels", 1)),
        *[int(s) if isinstance(s, int) else 64 for s in fmt["spatial_shape"]],
    ]
    example = torch.rand(*shape)
    out_dir = Path(out_dir or tempfile.mkdtemp(prefix=f"medgen_verify_{bundle.name}_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    ts_path = out_dir / "model.ts"
    scripted = torch.jit.trace(net, example, check_trace=False)
    save_net_with_metadata(
        scripted,
        str(ts_path.with_suffix("")),
        meta_values=bundle.metadata,
        more_extra_files={"inference.yaml": inference.read_text().encode()},
    )
    loaded, meta_back, extra = load_net_with_metadata(str(ts_path), more_extra_files=("inference.yaml",))
    with torch.no_grad():
        diff = float((loaded(example) - net(example)).abs().max())
    if diff > 1e-4:
        raise BundleError(f"TorchScript export of {bundle.name!r} differs from the network by {diff:.2e}")
    return {
        "bundle": bundle.name,
        "metadata": "ok",
        "net_in_out": "ok",
        "torchscript": str(ts_path),
        "torchscript_max_abs_diff": diff,
        "weights": str(model_pt) if model_pt.is_file() else "initial",
    }


def _outputs(value):
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    return [t for v in value for t in _outputs(v)]


def _verify_networks(bundle, root: Path, meta: Path, inference: Path, out_dir) -> dict:
    """Bundles of several networks with other inputs than one image (metadata ``medgen_verify_networks``:
    ``{config id: weights file}``): each network is built by the inference config (from its trained checkpoint),
    traced on its own ``example_inputs()``, exported with the bundle metadata, reloaded and compared."""
    import tempfile

    import torch
    from monai.bundle import ConfigParser
    from monai.data import load_net_with_metadata, save_net_with_metadata

    out_dir = Path(out_dir or tempfile.mkdtemp(prefix=f"medgen_verify_{bundle.name}_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    parser = ConfigParser()
    parser.read_meta(str(meta))
    parser.read_config(str(inference))
    parser["bundle_root"] = str(root)
    result: dict = {"bundle": bundle.name, "metadata": "ok", "networks": {}}
    for net_id, weights in bundle.metadata["medgen_verify_networks"].items():
        path = root / weights
        if not path.is_file():
            raise BundleError(
                f"{bundle.name}: {path} not found; verify checks the trained networks: run "
                f"`medgen run {bundle.name} --bundle-root {root}` first"
            )
        net = parser.get_parsed_content(net_id).eval()
        example = tuple(net.example_inputs())
        with torch.no_grad():  # seeded: AutoencoderKL's forward draws its latent sample
            torch.manual_seed(0)
            expected = _outputs(net(*example))
        scripted = torch.jit.trace(net, example, check_trace=False)
        ts_path = out_dir / f"{net_id}.ts"
        save_net_with_metadata(
            scripted,
            str(ts_path.with_suffix("")),
            meta_values=bundle.metadata,
            more_extra_files={"inference.yaml": inference.read_text().encode()},
        )
        loaded, _, _ = load_net_with_metadata(str(ts_path), more_extra_files=("inference.yaml",))
        with torch.no_grad():
            torch.manual_seed(0)
            got = _outputs(loaded(*example))
        diff = max(float((a - b).abs().max()) for a, b in zip(got, expected, strict=True))
        if diff > 1e-4:
            raise BundleError(f"TorchScript export of {bundle.name!r} {net_id} differs by {diff:.2e}")
        result["networks"][net_id] = {
            "inputs": [list(x.shape) for x in example],
            "outputs": [list(x.shape) for x in expected],
            "torchscript": str(ts_path),
            "torchscript_max_abs_diff": diff,
            "weights": str(path),
        }
    result["torchscript_max_abs_diff"] = max(
        n["torchscript_max_abs_diff"] for n in result["networks"].values()
    )
    return result
