"""medgen's own plugin manifest: first-party components register through the same path as plugins.

This dict is the one list of medgen's components: add one line per component (``"kind.name": "module:attr"``) in
the section of its subpackage; nothing is registered by decorators. ``tests/registry/test_builtin_manifest.py``
fails when an entry does not import, or when a module under ``medgen/`` uses ``@register``.
"""

from importlib.resources import files
from pathlib import Path

# bundles/ sits at the top of the repository and inside the wheel as the data package medgen.bundles (setup.py):
# the import system finds it the same way in an editable and in an installed medgen.
BUNDLES_DIR = Path(str(files("medgen.bundles")))
MANIFEST_ROOT = BUNDLES_DIR.parent

MANIFEST = {
    "name": "medgen",
    "version": "0.1.0",
    "api_version": 1,
    "bundles": [BUNDLES_DIR.name],
    "components": {
        # --- networks: SR zoo (medgen.networks.nets) -------------------------------------------------------
        "network.srcnn": "medgen.networks.nets.srcnn:srcnn",
        "network.vdsr": "medgen.networks.nets.vdsr:vdsr",
        "network.rdn": "medgen.networks.nets.rdn:rdn",
        "network.rdn_half": "medgen.networks.nets.rdn:rdn_half",
        "network.srdensenet": "medgen.networks.nets.srdensenet:srdensenet",
        "network.swift_srgan": "medgen.networks.nets.swift_srgan:swift_srgan",
        "network.swift_srgan_tiny": "medgen.networks.nets.swift_srgan:swift_srgan_tiny",
        "network.swift_srgan_discriminator": "medgen.networks.nets.swift_srgan:swift_srgan_discriminator",
        # --- networks: classifiers ----------------------------------------------------------------------
        "network.vit_phantom_small": "medgen.networks.nets.vit_classifier:vit_phantom_small",
        "network.vit_base_patch16_224": "medgen.networks.nets.vit_classifier:vit_base_patch16_224",
        # --- networks: latent diffusion -----------------------------------------------------------------
        "network.cxr_ldm_autoencoder": "medgen.networks.nets.latent_autoencoder:cxr_ldm_autoencoder",
        "network.text_conditioned_unet": "medgen.networks.nets.text_ldm:text_conditioned_unet",
        # --- datasets (medgen.data) ---------------------------------------------------------------------
        "dataset.phantom": "medgen.data.phantom.dataset:PhantomDataset",
        "dataset.nih_cxr14": "medgen.data.readers.nih:read_nih_cxr14",
        "dataset.chexpert": "medgen.data.readers.chexpert:read_chexpert",
        "dataset.indiana_cxr": "medgen.data.readers.indiana:read_indiana",
        "dataset.mrnet": "medgen.data.readers.mrnet:read_mrnet",
        "dataset.dicom_folder": "medgen.data.readers.dicom:read_dicom_folder",
        "dataset.nifti_folder": "medgen.data.readers.nifti:read_nifti_folder",
        "dataset.image_folder": "medgen.data.readers.folders:read_image_folder",
        "dataset.labelled_folder": "medgen.data.readers.folders:read_labelled_folder",
        "data_source.datalist": "medgen.data.datalist:load_datalist",
        # --- transforms ---------------------------------------------------------------------------------
        "transform.load_radiograph": "medgen.transforms.io.array:LoadRadiograph",
        "transform.load_radiographd": "medgen.transforms.io.dictionary:LoadRadiographd",
        "transform.save_radiograph": "medgen.transforms.io.array:SaveRadiograph",
        "transform.save_radiographd": "medgen.transforms.io.dictionary:SaveRadiographd",
        "transform.paired_degradation": "medgen.transforms.degradation.array:PairedDegradation",
        "transform.paired_degradationd": "medgen.transforms.degradation.dictionary:PairedDegradationd",
        "transform.window": "medgen.transforms.display.array:Window",
        "transform.clahe": "medgen.transforms.display.array:CLAHE",
        "transform.median_filter": "medgen.transforms.display.array:MedianFilter",
        "transform.unsharp_mask": "medgen.transforms.display.array:UnsharpMask",
        "transform.equalize_histogram": "medgen.transforms.display.array:EqualizeHistogram",
        "transform.vignette": "medgen.transforms.display.array:Vignette",
        "transform.enhance_preset": "medgen.transforms.display.array:EnhancePreset",
        "transform.windowd": "medgen.transforms.display.dictionary:Windowd",
        "transform.clahed": "medgen.transforms.display.dictionary:CLAHEd",
        "transform.median_filterd": "medgen.transforms.display.dictionary:MedianFilterd",
        "transform.unsharp_maskd": "medgen.transforms.display.dictionary:UnsharpMaskd",
        "transform.equalize_histogramd": "medgen.transforms.display.dictionary:EqualizeHistogramd",
        "transform.vignetted": "medgen.transforms.display.dictionary:Vignetted",
        "transform.enhance_presetd": "medgen.transforms.display.dictionary:EnhancePresetd",
        # --- sr backends (medgen.inferers) ----------------------------------------------------------------
        "sr_backend.bicubic": "medgen.inferers.region_sr:BicubicBackend",
        "sr_backend.network": "medgen.inferers.region_sr:NetworkBackend",
        "sr_backend.latent_diffusion": "medgen.inferers.region_sr:LatentDiffusionBackend",
        "sr_backend.diffusers": "medgen.inferers.region_sr:DiffusersBackend",
        # --- losses / metrics ---------------------------------------------------------------------------
        "loss.pixel": "medgen.losses.sr:PixelLoss",
        "loss.total_variation": "medgen.losses.sr:TotalVariationLoss",
        "loss.adversarial": "medgen.losses.sr:AdversarialLoss",
        "loss.content": "medgen.losses.content:ContentLoss",
        "metric.psnr": "medgen.metrics.image:ShavedPSNRMetric",
        "metric.ssim": "medgen.metrics.image:ShavedSSIMMetric",
        "engine.sr_trainer": "medgen.engines.sr:create_sr_trainer",
        "engine.sr_evaluator": "medgen.engines.sr:create_sr_evaluator",
        "engine.sr_distillation_trainer": "medgen.engines.sr_distill:create_distillation_trainer",
        "engine.srgan_trainer": "medgen.engines.sr_gan:SRGANTrainer",
        "loss.bce_multilabel": "medgen.losses.classification:MultiLabelBCELoss",
        # --- text encoders (medgen.networks.text) ----------------------------------------------------------
        "text_encoder.minilm": "medgen.networks.text.encoders:minilm",
        "text_encoder.bert_folder": "medgen.networks.text.encoders:bert_folder",
        "text_encoder.scratch_transformer": "medgen.networks.text.scratch:scratch_transformer",
    },
}
