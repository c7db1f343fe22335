"""lmms-eval entry point: tells lmms-eval where the SALOVA model class lives.

Kept free of torch imports; lmms-eval imports the class only when `--model salova` is used.
"""


def manifests():
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id="salova", simple_class_path="evals.lmms_model.SalovaLMMS")]
