"""Delivery of accepted events to integrations: routing, tasks, attempts."""
