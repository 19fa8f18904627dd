// Reductions and expansions along an axis, for x viewed as [outer, n, inner].

// broadcast: out [outer, n, inner] from x [outer, inner].
KERNEL NAME(broadcast)(i64 outer, i64 n, i64 inner, const T *x, T *out) {
	FOR(i, outer * n * inner) {
		i64 o = i / (n * inner), r = i % inner;
		out[i] = x[o * inner + r];
	}
}

// sumaxis: out [outer, inner] = Σ_j x[outer, j, inner], j in order.
KERNEL NAME(sumaxis)(i64 outer, i64 n, i64 inner, const T *x, T *out) {
	FOR(i, outer * inner) {
		i64 o = i / inner, r = i % inner;
		const T *p = x + o * n * inner + r;
		T s = 0;
		for (i64 j = 0; j < n; j++) s += p[j * inner];
		out[i] = s;
	}
}

// logsoftmax over rows of n: out = x - (log Σ exp(x - max) + max), the sum
// in double as on the CPU.
KERNEL NAME(logsoftmax)(i64 rows, i64 n, const T *x, T *out) {
	FOR(r, rows) {
		const T *row = x + r * n;
		T m = row[0];
		for (i64 j = 0; j < n; j++) m = row[j] > m ? row[j] : m;
		double s = 0;
		for (i64 j = 0; j < n; j++) s += exp((double)(row[j] - m));
		T lse = (T)log(s) + m;
		for (i64 j = 0; j < n; j++) out[r * n + j] = row[j] - lse;
	}
}

// pick: out[i] = x[i, labels[i]]; a label outside [0, classes) gives NaN.
KERNEL NAME(pick)(i64 rows, i64 classes, const T *x, const i64 *labels, T *out) {
	FOR(i, rows) {
		i64 l = labels[i];
		out[i] = (l >= 0 && l < classes) ? x[i * classes + l] : (T)real(0x7ff8000000000000LL);
	}
}

// scatter: out[i, c] = g[i] if c == labels[i], else 0.
KERNEL NAME(scatter)(i64 rows, i64 classes, const T *g, const i64 *labels, T *out) {
	FOR(i, rows * classes) {
		i64 r = i / classes, c = i % classes;
		out[i] = labels[r] == c ? g[r] : (T)0;
	}
}
