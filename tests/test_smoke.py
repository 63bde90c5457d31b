def test_tracking_api_accepts_a_track_call(api_client, source, webhook_integration):
    from integrations.models import Delivery, Event

    response = api_client.post(
        "/v1/track",
        {"userId": "u1", "event": "Signed Up", "writeKey": source.write_key},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert Event.objects.get().event == "Signed Up"
    assert Delivery.objects.get().integration == webhook_integration
