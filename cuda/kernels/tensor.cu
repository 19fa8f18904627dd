// Slicing and concatenation along an axis, for tensors viewed as [outer,
// n, inner] with n the axis' size.

// slice: out [outer, cnt, inner] = x [outer, size, inner] at positions
// start, start+step, … of the axis.
KERNEL NAME(slice)(i64 n, i64 size, i64 cnt, i64 inner, i64 start, i64 step, const T *x, T *out) {
	FOR(i, n) {
		i64 r = i % inner, j = (i / inner) % cnt, o = i / (inner * cnt);
		out[i] = x[(o * size + start + j * step) * inner + r];
	}
}

// concatpart: copies x [outer, len, inner] into out [outer, total, inner]
// at positions off… of the axis; a concatenation is one launch per
// argument, each writing its own part.
KERNEL NAME(concatpart)(i64 n, i64 len, i64 inner, i64 total, i64 off, const T *x, T *out) {
	FOR(i, n) {
		i64 r = i % inner, j = (i / inner) % len, o = i / (inner * len);
		out[(o * total + off + j) * inner + r] = x[i];
	}
}
