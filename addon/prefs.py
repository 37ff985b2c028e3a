"""Add-on preferences (looked up through the package name, as extensions require): where the backend service is,
whether the add-on starts it (and with which Python or command), and the token it needs; :func:`current_settings`
turns them into the :class:`~jobs.BackendSettings` a worker thread gets."""
from __future__ import annotations

import dataclasses
import os

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from . import jobs

ADDON_ID = __package__
ENV_URL = "IMAGE_DYNAMICS_BACKEND_URL"  # overrides the preferences' host/port (scripts, render farms, tests)
ENV_TOKEN = "IMAGE_DYNAMICS_TOKEN"
CHECK_KEY = "Backend"  # the job key of Check Backend (its answer is shown here)


class IMAGEDYN_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_host: StringProperty(
        name="Backend Host", default="127.0.0.1",
        description="Host of the Image Dynamics backend service: 127.0.0.1 = this computer (also for an ssh "
                    "tunnel to a GPU machine), or a full URL such as http://gpu-box:8765")
    backend_port: IntProperty(
        name="Backend Port", default=8765, min=1, max=65535,
        description="Port of the Image Dynamics backend service ('image-dynamics serve --port')")
    backend_token: StringProperty(
        name="Backend Token", default="", subtype="PASSWORD",
        description="Token of a backend started with --token (empty = none)")
    auto_start: BoolProperty(
        name="Start Backend Automatically", default=False,
        description="When no backend answers on this computer, start one with the Python or command below (on "
                    "Backend Port) and use it")
    python_executable: StringProperty(
        name="Backend Python", subtype="FILE_PATH", default="",
        description="Python interpreter with the image-dynamics backend installed (runs 'python -m backend.cli "
                    "serve'), e.g. the project's .venv/bin/python")
    backend_command: StringProperty(
        name="Backend Command", default="",
        description="Command that runs the backend's CLI, e.g. /path/to/.venv/bin/image-dynamics (used instead "
                    "of Backend Python when set; 'serve --port ...' is appended)")
    backend_model: StringProperty(
        name="Model", subtype="FILE_PATH", default="",
        description="Motion checkpoint the started backend loads (empty = the shipped default)")
    backend_device: EnumProperty(
        name="Device", default="auto",
        items=(("auto", "Auto", "CUDA when the backend's machine has a GPU, else the CPU"),
               ("cpu", "CPU", "Always the CPU"),
               ("cuda", "CUDA", "The first CUDA GPU")),
        description="Where the started backend runs the model")
    stop_on_exit: BoolProperty(
        name="Stop Backend on Exit", default=True,
        description="Stop a backend the add-on started when Blender quits or the add-on is disabled")

    def draw(self, context):
        layout = self.layout
        row = layout.row()
        row.prop(self, "backend_host")
        row.prop(self, "backend_port")
        layout.prop(self, "backend_token")
        layout.prop(self, "auto_start")
        col = layout.column()
        col.enabled = self.auto_start
        col.prop(self, "python_executable")
        col.prop(self, "backend_command")
        col.prop(self, "backend_model")
        row = col.row()
        row.prop(self, "backend_device")
        row.prop(self, "stop_on_exit")
        row = layout.row(align=True)
        row.operator("imagedyn.backend_check", icon="LINKED")
        row.operator("imagedyn.backend_start", icon="PLAY")
        row.operator("imagedyn.backend_stop", icon="PAUSE")
        job = jobs.job_for(CHECK_KEY)
        if job is not None:
            text = job.text if job.active else job.message
            icon = {"failed": "ERROR", "done": "CHECKMARK"}.get(job.state, "TIME")
            col = layout.column(align=True)
            for i, line in enumerate(jobs.wrap(text, 100)):
                col.label(text=line, icon=icon if i == 0 else "BLANK1")

    @property
    def backend_url(self) -> str:
        host = self.backend_host.strip()
        if "://" in host:
            return host.rstrip("/")
        if ":" in host and not host.startswith("["):  # IPv6 address
            host = f"[{host}]"
        return f"http://{host}:{self.backend_port}"


def get_preferences(context=None):
    """The add-on's preferences, or None when it was registered without the add-on system (tests, scripts)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return None if addon is None else addon.preferences


def current_settings(context=None) -> jobs.BackendSettings:
    """Settings from the add-on preferences (defaults when registered without the add-on system); the environment
    variables IMAGE_DYNAMICS_BACKEND_URL / IMAGE_DYNAMICS_TOKEN override URL and token. Main thread only."""
    prefs = get_preferences(context)
    settings = jobs.BackendSettings()
    if prefs is not None:
        settings = jobs.BackendSettings(
            url=prefs.backend_url, token=prefs.backend_token, auto_start=prefs.auto_start,
            python=bpy.path.abspath(prefs.python_executable) if prefs.python_executable else "",
            command=prefs.backend_command, device=prefs.backend_device, stop_on_exit=prefs.stop_on_exit,
            model=bpy.path.abspath(prefs.backend_model) if prefs.backend_model else "")
    overrides = {}
    if os.environ.get(ENV_URL):
        overrides["url"] = os.environ[ENV_URL]
    if os.environ.get(ENV_TOKEN):
        overrides["token"] = os.environ[ENV_TOKEN]
    return dataclasses.replace(settings, **overrides) if overrides else settings


classes = (IMAGEDYN_AP_preferences,)
