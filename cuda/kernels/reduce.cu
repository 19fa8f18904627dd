// Sums over many rows in two passes, for parallelism when the outputs are
// few: the rows are cut into nq consecutive chunks, the first pass sums
// each chunk (one thread per chunk and output), the second adds the chunk
// sums in chunk order. Both passes run in a fixed order, so results do not
// depend on scheduling; with one chunk they are the one-pass sums.

// sumaxis_part: part[o, q, r] = Σ_{j in chunk q} x[o, j, r], for x
// [outer, n, inner] and nq chunks of chunk rows; sumaxis over part's middle
// axis finishes the sum.
KERNEL NAME(sumaxis_part)(i64 outer, i64 n, i64 inner, i64 nq, i64 chunk, const T *x, T *part) {
	FOR(i, outer * nq * inner) {
		i64 o = i / (nq * inner), q = i / inner % nq, r = i % inner;
		const T *p = x + o * n * inner + r;
		i64 end = (q + 1) * chunk < n ? (q + 1) * chunk : n;
		T s = 0;
		for (i64 j = q * chunk; j < end; j++) s += p[j * inner];
		part[i] = s;
	}
}

// Per-channel sums over the m rows of x [tasks, m, c] (and b, of x's
// shape), cut into nq chunks of chunk rows (nq = 1, chunk ≥ m, for no
// rows): chanpart sums chunk q of the rows of channel ch of task t into
// part[2·((t·nq + q)·c + ch) + k], k = 0, 1, in double:
//   mode 0: Σ a                      (sumrows)
//   mode 1: Σ a·b                    (dotchannels)
//   mode 2: Σ d, Σ d², d = a − a₀    (invstd, normalize: a₀ is the
//                                     channel's first row, for accuracy)
//   mode 3: Σ a, Σ a·b               (normback: a = g, b = x̂)
KERNEL NAME(chanpart)(i64 tasks, i64 m, i64 c, i64 nq, i64 chunk, i64 mode, const T *a, const T *b, double *part) {
	FOR(i, tasks * nq * c) {
		i64 t = i / (nq * c), q = i / c % nq, ch = i % c;
		i64 at = t * m * c + ch;
		i64 end = (q + 1) * chunk < m ? (q + 1) * chunk : m;
		double shift = mode == 2 ? (double)a[at] : 0, s1 = 0, s2 = 0;
		for (i64 r = q * chunk; r < end; r++) {
			double v = (double)a[at + r * c];
			if (mode == 0) {
				s1 += v;
			} else if (mode == 1) {
				s1 += xmul(v, (double)b[at + r * c]);
			} else if (mode == 2) {
				double d = v - shift;
				s1 += d;
				s2 += xmul(d, d);
			} else {
				s1 += v;
				s2 += xmul(v, (double)b[at + r * c]);
			}
		}
		part[2 * i] = s1;
		part[2 * i + 1] = s2;
	}
}

// chanfinal adds the nq chunk sums of chanpart in order and finishes:
//   mode 0, 1: out[t, ch] = Σ                          (sumrows, dotchannels)
//   mode 2:    out[t, ch] = 1/√(variance + eps)        (invstd)
//   mode 3:    st[t, ch] = mean, st[tasks·c + (t, ch)] = 1/√(variance + eps)
//                                                     (normalize)
//   mode 4:    st[t, ch] = Σ/m, st[tasks·c + (t, ch)] = Σ₂/m (normback)
// The variance is E[d²] − E[d]², clamped at 0 (a NaN stays).
KERNEL NAME(chanfinal)(i64 tasks, i64 m, i64 c, i64 nq, i64 mode, i64 eps, const T *a, const double *part, T *out, double *st) {
	FOR(i, tasks * c) {
		i64 t = i / c, ch = i % c;
		double s1 = 0, s2 = 0;
		for (i64 q = 0; q < nq; q++) {
			i64 p = 2 * ((t * nq + q) * c + ch);
			s1 += part[p];
			s2 += part[p + 1];
		}
		if (mode <= 1) {
			out[i] = (T)s1;
		} else if (mode <= 3) {
			double d = s1 / (double)m;
			double v = s2 / (double)m - xmul(d, d);
			if (v < 0) v = 0;
			double inv = 1 / sqrt(v + real(eps));
			if (mode == 2) {
				out[i] = (T)inv;
			} else {
				st[i] = (double)a[t * m * c + ch] + d;
				st[tasks * c + i] = inv;
			}
		} else {
			st[i] = s1 / (double)m;
			st[tasks * c + i] = s2 / (double)m;
		}
	}
}
