//! Randomness: the operating system's CSPRNG only (nonce reuse would leak a key share).

use crate::{Error, Result};

/// Fill `buf` from the operating system's CSPRNG.
pub fn fill(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|_| Error::Rng)
}

/// `N` fresh random bytes.
pub fn bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    fill(&mut b)?;
    Ok(b)
}
