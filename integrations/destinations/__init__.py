"""Destination integrations: one module per vendor, registered in ``registry``."""
