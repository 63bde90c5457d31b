"""The console's settings plus the what-if app (see benchmarks/whatif/__init__.py)."""

from console.settings import *  # noqa: F403
from console.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "benchmarks.whatif.apps.WhatIfConfig"]
