// Embeds assets/enet-camvid.safetensors as the default model when it exists.
fn main() {
    let path = std::path::Path::new("assets/enet-camvid.safetensors");
    println!("cargo::rustc-check-cfg=cfg(default_model)");
    println!("cargo::rerun-if-changed=assets");
    if path.is_file() {
        println!("cargo::rustc-cfg=default_model");
    }
}
