"""``integrations.delivery.bulk.update_rows``: one UPDATE for many rows."""

import pytest

from integrations.delivery.bulk import update_rows
from integrations.models import Workspace


def test_each_row_gets_its_own_value(workspace):
    other = Workspace.objects.create(name="Other", slug="other")
    workspace.name, other.name = "First", "Second"
    update_rows([workspace, other], ["name"])
    assert list(Workspace.objects.order_by("pk").values_list("name", flat=True)) == [
        "First",
        "Second",
    ]


def test_a_name_that_is_not_a_column_is_refused(workspace):
    with pytest.raises(TypeError, match="integrations is not a column"):
        update_rows([workspace], ["integrations"])
