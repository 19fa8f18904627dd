// Max-pooling: the arg-max of every k×k window at stride k of channels-last
// images [imgs, h, w, c], and the gather and scatter-add through those
// positions. Indices are flat positions in the images, as i64.

// poolargmax: out[img, oh, ow, ch] = the flat index into x of the window's
// maximum, scanned row by row: a later value wins only if it is larger,
// or if it is NaN and the best so far is not (so the first maximum wins
// and NaN wins over any number).
KERNEL NAME(poolargmax)(i64 n, i64 h, i64 w, i64 c, i64 k, i64 ho, i64 wo, const T *x, i64 *out) {
	FOR(i, n) {
		i64 q = i;
		i64 ch = q % c; q /= c;
		i64 ow = q % wo; q /= wo;
		i64 oh = q % ho;
		i64 img = q / ho;
		i64 at = ((img * h + oh * k) * w + ow * k) * c + ch;
		T best = x[at];
		for (i64 kh = 0; kh < k; kh++) {
			for (i64 kw = 0; kw < k; kw++) {
				i64 j = ((img * h + oh * k + kh) * w + ow * k + kw) * c + ch;
				T v = x[j];
				if (v > best || (v != v && best == best)) {
					best = v;
					at = j;
				}
			}
		}
		out[i] = at;
	}
}

// gather: out[j] = x[idx[j]]; an index outside [0, size) gives NaN.
KERNEL NAME(gather)(i64 n, i64 size, const T *x, const i64 *idx, T *out) {
	FOR(j, n) {
		i64 i = idx[j];
		out[j] = (i >= 0 && i < size) ? x[i] : (T)real(0x7ff8000000000000LL);
	}
}

// Scatter-add, out[idx[j]] += g[j] from zero in the order of j. For the
// indices of max-pooling with k×k windows, idx[j] lies in window j (same
// image and channel), and the windows do not overlap, so out[i] has at
// most one term, from the window around i (poolscatter). scatteradd's
// shapes do not give k, so each k that fits them is a candidate: poolidxok
// and alltrue reduce "every index lies in its window" to one flag per
// candidate on the device, firsttrue picks the first candidate whose flag
// holds, and scatteraddserial runs the CPU's loop in one thread when none
// does, slow but exact for any indices. Indices outside [0, size) add
// nothing (the CPU refuses them).

// poolidxok: out[b] = 1 if, for every j ≡ b (mod m), idx[j] is a position
// of images [imgs, h, w, c] in window j of the windows [imgs, ho, wo, c]
// of k×k at stride k; else 0.
KERNEL NAME(poolidxok)(i64 n, i64 h, i64 w, i64 c, i64 k, i64 ho, i64 wo, i64 m, const i64 *idx, i64 *out) {
	FOR(b, m) {
		i64 ok = 1;
		for (i64 j = b; j < n; j += m) {
			i64 v = idx[j];
			if (v < 0 || v % c != j % c) {
				ok = 0;
				continue;
			}
			i64 q = v / c, p = j / c;
			i64 iw = q % w, ih = (q / w) % h, img = q / (w * h);
			ok &= iw / k == p % wo && ih / k == (p / wo) % ho && img == p / (wo * ho);
		}
		out[b] = ok;
	}
}

// alltrue: out[b] = 1 if in[j] ≠ 0 for every j ≡ b (mod m), else 0.
KERNEL NAME(alltrue)(i64 n, i64 m, const i64 *in, i64 *out) {
	FOR(b, m) {
		i64 ok = 1;
		for (i64 j = b; j < n; j += m) ok &= in[j] != 0;
		out[b] = ok;
	}
}

// firsttrue: *choice = the first b < n with flags[b] ≠ 0, or −1.
KERNEL NAME(firsttrue)(i64 n, const i64 *flags, i64 *choice) {
	FOR(t, 1) {
		i64 b = 0;
		while (b < n && flags[b] == 0) b++;
		*choice = b < n ? b : -1;
	}
}

// poolscatter, if *choice is me: out[img, ih, iw, ch] = g[j] if idx[j]
// is that position, for j the window around it (added to 0, as the CPU
// does), else 0; out is images [imgs, h, w, c], g and idx windows [imgs,
// ho, wo, c] of k×k.
KERNEL NAME(poolscatter)(i64 size, i64 h, i64 w, i64 c, i64 k, i64 ho, i64 wo, i64 me, const i64 *choice, const T *g, const i64 *idx, T *out) {
	if (*choice != me) return;
	FOR(i, size) {
		i64 ch = i % c, q = i / c;
		i64 oh = (q / w) % h / k, ow = q % w / k, img = q / (w * h);
		T s = 0;
		if (oh < ho && ow < wo) {
			i64 j = ((img * ho + oh) * wo + ow) * c + ch;
			if (idx[j] == i) s += g[j];
		}
		out[i] = s;
	}
}

// scatteraddserial, if *choice is −1: the CPU's loop, in one thread.
KERNEL NAME(scatteraddserial)(i64 size, i64 n, const i64 *choice, const T *g, const i64 *idx, T *out) {
	if (*choice != -1) return;
	FOR(t, 1) {
		for (i64 i = 0; i < size; i++) out[i] = 0;
		for (i64 j = 0; j < n; j++) {
			i64 i = idx[j];
			if (i >= 0 && i < size) out[i] += g[j];
		}
	}
}
