// Embeds assets/enet-camvid.safetensors as the CLI's built-in model when it exists. The web
// page fetches it as a static file instead, so the wasm build never embeds it.
fn main() {
    let path = std::path::Path::new("assets/enet-camvid.safetensors");
    println!("cargo::rustc-check-cfg=cfg(default_model)");
    println!("cargo::rerun-if-changed=assets");
    let wasm = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "wasm32");
    if path.is_file() && !wasm {
        println!("cargo::rustc-cfg=default_model");
    }
}
