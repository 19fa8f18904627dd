//go:build !noasm

#include "textflag.h"

// KEY32 loads eight float32 at src and leaves in dst the integer keys of
// orderKey, in 32-bit lanes: two's complement of sign and magnitude, with
// −0 equal to +0 and every NaN 0x7f800001, above +Inf. Y8 holds
// 0x7fffffff, Y9 0x7f800000 and Y10 0x7f800001 in every lane; Y0 and Y1
// are overwritten.
#define KEY32(src, dst) \
	VMOVDQU src, Y0; \
	VPAND Y8, Y0, Y1; \
	VPSRAD $31, Y0, Y0; \
	VPXOR Y0, Y1, dst; \
	VPSUBD Y0, dst, dst; \
	VPCMPGTD Y9, Y1, Y1; \
	VPBLENDVB Y1, Y10, dst, dst

// func poolRowAVX2(n, c int, x *float32, wc int, at *int, base int, vals *float32, lanes *int32)
//
// The arg max of n 2×2 windows side by side, for c channels (a multiple
// of 8), as poolArgMax2: window q's top left value of channel j is at x +
// 4·(2·q·c + j), its top right c elements on, its bottom row wc elements
// on. at[q·c + j] gets base + 2·q·c + j plus the offset of the largest of
// the four (0, c, wc or wc + c), the later of two equal ones only if it
// is larger: top left against top right, bottom left against bottom
// right, then top against bottom; unless vals is nil, vals[q·c + j] gets
// that value, gathered with its bits. lanes holds 0 to 7. n ≥ 1.
TEXT ·poolRowAVX2(SB), NOSPLIT, $0-64
	MOVQ n+0(FP), CX
	MOVQ c+8(FP), R8
	MOVQ x+16(FP), SI
	MOVQ wc+24(FP), R9
	MOVQ at+32(FP), DI
	MOVQ base+40(FP), DX
	MOVQ vals+48(FP), R12
	MOVQ lanes+56(FP), R13
	MOVL $0x7fffffff, AX
	VMOVQ AX, X8
	VPBROADCASTD X8, Y8
	MOVL $0x7f800000, AX
	VMOVQ AX, X9
	VPBROADCASTD X9, Y9
	MOVL $0x7f800001, AX
	VMOVQ AX, X10
	VPBROADCASTD X10, Y10
	VMOVQ R8, X11
	VPBROADCASTD X11, Y11
	VMOVQ R9, X12
	VPBROADCASTD X12, Y12
	MOVQ $0x0000000100000000, AX // 0, 1 as int32
	VMOVQ AX, X13
	MOVQ $0x0000000300000002, AX // 2, 3
	VMOVQ AX, X0
	VPUNPCKLQDQ X0, X13, X13     // 0, 1, 2, 3
	VPMOVSXDQ X13, Y13           // 0..3 as int64
	MOVQ $4, AX
	VMOVQ AX, X14
	VPBROADCASTQ X14, Y14
	VPADDQ Y13, Y14, Y14         // 4..7
	SHLQ $2, R8                  // c, wc and wc+c in bytes
	SHLQ $2, R9
	LEAQ (R8)(R9*1), R11

pixel:
	MOVQ R8, R10
	SHRQ $5, R10                 // chunks of 8 channels

chunk:
	KEY32((SI), Y2)
	KEY32((SI)(R8*1), Y3)
	VPCMPGTD Y2, Y3, Y4          // top right larger
	VPBLENDVB Y4, Y3, Y2, Y2
	VPAND Y11, Y4, Y4            // its offset: c or 0
	KEY32((SI)(R9*1), Y3)
	KEY32((SI)(R11*1), Y5)
	VPCMPGTD Y3, Y5, Y6          // bottom right larger
	VPBLENDVB Y6, Y5, Y3, Y3
	VPAND Y11, Y6, Y6
	VPADDD Y12, Y6, Y6           // its offset: wc + c or wc
	VPCMPGTD Y2, Y3, Y7          // bottom larger
	VPBLENDVB Y7, Y6, Y4, Y4
	TESTQ R12, R12
	JZ novals
	VPADDD (R13), Y4, Y1         // the maxima's offsets from SI
	VPCMPEQD Y2, Y2, Y2
	VPGATHERDD Y2, (SI)(Y1*4), Y0
	VMOVDQU Y0, (R12)
	ADDQ $32, R12

novals:
	VMOVQ DX, X15
	VPBROADCASTQ X15, Y15
	VPMOVSXDQ X4, Y5
	VEXTRACTI128 $1, Y4, X6
	VPMOVSXDQ X6, Y6
	VPADDQ Y15, Y5, Y5
	VPADDQ Y13, Y5, Y5
	VPADDQ Y15, Y6, Y6
	VPADDQ Y14, Y6, Y6
	VMOVDQU Y5, (DI)
	VMOVDQU Y6, 32(DI)
	ADDQ $32, SI
	ADDQ $64, DI
	ADDQ $8, DX
	DECQ R10
	JNZ chunk

	ADDQ R8, SI                  // the next window: c more elements on
	MOVQ R8, AX
	SHRQ $2, AX
	ADDQ AX, DX
	DECQ CX
	JNZ pixel
	VZEROUPPER
	RET

// func scatterPool2AVX512(dst, gr *float32, idx *int, start, wo, c, w int, lanes *int64) bool
//
// Writes a band of two image rows of the gradient of 2×2 max pooling: for
// the wo windows side by side and c channels (a multiple of 16), the
// value 0 + gr[q·c + j] at the position idx[q·c + j] of the window's four
// (relative to dst, start + 2·q·c + j plus 0, c, w·c or w·c + c) and zero
// at the other three, 16 channels at a time with masked moves instead of
// a scatter. It reports false, having written part of the band, if an
// index is none of its window's four. lanes holds 0 to 15. wo ≥ 1.
TEXT ·scatterPool2AVX512(SB), NOSPLIT, $0-65
	MOVQ dst+0(FP), DI
	MOVQ gr+8(FP), SI
	MOVQ idx+16(FP), DX
	MOVQ start+24(FP), R8
	MOVQ wo+32(FP), R9
	MOVQ c+40(FP), R10
	MOVQ w+48(FP), R11
	MOVQ lanes+56(FP), AX
	VMOVDQU64 (AX), Z30
	VMOVDQU64 64(AX), Z31
	VPBROADCASTQ R10, Z27
	MOVQ R11, AX
	IMULQ R10, AX
	VPBROADCASTQ AX, Z26
	SHLQ $2, AX
	MOVQ AX, R12 // bytes to the second row
	LEAQ (R10*4), R13 // bytes to the second column
	VXORPS Z25, Z25, Z25
	MOVQ R10, R14
	SHRQ $4, R14

scatterwin:
	MOVQ R14, CX
	MOVQ DI, BX
	MOVQ R8, R15

scattergroup:
	VPBROADCASTQ R15, Z28
	VPADDQ Z30, Z28, Z20
	VPADDQ Z31, Z28, Z21
	VMOVDQU64 (DX), Z0
	VMOVDQU64 64(DX), Z1
	VPCMPEQQ Z20, Z0, K1
	VPCMPEQQ Z21, Z1, K5
	KUNPCKBW K1, K5, K1
	VPADDQ Z27, Z20, Z22
	VPADDQ Z27, Z21, Z23
	VPCMPEQQ Z22, Z0, K2
	VPCMPEQQ Z23, Z1, K5
	KUNPCKBW K2, K5, K2
	VPADDQ Z26, Z20, Z20
	VPADDQ Z26, Z21, Z21
	VPCMPEQQ Z20, Z0, K3
	VPCMPEQQ Z21, Z1, K5
	KUNPCKBW K3, K5, K3
	VPADDQ Z27, Z20, Z20
	VPADDQ Z27, Z21, Z21
	VPCMPEQQ Z20, Z0, K4
	VPCMPEQQ Z21, Z1, K5
	KUNPCKBW K4, K5, K4
	KORW K1, K2, K5
	KORW K3, K5, K5
	KORW K4, K5, K5
	KMOVW K5, AX
	CMPL AX, $0xffff
	JNE scatterfail
	VMOVUPS (SI), Z2
	VADDPS Z25, Z2, Z2
	VMOVAPS.Z Z2, K1, Z3
	VMOVUPS Z3, (BX)
	VMOVAPS.Z Z2, K2, Z3
	VMOVUPS Z3, (BX)(R13*1)
	LEAQ (BX)(R12*1), AX
	VMOVAPS.Z Z2, K3, Z3
	VMOVUPS Z3, (AX)
	VMOVAPS.Z Z2, K4, Z3
	VMOVUPS Z3, (AX)(R13*1)
	ADDQ $128, DX
	ADDQ $64, SI
	ADDQ $64, BX
	ADDQ $16, R15
	DECQ CX
	JNZ scattergroup
	LEAQ (DI)(R13*2), DI
	LEAQ (R8)(R10*2), R8
	DECQ R9
	JNZ scatterwin
	MOVB $1, ret+64(FP)
	VZEROUPPER
	RET

scatterfail:
	MOVB $0, ret+64(FP)
	VZEROUPPER
	RET
