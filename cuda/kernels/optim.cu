// What optimisers ask of the device: a finiteness check of gradients and
// the parameter updates of Adam and SGD, computed in double as
// learners.Adam and learners.SGD do on the CPU, with products rounded on
// their own: from the same gradients, float64 parameters come out the same
// to the bit.

// nonfinite_part: part[q] = the number of NaN and infinite elements among
// x[q·chunk, (q+1)·chunk), for q < nq; sumaxis adds them up.
KERNEL NAME(nonfinite_part)(i64 n, i64 nq, i64 chunk, const T *x, double *part) {
	FOR(q, nq) {
		i64 end = (q + 1) * chunk < n ? (q + 1) * chunk : n;
		double bad = 0;
		for (i64 i = q * chunk; i < end; i++) {
			double v = (double)x[i];
			if (v != v || v - v != 0) bad += 1; // NaN, or ±Inf (Inf − Inf is NaN)
		}
		part[q] = bad;
	}
}

// adam: one Adam step of the n parameters x with gradients g and moments
// m, v (double), h = [lr, β1, β2, ε, 1 − β1ᵗ, 1 − β2ᵗ]:
// m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g², x ← x − lr·(m/c1)/(√(v/c2) + ε).
KERNEL NAME(adam)(i64 n, const T *g, double *m, double *v, const double *h, T *x) {
	FOR(i, n) {
		double lr = h[0], b1 = h[1], b2 = h[2], eps = h[3], c1 = h[4], c2 = h[5];
		double gi = (double)g[i];
		double mi = xmul(b1, m[i]) + xmul(1 - b1, gi);
		double vi = xmul(b2, v[i]) + xmul(xmul(1 - b2, gi), gi);
		m[i] = mi;
		v[i] = vi;
		x[i] = (T)((double)x[i] - xmul(lr, mi / c1) / (sqrt(vi / c2) + eps));
	}
}

// sgd: one SGD step, h = [lr, μ]: with momentum (PyTorch's convention)
// vel ← μ·vel + g and x ← x − lr·vel, else x ← x − lr·g.
KERNEL NAME(sgd)(i64 n, i64 momentum, const T *g, double *vel, const double *h, T *x) {
	FOR(i, n) {
		double d = (double)g[i];
		if (momentum) {
			vel[i] = xmul(h[1], vel[i]) + d;
			d = vel[i];
		}
		x[i] = (T)((double)x[i] - xmul(h[0], d));
	}
}
