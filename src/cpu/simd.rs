//! The few vector operations the CPU kernels need, once per instruction set: AVX2 with FMA
//! on x86-64 (chosen at run time, so one binary runs everywhere), NEON on aarch64, simd128
//! in wasm builds that enable it, and plain arrays that the compiler vectorises for its
//! baseline (SSE2 on x86-64) everywhere else.

/// The instruction set the kernels were specialised for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Avx2Fma,
    Neon,
    Simd128,
    /// The compiler's baseline vectors (SSE2 on x86-64), no fused multiply-add.
    Portable,
}

impl Isa {
    /// The best this machine runs.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx2Fma;
        }
        #[cfg(target_arch = "aarch64")]
        return Isa::Neon;
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return Isa::Simd128;
        #[allow(unreachable_code)]
        Isa::Portable
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx2Fma => "AVX2+FMA",
            Isa::Neon => "NEON",
            Isa::Simd128 => "wasm SIMD",
            Isa::Portable => "portable",
        }
    }

    /// Output channels a convolution's inner kernel computes at once: two vectors.
    pub fn chunk(self) -> usize {
        match self {
            Isa::Avx2Fma => 16,
            _ => 8,
        }
    }
}

/// A vector of `LANES` f32. Every function is `unsafe` because loads and stores take raw
/// pointers (the caller guarantees `LANES` valid floats) and, for AVX2, because the CPU
/// must have the instructions (checked once by [`Isa::detect`]).
///
/// # Safety
/// As above, for every function: pointers to `LANES` valid floats, instructions present.
#[allow(clippy::missing_safety_doc)]
pub trait Simd: Copy {
    type V: Copy;
    const LANES: usize;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    unsafe fn splat(x: f32) -> Self::V;
    /// `*p` in every lane, loaded as one instruction where there is one.
    unsafe fn broadcast(p: *const f32) -> Self::V {
        unsafe { Self::splat(*p) }
    }
    /// `a * b + c`.
    unsafe fn madd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// PReLU: `v` where `v >= 0`, else `v * slope`.
    unsafe fn prelu(v: Self::V, slope: Self::V) -> Self::V;
}

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx2 {
    type V = std::arch::x86_64::__m256;
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        unsafe { std::arch::x86_64::_mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_broadcast_ss(&*p) }
    }
    #[inline(always)]
    unsafe fn madd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        unsafe { std::arch::x86_64::_mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn prelu(v: Self::V, slope: Self::V) -> Self::V {
        use std::arch::x86_64::*;
        unsafe {
            let zero = _mm256_setzero_ps();
            _mm256_fmadd_ps(_mm256_min_ps(v, zero), slope, _mm256_max_ps(v, zero))
        }
    }
}

#[cfg(target_arch = "aarch64")]
#[derive(Clone, Copy)]
pub struct Neon;

#[cfg(target_arch = "aarch64")]
impl Simd for Neon {
    type V = std::arch::aarch64::float32x4_t;
    const LANES: usize = 4;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        unsafe { std::arch::aarch64::vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        unsafe { std::arch::aarch64::vst1q_f32(p, v) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        unsafe { std::arch::aarch64::vdupq_n_f32(x) }
    }
    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self::V {
        unsafe { std::arch::aarch64::vld1q_dup_f32(p) }
    }
    #[inline(always)]
    unsafe fn madd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        unsafe { std::arch::aarch64::vfmaq_f32(c, a, b) }
    }
    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        unsafe { std::arch::aarch64::vaddq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn prelu(v: Self::V, slope: Self::V) -> Self::V {
        use std::arch::aarch64::*;
        unsafe {
            let zero = vdupq_n_f32(0.0);
            vfmaq_f32(vmaxq_f32(v, zero), vminq_f32(v, zero), slope)
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[derive(Clone, Copy)]
pub struct Wasm;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
impl Simd for Wasm {
    type V = std::arch::wasm32::v128;
    const LANES: usize = 4;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        unsafe { std::arch::wasm32::v128_load(p as *const Self::V) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        unsafe { std::arch::wasm32::v128_store(p as *mut Self::V, v) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        std::arch::wasm32::f32x4_splat(x)
    }
    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self::V {
        unsafe { std::arch::wasm32::v128_load32_splat(p as *const u32) }
    }
    #[inline(always)]
    unsafe fn madd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        use std::arch::wasm32::*;
        f32x4_add(f32x4_mul(a, b), c)
    }
    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        std::arch::wasm32::f32x4_add(a, b)
    }
    #[inline(always)]
    unsafe fn prelu(v: Self::V, slope: Self::V) -> Self::V {
        use std::arch::wasm32::*;
        // pmax/pmin: the plain compare-and-select forms, cheaper than IEEE max/min.
        let zero = f32x4_splat(0.0);
        f32x4_add(f32x4_pmax(zero, v), f32x4_mul(f32x4_pmin(zero, v), slope))
    }
}

/// Four floats as a plain array: the compiler turns the loops into its baseline vectors.
#[derive(Clone, Copy)]
pub struct Portable;

impl Simd for Portable {
    type V = [f32; 4];
    const LANES: usize = 4;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        unsafe { (p as *const [f32; 4]).read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        unsafe { (p as *mut [f32; 4]).write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        [x; 4]
    }
    #[inline(always)]
    unsafe fn madd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] + b[i])
    }
    #[inline(always)]
    unsafe fn prelu(v: Self::V, slope: Self::V) -> Self::V {
        std::array::from_fn(|i| if v[i] >= 0.0 { v[i] } else { v[i] * slope[i] })
    }
}
