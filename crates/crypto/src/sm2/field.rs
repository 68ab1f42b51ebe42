//! Arithmetic in GF(p) for the SM2 prime `p = 2²⁵⁶ − 2²²⁴ − 2⁹⁶ + 2⁶⁴ − 1`, specialised to its
//! Solinas form: products are reduced with additions of 32-bit words instead of a generic
//! Montgomery reduction (≈ 1.5× faster than the generic field type of the `sm2` crate, measured
//! in docs/BENCHMARKS.md). Elements are kept fully reduced in four little-endian 64-bit limbs,
//! so equality is limb equality. Every operation is constant time: fixed loops, no
//! data-dependent branches or indices, corrections by masks.
//!
//! Reduction: with `x = 2³²`, `x⁸ ≡ x⁷ + x³ − x² + 1 (mod p)`; the word `c_i` (i = 8…15) of a
//! 512-bit product therefore folds into the low eight words with the small coefficients of
//! `x^i mod p` (derived by repeated multiplication by `x`, checked in the tests):
//! ```text
//! r0 = c0 + c8 + c9 + c10 + c11 + c12 + 2c13 + 2c14 + 2c15
//! r1 = c1 + c9 + c10 + c11 + c12 + c13 + 2c14 + 2c15
//! r2 = c2 − c8 − c9 − c13 − c14
//! r3 = c3 + c8 + c11 + c12 + 2c13 + c14 + c15
//! r4 = c4 + c9 + c12 + c13 + 2c14 + c15
//! r5 = c5 + c10 + c13 + c14 + 2c15
//! r6 = c6 + c11 + c14 + c15
//! r7 = c7 + c8 + c9 + c10 + c11 + 2c12 + 2c13 + 2c14 + 3c15
//! ```
//! then two more carry-and-fold rounds and one conditional subtraction of `p`.

use core::ops::{Add, Mul, Neg, Sub};
use elliptic_curve::subtle::{Choice, ConditionallySelectable, ConstantTimeEq, CtOption};
use sm2::FieldBytes;

/// p, little-endian limbs.
const P: [u64; 4] = [0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFE_FFFF_FFFF];

/// An element of GF(p), fully reduced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fe([u64; 4]);

/// `a − b` over 4 limbs; returns the borrow (0 or 1).
#[inline(always)]
fn sub4(a: &[u64; 4], b: &[u64; 4]) -> ([u64; 4], u64) {
    let mut out = [0u64; 4];
    let mut borrow = 0u64;
    for i in 0..4 {
        let (d1, b1) = a[i].overflowing_sub(b[i]);
        let (d2, b2) = d1.overflowing_sub(borrow);
        out[i] = d2;
        borrow = (b1 | b2) as u64;
    }
    (out, borrow)
}

/// `a + b` over 4 limbs; returns the carry (0 or 1).
#[inline(always)]
fn add4(a: &[u64; 4], b: &[u64; 4]) -> ([u64; 4], u64) {
    let mut out = [0u64; 4];
    let mut carry = 0u64;
    for i in 0..4 {
        let (s1, c1) = a[i].overflowing_add(b[i]);
        let (s2, c2) = s1.overflowing_add(carry);
        out[i] = s2;
        carry = (c1 | c2) as u64;
    }
    (out, carry)
}

/// `mask ? a : b` per limb.
#[inline(always)]
fn pick(mask: u64, a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    [
        (a[0] & mask) | (b[0] & !mask),
        (a[1] & mask) | (b[1] & !mask),
        (a[2] & mask) | (b[2] & !mask),
        (a[3] & mask) | (b[3] & !mask),
    ]
}

/// Reduce `v` (< 2²⁵⁶ with an extra carry bit `hi`, value < 2p) below p.
#[inline(always)]
fn reduce_once(v: &[u64; 4], hi: u64) -> [u64; 4] {
    let (d, borrow) = sub4(v, &P);
    // keep d when v + hi·2²⁵⁶ ≥ p: there was a carry, or the subtraction did not borrow
    let keep_d = (hi | (borrow ^ 1)).wrapping_neg();
    pick(keep_d, &d, v)
}

impl Fe {
    pub(crate) const ZERO: Fe = Fe([0; 4]);
    pub(crate) const ONE: Fe = Fe([1, 0, 0, 0]);

    /// From 32 big-endian bytes; none when ≥ p.
    pub(crate) fn from_repr(b: FieldBytes) -> CtOption<Fe> {
        let mut l = [0u64; 4];
        for (i, limb) in l.iter_mut().enumerate() {
            *limb = u64::from_be_bytes(b[24 - 8 * i..32 - 8 * i].try_into().expect("8 bytes"));
        }
        let (_, borrow) = sub4(&l, &P);
        CtOption::new(Fe(l), Choice::from(borrow as u8))
    }

    /// 32 big-endian bytes.
    pub(crate) fn to_repr(self) -> FieldBytes {
        let mut b = FieldBytes::default();
        for i in 0..4 {
            b[24 - 8 * i..32 - 8 * i].copy_from_slice(&self.0[i].to_be_bytes());
        }
        b
    }

    pub(crate) fn is_zero(&self) -> Choice {
        (self.0[0] | self.0[1] | self.0[2] | self.0[3]).ct_eq(&0)
    }

    #[inline(always)]
    pub(crate) fn double(&self) -> Fe {
        *self + *self
    }

    /// Squaring with the cross products computed once (10 multiplications instead of 16).
    #[inline(always)]
    pub(crate) fn square(&self) -> Fe {
        let a = &self.0;
        let mut w = [0u64; 8];
        for i in 0..3 {
            let mut carry = 0u128;
            for j in (i + 1)..4 {
                let t = (a[i] as u128) * (a[j] as u128) + w[i + j] as u128 + carry;
                w[i + j] = t as u64;
                carry = t >> 64;
            }
            w[i + 4] = carry as u64;
        }
        // double the cross products
        w[7] = w[6] >> 63;
        for k in (2..7).rev() {
            w[k] = (w[k] << 1) | (w[k - 1] >> 63);
        }
        w[1] <<= 1;
        // add the squares on the diagonal
        let mut carry = 0u128;
        for i in 0..4 {
            let sq = (a[i] as u128) * (a[i] as u128);
            let t = w[2 * i] as u128 + (sq as u64) as u128 + carry;
            w[2 * i] = t as u64;
            carry = t >> 64;
            let t = w[2 * i + 1] as u128 + (sq >> 64) + carry;
            w[2 * i + 1] = t as u64;
            carry = t >> 64;
        }
        Fe::reduce_wide(&w)
    }

    /// Solinas reduction of a 512-bit product given as 16 32-bit words.
    #[inline(always)]
    fn reduce_wide(w: &[u64; 8]) -> Fe {
        let c = |i: usize| -> i64 { ((w[i / 2] >> (32 * (i % 2))) & 0xFFFF_FFFF) as i64 };
        let (c8, c9, c10, c11, c12, c13, c14, c15) = (c(8), c(9), c(10), c(11), c(12), c(13), c(14), c(15));
        let mut r = [
            c(0) + c8 + c9 + c10 + c11 + c12 + 2 * (c13 + c14 + c15),
            c(1) + c9 + c10 + c11 + c12 + c13 + 2 * (c14 + c15),
            c(2) - c8 - c9 - c13 - c14,
            c(3) + c8 + c11 + c12 + 2 * c13 + c14 + c15,
            c(4) + c9 + c12 + c13 + 2 * c14 + c15,
            c(5) + c10 + c13 + c14 + 2 * c15,
            c(6) + c11 + c14 + c15,
            c(7) + c8 + c9 + c10 + c11 + 2 * (c12 + c13 + c14) + 3 * c15,
        ];
        // carry through the words, fold the overflow `t·x⁸ ≡ t·(x⁷ + x³ − x² + 1)`, twice; the
        // first overflow is < 2⁶ (the sums above are < 15·2³² per word), the second ≤ 1, and
        // after it the value lies in [0, 2²⁵⁶)
        for _ in 0..2 {
            for j in 0..7 {
                r[j + 1] += r[j] >> 32;
                r[j] &= 0xFFFF_FFFF;
            }
            let t = r[7] >> 32;
            r[7] &= 0xFFFF_FFFF;
            r[0] += t;
            r[2] -= t;
            r[3] += t;
            r[7] += t;
        }
        for j in 0..7 {
            r[j + 1] += r[j] >> 32;
            r[j] &= 0xFFFF_FFFF;
        }
        let hi = (r[7] >> 32) as u64; // 0 here (see above); kept for reduce_once's mask
        let v = [
            (r[0] as u64) | ((r[1] as u64) << 32),
            (r[2] as u64) | ((r[3] as u64) << 32),
            (r[4] as u64) | ((r[5] as u64) << 32),
            (r[6] as u64 & 0xFFFF_FFFF) | ((r[7] as u64 & 0xFFFF_FFFF) << 32),
        ];
        Fe(reduce_once(&v, hi & 1))
    }
}

impl Add for Fe {
    type Output = Fe;
    #[inline(always)]
    fn add(self, o: Fe) -> Fe {
        let (s, carry) = add4(&self.0, &o.0);
        Fe(reduce_once(&s, carry))
    }
}

impl Sub for Fe {
    type Output = Fe;
    #[inline(always)]
    fn sub(self, o: Fe) -> Fe {
        let (d, borrow) = sub4(&self.0, &o.0);
        let (dp, _) = add4(&d, &P);
        Fe(pick(borrow.wrapping_neg(), &dp, &d))
    }
}

impl Neg for Fe {
    type Output = Fe;
    #[inline(always)]
    fn neg(self) -> Fe {
        Fe::ZERO - self
    }
}

impl Mul for Fe {
    type Output = Fe;
    #[inline(always)]
    fn mul(self, o: Fe) -> Fe {
        let (a, b) = (&self.0, &o.0);
        let mut w = [0u64; 8];
        for i in 0..4 {
            let mut carry = 0u128;
            for j in 0..4 {
                let t = (a[i] as u128) * (b[j] as u128) + w[i + j] as u128 + carry;
                w[i + j] = t as u64;
                carry = t >> 64;
            }
            w[i + 4] = carry as u64;
        }
        Fe::reduce_wide(&w)
    }
}

impl core::ops::MulAssign for Fe {
    fn mul_assign(&mut self, o: Fe) {
        *self = *self * o;
    }
}

impl ConditionallySelectable for Fe {
    fn conditional_select(a: &Fe, b: &Fe, c: Choice) -> Fe {
        Fe([
            u64::conditional_select(&a.0[0], &b.0[0], c),
            u64::conditional_select(&a.0[1], &b.0[1], c),
            u64::conditional_select(&a.0[2], &b.0[2], c),
            u64::conditional_select(&a.0[3], &b.0[3], c),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elliptic_curve::{PrimeField, hazmat::FieldArithmetic};

    type Theirs = <sm2::Sm2 as FieldArithmetic>::FieldElement;

    fn theirs(a: &Fe) -> Theirs {
        Option::from(Theirs::from_repr(a.to_repr())).unwrap()
    }

    fn values() -> Vec<Fe> {
        let mut v =
            vec![Fe::ZERO, Fe::ONE, -Fe::ONE, -(Fe::ONE + Fe::ONE), Fe([0, 0, 0, 1 << 63]), Fe([u64::MAX, 0, 0, 0])];
        v.push(Fe([0xFFFF_FFFF, 0xFFFF_FFFF_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFE_FFFF_FFFF]));
        let mut s = 0x1234_5678_9abc_def0u64;
        for _ in 0..3000 {
            let mut l = [0u64; 4];
            for x in l.iter_mut() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                *x = s;
            }
            // sometimes saturate words to hit carries
            if s.is_multiple_of(5) {
                l[1] |= 0xFFFF_FFFF_0000_0000;
                l[2] = u64::MAX;
            }
            if let Some(f) = Option::<Fe>::from(Fe::from_repr(Fe(l).to_repr())) {
                v.push(f);
            }
        }
        v
    }

    #[test]
    fn agrees_with_the_crate_field() {
        let vs = values();
        for w in vs.windows(2) {
            let (a, b) = (w[0], w[1]);
            let (ta, tb) = (theirs(&a), theirs(&b));
            assert_eq!(theirs(&(a * b)), ta * tb, "mul {a:?} {b:?}");
            assert_eq!(theirs(&(a + b)), ta + tb, "add");
            assert_eq!(theirs(&(a - b)), ta - tb, "sub");
            assert_eq!(theirs(&(-a)), -ta, "neg");
            assert_eq!(theirs(&a.square()), ta.square(), "square");
        }
        // p − 1 squared, and the largest products
        let m = -Fe::ONE;
        assert_eq!(m * m, Fe::ONE);
        assert!(Option::<Fe>::from(Fe::from_repr(Fe(P).to_repr())).is_none(), "p is not a field element");
        assert!(bool::from(Fe::ZERO.is_zero()) && !bool::from(Fe::ONE.is_zero()));
    }

    #[test]
    fn reduction_table_is_x_to_the_i_mod_p() {
        // 2^(32 i) for i = 8..15 reduced by the folding equals the true residue
        for i in 8..16 {
            let mut w = [0u64; 8];
            w[i / 2] = 1u64 << (32 * (i % 2));
            let got = Fe::reduce_wide(&w);
            let mut expect = Theirs::ONE;
            for _ in 0..32 * i {
                expect = expect.double();
            }
            assert_eq!(theirs(&got), expect, "x^{i}");
        }
    }
}
