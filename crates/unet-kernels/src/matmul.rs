//! A thin, typed wrapper over `gemm::gemm` with row/column strides.

pub(crate) use gemm::Parallelism;

/// A read-only strided matrix: element `(i, j)` is at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(crate) struct View {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

impl View {
    pub fn new(data: &[f32], offset: usize, rs: usize, cs: usize) -> View {
        View { ptr: data[offset..].as_ptr(), rs: rs as isize, cs: cs as isize }
    }
}

/// `dst (m x n) = [dst +] lhs (m x k) · rhs (k x n)`, `dst` at `dst + i * rs + j * cs`.
///
/// # Safety
/// Every element addressed through the views and `dst` must lie inside live allocations,
/// and no other thread may touch the `dst` elements during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    dst_cs: usize,
    accumulate: bool,
    lhs: View,
    rhs: View,
    par: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: forwarded from the caller; gemm computes dst := 1*dst + 1*lhs*rhs
    // (or dst := lhs*rhs when `accumulate` is false).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.ptr,
            lhs.cs,
            lhs.rs,
            rhs.ptr,
            rhs.cs,
            rhs.rs,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}
