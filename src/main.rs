//! `enet`: segment images, evaluate, benchmark and import ENet weights from the command line.

#[cfg(not(target_arch = "wasm32"))]
mod cli;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    use clap::Parser;
    let args = cli::Cli::parse();
    quiet_headless_vulkan();
    stop_quietly_on_closed_pipe();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Mesa's Vulkan device-select layer connects to Wayland while listing GPUs and, on a machine
/// without a desktop session (no XDG_RUNTIME_DIR), prints an error line for each listing. It
/// only reorders GPUs for desktop sessions, and the engine picks its adapter itself.
#[cfg(not(target_arch = "wasm32"))]
fn quiet_headless_vulkan() {
    let session =
        std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
    if !session && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: called first thing in main, before this program starts any thread.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

/// `enet info | head` closes the pipe early: end quietly, as other command-line tools do,
/// instead of panicking on the next print.
#[cfg(all(unix, not(target_arch = "wasm32")))]
fn stop_quietly_on_closed_pipe() {
    // SAFETY: restores the default disposition of SIGPIPE; no handler code runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

#[cfg(all(not(unix), not(target_arch = "wasm32")))]
fn stop_quietly_on_closed_pipe() {}

/// The command-line tool is native only; the browser uses the library (src/web.rs).
#[cfg(target_arch = "wasm32")]
fn main() {}
