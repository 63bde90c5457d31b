"""A NUL (%00) in a URL is a clear 404 or 400, never a database error."""

import pytest


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/api/v1/workspaces/{slug}/events/?message_id=a%00b", 400, "invalid_query"),
        ("/api/v1/workspaces/{slug}/deliveries/?message_id=a%00b", 400, "invalid_query"),
        ("/admin/integrations/event/?q=a%00b", 400, "invalid_query"),
        ("/api/v1/workspaces/a%00b/", 404, "not_found"),
        ("/api/v1/workspaces/{slug}/integrations/1%00/", 404, "not_found"),
    ],
)
def test_nul_in_a_url_is_refused_clearly(admin_client, workspace, url, status, code):
    response = admin_client.get(url.format(slug=workspace.slug))
    assert response.status_code == status
    assert response.json()["code"] == code
    assert "NUL" in response.json()["message"]


def test_an_escaped_percent_sign_is_not_a_nul(admin_client, workspace):
    url = f"/api/v1/workspaces/{workspace.slug}/events/?message_id=a%2500b"
    assert admin_client.get(url).status_code == 200
