//! Copying and comparing the short byte strings measurements are made of
//! (levels, type names, most names and sources) with two overlapping
//! fixed-size moves instead of calls to `memcpy` and `memcmp`, whose call
//! and dispatch cost as much as the work at these lengths.

/// `dst.copy_from_slice(src)`; the slices must have the same length.
#[inline(always)]
pub(crate) fn copy(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if (8..=16).contains(&n) {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if (4..8).contains(&n) {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else if n < 4 {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    } else if n <= 32 {
        dst[..16].copy_from_slice(&src[..16]);
        dst[n - 16..].copy_from_slice(&src[n - 16..]);
    } else {
        dst.copy_from_slice(src);
    }
}

/// `a == b`.
#[inline(always)]
pub(crate) fn eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if (8..=16).contains(&n) {
        word::<8>(a, 0) == word::<8>(b, 0) && word::<8>(a, n - 8) == word::<8>(b, n - 8)
    } else if (4..8).contains(&n) {
        word::<4>(a, 0) == word::<4>(b, 0) && word::<4>(a, n - 4) == word::<4>(b, n - 4)
    } else if n < 4 {
        a.iter().zip(b).all(|(x, y)| x == y)
    } else if n <= 32 {
        word::<16>(a, 0) == word::<16>(b, 0) && word::<16>(a, n - 16) == word::<16>(b, n - 16)
    } else {
        a == b
    }
}

/// The `N` bytes of `s` from `at`, as one value to compare.
#[inline(always)]
fn word<const N: usize>(s: &[u8], at: usize) -> [u8; N] {
    let mut w = [0u8; N];
    w.copy_from_slice(&s[at..at + N]);
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length up to 40, and a difference at every position.
    #[test]
    fn copies_and_compares_like_the_slice_methods() {
        let source: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for n in 0..=40 {
            let src = &source[..n];
            let mut dst = vec![b'#'; n];
            copy(&mut dst, src);
            assert_eq!(dst, src);
            assert!(eq(&dst, src));
            for at in 0..n {
                let mut other = dst.clone();
                other[at] ^= 1;
                assert!(!eq(&other, src), "length {n}, difference at {at}");
            }
            assert!(!eq(&source[..n], &source[..n.saturating_sub(1)]) || n == 0);
        }
    }
}
