//! The hidden layers' nonlinearities and their slopes, applied in place.
//!
//! One branch-free element function per activation, so the loops vectorise;
//! compiled once per kernel's instruction set, so the AVX-512, AVX2 and NEON
//! kernels get wide arithmetic here too.

#[cfg(target_arch = "x86_64")]
use crate::kernels::Kernel;
use crate::kernels::Supported;

/// The hidden layers' nonlinearity: one type for the native kernels, libtorch and
/// model configurations (serialised by its name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Exact (erf) GELU, PyTorch's `nn.GELU()` default.
    Gelu,
    Silu,
    Relu,
    Tanh,
    /// Self-normalising ELU (PyTorch's `nn.SELU`), the activation of torchcfm's 2-D benchmark network.
    Selu,
}

impl Activation {
    pub const ALL: [Activation; 5] =
        [Activation::Gelu, Activation::Silu, Activation::Relu, Activation::Tanh, Activation::Selu];

    pub fn name(self) -> &'static str {
        match self {
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Selu => "selu",
        }
    }
}

flow_options::named_value!(Activation, "activation");

/// Applies `activation` to `values` in place and, when `slopes` is given (training),
/// writes its derivative at the old values there for the backward pass.
pub(crate) fn activate(
    kernel: Supported,
    activation: Activation,
    values: &mut [f32],
    slopes: Option<&mut [f32]>,
) {
    assert!(slopes.as_ref().is_none_or(|s| s.len() == values.len()));
    match kernel.kernel() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Supported` AVX-512 kernel exists only on CPUs with
        // AVX-512F and DQ; the body is safe code.
        Kernel::Avx512 => unsafe { activate_avx512(activation, values, slopes) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX2 and FMA.
        Kernel::Avx2 => unsafe { activate_avx2(activation, values, slopes) },
        // NEON is part of every aarch64 target's baseline: the portable body
        // is already compiled with it.
        _ => activate_portable(activation, values, slopes),
    }
}

/// # Safety
/// The CPU must support AVX-512F and AVX-512DQ.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn activate_avx512(activation: Activation, values: &mut [f32], slopes: Option<&mut [f32]>) {
    activate_with::<true>(activation, values, slopes)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn activate_avx2(activation: Activation, values: &mut [f32], slopes: Option<&mut [f32]>) {
    activate_with::<true>(activation, values, slopes)
}

/// Without SIMD kernels; aarch64 has fused multiply-add in its baseline.
fn activate_portable(activation: Activation, values: &mut [f32], slopes: Option<&mut [f32]>) {
    activate_with::<{ cfg!(target_arch = "aarch64") }>(activation, values, slopes)
}

/// Branch-free element functions, so the loops vectorise; without slopes the
/// compiler drops the derivative's arithmetic. `FMA`: the caller's
/// instruction set fuses multiply-adds (elsewhere `mul_add` is a library call).
#[inline(always)]
fn activate_with<const FMA: bool>(activation: Activation, values: &mut [f32], slopes: Option<&mut [f32]>) {
    match activation {
        Activation::Gelu => each(values, slopes, gelu::<FMA>),
        Activation::Silu => each(values, slopes, silu::<FMA>),
        Activation::Relu => each(values, slopes, relu),
        Activation::Tanh => each(values, slopes, tanh::<FMA>),
        Activation::Selu => each(values, slopes, selu::<FMA>),
    }
}

/// a·b + c, in one rounding where the instruction set has it.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

#[inline(always)]
fn each(values: &mut [f32], slopes: Option<&mut [f32]>, f: impl Fn(f32) -> (f32, f32)) {
    match slopes {
        Some(slopes) => {
            for (v, s) in values.iter_mut().zip(slopes.iter_mut()) {
                (*v, *s) = f(*v);
            }
        }
        None => {
            for v in values.iter_mut() {
                *v = f(*v).0;
            }
        }
    }
}

/// eˣ to about 2 ulp: round x/ln 2 to n, a degree-6 polynomial on the
/// remainder, times 2ⁿ built from its exponent bits. x is clamped to
/// [−87, 88] so 2ⁿ stays a normal number.
#[inline(always)]
pub(crate) fn exp<const FMA: bool>(x: f32) -> f32 {
    const ROUNDING: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer
    const LN2_HIGH: f32 = 0.693_145_75;
    const LN2_LOW: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 88.0);
    let shifted = madd::<FMA>(x, std::f32::consts::LOG2_E, ROUNDING);
    let n = shifted - ROUNDING;
    let r = madd::<FMA>(-n, LN2_LOW, madd::<FMA>(-n, LN2_HIGH, x));
    let p = [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0]
        .into_iter()
        .fold(1.0 / 720.0, |acc, coefficient| madd::<FMA>(acc, r, coefficient));
    // `shifted`'s low mantissa bits hold n itself; integer arithmetic on them
    // (rather than a saturating float-to-int cast) keeps the loop vectorised.
    let exponent = shifted.to_bits().wrapping_sub(ROUNDING.to_bits()).wrapping_add(127) << 23;
    p * f32::from_bits(exponent)
}

/// GELU and its slope from one exponential: Φ(z) by Abramowitz & Stegun
/// 7.1.26 (|error| < 1.5e-7), φ(z) = e^{−z²/2}/√(2π).
#[inline(always)]
fn gelu<const FMA: bool>(z: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_8, -1.453_152, 1.061_405_4];
    let u = z.abs() * std::f32::consts::FRAC_1_SQRT_2;
    // Clamped where the result is discarded anyway (|z| > 12.6), so no lane
    // computes a subnormal (see GELU_ZERO_BELOW).
    let gauss = exp::<FMA>((-0.5 * z * z).max(-80.0));
    let t = 1.0 / madd::<FMA>(P, u, 1.0);
    let poly = t * [A[3], A[2], A[1], A[0]].into_iter().fold(A[4], |acc, a| madd::<FMA>(acc, t, a));
    // The lower tail directly, so Φ keeps its relative accuracy for negative z.
    let tail = 0.5 * poly * gauss;
    let cdf = if z < 0.0 { tail } else { 1.0 - tail };
    let density = gauss * 0.398_942_3; // 1/√(2π)
    if z < GELU_ZERO_BELOW { (0.0, 0.0) } else { (z * cdf, madd::<FMA>(z, density, cdf)) }
}

/// Below this, GELU and its slope are taken as exactly zero (they are under
/// 1e-17 there). Left alone they fall to subnormal numbers near z = −13, and
/// every product that touches a subnormal costs a microcode assist on Intel
/// CPUs: a network trained into that range ran 5× slower (PERF.md). Even the
/// product of two slopes at the cut (1e-34) stays a normal number.
const GELU_ZERO_BELOW: f32 = -9.0;

/// Below this, SiLU and its slope are taken as zero (under 2e-16): e^{−z}
/// clamped at e^{88} would otherwise give a subnormal sigmoid.
const SILU_ZERO_BELOW: f32 = -40.0;

#[inline(always)]
fn silu<const FMA: bool>(z: f32) -> (f32, f32) {
    let sigmoid = 1.0 / (1.0 + exp::<FMA>(-z));
    if z < SILU_ZERO_BELOW { (0.0, 0.0) } else { (z * sigmoid, sigmoid * (1.0 + z * (1.0 - sigmoid))) }
}

#[inline(always)]
fn relu(z: f32) -> (f32, f32) {
    if z > 0.0 { (z, 1.0) } else { (0.0, 0.0) }
}

/// SELU's constants as PyTorch writes them (`torch.nn.functional.selu`).
const SELU_SCALE: f32 = 1.050_701;
const SELU_ALPHA: f32 = 1.673_263_2;

/// Below this, SELU's slope is taken as zero (under 4e-18) and its value as its limit
/// −scale·α, so no lane computes the subnormal eᶻ of a very negative z.
const SELU_FLAT_BELOW: f32 = -40.0;

/// scale·z for z > 0, scale·α·(eᶻ − 1) otherwise; its slope scale or scale·α·eᶻ.
#[inline(always)]
fn selu<const FMA: bool>(z: f32) -> (f32, f32) {
    let e = exp::<FMA>(z.min(0.0));
    let negative = SELU_SCALE * SELU_ALPHA;
    if z > 0.0 {
        (SELU_SCALE * z, SELU_SCALE)
    } else if z < SELU_FLAT_BELOW {
        (-negative, 0.0)
    } else {
        (madd::<FMA>(negative, e, -negative), negative * e)
    }
}

#[inline(always)]
fn tanh<const FMA: bool>(z: f32) -> (f32, f32) {
    let e = exp::<FMA>(-2.0 * z.abs());
    let value = ((1.0 - e) / (1.0 + e)).copysign(z);
    (value, 1.0 - value * value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Kernel;

    #[test]
    fn no_activation_gives_a_subnormal_value_or_slope() {
        // A subnormal anywhere in the network slows every product it enters by
        // an order of magnitude on Intel CPUs.
        for i in -20_000..=20_000 {
            let z = i as f32 * 0.01;
            let functions: [fn(f32) -> (f32, f32); 9] = [
                gelu::<false>,
                gelu::<true>,
                silu::<false>,
                silu::<true>,
                relu,
                tanh::<false>,
                tanh::<true>,
                selu::<false>,
                selu::<true>,
            ];
            for f in functions {
                let (value, slope) = f(z);
                assert!(!value.is_subnormal() && !slope.is_subnormal(), "z = {z}: ({value}, {slope})");
            }
        }
        assert_eq!(gelu::<false>(-9.5), (0.0, 0.0));
        assert!(gelu::<false>(-8.9).0 < 0.0 && gelu::<false>(-8.9).0 > -1e-16);
    }

    #[test]
    fn relu_has_pytorchs_zero_slope_at_zero() {
        assert_eq!(relu(0.0), (0.0, 0.0));
        assert_eq!(relu(-0.0), (0.0, 0.0));
        assert_eq!(relu(f32::MIN_POSITIVE), (f32::MIN_POSITIVE, 1.0));
    }

    #[test]
    fn the_cuts_to_zero_start_strictly_below_their_thresholds() {
        // At the threshold itself the value is still computed: tiny, negative, and a normal number.
        for (f, cut) in
            [(gelu::<true> as fn(f32) -> (f32, f32), GELU_ZERO_BELOW), (silu::<true>, SILU_ZERO_BELOW)]
        {
            let (value, slope) = f(cut);
            assert!(value < 0.0 && value.is_normal() && slope.is_normal(), "at {cut}: ({value}, {slope})");
            assert_eq!(f(cut - 0.5), (0.0, 0.0));
            assert_eq!(f(cut - 30.0), (0.0, 0.0));
        }
    }

    /// The activation over `inputs` with the given multiply-add rounding: (values, slopes), and
    /// the values alone (inference).
    fn applied_with<const FMA: bool>(
        activation: Activation,
        inputs: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (mut values, mut slopes, mut alone) = (inputs.to_vec(), vec![0.0; inputs.len()], inputs.to_vec());
        activate_with::<FMA>(activation, &mut values, Some(&mut slopes));
        activate_with::<FMA>(activation, &mut alone, None);
        (values, slopes, alone)
    }

    #[test]
    fn every_kernel_applies_its_own_instruction_sets_rounding() {
        let inputs: Vec<f32> = (-2_000..=2_000).map(|i| i as f32 * 0.005).collect();
        for activation in Activation::ALL {
            let fused = applied_with::<true>(activation, &inputs);
            let separate = applied_with::<false>(activation, &inputs);
            // Fused and separate roundings differ somewhere, so the comparison below can tell
            // which one a kernel ran (ReLU has no arithmetic to round).
            assert_eq!(fused == separate, activation == Activation::Relu, "{activation:?}");
            assert_eq!(fused.0, fused.2, "{activation:?}: inference and training give different values");
            for kernel in Kernel::supported() {
                // Every SIMD kernel's instruction set has fused multiply-adds; the portable one
                // has them only where the target's baseline does (aarch64).
                let fma = kernel != Kernel::Portable || cfg!(target_arch = "aarch64");
                let supported = Supported::new(kernel).expect("a supported kernel");
                let (mut values, mut slopes, mut alone) =
                    (inputs.clone(), vec![0.0; inputs.len()], inputs.clone());
                activate(supported, activation, &mut values, Some(&mut slopes));
                activate(supported, activation, &mut alone, None);
                let expected = if fma { &fused } else { &separate };
                assert!(
                    (values, slopes, alone) == *expected,
                    "{activation:?} on {kernel}: not the {} rounding",
                    if fma { "fused" } else { "separate" }
                );
            }
        }
    }

    #[test]
    fn selu_matches_its_definition_and_slope() {
        // PyTorch's constants to f64, and SELU's derivative by central differences.
        let (scale, alpha) = (1.050_700_987_355_480_5_f64, 1.673_263_242_354_377_3_f64);
        let reference = |z: f64| if z > 0.0 { scale * z } else { scale * alpha * z.exp_m1() };
        for i in -6_000..=6_000 {
            let z = i as f32 * 0.01;
            for (value, slope) in [selu::<false>(z), selu::<true>(z)] {
                let expected = reference(f64::from(z));
                assert!((f64::from(value) - expected).abs() < 2e-7 * (1.0 + expected.abs()), "selu({z})");
                if z.abs() > 0.01 {
                    let h = 1e-4;
                    let numeric = (reference(f64::from(z) + h) - reference(f64::from(z) - h)) / (2.0 * h);
                    assert!(
                        (f64::from(slope) - numeric).abs() < 1e-5 * (1.0 + numeric.abs()),
                        "slope at {z}"
                    );
                }
            }
        }
        assert_eq!(selu::<true>(0.0), (0.0, (SELU_SCALE * SELU_ALPHA)));
    }

    #[test]
    fn exp_matches_std() {
        for i in -800..=800 {
            let x = i as f32 * 0.1;
            for ours in [exp::<false>(x), exp::<true>(x)] {
                let relative = (ours - x.exp()).abs() / x.exp();
                assert!(relative < 4e-7, "exp({x}): {ours} vs {}", x.exp());
            }
        }
    }
}
