// Convolution as matrix products: patches of channels-last images
// [imgs, h, w, c] as rows of [imgs·ho·wo, k·k·c] (rows ordered image,
// output row, output column; a patch ordered kh, kw, c), their adjoint,
// and batched transposes. Windows of k×k slide at stride over images
// zero-padded by pad on every side; ho and wo are the window positions.

// im2col: out[img, oh, ow, kh, kw, ch] = x[img, oh·stride−pad+kh,
// ow·stride−pad+kw, ch], or 0 in the padding.
KERNEL NAME(im2col)(i64 n, i64 h, i64 w, i64 c, i64 k, i64 stride, i64 pad, i64 ho, i64 wo, const T *x, T *out) {
	FOR(i, n) {
		i64 q = i;
		i64 ch = q % c; q /= c;
		i64 kw = q % k; q /= k;
		i64 kh = q % k; q /= k;
		i64 ow = q % wo; q /= wo;
		i64 oh = q % ho;
		i64 img = q / ho;
		i64 ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
		out[i] = (ih >= 0 && ih < h && iw >= 0 && iw < w) ? x[((img * h + ih) * w + iw) * c + ch] : (T)0;
	}
}

// col2im: out[img, ih, iw, ch] = Σ of the patch entries im2col took from
// there, added from 0 in the CPU's order: window rows, then columns,
// ascending.
KERNEL NAME(col2im)(i64 n, i64 h, i64 w, i64 c, i64 k, i64 stride, i64 pad, i64 ho, i64 wo, const T *cols, T *out) {
	FOR(i, n) {
		i64 q = i;
		i64 ch = q % c; q /= c;
		i64 iw = q % w; q /= w;
		i64 ih = q % h;
		i64 img = q / h;
		// Window positions o covering position p: 0 ≤ p+pad−o·stride < k.
		i64 lh = ih + pad - k + 1, lw = iw + pad - k + 1;
		i64 oh0 = lh > 0 ? (lh + stride - 1) / stride : 0, oh1 = (ih + pad) / stride;
		i64 ow0 = lw > 0 ? (lw + stride - 1) / stride : 0, ow1 = (iw + pad) / stride;
		if (oh1 > ho - 1) oh1 = ho - 1;
		if (ow1 > wo - 1) ow1 = wo - 1;
		i64 row = k * k * c;
		T s = 0;
		for (i64 oh = oh0; oh <= oh1; oh++) {
			i64 kh = ih + pad - oh * stride;
			for (i64 ow = ow0; ow <= ow1; ow++) {
				i64 kw = iw + pad - ow * stride;
				s += cols[((img * ho + oh) * wo + ow) * row + (kh * k + kw) * c + ch];
			}
		}
		out[i] = s;
	}
}

// transposelast: out [b, q, p] from x [b, p, q].
KERNEL NAME(transposelast)(i64 b, i64 p, i64 q, const T *x, T *out) {
	FOR(i, b * p * q) {
		i64 r = i % p, c = (i / p) % q, m = i / (p * q);
		out[i] = x[(m * p + r) * q + c];
	}
}
