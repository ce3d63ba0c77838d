//! Any bytes as an image: the completeness check, decoding (with the CLI's limits), then the
//! path into the engine on the CPU (size policy, preprocessing twin, class-map resize) must
//! not panic. A file the check accepts has no accepted prefix short of its end, and a file it
//! refuses never reaches the decoder, as in the CLI and the page.
#![no_main]

use enet_wgpu::kernels::cpu;
use enet_wgpu::model::Normalization;
use enet_wgpu::picture::check_complete;
use enet_wgpu::segment::{ClassMap, SizeRequest, network_size};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(whole) = check_complete(data) else { return };
    if let Some((_, end)) = whole {
        // A few cuts short of the end, spread over the file and at its last bytes.
        for cut in [end / 3, end / 2, end.saturating_sub(2), end.saturating_sub(1)] {
            if cut < end {
                assert!(!matches!(check_complete(&data[..cut]), Ok(Some(_))), "cut at {cut} of {end}");
            }
        }
    }
    let Ok(reader) = image::ImageReader::new(std::io::Cursor::new(data)).with_guessed_format() else {
        return;
    };
    let mut reader = reader;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(64 << 20);
    reader.limits(limits);
    let Ok(img) = reader.decode() else { return };
    let rgba = img.to_rgba8();
    let (w, h) = (rgba.width() as usize, rgba.height() as usize);
    if w == 0 || h == 0 {
        return;
    }
    let Ok((nw, nh)) = network_size((w, h), SizeRequest::Native) else { return };
    // Keep the CPU twin cheap: a small network input with the same aspect.
    let (nw, nh) = (nw.min(64), nh.min(64));
    let t = cpu::preprocess(rgba.as_raw(), w, h, nw, nh, &Normalization::default());
    assert!(t.data.iter().all(|v| v.is_finite()));
    let map = ClassMap {
        width: nw,
        height: nh,
        data: vec![0; nw * nh],
    };
    assert_eq!(map.resize_nearest(w, h).data.len(), w * h);
});
