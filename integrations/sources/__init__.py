"""Event sources: the Segment HTTP API, Segment's Webhooks destination, vendor webhooks."""
