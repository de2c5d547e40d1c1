"""Using a finished run: `tune merge` (a standalone model folder with a model card) and `tune chat`.

- ``run_folder``: read a finished run folder (recipe.yaml, manifest.json, final/) and find its base model;
- ``merge``: fold a LoRA adapter into its base (or re-save a full model) as a plain transformers checkpoint,
  with its model card (tune.training.model_card, which also writes ``final/README.md``) and the files
  rewritten for transformers 4.x and GGUF converters (tune.training.consumer_compat);
- ``harmony``: LLM-jp-4's end tokens, the stopping rule and the parsing of a generated reply;
- ``chat``: generate with the tuned model through the chat template (one shot or a REPL).

Nothing here is imported by ``tune --help`` or ``tune validate``; the HF stack is imported inside
the functions that need it.
"""
