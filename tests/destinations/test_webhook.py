import pytest

from tests.destinations.fixtures import cases, check_case


@pytest.mark.parametrize("path", cases("webhook"))
def test_fixture(path):
    check_case("webhook", path)
