//! Partial pictures are refused before decoding ([`enet_wgpu::picture`]): the fuzzing seeds
//! named `truncated-*` and every cut of real CamVid pictures, JPEG (baseline, progressive,
//! CMYK) and PNG. The CLI and the page call the same check; tests/cli.rs and the browser
//! tests see it from outside.

mod common;

use std::path::{Path, PathBuf};

use enet_wgpu::picture::{Format, check_complete};

fn seeds() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/image");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn truncated_seeds_are_refused_and_whole_ones_decode() {
    let (mut refused, mut whole) = (0, 0);
    for path in seeds() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        if name.starts_with("truncated-") {
            let e = check_complete(&bytes).expect_err(&name);
            assert_eq!(e.at, bytes.len(), "{name}");
            assert!(
                e.to_string()
                    .contains(&format!("ends early, at byte {}", bytes.len())),
                "{name}: {e}"
            );
            refused += 1;
        } else {
            let (_, end) = check_complete(&bytes)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .unwrap_or_else(|| panic!("{name}: format not recognised"));
            assert!(end <= bytes.len());
            // Garbage after the end marker is ignored, by the check and by the decoder.
            assert_eq!(end < bytes.len(), name.starts_with("garbage-"), "{name}");
            image::load_from_memory(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            whole += 1;
        }
    }
    assert!(
        refused >= 7 && whole >= 5,
        "{refused} refused, {whole} whole"
    );
}

/// The property the CLI and the page rely on: no cut of a picture short of its end passes,
/// whatever the decoder would make of it. Cuts: every byte of the first 700 (the headers) and
/// of the last 40 (the end marker), and about 300 spread between.
#[test]
fn no_cut_of_a_real_picture_passes() {
    let camvid = common::camvid_dir().join("val");
    let first = std::fs::read_dir(camvid.join("images"))
        .expect("CamVid val images")
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let label = camvid
        .join("labels")
        .join(first.file_stem().unwrap())
        .with_extension("png");
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/image");
    let mut decoded_anyway = 0;
    let mut cuts = 0;
    for (path, format) in [
        (first, Format::Jpeg),
        (label, Format::Png),
        (seeds.join("progressive.jpg"), Format::Jpeg),
        (seeds.join("cmyk.jpg"), Format::Jpeg),
        (common::val_frames()[0].clone(), Format::Png),
    ] {
        let bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        assert_eq!(
            check_complete(&bytes).unwrap(),
            Some((format, n)),
            "{}",
            path.display()
        );
        let mut at: Vec<usize> = (0..n.min(700)).chain(n.saturating_sub(40)..n).collect();
        at.extend((1..300).map(|i| i * n / 300));
        for cut in at.into_iter().filter(|&c| c < n) {
            let part = &bytes[..cut];
            match check_complete(part) {
                Err(e) => assert_eq!((e.format, e.at), (format, cut)),
                Ok(None) => assert!(cut < 8, "{} cut at {cut}", path.display()),
                Ok(Some(_)) => panic!("{} cut at {cut} of {n} passed", path.display()),
            }
            cuts += 1;
            // Deep enough into the file, the decoders fill what is missing and succeed:
            // what the check is for. Counted, not asserted (a stricter decoder is welcome).
            if cut % 97 == 0 && image::load_from_memory(part).is_ok() {
                decoded_anyway += 1;
            }
        }
    }
    println!("{cuts} cuts refused; the decoder alone took {decoded_anyway} of those it was given");
}
