//! What the page lets a person choose, as one typed value: read from the page's settings
//! object in one piece ([`Settings::from_js`]), every field checked before any is used, and
//! given back to the page as its defaults ([`Settings::to_js`]), which are written here only.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::kernels::Precision;
use crate::kernels::upscale::Upscale;
use crate::runtime::{DrawOptions, EngineError, View};
use crate::segment::SizeRequest;

/// The short sides the page offers (its size menu, built from [`super::size_steps`]) and
/// adaptive size steps through.
pub(super) const SIZE_STEPS: [usize; 6] = [96, 192, 240, 360, 480, 720];
/// Where adaptive size starts when it is switched on.
pub(super) const DEFAULT_SHORT_SIDE: usize = 360;

/// The network size asked for: adapted to what the GPU keeps up with, or a pinned shorter side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Size {
    Auto,
    ShortSide(usize),
}

/// The camera as the drawing and adaptive size need it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Camera {
    /// Drawn as a mirror (a front camera).
    pub mirror: bool,
    /// Frames a second it delivers: the frame time adaptive size keeps up with.
    pub fps: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Settings {
    pub view: View,
    pub size: Size,
    /// Temporal smoothing of the class map; switched on again, it starts afresh.
    pub smoothing: bool,
    /// How much of the past an entirely uncertain pixel keeps, 0 (none) to 1.
    pub strength: f32,
    /// Class colour opacity in the overlay view, 0 to 1.
    pub opacity: f32,
    /// Class indices whose colour is not drawn.
    pub hidden: Vec<usize>,
    pub camera: Camera,
    /// How activations and weights are stored; None: f16 where the GPU has shader-f16.
    pub precision: Option<Precision>,
    /// Class boundaries along the picture's own edges at the canvas's resolution, rather than
    /// each network pixel's class as a block.
    pub sharp_edges: bool,
    /// Per-dispatch GPU timing, a few frames a second (the timing panel is open).
    pub timing_detail: bool,
}

impl Default for Settings {
    fn default() -> Self {
        let draw = DrawOptions::default();
        Settings {
            view: draw.view,
            size: Size::Auto,
            smoothing: true,
            strength: 0.7,
            opacity: draw.alpha,
            hidden: Vec::new(),
            camera: Camera {
                mirror: draw.mirror,
                fps: 30.0,
            },
            precision: None,
            sharp_edges: draw.upscale != Upscale::Nearest,
            timing_detail: false,
        }
    }
}

/// A setting the page got wrong: which one, and why. Reaches JavaScript as an `Error` whose
/// message names the field and which carries `field` and `reason`, so the page can tell a
/// precision the GPU lacks from a mistake of its own.
#[derive(Debug)]
pub(super) struct BadField {
    pub field: &'static str,
    pub reason: String,
}

impl BadField {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        BadField {
            field,
            reason: reason.into(),
        }
    }
}

impl From<BadField> for JsValue {
    fn from(bad: BadField) -> JsValue {
        let error = if bad.field == WHOLE {
            js_sys::Error::new(&format!("settings: {}", bad.reason))
        } else {
            js_sys::Error::new(&format!("settings.{}: {}", bad.field, bad.reason))
        };
        // Setting a property on a fresh Error cannot fail.
        let _ = Reflect::set(&error, &"field".into(), &bad.field.into());
        let _ = Reflect::set(&error, &"reason".into(), &bad.reason.into());
        error.into()
    }
}

/// [`BadField::field`] of an error in the settings object as a whole.
const WHOLE: &str = "settings";

/// The page's names for the views.
const VIEWS: [(&str, View); 3] = [
    ("overlay", View::Overlay),
    ("mask", View::Mask),
    ("side", View::SideBySide),
];

/// The fields of the page's settings object, as [`Settings::to_js`] writes them.
const FIELDS: [&str; 10] = [
    "view",
    "size",
    "smoothing",
    "strength",
    "opacity",
    "hidden",
    "camera",
    "precision",
    "sharpEdges",
    "timingDetail",
];

/// `path` ("camera.fps") of `obj`; a missing field is an error.
fn get(obj: &JsValue, path: &'static str) -> Result<JsValue, BadField> {
    let mut value = obj.clone();
    for key in path.split('.') {
        if !value.is_object() {
            return Err(BadField::new(path, "is missing"));
        }
        value =
            Reflect::get(&value, &key.into()).map_err(|_| BadField::new(path, "cannot be read"))?;
    }
    if value.is_undefined() {
        return Err(BadField::new(path, "is missing"));
    }
    Ok(value)
}

fn get_bool(obj: &JsValue, path: &'static str) -> Result<bool, BadField> {
    get(obj, path)?
        .as_bool()
        .ok_or_else(|| BadField::new(path, "must be true or false"))
}

/// A number of `path` within `lo..=hi`.
fn get_number(obj: &JsValue, path: &'static str, lo: f64, hi: f64) -> Result<f64, BadField> {
    let n = get(obj, path)?
        .as_f64()
        .filter(|n| n.is_finite())
        .ok_or_else(|| BadField::new(path, "must be a number"))?;
    if !(lo..=hi).contains(&n) {
        return Err(BadField::new(path, format!("{n} is outside {lo} to {hi}")));
    }
    Ok(n)
}

/// A whole number of at least 0, as the page's numbers come (f64).
fn whole(n: f64) -> Option<usize> {
    (n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= u32::MAX as f64).then_some(n as usize)
}

/// `x` as the page's number of the same shortest decimal (0.7, not 0.699999988).
fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// The page's view name ("overlay", "mask" or "side") as a [`View`].
fn parse_view(name: &str) -> Result<View, String> {
    VIEWS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, v)| v)
        .ok_or_else(|| format!("unknown view {name:?} (overlay, mask or side)"))
}

fn view_name(view: View) -> &'static str {
    VIEWS
        .iter()
        .find(|(_, v)| *v == view)
        .map_or("overlay", |&(n, _)| n)
}

impl Settings {
    /// Reads the page's settings object: every field present and valid, or the first one that
    /// is not, named. Class indices are checked against the model where they are applied.
    pub fn from_js(obj: &JsValue) -> Result<Settings, BadField> {
        if !obj.is_object() {
            return Err(BadField::new(WHOLE, "must be an object"));
        }
        for key in Object::keys(obj.unchecked_ref::<Object>()).iter() {
            let key = key.as_string().unwrap_or_default();
            if !FIELDS.contains(&key.as_str()) {
                return Err(BadField::new(WHOLE, format!("unknown setting {key:?}")));
            }
        }
        let view = get(obj, "view")?
            .as_string()
            .ok_or_else(|| "must be a string".to_string())
            .and_then(|v| parse_view(&v))
            .map_err(|e| BadField::new("view", e))?;
        let size = get(obj, "size")?;
        let size = if size.as_string().as_deref() == Some("auto") {
            Size::Auto
        } else {
            let side = size.as_f64().and_then(whole).ok_or_else(|| {
                BadField::new("size", "must be \"auto\" or a shorter side in pixels")
            })?;
            crate::segment::network_size((1, 1), SizeRequest::ShortSide(side)).map_err(|e| {
                // The reason alone: the 1x1 frame asked about is no one's.
                let reason = match e {
                    EngineError::Size { reason, .. } => reason,
                    e => e.to_string(),
                };
                BadField::new("size", reason)
            })?;
            Size::ShortSide(side)
        };
        let hidden = get(obj, "hidden")?;
        if !Array::is_array(&hidden) {
            return Err(BadField::new("hidden", "must be an array of class indices"));
        }
        let hidden = Array::from(&hidden)
            .iter()
            .map(|c| c.as_f64().and_then(whole))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| BadField::new("hidden", "must be an array of class indices"))?;
        let precision = get(obj, "precision")?;
        let precision = if precision.is_null() {
            None
        } else {
            let name = precision
                .as_string()
                .ok_or_else(|| BadField::new("precision", "must be \"f16\", \"f32\" or null"))?;
            Some(
                name.parse()
                    .map_err(|e: String| BadField::new("precision", e))?,
            )
        };
        let fps = get_number(obj, "camera.fps", 0.0, f64::MAX)?;
        if fps == 0.0 {
            return Err(BadField::new("camera.fps", "must be more than 0"));
        }
        Ok(Settings {
            view,
            size,
            smoothing: get_bool(obj, "smoothing")?,
            strength: get_number(obj, "strength", 0.0, 1.0)? as f32,
            opacity: get_number(obj, "opacity", 0.0, 1.0)? as f32,
            hidden,
            camera: Camera {
                mirror: get_bool(obj, "camera.mirror")?,
                fps,
            },
            precision,
            sharp_edges: get_bool(obj, "sharpEdges")?,
            timing_detail: get_bool(obj, "timingDetail")?,
        })
    }

    /// The page's settings object for these settings (what [`Settings::from_js`] reads).
    pub fn to_js(&self) -> JsValue {
        let obj = Object::new();
        let camera = Object::new();
        let set = |o: &Object, k: &str, v: JsValue| {
            // Setting a property on a fresh plain object cannot fail.
            let _ = Reflect::set(o, &k.into(), &v);
        };
        set(&camera, "mirror", self.camera.mirror.into());
        set(&camera, "fps", self.camera.fps.into());
        let size = match self.size {
            Size::Auto => "auto".into(),
            Size::ShortSide(s) => (s as f64).into(),
        };
        let hidden: Array = self
            .hidden
            .iter()
            .map(|&c| JsValue::from(c as f64))
            .collect();
        set(&obj, "view", view_name(self.view).into());
        set(&obj, "size", size);
        set(&obj, "smoothing", self.smoothing.into());
        set(&obj, "strength", decimal(self.strength).into());
        set(&obj, "opacity", decimal(self.opacity).into());
        set(&obj, "hidden", hidden.into());
        set(&obj, "camera", camera.into());
        let precision = self.precision.map_or(JsValue::NULL, |p| p.name().into());
        set(&obj, "precision", precision);
        set(&obj, "sharpEdges", self.sharp_edges.into());
        set(&obj, "timingDetail", self.timing_detail.into());
        obj.into()
    }

    /// How the overlay draws with these settings.
    pub fn draw(&self) -> DrawOptions {
        DrawOptions {
            alpha: self.opacity,
            view: self.view,
            mirror: self.camera.mirror,
            upscale: if self.sharp_edges {
                Upscale::Edge
            } else {
                Upscale::Nearest
            },
        }
    }

    /// Milliseconds between camera frames.
    pub fn frame_ms(&self) -> f64 {
        1000.0 / self.camera.fps
    }
}
