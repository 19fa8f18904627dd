// Shared by every kernel source. Each source is compiled twice, once with
// T = float and SUF = f32 and once with T = double and SUF = f64, so a
// kernel written once as NAME(add) becomes add_f32 and add_f64.
//
// Conventions, which the host side and the CPU emulation rely on:
//   - every parameter is 8 bytes: a pointer, an i64, or a real number
//     passed as the bits of a double (read with real());
//   - every kernel is a grid-stride loop over independent outputs, so it
//     is correct for any launch size, one thread included;
//   - reductions run in one thread per output, in a fixed order: no
//     atomics, so results do not depend on scheduling.

typedef long long i64;

#define PASTE2(a, b) a##_##b
#define PASTE(a, b) PASTE2(a, b)
#define NAME(k) PASTE(k, SUF)
#define KERNEL extern "C" __global__ void

#define FOR(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (i64)(n); i += (i64)blockDim.x * gridDim.x)

// real returns the double whose bits are b.
__device__ __forceinline__ double real(i64 b) { return __longlong_as_double(b); }

__device__ __forceinline__ float xexp(float x) { return expf(x); }
__device__ __forceinline__ double xexp(double x) { return exp(x); }
__device__ __forceinline__ float xlog(float x) { return logf(x); }
__device__ __forceinline__ double xlog(double x) { return log(x); }
__device__ __forceinline__ float xsqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double xsqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float xtanh(float x) { return tanhf(x); }
__device__ __forceinline__ double xtanh(double x) { return tanh(x); }
__device__ __forceinline__ float xabs(float x) { return fabsf(x); }
__device__ __forceinline__ double xabs(double x) { return fabs(x); }

// xmul is a*b rounded on its own: the device compiler would otherwise fuse
// a product and a following sum into one fused multiply-add, rounded once,
// and the result would no longer match the CPU's, which rounds both.
#ifdef __CUDA_ARCH__
__device__ __forceinline__ float xmul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double xmul(double a, double b) { return __dmul_rn(a, b); }
#else
__device__ __forceinline__ float xmul(float a, float b) { return a * b; }
__device__ __forceinline__ double xmul(double a, double b) { return a * b; }
#endif
