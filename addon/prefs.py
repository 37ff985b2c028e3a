"""Add-on preferences (looked up through the package name, as extensions require). The backend is not wired in
yet: these settings are stored for the local backend service."""
from __future__ import annotations

import bpy
from bpy.props import IntProperty, StringProperty

ADDON_ID = __package__


class IMAGEDYN_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_host: StringProperty(
        name="Backend Host", default="127.0.0.1",
        description="Host of the Image Dynamics backend service (127.0.0.1 = this computer)")
    backend_port: IntProperty(
        name="Backend Port", default=8765, min=1, max=65535,
        description="Port of the Image Dynamics backend service ('image-dynamics serve --port')")
    python_executable: StringProperty(
        name="Backend Python", subtype="FILE_PATH", default="",
        description="Python interpreter with the image-dynamics backend installed, used to start the service "
                    "(empty = start it yourself with 'image-dynamics serve')")

    def draw(self, context):
        layout = self.layout
        row = layout.row()
        row.prop(self, "backend_host")
        row.prop(self, "backend_port")
        layout.prop(self, "python_executable")

    @property
    def backend_url(self) -> str:
        return f"http://{self.backend_host}:{self.backend_port}"


def get_preferences(context=None):
    """The add-on's preferences, or None when it was registered without the add-on system (tests, scripts)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return None if addon is None else addon.preferences


classes = (IMAGEDYN_AP_preferences,)
