import pytest

from tests.insights.helpers import History


@pytest.fixture
def history(demo):
    return History(demo)
