"""The supervising process of ``certstatus serve``: above the application, the admin listener and the
HTTP edge, it assembles them.

:mod:`~certstatus.supervisor.run` binds the listener and keeps the worker processes running,
:mod:`~certstatus.supervisor.lifecycle` exports the settings and starts, reloads and stops the
services of :mod:`~certstatus.supervisor.services` (source refresher, admin listener, background
generator).
"""
