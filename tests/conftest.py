import pytest

from modeling import VARIANTS


@pytest.fixture(params=list(VARIANTS))
def variant(request) -> str:
    """Each named variant in turn."""
    return request.param
