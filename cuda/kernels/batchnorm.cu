// Batch normalisation's per-channel ops on x [tasks, m, c] and per-channel
// values [tasks, c]. Sums over the m rows run in one thread per (task,
// channel), row by row and in double, as on the CPU; statistics that an
// element-wise pass needs go through a double buffer st of 2·tasks·c.

// scalechannels: out[t, r, ch] = x[t, r, ch]·s[t, ch].
KERNEL NAME(scalechannels)(i64 n, i64 m, i64 c, const T *x, const T *s, T *out) {
	FOR(i, n) { out[i] = x[i] * s[i / (m * c) * c + i % c]; }
}

// addchannels: out[t, r, ch] = x[t, r, ch] + s[t, ch].
KERNEL NAME(addchannels)(i64 n, i64 m, i64 c, const T *x, const T *s, T *out) {
	FOR(i, n) { out[i] = x[i] + s[i / (m * c) * c + i % c]; }
}

// affinechannels: out[t, r, ch] = x[t, r, ch]·s[t, ch] + b[t, ch].
KERNEL NAME(affinechannels)(i64 n, i64 m, i64 c, const T *x, const T *s, const T *b, T *out) {
	FOR(i, n) {
		i64 tc = i / (m * c) * c + i % c;
		out[i] = xmul(x[i], s[tc]) + b[tc];
	}
}

// dotchannels: out[t, ch] = Σ_r a[t, r, ch]·b[t, r, ch].
KERNEL NAME(dotchannels)(i64 tasks, i64 m, i64 c, const T *a, const T *b, T *out) {
	FOR(i, tasks * c) {
		i64 at = i / c * m * c + i % c;
		double s = 0;
		for (i64 r = 0; r < m; r++) s += xmul((double)a[at + r * c], (double)b[at + r * c]);
		out[i] = (T)s;
	}
}

// sumrows: out[t, ch] = Σ_r x[t, r, ch].
KERNEL NAME(sumrows)(i64 tasks, i64 m, i64 c, const T *x, T *out) {
	FOR(i, tasks * c) {
		i64 at = i / c * m * c + i % c;
		double s = 0;
		for (i64 r = 0; r < m; r++) s += (double)x[at + r * c];
		out[i] = (T)s;
	}
}

// chanstats returns the mean and 1/√(variance + eps) of the m values
// x[at + r·c], summing their differences from the first in double.
__device__ __forceinline__ void chanstats(const T *x, i64 at, i64 m, i64 c, double eps, double *mean, double *inv) {
	double shift = (double)x[at], s1 = 0, s2 = 0;
	for (i64 r = 0; r < m; r++) {
		double d = (double)x[at + r * c] - shift;
		s1 += d;
		s2 += xmul(d, d);
	}
	double d = s1 / (double)m;
	double v = s2 / (double)m - xmul(d, d);
	if (v < 0) v = 0; // a NaN stays
	*mean = shift + d;
	*inv = 1 / sqrt(v + eps);
}

// invstd: out[t, ch] = 1/√(variance + eps) over the rows of task t.
KERNEL NAME(invstd)(i64 tasks, i64 m, i64 c, i64 eps, const T *x, T *out) {
	FOR(i, tasks * c) {
		double mean, inv;
		chanstats(x, i / c * m * c + i % c, m, c, real(eps), &mean, &inv);
		out[i] = (T)inv;
	}
}

// bnstats: st[t, ch] = the mean, st[tasks·c + (t, ch)] = 1/√(variance +
// eps), for normalize.
KERNEL NAME(bnstats)(i64 tasks, i64 m, i64 c, i64 eps, const T *x, double *st) {
	FOR(i, tasks * c) {
		chanstats(x, i / c * m * c + i % c, m, c, real(eps), &st[i], &st[tasks * c + i]);
	}
}

// normalize: out = (x − mean)·inv with bnstats' st.
KERNEL NAME(normalize)(i64 n, i64 m, i64 c, const T *x, const double *st, T *out) {
	FOR(i, n) {
		i64 tc = i / (m * c) * c + i % c;
		out[i] = (T)(((double)x[i] - st[tc]) * st[n / m + tc]);
	}
}

// normbackstats: st[t, ch] = mean g, st[tasks·c + (t, ch)] = mean g·x̂,
// for normback.
KERNEL NAME(normbackstats)(i64 tasks, i64 m, i64 c, const T *g, const T *x, double *st) {
	FOR(i, tasks * c) {
		i64 at = i / c * m * c + i % c;
		double a = 0, b = 0;
		for (i64 r = 0; r < m; r++) {
			double v = (double)g[at + r * c];
			a += v;
			b += xmul(v, (double)x[at + r * c]);
		}
		st[i] = a / (double)m;
		st[tasks * c + i] = b / (double)m;
	}
}

// normback: out = s·(g − mean g − x̂·mean(g·x̂)) with normbackstats' st.
KERNEL NAME(normback)(i64 n, i64 m, i64 c, const T *g, const T *x, const T *s, const double *st, T *out) {
	FOR(i, n) {
		i64 tc = i / (m * c) * c + i % c;
		out[i] = (T)((double)s[tc] * ((double)g[i] - st[tc] - xmul((double)x[i], st[n / m + tc])));
	}
}
