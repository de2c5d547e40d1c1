import pytest


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """The tiny twins' tokenizer (project-built, Harmony template), as training loads it."""
    from tune.models.presets import get_preset
    from tune.models.tiny_twins import ensure_twin
    from tune.models.tokenizer_sentencepiece import build_fast_tokenizer_from_assets

    return build_fast_tokenizer_from_assets(ensure_twin(get_preset("tiny-llm-jp-4-8b")))
