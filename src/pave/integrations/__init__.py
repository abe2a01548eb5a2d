"""Plugins that let other tools run pave models; each is imported only by the tool that loads it.

- :mod:`pave.integrations.lmms_eval`: the ``pave`` model of lmms-eval (``pip install
  "pave-patches[lmms]"``, then ``lmms-eval --model pave --model_args patch=...``).
"""


def lmms_eval_models():
    """The models pave adds to lmms-eval, read through its ``lmms_eval.models`` entry-point group.

    lmms-eval imports every entry point of that group each time it starts, whatever model it runs,
    so this returns only the model's name and class path: the class (and torch, transformers and
    the patches) is imported when ``--model pave`` is asked for.
    """
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id="pave", simple_class_path="pave.integrations.lmms_eval.PaveModel")
