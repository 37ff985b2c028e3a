"""Panels draw against real properties and operators, every property has a description, and the version
differences in addon/compat.py resolve on this Blender."""
import pytest

from bpy_helpers import fresh_scene, make_baked_plane, random_volume

pytestmark = pytest.mark.bpy


class _Layout:
    """Stands in for UILayout (panels cannot draw headless): checks each referenced property and operator."""

    def __init__(self, bpy, calls):
        self._bpy, self.calls, self.enabled = bpy, calls, True

    def _sub(self, *args, **kwargs):
        return self

    row = column = box = split = _sub

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, name
        self.calls.append(("prop", name))

    def prop_search(self, data, name, search_data, search_name, **kwargs):
        assert name in data.bl_rna.properties and search_name in search_data.bl_rna.properties
        self.calls.append(("prop", name))

    def operator(self, idname, **kwargs):
        category, name = idname.split(".")
        assert hasattr(getattr(self._bpy.ops, category), name), idname
        self.calls.append(("operator", idname))

    def label(self, **kwargs):
        self.calls.append(("label", kwargs.get("text")))


def test_panels_reference_existing_properties_and_operators(tmp_path):
    bpy = fresh_scene()
    from addon import ui

    obj = make_baked_plane(tmp_path, random_volume(k=2, num_frames=20))
    calls = []
    for panel in ui.classes:
        assert panel.bl_category == "Image Dynamics" and panel.bl_space_type == "VIEW_3D"
        assert panel.__name__.startswith("IMAGEDYN_PT_")
        panel.draw(type("P", (), {"layout": _Layout(bpy, calls)})(), bpy.context)
    ops = {c[1] for c in calls if c[0] == "operator"}
    assert {"imagedyn.create_plane", "imagedyn.plane_from_active", "imagedyn.load_volume", "imagedyn.bake",
            "imagedyn.clear", "imagedyn.add_anchor"} <= ops
    assert {"imagedyn.paint_motion", "imagedyn.wind_add"} <= ops
    props = {c[1] for c in calls if c[0] == "prop"}
    assert {"amplitude", "speed", "loop_frames", "start_offset", "anchor_group", "grid_columns", "pin_edges",
            "show_motion"} <= props
    icons = set(bpy.types.UILayout.bl_rna.functions["prop"].parameters["icon"].enum_items.keys())
    assert {"BRUSH_DATA", "FORCE_WIND", "SHADING_RENDERED", "X", "TRASH", "INFO", "ERROR"} <= icons
    assert ("label", obj.imagedyn.volume_summary) in calls


def test_every_property_and_operator_is_described_and_undoable():
    bpy = fresh_scene()
    from addon import ops, prefs, props, server_ops, steer_ops, wind

    rna = [(cls.__name__, cls.bl_rna) for cls in props.classes + prefs.classes + wind.classes]
    operators = ops.classes + steer_ops.classes + server_ops.classes
    rna += [(cls.__name__, getattr(bpy.ops.imagedyn, cls.bl_idname.split(".")[1]).get_rna_type())
            for cls in operators]
    for name, struct in rna:
        own = [p for p in struct.properties if p.identifier not in ("rna_type", "name", "bl_idname")]
        for prop in own:
            assert prop.description, f"{name}.{prop.identifier} has no description"
    for cls in ops.classes + steer_ops.classes:  # they change the scene: undoable
        assert cls.__name__.startswith("IMAGEDYN_OT_") and cls.bl_options == {"REGISTER", "UNDO"}
        assert cls.__doc__
    for cls in server_ops.classes:  # they start, stop or ask the backend: nothing to undo
        assert cls.__name__.startswith("IMAGEDYN_OT_") and cls.bl_options == {"REGISTER"} and cls.__doc__


def test_compat_resolves_on_this_blender():
    bpy = fresh_scene()
    from addon import compat

    scene = bpy.context.scene
    scene.render.engine = compat.eevee_engine_id()  # raises TypeError for an unknown engine id
    assert scene.render.engine == compat.eevee_engine_id()
    assert compat.LAYERED_ACTIONS == (bpy.app.version >= (5, 0, 0))
    assert compat.set_view_transform(scene, "Standard") and scene.view_settings.view_transform == "Standard"
    assert not compat.set_view_transform(scene, "No Such Transform")
