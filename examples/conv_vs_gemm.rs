//! The CPU engine's convolution kernel against a maintained GEMM library (matrixmultiply,
//! ndarray's; AVX2+FMA chosen at run time as ours) on ENet's 1x1 convolutions at 480x360,
//! one thread: a 1x1 convolution in NHWC is exactly a matrix product, the best case for a
//! library. Ours also applies bias and PReLU as it stores; the library's time is the product
//! alone.
//!
//!   cargo run --release --example conv_vs_gemm

use std::time::Instant;

use enet_wgpu::cpu::Isa;
use enet_wgpu::cpu::conv::{ConvArgs, Packed, conv_rows};
use enet_wgpu::model::graph::{Conv, ConvGeom};

fn median_ms(mut f: impl FnMut(), rounds: usize) -> f64 {
    f();
    let mut t: Vec<f64> = (0..rounds)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let isa = Isa::detect();
    println!(
        "| layer (480x360 input) | pixels x cin -> cout | this engine ({}) ms | matrixmultiply sgemm ms |",
        isa.name()
    );
    println!("|---|---|---|---|");
    for (name, (h, w), cin, cout) in [
        ("stage 1 projection", (90, 120), 64, 16),
        ("stage 1 expansion", (90, 120), 16, 64),
        ("stages 2-3 projection", (45, 60), 128, 32),
        ("stages 2-3 expansion", (45, 60), 32, 128),
    ] {
        let n = h * w;
        let weight: Vec<f32> = (0..cin * cout)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.01)
            .collect();
        let conv = Conv {
            cin,
            cout,
            geom: ConvGeom::new(1, 1),
            weight: weight.clone(),
            bias: vec![0.1; cout],
            slope: vec![0.25; cout],
        };
        let packed = Packed::new(&conv, None, isa).unwrap();
        let input: Vec<f32> = (0..n * cin)
            .map(|i| ((i * 31 % 17) as f32 - 8.0) * 0.1)
            .collect();
        let mut out = vec![0.0f32; n * cout];
        let zero = vec![0.0f32; cin];
        let ours = median_ms(
            || {
                let args = ConvArgs {
                    p: &packed,
                    input: input.as_ptr(),
                    ih: h,
                    iw: w,
                    out: out.as_mut_ptr(),
                    oh: h,
                    ow: w,
                    ostride: cout,
                    ooff: 0,
                    res: std::ptr::null(),
                    res_c: 0,
                    zero: zero.as_ptr(),
                };
                // SAFETY: the buffers hold the sizes the arguments describe.
                unsafe { conv_rows(isa, &args, 0..h) };
            },
            30,
        );
        // [n x cin] x [cin x cout]: the weights as the engine's Conv stores them are
        // [cout][cin], i.e. the second operand transposed (strides 1, cin).
        let mut c = vec![0.0f32; n * cout];
        let lib = median_ms(
            || unsafe {
                matrixmultiply::sgemm(
                    n,
                    cin,
                    cout,
                    1.0,
                    input.as_ptr(),
                    cin as isize,
                    1,
                    weight.as_ptr(),
                    1,
                    cin as isize,
                    0.0,
                    c.as_mut_ptr(),
                    cout as isize,
                    1,
                )
            },
            30,
        );
        println!("| {name} | {n} x {cin} -> {cout} | {ours:.3} | {lib:.3} |");
    }
}
