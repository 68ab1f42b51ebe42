//! Faster SM2 curve arithmetic on our Montgomery-form field ([`super::field`]).
//!
//! * Jacobian coordinates with the `a = −3` doubling (dbl-2001-b with `Z3 = 2·Y·Z`, 4M+4S and
//!   the small multiples `3·`, `4·`, `8·` each one reduction, [`Fe::mul_small`]), mixed
//!   addition (madd-2007-bl with `Z3 = 2·Z1·H`, 8M+3S) and full addition (add-2007-bl,
//!   11M+5S), from the Explicit-Formulas Database.
//! * `[k]G` by a fixed-base comb: 43 signed 6-bit windows, 32 precomputed affine multiples each
//!   (`d·64^j·G`, 88 KB), one mixed addition per window and no doublings. The table lookup reads
//!   every entry and keeps the wanted one under a mask, so neither the digit nor the memory
//!   access pattern depends on `k`.
//! * `[k]P` for a secret `k` and variable `P` (the two-party server's `[k3]Q1`): signed 5-bit
//!   windows, constant-time lookup among the affine `1..16·P` and a constant-time negation.
//! * Public-scalar operations for verification: the comb with direct indexing and wNAF (w = 5)
//!   for `[t]P`, with an x-only final check (`X ≟ x·Z²`, no inversion).
//! * Inversion by Bernstein–Yang's safegcd: constant time ([`Fe::invert`]) for the tables, and
//!   variable time on a value blinded by a random factor ([`Fe::invert_blinded`]) for the one
//!   conversion to affine coordinates in every signature, where it takes half the time.
//!
//! **Exceptional cases.** The incomplete formulas are wrong when adding a point to itself, to its
//! negation or to the identity. In the constant-time paths the identity is tracked with a flag
//! and selected around. The other two cases need two multiples `v·B` and `d·64^j·B` with
//! `v ≡ ±d·64^j (mod n)`; with signed digits `|v| < 64^j ≤ |d|·64^j`, and below the top window
//! both are under `2²⁵¹ < n`, so they are distinct integers that cannot meet mod n. In the top
//! window (digit ≤ 16, and `16·64⁴² = 2²⁵⁶` exceeds n) a coincidence would need a scalar above n;
//! were one ever to occur, the two-party client verifies every signature, and a wrong SM2
//! signature fails verification, it does not leak the key. The variable-time paths (public
//! inputs only) test and branch. The variable-base `[k]P` keeps the 5-bit analysis: `|v| < 32^j`,
//! both under `2²⁵⁵ < n` below the top window.
//!
//! Every function here is checked against the `sm2` crate's own arithmetic in the tests below.

use super::field::Fe;
use elliptic_curve::{
    PrimeField,
    point::AffineCoordinates,
    subtle::{Choice, ConditionallySelectable, ConstantTimeEq},
};
use sm2::{AffinePoint, FieldBytes, Scalar};
use std::sync::OnceLock;

/// A point in Jacobian coordinates `(X : Y : Z)`, `x = X/Z²`, `y = Y/Z³`; `Z = 0` is the identity.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Jac {
    x: Fe,
    y: Fe,
    z: Fe,
}

/// An affine point that is not the identity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Aff {
    x: Fe,
    y: Fe,
}

impl ConditionallySelectable for Aff {
    fn conditional_select(a: &Self, b: &Self, c: Choice) -> Self {
        Aff { x: Fe::conditional_select(&a.x, &b.x, c), y: Fe::conditional_select(&a.y, &b.y, c) }
    }
}

impl ConditionallySelectable for Jac {
    fn conditional_select(a: &Self, b: &Self, c: Choice) -> Self {
        Jac {
            x: Fe::conditional_select(&a.x, &b.x, c),
            y: Fe::conditional_select(&a.y, &b.y, c),
            z: Fe::conditional_select(&a.z, &b.z, c),
        }
    }
}

fn fe(b: &FieldBytes) -> Fe {
    Option::from(Fe::from_repr(*b)).expect("coordinate of a valid point is a field element")
}

impl Aff {
    /// From the crate's affine point; `None` for the identity.
    pub(crate) fn from_point(p: &AffinePoint) -> Option<Self> {
        if bool::from(p.is_identity()) {
            return None;
        }
        Some(Aff { x: fe(&p.x()), y: fe(&p.y()) })
    }

    /// To the crate's affine point.
    pub(crate) fn to_point(self) -> AffinePoint {
        Option::from(AffinePoint::from_coordinates(&self.x.to_repr(), &self.y.to_repr()))
            .expect("our points are on the curve")
    }

    pub(crate) fn neg(&self) -> Self {
        Aff { x: self.x, y: -self.y }
    }
}

impl From<Aff> for Jac {
    fn from(a: Aff) -> Self {
        Jac { x: a.x, y: a.y, z: Fe::ONE }
    }
}

impl Jac {
    pub(crate) const IDENTITY: Jac = Jac { x: Fe::ONE, y: Fe::ONE, z: Fe::ZERO };

    pub(crate) fn is_identity(&self) -> Choice {
        self.z.is_zero()
    }

    /// dbl-2001-b (a = −3). The identity doubles to the identity.
    pub(crate) fn double(&self) -> Jac {
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x * gamma;
        let alpha = ((self.x - delta) * (self.x + delta)).mul_small::<3>();
        let beta4 = beta.mul_small::<4>();
        let x3 = alpha.square() - beta4.double();
        // Z3 = (Y + Z)² − γ − δ = 2·Y·Z: a multiplication for a squaring and three additions
        let z3 = (self.y * self.z).double();
        let y3 = alpha * (beta4 - x3) - gamma.square().mul_small::<8>();
        Jac { x: x3, y: y3, z: z3 }
    }

    /// madd-2007-bl: `self + q`. Incomplete: `self` must not be the identity, `±q`.
    fn add_mixed_unchecked(&self, q: &Aff) -> Jac {
        let z1z1 = self.z.square();
        let u2 = q.x * z1z1;
        let s2 = q.y * self.z * z1z1;
        self.madd_tail(u2, s2)
    }

    /// The rest of madd-2007-bl once `U2` and `S2` are known.
    fn madd_tail(&self, u2: Fe, s2: Fe) -> Jac {
        let h = u2 - self.x;
        let hh = h.square();
        let i = hh.mul_small::<4>();
        let j = h * i;
        let r = (s2 - self.y).double();
        let v = self.x * i;
        let x3 = r.square() - j - v.double();
        let y3 = r * (v - x3) - (self.y * j).double();
        // Z3 = (Z1 + H)² − Z1² − H² = 2·Z1·H, as in the doubling
        let z3 = (self.z * h).double();
        Jac { x: x3, y: y3, z: z3 }
    }

    /// add-2007-bl: `self + q`. Incomplete: neither may be the identity, nor `self = ±q`.
    fn add_unchecked(&self, q: &Jac) -> Jac {
        let (z1z1, z2z2, u1, u2, s1, s2) = self.add_head(q);
        self.add_tail(q, z1z1, z2z2, u1, u2, s1, s2)
    }

    /// `Z1², Z2², U1, U2, S1, S2` of add-2007-bl.
    #[inline(always)]
    fn add_head(&self, q: &Jac) -> (Fe, Fe, Fe, Fe, Fe, Fe) {
        let z1z1 = self.z.square();
        let z2z2 = q.z.square();
        (z1z1, z2z2, self.x * z2z2, q.x * z1z1, self.y * q.z * z2z2, q.y * self.z * z1z1)
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn add_tail(&self, q: &Jac, z1z1: Fe, z2z2: Fe, u1: Fe, u2: Fe, s1: Fe, s2: Fe) -> Jac {
        let h = u2 - u1;
        let i = h.double().square();
        let j = h * i;
        let r = (s2 - s1).double();
        let v = u1 * i;
        let x3 = r.square() - j - v.double();
        let y3 = r * (v - x3) - (s1 * j).double();
        let z3 = ((self.z + q.z).square() - z1z1 - z2z2) * h;
        Jac { x: x3, y: y3, z: z3 }
    }

    /// Complete addition for public points (branches on the inputs).
    pub(crate) fn add_vartime(&self, q: &Jac) -> Jac {
        if bool::from(self.is_identity()) {
            return *q;
        }
        if bool::from(q.is_identity()) {
            return *self;
        }
        let (z1z1, z2z2, u1, u2, s1, s2) = self.add_head(q);
        if u1 == u2 {
            return if s1 == s2 { self.double() } else { Jac::IDENTITY };
        }
        self.add_tail(q, z1z1, z2z2, u1, u2, s1, s2)
    }

    /// Complete mixed addition for public points (8M+3S unless exceptional).
    fn add_mixed_vartime(&self, q: &Aff) -> Jac {
        if bool::from(self.is_identity()) {
            return Jac::from(*q);
        }
        let z1z1 = self.z.square();
        let u2 = q.x * z1z1;
        let s2 = q.y * self.z * z1z1;
        if u2 == self.x {
            return if s2 == self.y { self.double() } else { Jac::IDENTITY };
        }
        self.madd_tail(u2, s2)
    }

    /// Constant-time `self + q` where the caller knows `self ≠ ±q`; handles either identity.
    pub(crate) fn add_ct(&self, q: &Jac) -> Jac {
        let sum = self.add_unchecked(q);
        let r = Jac::conditional_select(&sum, q, self.is_identity());
        Jac::conditional_select(&r, self, q.is_identity())
    }

    /// Affine coordinates; `None` for the identity.
    pub(crate) fn to_affine(self) -> Option<Aff> {
        if bool::from(self.is_identity()) {
            return None;
        }
        let zi = self.z.invert_blinded();
        let zi2 = zi.square();
        Some(Aff { x: self.x * zi2, y: self.y * zi2 * zi })
    }

    /// The affine x alone (one multiplication less than [`Jac::to_affine`]); `None` for the identity.
    /// The inversion is blinded by the caller's 32 fresh random bytes ([`Fe::invert_blinded_by`]).
    pub(crate) fn affine_x(self, blind: &[u8; 32]) -> Option<Fe> {
        if bool::from(self.is_identity()) {
            return None;
        }
        Some(self.x * self.z.invert_blinded_by(blind).square())
    }

    /// Whether the affine x of this point, as an integer, is ≡ `c` mod n, for `c = (r − e) mod n`
    /// (SM2 verification step B7 without inversion: x ∈ {c, c + n} and x < p).
    pub(crate) fn x_matches_mod_n(&self, c: &Scalar) -> bool {
        if bool::from(self.is_identity()) {
            return false;
        }
        let z2 = self.z.square();
        let c_bytes = c.to_repr();
        if self.x == fe(&c_bytes) * z2 {
            return true;
        }
        // c + n < p? (both big-endian 256-bit integers)
        let n = be_words(&N);
        let cw = be_words(&c_bytes);
        let (sum, carry) = add256(&cw, &n);
        if carry || !lt256(&sum, &be_words(&P)) {
            return false;
        }
        let mut b = FieldBytes::default();
        for (i, w) in sum.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&w.to_be_bytes());
        }
        self.x == fe(&b) * z2
    }
}

const N: [u8; 32] = super::hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123");
const P: [u8; 32] = super::hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF");

fn be_words(b: &[u8]) -> [u64; 4] {
    let mut w = [0u64; 4];
    for (i, c) in b.chunks(8).enumerate() {
        w[i] = u64::from_be_bytes(c.try_into().expect("8 bytes"));
    }
    w
}

/// Big-endian word addition.
fn add256(a: &[u64; 4], b: &[u64; 4]) -> ([u64; 4], bool) {
    let mut out = [0u64; 4];
    let mut carry = false;
    for i in (0..4).rev() {
        let (s1, c1) = a[i].overflowing_add(b[i]);
        let (s2, c2) = s1.overflowing_add(carry as u64);
        out[i] = s2;
        carry = c1 || c2;
    }
    (out, carry)
}

fn lt256(a: &[u64; 4], b: &[u64; 4]) -> bool {
    a < b
}

/// Batch conversion to affine with one inversion (Montgomery's trick). No identities allowed.
fn batch_to_affine(points: &[Jac]) -> Vec<Aff> {
    let mut prefix = Vec::with_capacity(points.len());
    let mut acc = Fe::ONE;
    for p in points {
        prefix.push(acc);
        acc *= p.z;
    }
    let mut inv = acc.invert();
    let mut out = vec![Aff::default(); points.len()];
    for i in (0..points.len()).rev() {
        let zi = inv * prefix[i];
        inv *= points[i].z;
        let zi2 = zi.square();
        out[i] = Aff { x: points[i].x * zi2, y: points[i].y * zi2 * zi };
    }
    out
}

/// The variable-base window: 5 bits, 52 windows (52 × 5 = 260 ≥ 256 + carry), entries `1..=16`.
const W: usize = 5;
const WINDOWS: usize = 52;
const ENTRIES: usize = 16;
/// The comb's window: 6 bits, 43 windows (258 bits), entries `1..=32` (a row is 2 KB). Against
/// 5 bits: 43 additions instead of 52 for twice the constant-time lookup, ≈ 5 % faster signing.
const COMB_W: usize = 6;
const COMB_WINDOWS: usize = 43;
const COMB_ENTRIES: usize = 32;

/// Signed `B`-bit digits of `k`, least significant first, each in `−2^(B−1)..=2^(B−1)`, with
/// `k = Σ dᵢ·2^(B·i)`. Branch-free: the digits of a secret scalar stay secret.
fn signed_digits<const B: usize, const N: usize>(k: &Scalar) -> [i8; N] {
    let b = k.to_repr(); // big-endian
    let bit = |i: usize| -> u8 { if i >= 256 { 0 } else { (b[31 - i / 8] >> (i % 8)) & 1 } };
    let mut out = [0i8; N];
    let mut carry = 0u8;
    for (j, o) in out.iter_mut().enumerate() {
        let mut c = 0u8;
        for t in 0..B {
            c |= bit(B * j + t) << t;
        }
        let v = c + carry; // 0..=2^B
        carry = (v + (1 << (B - 1))) >> B; // 1 iff v ≥ 2^(B−1)
        *o = (v as i16 - (1i16 << B) * carry as i16) as i8; // −2^(B−1)..2^(B−1) (0 when v = 2^B)
    }
    // k < 2²⁵⁶ and N·B ≥ 257: the top digit takes the last bits plus a carry, and no carry leaves it
    debug_assert_eq!(carry, 0);
    out
}

/// Constant-time `(|d|, d < 0)` and selection of `|d|·B` from `row` (`row[i] = (i+1)·B`);
/// the identity (returned as `None` flag) when `d = 0`.
///
/// Every entry is read and ORed in under a mask that is all ones for the wanted entry only. The
/// masks are made first, by arithmetic on the digit as an opaque 64-bit word, and passed
/// through `black_box` once per row, so the compiler has neither the digit's range nor the
/// masks' values to turn the ORs into a branch or a `cmov` (`black_box` is best effort, as
/// the standard library says, which is what `subtle` relies on too). The loop over the entries is
/// then plain AND/OR over the eight limbs of each entry, which the compiler keeps in vector
/// registers (issue #20: the lookup was a quarter of a signature while each mask went through
/// `subtle`'s `black_box` on its own).
fn select_aff<const E: usize>(row: &[Aff; E], d: i8) -> (Aff, Choice) {
    let neg = Choice::from(((d as u8) >> 7) & 1);
    let abs = ((d as i16).unsigned_abs()) as u8;
    let wanted = core::hint::black_box(u64::from(abs));
    let mut masks = [0u64; E];
    for (i, m) in masks.iter_mut().enumerate() {
        // 0 iff this is the wanted entry
        let diff = (i as u64 + 1) ^ wanted;
        // all ones iff diff = 0: (diff | −diff) has its top bit set for every other value
        *m = ((diff | diff.wrapping_neg()) >> 63).wrapping_sub(1);
    }
    let masks = core::hint::black_box(masks);
    let mut acc = [0u64; 8];
    for (e, m) in row.iter().zip(masks.iter()) {
        let (x, y) = (e.x.limbs(), e.y.limbs());
        for k in 0..4 {
            acc[k] |= x[k] & m;
            acc[k + 4] |= y[k] & m;
        }
    }
    let mut t = Aff {
        x: Fe::from_limbs([acc[0], acc[1], acc[2], acc[3]]),
        y: Fe::from_limbs([acc[4], acc[5], acc[6], acc[7]]),
    };
    let negated = t.neg();
    t.conditional_assign(&negated, neg);
    (t, abs.ct_eq(&0))
}

/// A fixed-base comb table: `rows[j][d − 1] = d·64^j·B`, `d = 1..=32`.
pub(crate) struct CombTable {
    rows: Vec<[Aff; COMB_ENTRIES]>,
}

impl CombTable {
    /// Precompute for base `b` (≈ 1 ms).
    pub(crate) fn new(b: &Aff) -> Self {
        let mut all = Vec::with_capacity(COMB_WINDOWS * COMB_ENTRIES);
        let mut base = Jac::from(*b);
        for _ in 0..COMB_WINDOWS {
            let mut row = [Jac::IDENTITY; COMB_ENTRIES];
            row[0] = base;
            row[1] = base.double();
            for d in 2..COMB_ENTRIES {
                row[d] = row[d - 1].add_unchecked(&base);
            }
            all.extend_from_slice(&row);
            base = row[COMB_ENTRIES - 1].double(); // 64·base
        }
        let aff = batch_to_affine(&all);
        let rows = aff.chunks(COMB_ENTRIES).map(|c| c.try_into().expect("a row")).collect();
        CombTable { rows }
    }

    /// `[k]B`, constant time in `k`.
    pub(crate) fn mul(&self, k: &Scalar) -> Jac {
        let digits = signed_digits::<COMB_W, COMB_WINDOWS>(k);
        let mut acc = Jac::IDENTITY;
        let mut acc_is_id = Choice::from(1);
        for (row, &d) in self.rows.iter().zip(digits.iter()) {
            let (t, d_zero) = select_aff(row, d);
            let sum = acc.add_mixed_unchecked(&t);
            let r = Jac::conditional_select(&sum, &Jac::from(t), acc_is_id);
            acc = Jac::conditional_select(&r, &acc, d_zero);
            acc_is_id &= d_zero;
        }
        acc
    }

    /// `[k]B` for a public `k` (verification).
    pub(crate) fn mul_vartime(&self, k: &Scalar) -> Jac {
        let mut acc = Jac::IDENTITY;
        for (row, &d) in self.rows.iter().zip(signed_digits::<COMB_W, COMB_WINDOWS>(k).iter()) {
            if d > 0 {
                acc = acc.add_mixed_vartime(&row[d as usize - 1]);
            } else if d < 0 {
                acc = acc.add_mixed_vartime(&row[(-d) as usize - 1].neg());
            }
        }
        acc
    }
}

/// The comb table of the generator G (built on first use).
pub(crate) fn g_table() -> &'static CombTable {
    static T: OnceLock<CombTable> = OnceLock::new();
    T.get_or_init(|| CombTable::new(&Aff::from_point(&AffinePoint::GENERATOR).expect("G")))
}

/// `[k]G`, constant time.
pub(crate) fn mul_g(k: &Scalar) -> Jac {
    g_table().mul(k)
}

/// `[k]P` for a secret `k` and a variable point `P` (constant time in `k`): signed 5-bit windows
/// from the top, constant-time lookup among the affine `1·P … 16·P`.
pub(crate) fn mul(p: &Aff, k: &Scalar) -> Jac {
    let base = Jac::from(*p);
    let mut table = [Jac::IDENTITY; ENTRIES];
    table[0] = base;
    table[1] = base.double();
    for d in 2..ENTRIES {
        table[d] = table[d - 1].add_unchecked(&base);
    }
    let table: [Aff; ENTRIES] = batch_to_affine(&table).try_into().expect("16 entries");
    let digits = signed_digits::<W, WINDOWS>(k);
    let mut acc = Jac::IDENTITY;
    let mut acc_is_id = Choice::from(1);
    for (j, &d) in digits.iter().enumerate().rev() {
        if j + 1 < WINDOWS {
            acc = acc.double().double().double().double().double();
        }
        let (t, d_zero) = select_aff(&table, d);
        let sum = acc.add_mixed_unchecked(&t);
        let r = Jac::conditional_select(&sum, &Jac::from(t), acc_is_id);
        acc = Jac::conditional_select(&r, &acc, d_zero);
        acc_is_id &= d_zero;
    }
    acc
}

/// Width-5 NAF digits of a scalar, least significant first (odd digits in −15..15).
fn wnaf5(k: &Scalar) -> Vec<i8> {
    let bytes = k.to_repr();
    // little-endian 64-bit limbs plus one for carries
    let mut w = [0u64; 5];
    for i in 0..4 {
        w[i] = u64::from_be_bytes(bytes[32 - 8 * (i + 1)..32 - 8 * i].try_into().expect("8 bytes"));
    }
    let mut out = Vec::with_capacity(258);
    let is_zero = |w: &[u64; 5]| w.iter().all(|&x| x == 0);
    while !is_zero(&w) {
        let mut d = 0i8;
        if w[0] & 1 == 1 {
            let m = (w[0] & 31) as i8;
            d = if m > 15 { m - 32 } else { m };
            // w −= d, as the two's-complement addition of −d sign-extended over the limbs
            let delta = -(d as i64);
            let ext = if delta < 0 { u64::MAX } else { 0 };
            let mut carry = 0u64;
            for (i, x) in w.iter_mut().enumerate() {
                let add = if i == 0 { delta as u64 } else { ext };
                let (s1, c1) = x.overflowing_add(add);
                let (s2, c2) = s1.overflowing_add(carry);
                *x = s2;
                carry = (c1 | c2) as u64;
            }
        }
        out.push(d);
        // w >>= 1
        for i in 0..5 {
            w[i] = (w[i] >> 1) | if i < 4 { w[i + 1] << 63 } else { 0 };
        }
    }
    out
}

/// Odd multiples `P, 3P, …, 15P` for wNAF.
fn odd_multiples(p: &Aff) -> [Jac; 8] {
    let base = Jac::from(*p);
    let two = base.double();
    let mut t = [base; 8];
    for i in 1..8 {
        t[i] = t[i - 1].add_vartime(&two);
    }
    t
}

/// `[k]P` for a public `k` and `P` (verification): wNAF, w = 5.
pub(crate) fn mul_vartime(p: &Aff, k: &Scalar) -> Jac {
    let table = odd_multiples(p);
    let digits = wnaf5(k);
    let mut acc = Jac::IDENTITY;
    for &d in digits.iter().rev() {
        acc = acc.double();
        if d > 0 {
            acc = acc.add_vartime(&table[(d as usize) / 2]);
        } else if d < 0 {
            let t = table[((-d) as usize) / 2];
            acc = acc.add_vartime(&Jac { x: t.x, y: -t.y, z: t.z });
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use elliptic_curve::{Group, ops::Reduce};
    use sm2::ProjectivePoint;

    fn crate_point(j: &Jac) -> ProjectivePoint {
        match j.to_affine() {
            Some(a) => ProjectivePoint::from(a.to_point()),
            None => ProjectivePoint::IDENTITY,
        }
    }

    fn scalars() -> Vec<Scalar> {
        let mut v = vec![
            Scalar::ONE,
            Scalar::from_u64(2),
            Scalar::from_u64(15),
            Scalar::from_u64(16),
            Scalar::from_u64(0x1000_0000_0000_0001),
            -Scalar::ONE,
            -Scalar::from_u64(16),
        ];
        // 16^j and multiples with many zero digits
        let mut s = Scalar::ONE;
        for _ in 0..63 {
            s *= Scalar::from_u64(16);
            v.push(s);
            v.push(s * Scalar::from_u64(15));
        }
        // the comb's 6-bit digits at their edges: 31, 32 and 33 per window (a carry each time)
        let mut s = Scalar::ONE;
        for _ in 0..43 {
            v.extend([s * Scalar::from_u64(31), s * Scalar::from_u64(32), s * Scalar::from_u64(33)]);
            s *= Scalar::from_u64(64);
        }
        for i in 0..64u64 {
            let b = crate::hash::sm3(&i.to_be_bytes());
            v.push(<Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(b)));
        }
        v
    }

    #[test]
    fn inversion_matches_the_crate() {
        for s in scalars() {
            let x = fe(&s.to_repr());
            if bool::from(x.is_zero()) {
                continue;
            }
            assert_eq!(x.invert() * x, Fe::ONE);
            // the blinded inversion: another β every time, the same answer
            for _ in 0..3 {
                assert_eq!(x.invert_blinded(), x.invert());
            }
            type Theirs = <sm2::Sm2 as elliptic_curve::hazmat::FieldArithmetic>::FieldElement;
            let theirs = Option::<Theirs>::from(Theirs::from_repr(x.to_repr())).unwrap();
            assert_eq!(
                x.invert().to_repr(),
                Option::<Theirs>::from(elliptic_curve::Field::invert(&theirs)).unwrap().to_repr()
            );
        }
        assert_eq!(Fe::ZERO.invert(), Fe::ZERO);
        assert_eq!(Fe::ZERO.invert_blinded(), Fe::ZERO);
    }

    #[test]
    fn fixed_base_comb_matches_the_crate() {
        for k in scalars() {
            let expect = ProjectivePoint::mul_by_generator(&k);
            assert_eq!(crate_point(&mul_g(&k)), expect, "ct comb, k = {k:?}");
            assert_eq!(crate_point(&g_table().mul_vartime(&k)), expect, "vartime comb");
        }
        assert!(bool::from(mul_g(&Scalar::ZERO).is_identity()));
    }

    #[test]
    fn variable_base_matches_the_crate() {
        let p = ProjectivePoint::mul_by_generator(&Scalar::from_u64(0xdead_beef)).to_affine();
        let pa = Aff::from_point(&p).unwrap();
        for k in scalars() {
            let expect = ProjectivePoint::from(p) * k;
            assert_eq!(crate_point(&mul(&pa, &k)), expect, "ct window, k = {k:?}");
            assert_eq!(crate_point(&mul_vartime(&pa, &k)), expect, "wNAF, k = {k:?}");
            assert_eq!(crate_point(&CombTable::new(&pa).mul_vartime(&k)), expect, "key comb");
        }
        assert!(bool::from(mul(&pa, &Scalar::ZERO).is_identity()));
        // exceptional cases of the vartime addition
        let j = Jac::from(pa);
        assert_eq!(crate_point(&j.add_vartime(&j)), ProjectivePoint::from(p).double());
        assert!(bool::from(j.add_vartime(&Jac::from(pa.neg())).is_identity()));
    }

    #[test]
    fn x_only_check_matches_affine_x() {
        for k in scalars().into_iter().take(40) {
            let j = mul_g(&k);
            let x = <Scalar as Reduce<FieldBytes>>::reduce(&j.to_affine().unwrap().x.to_repr());
            assert!(j.x_matches_mod_n(&x));
            assert!(!j.x_matches_mod_n(&(x + Scalar::ONE)));
        }
    }
}
