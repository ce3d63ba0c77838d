//! The model that ships with the engine, embedded at build time from `assets/`.

/// File name of the default model under `assets/`.
pub const DEFAULT_MODEL_FILE: &str = "enet-camvid.safetensors";

/// The embedded default weights, when the build found `assets/enet-camvid.safetensors`.
pub fn default_model() -> Option<&'static [u8]> {
    #[cfg(default_model)]
    {
        Some(include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/enet-camvid.safetensors"
        )))
    }
    #[cfg(not(default_model))]
    {
        None
    }
}
