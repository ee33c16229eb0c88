import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()

# What every request needs is loaded now rather than at the first request (the URLconf,
# and through it every view, serializer and form); then that heap, which lives as long as
# the process, is left out of the garbage collector's full passes. Over it, each pass took
# 80-600 ms in a gunicorn worker on a busy 2-core machine, about one every 2 s at 40
# API reads/s, and every thread of the worker waited: the slowest 1% of the answers.
get_resolver().url_patterns  # noqa: B018 (imports the views)
gc.freeze()
