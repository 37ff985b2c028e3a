"""Operators of the backend process, shown in the add-on's preferences: Check Backend (the answer is drawn below the
buttons), Start Backend and Stop Backend (only a backend the add-on started)."""
from __future__ import annotations

import bpy

from . import jobs, prefs
from .core.client import BackendClient
from .core.protocol import BackendError


def describe_health(health: dict) -> str:
    models = health.get("default_model") or "no model loaded (serve --model PATH)"
    queue = health.get("queue", {})
    return (f"Connected: Image Dynamics backend {health.get('version', '?')} (API {health.get('api_version')}) on "
            f"{health.get('device', '?')}, model {models}, {queue.get('running', 0)} running / "
            f"{queue.get('queued', 0)} queued")


class IMAGEDYN_OT_backend_check(bpy.types.Operator):
    """Check the connection to the backend (and start it when Start Backend Automatically is on); the answer
    appears below the button"""

    bl_idname = "imagedyn.backend_check"
    bl_label = "Check Backend"
    bl_options = {"REGISTER"}

    def execute(self, context):
        settings = prefs.current_settings(context)

        def work(emit, cancel_event):
            with BackendClient(settings.url, settings.token or None) as client:
                emit(f"Connecting to {client.url}", 0.0)
                return jobs.ensure_backend(client, settings, cancel_event, lambda text: emit(text, 0.0))

        try:
            jobs.start_job(prefs.CHECK_KEY, "Check Backend", work, lambda job, health: describe_health(health))
        except BackendError as exc:
            self.report({"WARNING"}, exc.message)
            return {"CANCELLED"}
        return {"FINISHED"}


class IMAGEDYN_OT_backend_start(bpy.types.Operator):
    """Start the backend with the Python or command set in the preferences (on Backend Port of this computer)"""

    bl_idname = "imagedyn.backend_start"
    bl_label = "Start Backend"
    bl_options = {"REGISTER"}

    def execute(self, context):
        settings = prefs.current_settings(context)
        command = settings.start_command()
        if command is None:
            self.report({"ERROR"}, "Set 'Backend Python' or 'Backend Command' first")
            return {"CANCELLED"}
        if jobs.SERVER.running():
            self.report({"INFO"}, "The backend the add-on started is already running")
            return {"FINISHED"}
        try:
            jobs.SERVER.start(command, settings.stop_on_exit)
        except BackendError as exc:
            self.report({"ERROR"}, exc.message)
            return {"CANCELLED"}
        self.report({"INFO"}, f"Starting the backend (log: {jobs.SERVER.log_path})")
        return {"FINISHED"}


class IMAGEDYN_OT_backend_stop(bpy.types.Operator):
    """Stop the backend the add-on started (a backend you started yourself is left alone)"""

    bl_idname = "imagedyn.backend_stop"
    bl_label = "Stop Backend"
    bl_options = {"REGISTER"}

    def execute(self, context):
        if jobs.SERVER.stop():
            self.report({"INFO"}, "Backend stopped")
        else:
            self.report({"INFO"}, "The add-on has not started a backend")
        return {"FINISHED"}


classes = (IMAGEDYN_OT_backend_check, IMAGEDYN_OT_backend_start, IMAGEDYN_OT_backend_stop)
