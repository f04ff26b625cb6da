//! A thin, typed wrapper over `gemm::gemm`: one product with named, strided operands.

pub(crate) use gemm::Parallelism;

/// A read-only strided matrix: element `(i, j)` is at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(crate) struct View {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

impl View {
    /// The matrix starting at `data[offset]` with row stride `rs` and column stride `cs`.
    pub fn new(data: &[f32], offset: usize, rs: usize, cs: usize) -> View {
        View { ptr: data[offset..].as_ptr(), rs: rs as isize, cs: cs as isize }
    }
}

/// A writable strided matrix: element `(i, j)` is at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(crate) struct ViewMut {
    pub ptr: *mut f32,
    pub rs: usize,
    pub cs: usize,
}

impl ViewMut {
    /// The matrix at `ptr` with row stride `rs` and column stride `cs` (no access happens
    /// here; [`MatMul::run`] states what must hold).
    pub fn new(ptr: *mut f32, rs: usize, cs: usize) -> ViewMut {
        ViewMut { ptr, rs, cs }
    }
}

/// One product `dst (m x n) = [dst +] lhs (m x k) · rhs (k x n)`.
pub(crate) struct MatMul {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub dst: ViewMut,
    /// Add to `dst` instead of overwriting it.
    pub accumulate: bool,
    pub lhs: View,
    pub rhs: View,
    pub par: Parallelism,
}

impl MatMul {
    /// Computes the product.
    ///
    /// # Safety
    /// Every element addressed through `lhs`, `rhs` and `dst` must lie inside live
    /// allocations, and no other thread may touch the `dst` elements during the call.
    pub unsafe fn run(self) {
        let MatMul { m, n, k, dst, accumulate, lhs, rhs, par } = self;
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
                dst.ptr,
                dst.cs as isize,
                dst.rs as isize,
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
}
