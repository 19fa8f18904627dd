// Batch normalisation's element-wise per-channel ops on x [tasks, m, c]
// and per-channel values [tasks, c]. The sums over the m rows (sumrows,
// dotchannels, invstd and the statistics of normalize and normback) are
// chanpart and chanfinal in reduce.cu, in double as on the CPU;
// statistics that an element-wise pass needs go through a double buffer st
// of 2·tasks·c.

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

// normalize: out = (x − mean)·inv with the statistics st of chanfinal
// (mode 3).
KERNEL NAME(normalize)(i64 n, i64 m, i64 c, const T *x, const double *st, T *out) {
	FOR(i, n) {
		i64 tc = i / (m * c) * c + i % c;
		out[i] = (T)(((double)x[i] - st[tc]) * st[n / m + tc]);
	}
}

// normback: out = s·(g − mean g − x̂·mean(g·x̂)) with the statistics st of
// chanfinal (mode 4).
KERNEL NAME(normback)(i64 n, i64 m, i64 c, const T *g, const T *x, const T *s, const double *st, T *out) {
	FOR(i, n) {
		i64 tc = i / (m * c) * c + i % c;
		out[i] = (T)((double)s[tc] * ((double)g[i] - st[tc] - xmul((double)x[i], st[n / m + tc])));
	}
}

// bnback: out = s·γ·(g − a/m − x̂·b/m) with a = Σg and b = Σg·x̂ per task
// and channel, normback of g·γ from sums already taken.
KERNEL NAME(bnback)(i64 n, i64 m, i64 c, const T *g, const T *x, const T *s, const T *gm, const T *a, const T *b, T *out) {
	FOR(i, n) {
		i64 tc = i / (m * c) * c + i % c;
		double k = xmul((double)s[tc], (double)gm[tc]);
		double ma = (double)a[tc] / (double)m, mb = (double)b[tc] / (double)m;
		out[i] = (T)(k * ((double)g[i] - ma - xmul((double)x[i], mb)));
	}
}
