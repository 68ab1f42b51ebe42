//! Variable-time inversion modulo the SM2 prime by Bernstein–Yang's divsteps ("safegcd"),
//! 62 steps at a time on the low 64 bits, then one 2×2 matrix applied to the full numbers.
//!
//! **Variable time: for public or blinded inputs only.** [`super::field::Fe::invert_blinded`]
//! inverts `a·β` for a fresh uniformly random `β`; that product is uniform whatever `a` is, so the
//! time taken says nothing about `a`.
//!
//! Numbers are signed, in five 62-bit limbs (`Σ lᵢ·2⁶²ⁱ`, limbs 0–3 in `[0, 2⁶²)`, the top one
//! signed). The invariants: `d·x ≡ f` and `e·x ≡ g (mod p)`, starting from `f = p, g = x, d = 0,
//! e = 1`; each batch maps `(f, g)` to `M·(f, g)/2⁶²` and `(d, e)` to `(M·(d, e) + m·p)/2⁶²` with
//! `m` chosen to make the division exact (`p ≡ −1 (mod 2⁶⁴)`, so `m` is the low 62 bits of the
//! sum itself). When `g` reaches 0, `f = ±1` (p is prime) and `x⁻¹ ≡ ±d`. `|d|, |e|` grow by at
//! most `p` per batch; they are brought into `[0, p)` at the end.

/// 62 ones.
const M62: u64 = u64::MAX >> 2;
/// Divsteps per batch.
const STEPS: u32 = 62;
/// Bernstein–Yang bound for 256-bit inputs: 741 divsteps from δ = 1; 13 batches are 806. More
/// means a bug; the caller then uses the constant-time inversion.
const MAX_BATCHES: usize = 13;

type S62 = [i64; 5];

/// The SM2 prime in 62-bit limbs.
const P62: S62 = to_s62(&super::field::P);

/// Four little-endian 64-bit limbs (an integer below 2²⁵⁶) as 62-bit limbs.
const fn to_s62(a: &[u64; 4]) -> S62 {
    [
        (a[0] & M62) as i64,
        ((a[0] >> 62 | a[1] << 2) & M62) as i64,
        ((a[1] >> 60 | a[2] << 4) & M62) as i64,
        ((a[2] >> 58 | a[3] << 6) & M62) as i64,
        (a[3] >> 56) as i64,
    ]
}

/// A number in `[0, 2²⁵⁶)` back to 64-bit limbs.
fn from_s62(a: &S62) -> [u64; 4] {
    let l = a.map(|x| x as u64);
    [l[0] | l[1] << 62, l[1] >> 2 | l[2] << 60, l[2] >> 4 | l[3] << 58, l[3] >> 6 | l[4] << 56]
}

/// Up to 62 divsteps on the low 64 bits of `f` (odd) and `g`, skipping runs of zeros in `g`.
/// Returns the new δ and `[u, v, q, r]` with `2⁶²·(f′, g′) = (u v; q r)·(f, g)`.
fn divsteps(mut delta: i64, mut f: u64, mut g: u64) -> (i64, [i64; 4]) {
    let (mut u, mut v, mut q, mut r) = (1i64, 0i64, 0i64, 1i64);
    let mut left = STEPS;
    loop {
        // the halving of each step: g even, so g/2; f's row doubles instead of g's halving
        let z = g.trailing_zeros().min(left);
        g >>= z;
        u <<= z;
        v <<= z;
        delta += i64::from(z);
        left -= z;
        if left == 0 {
            return (delta, [u, v, q, r]);
        }
        // g is odd: when δ > 0, (f, g) ← (g, −f) with δ ← −δ; then g ← g + f (even). By masks:
        // which way it goes is a coin toss, and a branch would be mispredicted half the time.
        let c = (-delta) >> 63; // all ones iff δ > 0
        let cu = c as u64;
        delta = (delta ^ c) - c;
        let (nf, ng) = (g, f.wrapping_neg());
        f ^= (f ^ nf) & cu;
        g ^= (g ^ ng) & cu;
        let (nu, nv, nq, nr) = (q, r, -u, -v);
        u ^= (u ^ nu) & c;
        v ^= (v ^ nv) & c;
        q ^= (q ^ nq) & c;
        r ^= (r ^ nr) & c;
        g = g.wrapping_add(f);
        q += u;
        r += v;
    }
}

/// `(u·a + v·b + m·p) / 2⁶²` for the `m` in `[0, 2⁶²)` that makes it exact (`m = 0` when
/// `modular` is false: then the caller knows the sum is divisible).
fn combine(a: &S62, b: &S62, u: i64, v: i64, modular: bool) -> S62 {
    let (u, v) = (i128::from(u), i128::from(v));
    let mut acc = u * i128::from(a[0]) + v * i128::from(b[0]);
    // p ≡ −1 (mod 2⁶²): adding m·p with m = acc mod 2⁶² clears the low 62 bits
    let m = if modular { i128::from((acc as u64) & M62) } else { 0 };
    acc += m * i128::from(P62[0]);
    debug_assert_eq!(acc as u64 & M62, 0, "the division by 2⁶² is exact");
    acc >>= 62;
    let mut out = [0i64; 5];
    for i in 1..5 {
        acc += u * i128::from(a[i]) + v * i128::from(b[i]) + m * i128::from(P62[i]);
        out[i - 1] = (acc as u64 & M62) as i64;
        acc >>= 62;
    }
    out[4] = acc as i64;
    out
}

fn is_zero(a: &S62) -> bool {
    a.iter().all(|&l| l == 0)
}

fn is_negative(a: &S62) -> bool {
    a[4] < 0
}

/// `a + s·p` for `s` = ±1.
fn add_p(a: &S62, s: i64) -> S62 {
    let mut out = [0i64; 5];
    let mut carry = 0i64;
    for i in 0..5 {
        let t = a[i] + s * P62[i] + carry;
        if i < 4 {
            out[i] = t & M62 as i64;
            carry = t >> 62;
        } else {
            out[i] = t;
        }
    }
    out
}

/// Whether `a ≥ p` for a non-negative `a`.
fn at_least_p(a: &S62) -> bool {
    for i in (0..5).rev() {
        if a[i] != P62[i] {
            return a[i] > P62[i];
        }
    }
    true
}

/// `x⁻¹ mod p` for `x` in `[1, p)` (64-bit little-endian limbs); `None` for 0 or when the loop
/// does not end within the bound (never for a correct implementation: see [`MAX_BATCHES`]).
/// Variable time.
pub(crate) fn invert_vartime(x: &[u64; 4]) -> Option<[u64; 4]> {
    invert_within(x, MAX_BATCHES)
}

/// [`invert_vartime`] with at most `batches` batches of divsteps.
fn invert_within(x: &[u64; 4], batches: usize) -> Option<[u64; 4]> {
    let (mut f, mut g) = (P62, to_s62(x));
    let (mut d, mut e): (S62, S62) = ([0; 5], [1, 0, 0, 0, 0]);
    let mut delta = 1i64;
    for _ in 0..batches {
        if is_zero(&g) {
            break;
        }
        let low = |a: &S62| (a[0] as u64) | (a[1] as u64) << 62;
        let (nd, [u, v, q, r]) = divsteps(delta, low(&f), low(&g));
        delta = nd;
        (f, g) = (combine(&f, &g, u, v, false), combine(&f, &g, q, r, false));
        (d, e) = (combine(&d, &e, u, v, true), combine(&d, &e, q, r, true));
    }
    if !is_zero(&g) {
        return None;
    }
    // f = ±1 (p is prime and x ≠ 0): x⁻¹ ≡ f·d
    const ONE: S62 = [1, 0, 0, 0, 0];
    if f != ONE {
        if negate(&f) != ONE {
            return None; // gcd ≠ 1: x = 0
        }
        d = negate(&d);
    }
    // |d| < (batches + 1)·p: a few corrections bring it into [0, p)
    while is_negative(&d) {
        d = add_p(&d, 1);
    }
    while at_least_p(&d) {
        d = add_p(&d, -1);
    }
    Some(from_s62(&d))
}

/// `−a`.
fn negate(a: &S62) -> S62 {
    let mut out = [0i64; 5];
    let mut borrow = 0i64;
    for i in 0..5 {
        let t = -a[i] - borrow;
        if i < 4 {
            out[i] = t & M62 as i64;
            borrow = -(t >> 62);
        } else {
            out[i] = t;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::field::P;
    use super::*;
    use crypto_bigint::{Odd, U256};

    fn theirs(x: &[u64; 4]) -> Option<[u64; 4]> {
        let p = Odd::<U256>::new(U256::from_words(P)).expect("odd");
        Option::from(U256::from_words(*x).invert_odd_mod(&p)).map(|v: U256| v.to_words())
    }

    fn below_p(x: &[u64; 4]) -> bool {
        (0..4).rev().find(|&i| x[i] != P[i]).is_some_and(|i| x[i] < P[i])
    }

    /// Edge values: the smallest and largest, powers of two (long runs of zeros, the fast path of
    /// the loop), all-ones patterns, halves of p.
    fn edges() -> Vec<[u64; 4]> {
        let mut v =
            vec![[1, 0, 0, 0], [2, 0, 0, 0], [3, 0, 0, 0], [P[0] - 1, P[1], P[2], P[3]], [P[0] - 2, P[1], P[2], P[3]]];
        for bit in [1, 61, 62, 63, 64, 123, 124, 125, 186, 200, 247, 248, 255] {
            let mut x = [0u64; 4];
            x[bit / 64] = 1 << (bit % 64);
            v.push(x);
        }
        v.push([u64::MAX, u64::MAX, u64::MAX, 0x7FFF_FFFF_FFFF_FFFF]);
        v.push([0x8000_0000_0000_0000, 0xFFFF_FFFF_8000_0000, u64::MAX, 0x7FFF_FFFF_7FFF_FFFF]); // (p + 1)/2 = 2⁻¹
        v.push([u64::MAX, 0, u64::MAX, 0]);
        v
    }

    #[test]
    fn agrees_with_crypto_bigint_on_edges_and_random_values() {
        let mut values = edges();
        while values.len() < 20_000 {
            let b = crate::rng::bytes::<32>().expect("rng");
            let x: [u64; 4] = core::array::from_fn(|i| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap()));
            if below_p(&x) {
                values.push(x);
            }
        }
        for x in &values {
            assert_eq!(invert_vartime(x), theirs(x), "x = {x:x?}");
        }
    }

    /// Plain divsteps, one at a time with branches, on 128-bit words: the definition.
    fn reference(mut delta: i64, f: u64, g: u64) -> (i64, [i64; 4]) {
        let (mut f, mut g) = (i128::from(f), i128::from(g));
        let (mut u, mut v, mut q, mut r) = (1i128, 0i128, 0i128, 1i128);
        for _ in 0..STEPS {
            if delta > 0 && g & 1 == 1 {
                (delta, f, g) = (1 - delta, g, (g - f) >> 1);
                (u, v, q, r) = (2 * q, 2 * r, q - u, r - v);
            } else if g & 1 == 1 {
                (delta, g) = (1 + delta, (g + f) >> 1);
                (u, v, q, r) = (2 * u, 2 * v, q + u, r + v);
            } else {
                (delta, g) = (1 + delta, g >> 1);
                (u, v) = (2 * u, 2 * v);
            }
        }
        let _ = f;
        (delta, [u, v, q, r].map(|x| i64::try_from(x).expect("|entries| ≤ 2⁶²")))
    }

    #[test]
    fn a_batch_of_divsteps_is_62_plain_divsteps() {
        let mut pairs = vec![(1u64, 0u64), (1, 1), (u64::MAX, u64::MAX), (1, 1 << 63), (u64::MAX, 1)];
        while pairs.len() < 20_000 {
            let b = crate::rng::bytes::<16>().expect("rng");
            let f = u64::from_le_bytes(b[..8].try_into().unwrap()) | 1;
            let mut g = u64::from_le_bytes(b[8..].try_into().unwrap());
            // long runs of zeros too, the loop's fast path
            g &= u64::MAX << (b[0] % 64);
            pairs.push((f, g));
        }
        for (i, &(f, g)) in pairs.iter().enumerate() {
            let delta = [1, 0, -1, 5, -37, 100][i % 6];
            let (nd, m) = divsteps(delta, f, g);
            assert_eq!((nd, m), reference(delta, f, g), "f = {f:#x}, g = {g:#x}, δ = {delta}");
            let [u, v, q, r] = m.map(i128::from);
            assert!(u.abs() + v.abs() <= 1 << 62 && q.abs() + r.abs() <= 1 << 62);
            // 2⁶²·f′ = u·f + v·g: the low 62 bits of both rows' sums vanish
            let (f, g) = (i128::from(f), i128::from(g));
            assert_eq!((u * f + v * g) & ((1 << 62) - 1), 0);
            assert_eq!((q * f + r * g) & ((1 << 62) - 1), 0);
        }
    }

    #[test]
    fn a_loop_cut_short_gives_no_answer_rather_than_a_wrong_one() {
        let mut x = [0u64; 4];
        for (i, l) in x.iter_mut().enumerate() {
            *l = 0x0123_4567_89AB_CDEF_u64.rotate_left(8 * i as u32);
        }
        assert_eq!(invert_within(&x, 2), None);
        assert_eq!(invert_within(&x, MAX_BATCHES), theirs(&x));
    }

    #[test]
    fn zero_has_no_inverse() {
        assert_eq!(invert_vartime(&[0; 4]), None);
    }

    #[test]
    fn limbs_round_trip() {
        for x in edges() {
            assert_eq!(from_s62(&to_s62(&x)), x);
        }
        assert_eq!(from_s62(&P62), P);
    }
}
