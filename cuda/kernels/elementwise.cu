// Element-wise arithmetic. Binary ops take a stride per argument: 1 for a
// tensor, 0 for a scalar broadcast over the other argument.

#define BINARY(k, expr)                                                        \
	KERNEL NAME(k)(i64 n, const T *a, i64 sa, const T *b, i64 sb, T *out) {    \
		FOR(i, n) {                                                            \
			T x = a[i * sa], y = b[i * sb];                                    \
			out[i] = (expr);                                                   \
		}                                                                      \
	}

BINARY(add, x + y)
BINARY(sub, x - y)
BINARY(mul, x * y)
BINARY(div, x / y)

#define UNARY(k, expr)                                                         \
	KERNEL NAME(k)(i64 n, const T *a, T *out) {                                \
		FOR(i, n) {                                                            \
			T x = a[i];                                                        \
			out[i] = (expr);                                                   \
		}                                                                      \
	}

UNARY(neg, -x)
UNARY(square, x * x)
UNARY(sqrt, xsqrt(x))
UNARY(exp, xexp(x))
UNARY(log, xlog(x))
UNARY(tanh, xtanh(x))
UNARY(sigmoid, (T)1 / ((T)1 + xexp(-x)))
UNARY(abs, xabs(x))
UNARY(inverse, (T)1 / x)
UNARY(relu, x > 0 ? x : (T)0)
UNARY(copy, x)

// relumask: g where x > 0, else 0.
KERNEL NAME(relumask)(i64 n, const T *x, const T *g, T *out) {
	FOR(i, n) { out[i] = x[i] > 0 ? g[i] : (T)0; }
}

// fill sets every element to the real v.
KERNEL NAME(fill)(i64 n, i64 v, T *out) {
	FOR(i, n) { out[i] = (T)real(v); }
}
